"""Sequence to sequence with attention: an encoder stack, a decoder cell and attention between them.

The equations (time-major; ``S`` source steps, ``T`` target steps, ``N`` sequences)::

    encoder:   H, state = RNN(Embed_src(src), lengths=src_lengths)      H (S, N, K), K = D * hidden
               e = [h_T of the top layer, each direction]                (N, K)
    bridge:    s_0 = tanh(W_b e + b_b)                                  decoder start (c_0 = 0 for LSTM)
    decoder, for t = 1..T, with y_0 = <eos> and f_0 = 0 (input feeding):
               s_t = Cell([Embed_tgt(y_{t-1}); f_{t-1}], s_{t-1})       Cell: the decoder's cell kind
               a_t, c_t = Attention(h(s_t), H, src_lengths)             a_t (N, S), c_t (N, K)
               f_t = tanh(W_c [c_t; h(s_t)])                            Luong's attentional state
               logits_t = W_o f_t + b_o
    attention "none":  f_t = h(s_t), no context and no input feeding (the encoder's final
               state, through the bridge, is all the decoder knows about the source).

``Attention`` is :class:`rnnkit.nn.attention.Attention` (additive / general / dot); the decoder
cell is the trainable cell of :mod:`rnnkit.nn.cells` (the registry's gate math). Training is
teacher-forced (``y_{t-1}`` is the true previous character); the loss is the cross-entropy of
the targets, averaged over real (not padded) target positions. Backward is exact and written
out: through the head, the combine layer, the attention (:meth:`Attention.step_backward` per
step, the keys' gradient collected once), the decoder cell (``backward_step``, newest step
first: the input's gradient splits into the embedding's and the previous step's ``f``), the
bridge, and the encoder stack. Decoding (greedy, beam search) is in :mod:`rnnkit.translate`.

Parameter names: ``src_embedding.weight``, ``encoder.<torch.nn.LSTM names>``, ``bridge.weight``,
``bridge.bias``, ``tgt_embedding.weight``, ``decoder.<torch.nn.LSTMCell names>``,
``attention.<see Attention>``, ``combine.weight`` (no bias), ``head.weight``, ``head.bias``;
:class:`rnnkit.interop.torch.TorchSeq2Seq` has the same ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._mode import is_grad_enabled, no_grad
from .._validate import Range, check_choice, make_rng
from ..cells import CELLS, cell_spec
from ..errors import NoForwardError, ShapeError
from .attention import ATTENTION_KINDS, Attention, Memory, MemoryGrad, attention_parameter_shapes
from .cells import recurrent_cell
from .layers import Embedding, Linear, check_ids
from .losses import CrossEntropyLoss
from .models import STACK_RANGES, LossResult, _build_rnn, _Config
from .module import Module

#: ``attention`` choices of :class:`Seq2SeqConfig`.
ATTENTIONS = ATTENTION_KINDS + ("none",)


@dataclass
class Seq2SeqConfig(_Config):
    """Encoder-decoder with attention (see :mod:`rnnkit.nn.seq2seq`).

    ``cell``/``hidden_size``/``num_layers``/``bidirectional``: the encoder stack;
    ``decoder_cell``: the decoder's cell kind ("" = the encoder's); the decoder's hidden size
    is ``hidden_size * (2 if bidirectional else 1)``, the size of the encoder's outputs.
    ``attention``: 'additive', 'general', 'dot' or 'none'; ``attention_size``: the additive
    score's inner size (0 = the decoder's hidden size). ``dropout``: between encoder layers.
    """

    src_vocab_size: int = 0
    tgt_vocab_size: int = 0
    cell: str = "lstm"
    decoder_cell: str = ""
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    embedding_size: int = 32
    attention: str = "additive"
    attention_size: int = 0
    dropout: float = 0.0
    dtype: str = "float32"
    model = "Seq2Seq"
    RANGES = {"src_vocab_size": Range("int", 2, 10_000_000), "tgt_vocab_size": Range("int", 2, 10_000_000),
              "embedding_size": Range("int", 1, 65536), "attention_size": Range("int", 0, 65536),
              **STACK_RANGES}

    def validate(self) -> Seq2SeqConfig:
        """``self`` after checking every setting; :class:`~rnnkit.errors.ConfigError` otherwise."""
        who = "Seq2SeqConfig"
        self._check_ranges(who, "src_vocab_size", "tgt_vocab_size", "embedding_size")
        if self.decoder_cell:
            check_choice(who, "decoder_cell", self.decoder_cell, tuple(CELLS))
        check_choice(who, "attention", self.attention, ATTENTIONS)
        self._check_ranges(who, "attention_size")
        self._common(who)
        self._check_size(who)
        return self

    @property
    def decoder_kind(self) -> str:
        """The decoder's cell kind."""
        return self.decoder_cell or self.cell

    @property
    def key_size(self) -> int:
        """Size of the encoder's outputs (and the decoder's hidden size)."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def parameter_shapes(self) -> dict:
        """Every parameter's name and shape, from the sizes alone."""
        E, K = self.embedding_size, self.key_size
        att = self.attention != "none"
        shapes = {"src_embedding.weight": (self.src_vocab_size, E)}
        shapes.update({k.replace("rnn.", "encoder.", 1): v
                       for k, v in self._rnn_shapes(E, self.bidirectional).items()})
        shapes.update({"bridge.weight": (K, K), "bridge.bias": (K,),
                       "tgt_embedding.weight": (self.tgt_vocab_size, E)})
        shapes.update({f"decoder.{k}": v for k, v in cell_spec(self.decoder_kind).parameter_shapes(
            E + (K if att else 0), K).items()})
        if att:
            shapes.update({f"attention.{k}": v for k, v in attention_parameter_shapes(
                self.attention, K, K, self.attention_size or K).items()})
            shapes["combine.weight"] = (K, 2 * K)
        shapes.update({"head.weight": (self.tgt_vocab_size, K), "head.bias": (self.tgt_vocab_size,)})
        return shapes


