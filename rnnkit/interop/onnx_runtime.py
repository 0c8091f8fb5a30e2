"""Run a char LM or a seq2seq model exported by :mod:`rnnkit.interop.onnx` with ONNX Runtime.

:class:`OnnxCharLM` steps a char LM; :class:`OnnxSeq2Seq` runs a seq2seq model's two graphs
behind the interface of :class:`rnnkit.nn.Seq2Seq` that :class:`rnnkit.translate.Translator`
decodes with (greedy and beam search). It needs the optional ``onnxruntime`` package
(``pip install 'rnnkit[onnx]'``) and not ``onnx``: the graph's inputs, outputs and metadata
(written by the export) are read from the session. Every file is checked before ONNX Runtime
sees it (a regular file of at most :data:`MAX_ONNX_BYTES`), and a file that loads but is not
an rnnkit char LM is one :class:`~rnnkit.errors.CheckpointError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_float_array, check_int, to_numpy
from ..cells import CELLS, cell_spec
from ..errors import CheckpointError, ConfigError, DataError, DTypeError, ShapeError
from ..io import open_regular

if TYPE_CHECKING:
    from ..nn.attention import Memory
    from ..nn.seq2seq import Encoded

__all__ = ["OnnxCharLM", "OnnxSeq2Seq", "MAX_ONNX_BYTES"]

#: The largest ONNX file OnnxCharLM and OnnxSeq2Seq open (ONNX's protobuf itself stops at 2 GiB).
MAX_ONNX_BYTES = 2 * 1024 ** 3


def _onnxruntime(who: str):
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"{who}: expected the optional 'onnxruntime' package, but it is not "
                          f"installed. Install it with: pip install 'rnnkit[onnx]'") from e
    return ort


def _session(who: str, path: str, providers, num_threads):
    """An ONNX Runtime session of ``path`` after checking it is a regular file of at most
    :data:`MAX_ONNX_BYTES`; a file ONNX Runtime cannot load is one CheckpointError."""
    ort = _onnxruntime(who)
    opts = ort.SessionOptions()
    if num_threads is not None:
        opts.intra_op_num_threads = check_int(who, "num_threads", num_threads, minimum=1)
    f, _ = open_regular(path, who, "ONNX", MAX_ONNX_BYTES)            # a file, not a FIFO or dir
    f.close()
    try:
        return ort.InferenceSession(path, opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception classes (Fail, InvalidProtobuf ...)
        raise CheckpointError(f"{who}: ONNX Runtime cannot load {path!r} "
                              f"({type(e).__name__}: {str(e):.300}). It is not a valid ONNX "
                              f"model; write one with `rnnkit export`.") from None


class OnnxCharLM:
    """Run a char LM exported by :func:`rnnkit.interop.onnx.export` with ONNX Runtime, step by step.

    ``step(tokens, state)`` feeds ``tokens`` (T, N) int64 (a 1-D (N,) array is one step,
    T = 1) from ``state`` and returns ``(logits (T, N, V) float32, new_state)``; the state is
    ``h`` (num_layers, N, H) for RNN/GRU and the tuple ``(h, c)`` for LSTM, like rnnkit's
    layers. ``state=None`` starts from zeros.

    Attributes: ``cell``, ``vocab_size``, ``hidden_size``, ``num_layers``, ``embedding_size``
    (from the model's metadata), ``metadata`` (all ``metadata_props``), ``session``.

    Example:
        >>> lm = OnnxCharLM("charlm.onnx")                            # doctest: +SKIP
        >>> logits, state = lm.step(np.array([[3, 1]]), None)          # (1, 2, V)  # doctest: +SKIP
        >>> logits, state = lm.step(logits[-1].argmax(-1)[None], state)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None,
                 num_threads: int | None = None):
        who = "OnnxCharLM"
        self.path = os.fspath(path)
        self.session = _session(who, self.path, providers, num_threads)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("kind") != "charlm":
            raise ConfigError(f"{who}: expected an ONNX char LM exported by rnnkit "
                              f"(metadata kind='charlm'), got kind={self.metadata.get('kind')!r:.60} "
                              f"in {self.path!r}. Export it with rnnkit.interop.onnx.export().")
        self.cell = self.metadata.get("cell")
        try:
            self._is_lstm = cell_spec(self.cell).cell_state
        except (ConfigError, TypeError):
            raise CheckpointError(f"{who}: {self.path!r}: metadata cell={self.cell!r:.60} is not "
                                  f"one of {', '.join(CELLS)}; the file is damaged.") from None
        for key in ("vocab_size", "hidden_size", "num_layers", "embedding_size"):
            value = self.metadata.get(key, "")
            if not (value.isdigit() and len(value) < 10 and (int(value) > 0 or key == "embedding_size")):
                raise CheckpointError(f"{who}: {self.path!r}: expected metadata {key} to be a "
                                      f"positive integer, got {value!r:.60}; the file is damaged.")
            setattr(self, key, int(value))
        names = {i.name for i in self.session.get_inputs()}
        outputs = self.session.get_outputs()
        want_in = {"tokens"} | ({"h0", "c0"} if self._is_lstm else {"h0"})
        if not (names == want_in or names == {"tokens"}) or len(outputs) != (3 if self._is_lstm else 2):
            raise CheckpointError(f"{who}: {self.path!r}: expected the inputs and outputs of an "
                                  f"rnnkit char LM (tokens[, h0{', c0' if self._is_lstm else ''}] -> "
                                  f"logits, h_n{', c_n' if self._is_lstm else ''}), got inputs "
                                  f"{sorted(names)!r:.100} and {len(outputs)} outputs; the file is "
                                  f"damaged.")
        self._has_state = "h0" in names
        self._dtype = np.float64 if "double" in outputs[0].type else np.float32

    def initial_state(self, batch_size: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Zeros of shape (num_layers, batch_size, H) (a tuple ``(h, c)`` for LSTM)."""
        n = check_int("OnnxCharLM.initial_state", "batch_size", batch_size, minimum=1)
        shape = (self.num_layers, n, self.hidden_size)
        h = np.zeros(shape, self._dtype)
        return (h, np.zeros(shape, self._dtype)) if self._is_lstm else h

    def _check_state(self, state, n: int):
        who = "OnnxCharLM.step"
        shape = (self.num_layers, n, self.hidden_size)
        if self._is_lstm:
            if not (isinstance(state, (tuple, list)) and len(state) == 2):
                raise ConfigError(f"{who}: expected an LSTM state as the tuple (h, c), got "
                                  f"{type(state).__name__}.")
            parts = [("h", state[0]), ("c", state[1])]
        else:
            parts = [("h", state)]
        out = []
        for name, s in parts:
            arr = np.ascontiguousarray(as_float_array(who, f"state {name}", to_numpy(who, f"state {name}", s),
                                                      self._dtype))        # no NaN, inf, complex
            if arr.shape != shape:
                raise ShapeError(f"{who}: expected state {name} of shape (num_layers="
                                 f"{self.num_layers}, N={n}, hidden_size={self.hidden_size}), got "
                                 f"shape {arr.shape}. Pass the state returned by the previous "
                                 f"step, or None to start from zeros.")
            out.append(arr)
        return out

    def step(self, tokens: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        """Advance the model over ``tokens`` (T, N) from ``state``; return ``(logits, state)``.

        ``logits`` is (T, N, V) float32 (the model's dtype); ``state`` is ``h`` or ``(h, c)``,
        each (num_layers, N, H).
        """
        who = "OnnxCharLM.step"
        tok = to_numpy(who, "tokens", tokens)
        if tok.ndim == 1:
            tok = tok[None, :]                                        # (1, N)
        if tok.ndim != 2 or tok.shape[0] == 0 or tok.shape[1] == 0:
            raise ShapeError(f"{who}: expected tokens of shape (T, N) with T, N >= 1, got shape "
                             f"{tuple(np.shape(tokens))}.")
        if tok.dtype.kind not in "iu":
            raise DTypeError(f"{who}: expected integer token ids, got dtype {tok.dtype}. Convert "
                             f"with np.asarray(tokens, dtype=np.int64).")
        if tok.min() < 0 or tok.max() >= self.vocab_size:
            raise DataError(f"{who}: expected token ids in [0, {self.vocab_size}), got values in "
                            f"[{int(tok.min())}, {int(tok.max())}]. Encode text with the model's "
                            f"vocabulary.")
        tok = np.ascontiguousarray(tok, dtype=np.int64)
        n = tok.shape[1]
        feeds = {"tokens": tok}
        if self._has_state:
            st = self._check_state(self.initial_state(n) if state is None else state, n)
            feeds["h0"] = st[0]
            if self._is_lstm:
                feeds["c0"] = st[1]
        elif state is not None:
            raise ConfigError(f"{who}: this model was exported with initial_state=False and "
                              f"takes no state; pass state=None, or re-export with "
                              f"initial_state=True to generate step by step.")
        try:
            out = self.session.run(None, feeds)
        except Exception as e:  # a graph that loads but does not compute (crafted file)
            raise CheckpointError(f"{who}: ONNX Runtime failed to run {self.path!r} "
                                  f"({type(e).__name__}: {str(e):.300}); the file is damaged.") from None
        logits, h = out[0], out[1]
        return logits, ((h, out[2]) if self._is_lstm else h)

    __call__ = step

    def __repr__(self) -> str:
        return (f"OnnxCharLM(cell={self.cell!r}, vocab_size={self.vocab_size}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"embedding_size={self.embedding_size})")


class OnnxSeq2Seq:
    """A seq2seq model exported by :func:`rnnkit.interop.onnx.export` (the encoder file at
    ``path`` and the decoder-step file its metadata names, in the same folder), run with ONNX
    Runtime behind :class:`rnnkit.nn.Seq2Seq`'s decoding interface: :meth:`encode` and
    :meth:`decode_step`, so :class:`rnnkit.translate.Translator` decodes it (greedy, beam)::

        >>> from rnnkit.translate import Translator                  # doctest: +SKIP
        >>> tr = Translator(OnnxSeq2Seq("dates.onnx"), src_vocab, tgt_vocab)  # doctest: +SKIP
        >>> tr.translate(["3 May 1979"])[0].text                      # doctest: +SKIP
        '1979-05-03'

    Attributes: ``config`` (the model's :class:`~rnnkit.nn.Seq2SeqConfig`, from the metadata),
    ``attends``, ``metadata`` (the encoder's ``metadata_props``), ``encoder`` and ``decoder``
    (the two sessions).
    """

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None,
                 num_threads: int | None = None):
        import json

        from ..errors import RnnkitError
        from ..nn.seq2seq import Seq2SeqConfig
        who = "OnnxSeq2Seq"
        self.path = os.fspath(path)
        self.encoder = _session(who, self.path, providers, num_threads)
        self.metadata = dict(self.encoder.get_modelmeta().custom_metadata_map)
        if self.metadata.get("kind") != "seq2seq":
            raise ConfigError(f"{who}: expected the encoder of an ONNX seq2seq model exported by "
                              f"rnnkit (metadata kind='seq2seq'), got kind="
                              f"{self.metadata.get('kind')!r:.60} in {self.path!r}. Export a seq2seq "
                              f"run with `rnnkit export DIR --onnx FILE`.")
        try:
            self.config = Seq2SeqConfig.from_dict(json.loads(self.metadata.get("config", "")))
        except (ValueError, RnnkitError) as e:
            raise CheckpointError(f"{who}: {self.path!r}: metadata config is not a valid "
                                  f"Seq2SeqConfig ({str(e):.200}); the file is damaged.") from None
        name = self.metadata.get("decoder_file", "")
        if not name or os.path.basename(name) != name:
            raise CheckpointError(f"{who}: {self.path!r}: metadata decoder_file={name!r:.60} is "
                                  f"not a file name; the file is damaged.")
        self.decoder_path = os.path.join(os.path.dirname(self.path), name)
        if not os.path.exists(self.decoder_path):
            raise CheckpointError(f"{who}: {self.path!r} is the encoder of a seq2seq export; its "
                                  f"decoder step {self.decoder_path!r}, written next to it by the "
                                  f"export, is missing. Keep the two files together.")
        self.decoder = _session(who, self.decoder_path, providers, num_threads)
        if dict(self.decoder.get_modelmeta().custom_metadata_map).get("kind") != "seq2seq_decoder":
            raise CheckpointError(f"{who}: {self.decoder_path!r} is not the decoder step of an "
                                  f"rnnkit seq2seq export (metadata kind='seq2seq_decoder'); "
                                  f"export the model again.")
        self.attends = self.config.attention != "none"
        self._lstm = cell_spec(self.config.decoder_kind).cell_state
        self._proj = self.config.attention in ("additive", "general")
        self._dtype = np.float64 if "double" in self.encoder.get_outputs()[0].type else np.float32

    def _run(self, session, feeds, path):
        try:
            return session.run(None, feeds)
        except Exception as e:  # a graph that loads but does not compute (crafted file)
            raise CheckpointError(f"OnnxSeq2Seq: ONNX Runtime failed to run {path!r} "
                                  f"({type(e).__name__}: {str(e):.300}); the file is damaged.") from None

    def encode(self, src: ArrayLike, src_lengths: ArrayLike | None = None) -> Encoded:
        """The source side: a :class:`rnnkit.nn.seq2seq.Encoded` (memory, start state) of
        ``src`` (S, N) ids right-padded to ``src_lengths`` (N,) (None: all S long)."""
        from ..nn.attention import Memory, length_mask
        from ..nn.layers import check_ids
        from ..nn.seq2seq import Encoded
        who = "OnnxSeq2Seq.encode"
        src = check_ids(who, "src", src, self.config.src_vocab_size)
        if src.ndim != 2 or 0 in src.shape:
            raise ShapeError(f"{who}: expected src of shape (S, N) with S, N >= 1, got shape {src.shape}.")
        S, N = src.shape
        lengths = np.full(N, S, np.int64) if src_lengths is None else np.asarray(src_lengths, np.int64)
        mask = length_mask(who, lengths, S, N)                            # checks the lengths
        out = self._run(self.encoder, {"src": np.ascontiguousarray(src, np.int64),
                                       "src_lengths": np.ascontiguousarray(lengths)}, self.path)
        keys = out[0]
        proj = out[1] if self._proj else None
        h = out[2 if self._proj else 1]
        state = (h, out[-1]) if self._lstm else h
        return Encoded(Memory(keys, proj, mask) if self.attends else None, state)

    def decode_step(self, tokens: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray], feed: np.ndarray | None,
                    memory: Memory | None
                    ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray | None]:
        """One decoder step, as :meth:`rnnkit.nn.Seq2Seq.decode_step`: ``logits (N, V), state,
        feed, weights (N, S) | None`` from the previous tokens (N,), the state, the fed-back
        ``feed`` (None at the first step) and the memory of :meth:`encode`."""
        c = np.ascontiguousarray
        h = state[0] if self._lstm else state
        feeds = {"tokens": c(tokens, np.int64), "h": c(h, self._dtype)}
        if self._lstm:
            feeds["c"] = c(state[1], self._dtype)
        if self.attends:
            keys, proj, mask = memory
            S, N = keys.shape[:2]
            feeds["feed"] = (np.zeros((N, self.config.key_size), self._dtype) if feed is None
                             else c(feed, self._dtype))
            feeds["keys"] = c(keys)
            if self._proj:
                feeds["proj"] = c(proj)
            feeds["src_lengths"] = (np.full(N, S, np.int64) if mask is None
                                    else mask.sum(axis=0).astype(np.int64))
        out = self._run(self.decoder, feeds, self.decoder_path)
        logits, h = out[0], out[1]
        new_state = (h, out[2]) if self._lstm else h
        if not self.attends:
            return logits, new_state, h, None
        return logits, new_state, out[-2], out[-1]

    def __repr__(self) -> str:
        c = self.config
        return (f"OnnxSeq2Seq(cell={c.cell!r}, decoder_cell={c.decoder_kind!r}, "
                f"attention={c.attention!r}, hidden_size={c.hidden_size}, "
                f"src_vocab_size={c.src_vocab_size}, tgt_vocab_size={c.tgt_vocab_size})")