class Encoded(NamedTuple):
    """The source side of a batch, computed once (:meth:`Seq2Seq.encode`)."""
    memory: Memory | None     # the attention's keys (None without attention)
    state: object                # the decoder's start state: s_0, or (s_0, c_0) for LSTM


class _Tape(NamedTuple):
    """What the teacher-forced forward keeps for backward."""
    src_lengths: np.ndarray | None
    s0: np.ndarray
    memory: Memory | None
    att_caches: list
    Z: np.ndarray | None      # (T, N, 2K) the combine inputs [c_t; h_t]
    F: np.ndarray                # (T, N, K) the f_t


class Seq2Seq(Module):
    """``logits, alignments = model(src (S, N), x (T, N), src_lengths=None)``.

    ``x`` are the decoder's inputs (``<eos>`` then the target shifted right: teacher forcing);
    logits (T, N, V_tgt); ``alignments`` (T, N, S) the attention weights of every step (None
    for ``attention='none'``). ``backward(dlogits)`` adds every parameter's gradient.
    """

    def __init__(self, config: Seq2SeqConfig, seed: int | np.random.Generator | None = None):
        super().__init__()
        self.config = cfg = config.checked()
        rng = make_rng(type(self).__name__, seed)
        dt = self.dtype = np.dtype(cfg.dtype)
        E, K = cfg.embedding_size, cfg.key_size
        self.attends = cfg.attention != "none"
        self._add_child("src_embedding", Embedding(cfg.src_vocab_size, E, dtype=dt, rng=rng))
        self._add_child("encoder", _build_rnn(cfg, E, rng, cfg.bidirectional))
        self._add_child("bridge", Linear(K, K, dtype=dt, rng=rng))
        self._add_child("tgt_embedding", Embedding(cfg.tgt_vocab_size, E, dtype=dt, rng=rng))
        self._add_child("decoder", recurrent_cell(cfg.decoder_kind, E + (K if self.attends else 0), K,
                                                  dtype=dt, seed=int(rng.integers(2**63))))
        self._add_child("attention", Attention(K, K, cfg.attention, cfg.attention_size or K, dtype=dt,
                                               rng=rng) if self.attends else None)
        self._add_child("combine", Linear(2 * K, K, bias=False, dtype=dt, rng=rng) if self.attends else None)
        self._add_child("head", Linear(K, cfg.tgt_vocab_size, dtype=dt, rng=rng))
        self._crit = CrossEntropyLoss()
        self._tape = None

    # -- pieces shared by training and decoding --------------------------------------------
    def _check_src(self, who, src, src_lengths):
        src = check_ids(who, "src", src, self.config.src_vocab_size)
        if src.ndim != 2:
            raise ShapeError(f"{who}: expected src of shape (S, N), got shape {src.shape}.")
        if src_lengths is not None:
            src_lengths = np.asarray(src_lengths, dtype=np.int64)
            if src_lengths.shape != (src.shape[1],):
                raise ShapeError(f"{who}: expected src_lengths of shape (N={src.shape[1]},), got "
                                 f"{src_lengths.shape}.")
            if np.all(src_lengths == src.shape[0]):
                src_lengths = None
        return src, src_lengths

    def _encode(self, src, src_lengths):
        H, state = self.encoder(self.src_embedding(src), None, src_lengths)    # (S, N, K)
        h = state[0] if self.encoder.spec.cell_state else state              # (L*D, N, He)
        D = self.encoder.num_directions
        e = np.concatenate(list(h[-D:]), axis=-1)                             # (N, K)
        s0 = np.tanh(self.bridge(e))                                          # (N, K)
        memory = self.attention.memory(H, src_lengths) if self.attends else None
        state0 = (s0, np.zeros_like(s0)) if self.decoder.spec.cell_state else s0
        return s0, memory, state0

    def encode(self, src: ArrayLike, src_lengths: ArrayLike | None = None) -> Encoded:
        """The source side for decoding (no gradients kept)."""
        src, src_lengths = self._check_src("Seq2Seq.encode", src, src_lengths)
        with no_grad():
            _, memory, state0 = self._encode(src, src_lengths)
        return Encoded(memory, state0)

    def _combine(self, context, h):
        z = np.concatenate([context, h], axis=-1)                             # (N, 2K)
        return z, np.tanh(z @ self.combine.parameters()["weight"].T)          # (N, K)

    def decode_step(self, tokens: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray], feed: np.ndarray | None,
                    memory: Memory | None) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray | None]:
        """One decoder step for inference: ``logits (N, V), state, feed, weights (N, S)|None``
        from the previous tokens (N,), the decoder state, the fed-back ``f`` (None at the
        first step) and the memory. Nothing is recorded."""
        with no_grad():
            emb = self.tgt_embedding.parameters()["weight"][tokens]           # (N, E)
            if self.attends:
                if feed is None:
                    feed = np.zeros((emb.shape[0], self.config.key_size), self.dtype)
                emb = np.concatenate([emb, feed], axis=-1)
            state = self.decoder(emb, state)
            h = state[0] if self.decoder.spec.cell_state else state
            weights = None
            if self.attends:
                context, weights, _ = self.attention.step(h, memory)
                _, f = self._combine(context, h)
            else:
                f = h
            head = self.head.parameters()
            logits = f @ head["weight"].T + head["bias"]
        return logits, state, f, weights

    # -- teacher-forced forward and its backward --------------------------------------------
    def forward(self, src: ArrayLike, x: ArrayLike, src_lengths: ArrayLike | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Teacher-forced logits (T, N, V_tgt) and alignments (T, N, S) (None without attention)."""
        who = "Seq2Seq"
        src, src_lengths = self._check_src(who, src, src_lengths)
        x = check_ids(who, "x", x, self.config.tgt_vocab_size)
        if x.ndim != 2 or x.shape[1] != src.shape[1]:
            raise ShapeError(f"{who}: expected decoder inputs x of shape (T, N={src.shape[1]}), got "
                             f"shape {x.shape}.")
        self.decoder.clear_tape()
        s0, memory, state = self._encode(src, src_lengths)
        T, N = x.shape
        K = self.config.key_size
        emb = self.tgt_embedding(x)                                           # (T, N, E)
        F = np.empty((T, N, K), self.dtype)
        Z = np.empty((T, N, 2 * K), self.dtype) if self.attends else None
        align = np.empty((T, N, src.shape[0]), self.dtype) if self.attends else None
        caches = []
        feed = np.zeros((N, K), self.dtype)
        for t in range(T):
            inp = np.concatenate([emb[t], feed], axis=-1) if self.attends else emb[t]
            state = self.decoder(inp, state)
            h = state[0] if self.decoder.spec.cell_state else state
            if self.attends:
                context, align[t], cache = self.attention.step(h, memory)
                caches.append(cache)
                Z[t], F[t] = self._combine(context, h)
                feed = F[t]
            else:
                F[t] = h
        logits = self.head(F)                                                 # (T, N, V)
        self._tape = (_Tape(src_lengths, s0, memory, caches, Z, F) if is_grad_enabled() else None)
        return logits, align

    def backward(self, dlogits: np.ndarray, dalignments: np.ndarray | None = None) -> tuple[None, None]:
        """Gradients of the last forward (parameters only: token ids get none). ``dalignments``
        (T, N, S) optional gradient on the returned alignments."""
        if self._tape is None:
            raise NoForwardError("Seq2Seq.backward: no forward pass to differentiate; call the model "
                                 "first (outside rnnkit.no_grad()).")
        tape, self._tape = self._tape, None
        dF = self.head.backward(dlogits)                                      # (T, N, K)
        T, N, K = dF.shape
        E = self.config.embedding_size
        lstm = self.decoder.spec.cell_state
        demb = np.empty((T, N, E), self.dtype)
        grad = MemoryGrad(tape.memory) if self.attends else None
        dpre_all = np.empty((T, N, K), self.dtype) if self.attends else None
        W_c = self.combine.parameters()["weight"] if self.attends else None
        dfeed = None
        carry = (None, None) if lstm else None
        for t in range(T - 1, -1, -1):
            df = dF[t] if dfeed is None else dF[t] + dfeed
            if self.attends:
                dpre = df * (1 - tape.F[t] * tape.F[t])                        # (N, K)
                dpre_all[t] = dpre
                dz = dpre @ W_c                                               # (N, 2K)
                da = None if dalignments is None else np.asarray(dalignments[t], self.dtype)
                dh = dz[:, K:] + self.attention.step_backward(dz[:, :K], da, tape.att_caches[t],
                                                              tape.memory, grad)
            else:
                dh = df
            if lstm:
                dstate = (dh if carry[0] is None else dh + carry[0], carry[1])
            else:
                dstate = dh if carry is None else dh + carry
            dx, carry = self.decoder.backward_step(dstate)
            demb[t] = dx[:, :E]
            dfeed = dx[:, E:] if self.attends else None
        self.tgt_embedding.backward(demb)
        if self.attends:
            self.combine.gradients()["weight"] += dpre_all.reshape(T * N, K).T @ tape.Z.reshape(T * N, 2 * K)
            dH = self.attention.memory_backward(tape.memory, grad)
        else:
            dH = None
        ds0 = carry[0] if lstm else carry
        de = self.bridge.backward(ds0 * (1 - tape.s0 * tape.s0))              # (N, K)
        enc = self.encoder
        D, He = enc.num_directions, enc.hidden_size
        dh_n = np.zeros(enc.state_shape(N), self.dtype)
        for d in range(D):
            dh_n[enc.num_layers * D - D + d] = de[:, d * He:(d + 1) * He]
        dx_enc, _ = enc.backward(dH, (dh_n, None) if enc.spec.cell_state else dh_n)
        self.src_embedding.backward(dx_enc)
        return None, None

    # -- the trainer's contract -------------------------------------------------------------
    def loss(self, batch: object, carry: None = None) -> LossResult:
        """Mean cross-entropy (nats per target character, ``<eos>`` included) of a
        :class:`rnnkit.data.PairsBatch`, teacher-forced; padded targets are skipped."""
        logits, _ = self.forward(batch.src, batch.x, batch.src_lengths)
        loss = self._crit(logits, batch.y)
        return LossResult(loss, self._crit.last_count, None)

    def backward_loss(self) -> None:
        """Backward of the last :meth:`loss`."""
        self.backward(self._crit.backward())

    def zero_grad(self) -> None:
        """Zero every gradient and drop what the last forward kept."""
        super().zero_grad()
        self._tape = None

