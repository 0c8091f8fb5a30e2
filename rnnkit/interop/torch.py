"""Convert rnnkit layers and models to PyTorch modules and back (``pip install 'rnnkit[torch]'``).

This module lives at the edge of rnnkit: the core never imports it. Because rnnkit uses
PyTorch's names, shapes and gate orders (LSTM rows i, f, g, o; GRU rows r, z, n with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), a conversion is a copy of the
``state_dict`` with no renaming and no reordering.

==================================  ==========================================================
rnnkit                              PyTorch (``to_torch`` / ``from_torch``)
==================================  ==========================================================
``nn.RNN`` / ``nn.LSTM`` / ``GRU``  ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (all of num_layers,
                                    bidirectional, batch_first, bias, nonlinearity, dropout)
``nn.RNNCell`` / ``LSTMCell`` /     ``torch.nn.RNNCell`` / ``LSTMCell`` / ``GRUCell`` (bias,
``GRUCell``                         nonlinearity)
``nn.Linear``                       ``torch.nn.Linear``
``nn.Embedding``                    ``torch.nn.Embedding``
``nn.CharLM``                       :class:`TorchCharLM`
``nn.SequenceClassifier``           :class:`TorchSequenceClassifier`
``nn.SequenceRegressor``            :class:`TorchSequenceRegressor`
``nn.Seq2Seq``                      :class:`TorchSeq2Seq` (``nn.attention.Attention``:
                                    :class:`TorchAttention`)
==================================  ==========================================================

The ``Torch*`` models are plain ``torch.nn.Module`` subclasses with the attributes
``embedding`` (None for one-hot or feature input; the regressor has none), ``rnn`` and ``head``, the same
``state_dict`` keys as the rnnkit model (``embedding.weight``, ``rnn.weight_ih_l0``, ...,
``head.weight``, ``head.bias``), the dtype of the rnnkit model, and a ``forward`` that computes
the same numbers (time-major inputs; ``lengths`` through packed sequences; 'last' / 'mean'
pooling). They keep the rnnkit config as the dict ``module.rnnkit_config``, which is what
:func:`from_torch` rebuilds the rnnkit model from.

A trained checkpoint loads into PyTorch in three lines (no key renaming); here a small
untrained one stands for it::

    >>> import json, safetensors.torch, torch
    >>> from rnnkit import nn
    >>> from rnnkit.checkpoint import save_checkpoint
    >>> from rnnkit.interop.torch import charlm_torch_module
    >>> model = nn.CharLM(nn.CharLMConfig(vocab_size=5, hidden_size=8), seed=0)
    >>> version = save_checkpoint("runs/x", model_state=model.state_dict(),
    ...                           config=model.config.to_dict())
    >>> cfg = json.load(open("runs/x/config.json"))
    >>> m = charlm_torch_module(cfg)
    >>> m.load_state_dict(safetensors.torch.load_file("runs/x/model.safetensors"))
    <All keys matched successfully>
    >>> logits, state = m(torch.tensor([[3], [1]]))    # tokens (T=2, N=1) -> logits (2, 1, V)
    >>> tuple(logits.shape)
    (2, 1, 5)

Layers::

    >>> import numpy as np, rnnkit.nn as nn
    >>> from rnnkit.interop.torch import to_torch, from_torch
    >>> lstm = nn.LSTM(8, 16, num_layers=2, dtype=np.float64, seed=0)
    >>> tl = to_torch(lstm)                             # torch.nn.LSTM, float64, same weights
    >>> back = from_torch(tl)                           # rnnkit nn.LSTM again
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import DTypeLike

try:
    import torch
    from torch import nn as tnn
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("rnnkit.interop.torch needs PyTorch, which is not installed. Install it "
                      "with: pip install 'rnnkit[torch]'") from e

from .. import nn as rnn_nn
from ..cells import CELLS, cell_spec, map_state
from ..errors import ConfigError, DTypeError
from ..nn.models import (
    CharLM,
    CharLMConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    SequenceRegressor,
    SequenceRegressorConfig,
)
from ..nn.seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = ["to_torch", "from_torch", "charlm_torch_module", "torch_model_from_config",
           "TorchCharLM", "TorchSequenceClassifier", "TorchSequenceRegressor", "TorchAttention",
           "TorchSeq2Seq"]

_NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
_TORCH_TO_NP = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
#: torch.nn's single-step cell classes, as the registry names them
_TORCH_CELLS = tuple({getattr(tnn, s.cell_layer) for s in CELLS.values()})



# ============================================================================== helpers
def _torch_dtype(np_dtype) -> torch.dtype:
    return _NP_TO_TORCH[np.dtype(np_dtype)]


def _np_dtype(who: str, module, dtype):
    """The NumPy dtype of an rnnkit copy of ``module``: ``dtype`` or the module's own."""
    if dtype is not None:
        dt = np.dtype(dtype)
        if dt not in _NP_TO_TORCH:
            raise DTypeError(f"{who}: expected dtype float32 or float64, got {dtype!r}.")
        return dt
    p = next(iter(module.parameters()), None)
    if p is None:
        return np.dtype(np.float32)
    if p.dtype not in _TORCH_TO_NP:
        raise DTypeError(f"{who}: expected a float32 or float64 torch module, got parameters of "
                         f"dtype {p.dtype}. Pass dtype=np.float32 to convert, or call "
                         f"module.double() / module.float() first.")
    return _TORCH_TO_NP[p.dtype]


def _numpy_state(module) -> dict:
    """state_dict of a torch module as float64 NumPy arrays (any float dtype, any device)."""
    return {k: v.detach().cpu().to(torch.float64).numpy() for k, v in module.state_dict().items()}


def _load_into_torch(tmod, state: dict) -> None:
    with torch.no_grad():
        tmod.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                             strict=True)


def _make_torch_rnn(cell, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, proj_size=0, device=None):
    """``torch.nn.RNN/LSTM/GRU`` for any cell name or mode: the spec names the class (the same
    name in rnnkit.nn and torch.nn) and its keyword arguments (the RNN's nonlinearity); an
    LSTM's ``proj_size``."""
    spec = cell_spec(cell)
    if spec.layer_norm:
        raise ConfigError(f"expected a cell that torch.nn has (lstm, gru, rnn, rnn_relu), got the "
                          f"layer-normalised {spec.name!r}: torch.nn has no layer-normalised "
                          f"LSTM or GRU. rnnkit's PyTorch twin of such a stack exists inside a "
                          f"CharLM only (to_torch(CharLM), --engine torch); convert the model "
                          f"instead of the layer.")
    kw = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, bias=bias,
              batch_first=batch_first, dropout=dropout, bidirectional=bidirectional, dtype=dtype,
              device=device, **spec.layer_kwargs)
    if proj_size:
        kw["proj_size"] = proj_size
    with warnings.catch_warnings():
        # torch warns about dropout with num_layers=1 (it has no effect); rnnkit allows it too.
        warnings.simplefilter("ignore", UserWarning)
        return getattr(tnn, spec.layer)(**kw)


def _run_rnn(rnn, x, state, lengths):
    """``rnn(x, state)`` over right-padded sequences of ``lengths`` (packed), outputs 0 past
    each sequence's end; time-major or batch-first as the rnn says. Without a state, a learned
    initial state (the parameters ``h0``/``c0`` a twin adds to ``rnn``) starts every sequence."""
    state = _initial_state(rnn, x, state)
    if lengths is None:
        return rnn(x, state)
    T = x.shape[1 if rnn.batch_first else 0]
    packed = pack_padded_sequence(x, _cpu_lengths(lengths), batch_first=rnn.batch_first,
                                  enforce_sorted=False)
    out, state_n = rnn(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=rnn.batch_first, total_length=T)
    return out, state_n


def _initial_state(rnn, x, state):
    """``state``, or without one the learned initial state (``rnn.h0``/``rnn.c0``) repeated over
    the batch of ``x``, or None (zeros)."""
    if state is not None or not hasattr(rnn, "h0"):
        return state
    N = x.shape[0 if rnn.batch_first else 1]
    parts = [getattr(rnn, n)[:, None, :].expand(-1, N, -1).contiguous()
             for n in (("h0", "c0") if hasattr(rnn, "c0") else ("h0",))]
    return tuple(parts) if len(parts) == 2 else parts[0]


def _cpu_lengths(lengths):
    lengths = torch.as_tensor(np.asarray(lengths) if not torch.is_tensor(lengths) else lengths)
    return lengths.to(device="cpu", dtype=torch.int64)


def _layer_views(rnn) -> list:
    """One single-layer module per layer of the stacked ``rnn`` whose parameters ARE the stack's
    (the same Parameter objects: gradients, devices and checkpoints stay the stack's). Built on
    the meta device, so nothing is allocated."""
    spec = cell_spec(rnn.mode)
    views = []
    for k in range(rnn.num_layers):
        size_in = rnn.input_size if k == 0 else (rnn.proj_size or rnn.hidden_size)
        view = _make_torch_rnn(spec.name, size_in, rnn.hidden_size, 1, rnn.bias, rnn.batch_first, 0.0,
                               False, rnn.weight_ih_l0.dtype, rnn.proj_size, device="meta")
        for name in view._flat_weights_names:          # weight_ih_l0 -> weight_ih_l{k}
            setattr(view, name, getattr(rnn, name[:-1] + str(k)))
        views.append(view)
    return views


def _validated(cfg_cls, config, who):
    """Config dataclass from a dict (types, ranges and the total size, checked by the config
    class before torch allocates anything), as ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError(f"{who}: expected the model config as a dict (a checkpoint's "
                          f"config.json), got {type(config).__name__}.")
    return cfg_cls.from_dict(config)


# ============================================================================== models
class _TorchModel(tnn.Module):
    """Shared parts of the torch twins of rnnkit's models."""

    _cfg_cls = None

    def _init_common(self, config, who):
        cfg = _validated(self._cfg_cls, config, who)
        self.rnnkit_config = cfg.to_dict()
        self._dtype = _torch_dtype(cfg.dtype)
        return cfg

    def _rnn(self, cfg, input_size, bidirectional):
        if cell_spec(cfg.cell).layer_norm and isinstance(self, TorchCharLM):
            return _LayerNormStack(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers,
                                   cfg.dropout, self._dtype)
        rnn = _make_torch_rnn(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers,
                              True, False, cfg.dropout, bidirectional, self._dtype,
                              getattr(cfg, "proj_size", 0))
        if getattr(cfg, "learn_initial_state", False):     # rnn.h0 (rnn.c0), as in rnnkit
            LD = cfg.num_layers * (2 if bidirectional else 1)
            rnn.register_parameter("h0", tnn.Parameter(torch.zeros((LD, cfg.state_size), dtype=self._dtype)))
            if cell_spec(cfg.cell).cell_state:
                rnn.register_parameter("c0", tnn.Parameter(torch.zeros((LD, cfg.hidden_size), dtype=self._dtype)))
        return rnn

    def _pool(self, out, state, lengths):
        """(T, N, D*H) -> (N, D*H): the top layer's final state(s), or the mean over valid steps."""
        D = 2 if self.rnn.bidirectional else 1
        if self.rnnkit_config["pooling"] == "last":
            h = state[0] if cell_spec(self.rnn.mode).cell_state else state      # (L*D, N, H)
            return torch.cat(list(h[-D:]), dim=-1)                              # (N, D*H)
        T, N = out.shape[0], out.shape[1]
        if lengths is None:
            L = torch.full((N,), float(T), dtype=out.dtype, device=out.device)
        else:
            L = torch.as_tensor(np.asarray(lengths) if not torch.is_tensor(lengths) else lengths)
            L = L.to(device=out.device, dtype=out.dtype)
        return out.sum(dim=0) / L[:, None]                                      # padding is 0

    def extra_repr(self):
        return f"rnnkit_config={self.rnnkit_config}"


class TorchCharLM(_TorchModel):
    """PyTorch twin of :class:`rnnkit.nn.CharLM`: (embedding or one-hot) -> rnn -> head.

    ``logits, state = m(tokens (T, N) int64, state=None, lengths=None)``; logits (T, N, V),
    state (num_layers, N, H) or the LSTM tuple (h, c). Positions past ``lengths`` see a zero
    rnn output, so their logits are ``head.bias`` (as in rnnkit).

    The one PyTorch CharLM of rnnkit: ``to_torch`` returns it and the torch engine trains it.
    In training mode with dropout between layers, the layers run one at a time (views of
    ``rnn``'s own parameters) with ``torch.nn.functional.dropout`` between them: what
    ``torch.nn.LSTM(dropout=p)`` computes, but drawn from torch's ordinary generator on CUDA
    too (cuDNN's dropout state cannot be saved, so a resumed run could not repeat). With the
    regularisers of the config (``input_dropout``, ``output_dropout``, ``recurrent_dropout``,
    ``weight_drop``, ``embedding_dropout``: what :class:`rnnkit.nn.RNNBase` and
    :class:`rnnkit.nn.CharLM` mean by them) training runs the stack one time
    step at a time, its masks drawn from torch's generator; in eval mode they are off.
    """

    _cfg_cls = CharLMConfig

    def __init__(self, config: dict):
        super().__init__()
        cfg = self._init_common(config, "TorchCharLM")
        V, E = cfg.vocab_size, cfg.embedding_size
        self.embedding = tnn.Embedding(V, E, dtype=self._dtype) if E > 0 else None
        self.rnn = self._rnn(cfg, E if E > 0 else V, False)
        self.head = tnn.Linear(cfg.state_size, V, dtype=self._dtype)

    def forward(self, tokens: torch.Tensor | np.ndarray, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
                lengths: torch.Tensor | np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        tokens = torch.as_tensor(tokens).long()                                 # (T, N)
        if self.embedding is not None:
            x = self.embedding(tokens)                                          # (T, N, E)
        else:
            V = self.rnnkit_config["vocab_size"]
            x = tnn.functional.one_hot(tokens, V).to(self.head.weight.dtype)   # (T, N, V)
        cfg = self.rnnkit_config
        if (self.training and any(cfg.get(k) for k in _REGULARISERS)) or isinstance(
                self.rnn, _LayerNormStack):
            if not self.training:
                cfg = {**cfg, **dict.fromkeys(_REGULARISERS, 0.0)}
            if cfg["embedding_dropout"]:           # whole characters, one factor per id
                x = x * _mask((cfg["vocab_size"],), cfg["embedding_dropout"], x)[tokens][..., None]
            out, state = _regularised_stack(self.rnn, cfg, x, state, lengths, self.training)
        elif self.training and self.rnn.dropout > 0 and self.rnn.num_layers > 1:
            out, state = self._layer_by_layer(x, state, lengths)
        else:
            out, state = _run_rnn(self.rnn, x, state, lengths)                  # (T, N, H)
        return self.head(out), state                                            # (T, N, V)

    def _layer_by_layer(self, x, state, lengths):
        """``_run_rnn(self.rnn, ...)`` with the dropout between layers drawn here."""
        state = _initial_state(self.rnn, x, state)
        T, p = x.shape[0], self.rnn.dropout
        if lengths is not None:
            x = pack_padded_sequence(x, _cpu_lengths(lengths), enforce_sorted=False)
        finals = []
        for k, layer in enumerate(_layer_views(self.rnn)):
            if k > 0:
                if isinstance(x, PackedSequence):
                    x = x._replace(data=tnn.functional.dropout(x.data, p, True))
                else:
                    x = tnn.functional.dropout(x, p, True)
            s = None if state is None else map_state(lambda a, k=k: a[k:k + 1], state)
            x, s = layer(x, s)
            finals.append(s)
        if lengths is not None:
            x, _ = pad_packed_sequence(x, total_length=T)
        if isinstance(finals[0], tuple):
            return x, (torch.cat([s[0] for s in finals]), torch.cat([s[1] for s in finals]))
        return x, torch.cat(finals)


_REGULARISERS = ("input_dropout", "output_dropout", "recurrent_dropout", "weight_drop",
                 "embedding_dropout")


def _mask(shape, p, like):
    """Inverted-dropout factors (0, or 1 / (1 - p)) from torch's generator, on ``like``'s
    device and dtype."""
    keep = torch.full(shape, 1.0 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1.0 - p)


class _LayerNormStack(tnn.Module):
    """The parameters of rnnkit's layer-normalised stack (``lstm_ln``/``gru_ln``) under
    rnnkit's names (``weight_ih_l0``, ..., ``ln_weight_ih_l0``, ...), with the attributes of a
    ``torch.nn.LSTM``/``GRU`` that :func:`_regularised_stack` reads; torch.nn has no such
    layer, so :class:`TorchCharLM` runs it with :func:`_regularised_stack`."""

    def __init__(self, cell, input_size, hidden_size, num_layers, dropout, dtype):
        super().__init__()
        spec = cell_spec(cell)
        self.mode, self.input_size, self.hidden_size = spec.torch_mode, input_size, hidden_size
        self.num_layers, self.dropout, self.bias, self.batch_first = num_layers, dropout, True, False
        self.bidirectional, self.proj_size = False, 0
        for k in range(num_layers):
            for name, shape in spec.parameter_shapes(input_size if k == 0 else hidden_size,
                                                     hidden_size, True, f"_l{k}").items():
                self.register_parameter(name, tnn.Parameter(torch.zeros(shape, dtype=dtype)))


def _regularised_stack(rnn, cfg: dict, x, state, lengths, training=True):
    """A unidirectional ``rnn`` stack with rnnkit's regularisers (in training) and its
    layer-normalised cells, one time step at a time from the cell's equations (what
    :class:`rnnkit.nn.RNNBase` computes): locked masks on every layer's input and on the top
    output, ``h_{t-1} * m`` entering the recurrent product, ``weight_hh * M``, the stack's
    ``dropout`` between layers (in ``training``); ``LN(z) * ln_weight`` on each projection
    (and on LSTM's c, plus ``ln_bias_c``) for a :class:`_LayerNormStack`; right padding
    freezes the state and outputs 0. Returns ``(out (T, N, H), state_n)``."""
    spec = cell_spec(rnn.mode)
    name = spec.name.removesuffix("_ln")
    ln = spec.layer_norm

    def norm(z, k, which):
        return tnn.functional.layer_norm(z, (z.shape[-1],), eps=1e-5) * getattr(rnn, f"ln_weight_{which}_l{k}")

    T, N = x.shape[0], x.shape[1]
    valid = None
    if lengths is not None:
        L = _cpu_lengths(lengths).to(x.device)
        valid = (torch.arange(T, device=x.device)[:, None] < L[None, :]).to(x.dtype)[:, :, None]
    state = _initial_state(rnn, x, state)
    if state is None:
        z = x.new_zeros((rnn.num_layers, N, rnn.hidden_size))
        state = (x.new_zeros((rnn.num_layers, N, getattr(rnn, "proj_size", 0) or rnn.hidden_size)), z) if name == "lstm" else z
    h0s, c0s = state if name == "lstm" else (state, None)
    hs, cs, inp = [], [], x
    for k in range(rnn.num_layers):
        if k > 0 and rnn.dropout > 0 and training:
            inp = tnn.functional.dropout(inp, rnn.dropout, True)
        if cfg["input_dropout"]:
            inp = inp * _mask((N, inp.shape[2]), cfg["input_dropout"], inp)
        W_ih, W_hh = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")
        if cfg["weight_drop"]:
            W_hh = W_hh * _mask(tuple(W_hh.shape), cfg["weight_drop"], W_hh)
        rm = _mask((N, rnn.hidden_size), cfg["recurrent_dropout"], inp) if cfg["recurrent_dropout"] else None
        gx = inp @ W_ih.T                                                 # (T, N, G*H)
        gx = (norm(gx, k, "ih") if ln else gx) + b_ih
        h, c = h0s[k], (c0s[k] if c0s is not None else None)
        ys = []
        for t in range(T):
            gh = (h if rm is None else h * rm) @ W_hh.T
            gh = (norm(gh, k, "hh") if ln else gh) + b_hh
            if name == "lstm":
                i, f, g, o = (gx[t] + gh).chunk(4, 1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                cn = norm(c_new, k, "c") + getattr(rnn, f"ln_bias_c_l{k}") if ln else c_new
                h_new = torch.sigmoid(o) * torch.tanh(cn)
                if getattr(rnn, "proj_size", 0):                          # LSTMP: h = W_hr m
                    h_new = h_new @ getattr(rnn, f"weight_hr_l{k}").T
            elif name == "gru":
                xr, xz, xn = gx[t].chunk(3, 1)
                hr, hz, hn = gh.chunk(3, 1)
                r, zg = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h_new = n + zg * (h - n)
            else:
                pre = gx[t] + gh
                h_new = torch.tanh(pre) if name == "rnn" else torch.relu(pre)
            if valid is not None:
                m = valid[t]
                h = m * h_new + (1 - m) * h
                if c is not None:
                    c = m * c_new + (1 - m) * c
                ys.append(h * m)
            else:
                h, c = h_new, (c_new if c is not None else None)
                ys.append(h)
        inp = torch.stack(ys)
        hs.append(h)
        cs.append(c)
    if cfg["output_dropout"]:
        inp = inp * _mask((N, inp.shape[2]), cfg["output_dropout"], inp)
    h_n = torch.stack(hs)
    return inp, ((h_n, torch.stack(cs)) if name == "lstm" else h_n)


class TorchSequenceClassifier(_TorchModel):
    """PyTorch twin of :class:`rnnkit.nn.SequenceClassifier`.

    ``logits (N, C) = m(x, lengths=None)``; x token ids (T, N) (``vocab_size > 0``) or
    features (T, N, input_size). Pooling 'last' concatenates the top layer's final states
    (forward, then backward direction); 'mean' averages the outputs over the valid steps.
    """

    _cfg_cls = SequenceClassifierConfig

    def __init__(self, config: dict):
        super().__init__()
        cfg = self._init_common(config, "TorchSequenceClassifier")
        tokens = cfg.vocab_size > 0
        self.embedding = (tnn.Embedding(cfg.vocab_size, cfg.embedding_size, dtype=self._dtype)
                          if tokens else None)
        self.rnn = self._rnn(cfg, cfg.embedding_size if tokens else cfg.input_size, cfg.bidirectional)
        D = 2 if cfg.bidirectional else 1
        self.head = tnn.Linear(D * cfg.state_size, cfg.num_classes, dtype=self._dtype)

    def forward(self, x: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | None = None
                ) -> torch.Tensor:
        if self.embedding is not None:
            x = self.embedding(torch.as_tensor(x).long())                       # (T, N, E)
        else:
            x = torch.as_tensor(x, dtype=self.head.weight.dtype)                # (T, N, D_in)
        out, state = _run_rnn(self.rnn, x, None, lengths)                       # (T, N, D*H)
        return self.head(self._pool(out, state, lengths))                       # (N, C)


class TorchSequenceRegressor(_TorchModel):
    """PyTorch twin of :class:`rnnkit.nn.SequenceRegressor`.

    ``pred = m(x (T, N, input_size), lengths=None)``: (T, N, output_size) if ``many_to_many``
    (outputs past ``lengths`` are ``head.bias``), else (N, output_size) from the pooled sequence.
    """

    _cfg_cls = SequenceRegressorConfig

    def __init__(self, config: dict):
        super().__init__()
        cfg = self._init_common(config, "TorchSequenceRegressor")
        self.rnn = self._rnn(cfg, cfg.input_size, cfg.bidirectional)
        D = 2 if cfg.bidirectional else 1
        self.head = tnn.Linear(D * cfg.state_size, cfg.output_size, dtype=self._dtype)

    def forward(self, x: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | None = None
                ) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=self.head.weight.dtype)                    # (T, N, D_in)
        out, state = _run_rnn(self.rnn, x, None, lengths)                       # (T, N, D*H)
        if self.rnnkit_config["many_to_many"]:
            return self.head(out)                                               # (T, N, out)
        return self.head(self._pool(out, state, lengths))                       # (N, out)


class TorchAttention(tnn.Module):
    """PyTorch twin of :class:`rnnkit.nn.attention.Attention` (same parameter names):
    ``context (N, Hk), weights (N, S) = att(query (N, Hq), keys (S, N, Hk), mask (S, N) bool)``."""

    def __init__(self, kind: str, query_size: int, key_size: int, attention_size: int, dtype: torch.dtype):
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.query_proj = tnn.Linear(query_size, attention_size, bias=False, dtype=dtype)
            self.key_proj = tnn.Linear(key_size, attention_size, bias=False, dtype=dtype)
            self.v = tnn.Linear(attention_size, 1, bias=False, dtype=dtype)
        elif kind == "general":
            self.key_proj = tnn.Linear(key_size, query_size, bias=False, dtype=dtype)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "additive":
            score = self.v(torch.tanh(self.key_proj(keys) + self.query_proj(query)[None]))[..., 0].T
        else:
            k = self.key_proj(keys) if self.kind == "general" else keys
            score = torch.einsum("snh,nh->ns", k, query)
        if mask is not None:
            score = score.masked_fill(~mask.T, float("-inf"))
        weights = torch.softmax(score, dim=-1)                                  # (N, S)
        return torch.einsum("ns,snk->nk", weights, keys), weights


class TorchSeq2Seq(_TorchModel):
    """PyTorch twin of :class:`rnnkit.nn.Seq2Seq` (the equations of :mod:`rnnkit.nn.seq2seq`).

    ``logits (T, N, V), alignments (T, N, S) | None = m(src (S, N), x (T, N), src_lengths=None)``,
    teacher-forced; the encoder runs packed sequences, the decoder a ``torch.nn`` cell in a
    Python loop with input feeding. Same ``state_dict`` keys as the rnnkit model.
    """

    _cfg_cls = Seq2SeqConfig

    def __init__(self, config: dict):
        super().__init__()
        cfg = self._init_common(config, "TorchSeq2Seq")
        E, K, dt = cfg.embedding_size, cfg.key_size, self._dtype
        self.attends = cfg.attention != "none"
        self.src_embedding = tnn.Embedding(cfg.src_vocab_size, E, dtype=dt)
        self.encoder = _make_torch_rnn(cfg.cell, E, cfg.hidden_size, cfg.num_layers, True, False,
                                       cfg.dropout, cfg.bidirectional, dt)
        self.bridge = tnn.Linear(K, K, dtype=dt)
        self.tgt_embedding = tnn.Embedding(cfg.tgt_vocab_size, E, dtype=dt)
        spec = cell_spec(cfg.decoder_kind)
        if spec.layer_norm:
            raise ConfigError(f"TorchSeq2Seq: expected a decoder cell that torch.nn has (lstm, gru, "
                              f"rnn, rnn_relu), got the layer-normalised {spec.name!r}: torch.nn "
                              f"has no layer-normalised cell. Train this model with the numpy "
                              f"engine, or choose another decoder_cell.")
        self._lstm = spec.cell_state
        self.decoder = getattr(tnn, spec.cell_layer)(E + (K if self.attends else 0), K, dtype=dt,
                                                     **spec.layer_kwargs)
        if self.attends:
            self.attention = TorchAttention(cfg.attention, K, K, cfg.attention_size or K, dt)
            self.combine = tnn.Linear(2 * K, K, bias=False, dtype=dt)
        self.head = tnn.Linear(K, cfg.tgt_vocab_size, dtype=dt)

    def forward(self, src: torch.Tensor | np.ndarray, x: torch.Tensor | np.ndarray,
                src_lengths: torch.Tensor | np.ndarray | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        src, x = torch.as_tensor(src).long(), torch.as_tensor(x).long()
        H, state = _run_rnn(self.encoder, self.src_embedding(src), None, src_lengths)  # (S, N, K)
        h = state[0] if cell_spec(self.encoder.mode).cell_state else state
        D = 2 if self.encoder.bidirectional else 1
        s = torch.tanh(self.bridge(torch.cat(list(h[-D:]), dim=-1)))            # (N, K)
        state = (s, torch.zeros_like(s)) if self._lstm else s
        S, N = src.shape
        mask = None
        if src_lengths is not None:
            L = torch.as_tensor(np.asarray(src_lengths)).long().to(H.device)
            mask = torch.arange(S, device=H.device)[:, None] < L[None, :]
        emb = self.tgt_embedding(x)
        feed = torch.zeros_like(s)
        outs, aligns = [], []
        for t in range(x.shape[0]):
            inp = torch.cat([emb[t], feed], dim=-1) if self.attends else emb[t]
            state = self.decoder(inp, state)
            hd = state[0] if self._lstm else state
            if self.attends:
                context, w = self.attention(hd, H, mask)
                feed = torch.tanh(self.combine(torch.cat([context, hd], dim=-1)))
                aligns.append(w)
                outs.append(feed)
            else:
                outs.append(hd)
        logits = self.head(torch.stack(outs))
        return logits, (torch.stack(aligns) if self.attends else None)


_TORCH_MODELS = {"CharLM": (TorchCharLM, CharLM), "SequenceClassifier": (TorchSequenceClassifier, SequenceClassifier),
                 "SequenceRegressor": (TorchSequenceRegressor, SequenceRegressor),
                 "Seq2Seq": (TorchSeq2Seq, Seq2Seq)}


def torch_model_from_config(config: dict) -> tnn.Module:
    """The torch twin (freshly initialised) of the model a config dict describes.

    ``config`` is ``model.config.to_dict()`` / a checkpoint's config.json, with a ``"model"``
    entry naming CharLM, SequenceClassifier or SequenceRegressor. It is validated like
    rnnkit validates it (wrong types, unknown keys and absurd sizes raise ConfigError).
    """
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise ConfigError(f"torch_model_from_config: expected a dict with a string 'model' entry "
                          f"(a checkpoint's config.json), got {type(config).__name__}.")
    name = config["model"]
    if name not in _TORCH_MODELS:
        raise ConfigError(f"torch_model_from_config: unknown model {name!r}; expected one of "
                          f"{sorted(_TORCH_MODELS)}.")
    return _TORCH_MODELS[name][0](config)


def charlm_torch_module(config: dict) -> TorchCharLM:
    """A :class:`TorchCharLM` for a CharLM checkpoint's config.json dict.

    Its ``state_dict`` keys are exactly those of the checkpoint's ``model.safetensors``, so::

        cfg = json.load(open("runs/x/config.json"))
        m = charlm_torch_module(cfg)
        m.load_state_dict(safetensors.torch.load_file("runs/x/model.safetensors"))

    Raises ConfigError for a config of another model, wrong types, unknown keys or absurd sizes.
    """
    if isinstance(config, dict) and config.get("model", "CharLM") != "CharLM":
        raise ConfigError(f"charlm_torch_module: expected a CharLM config, got model "
                          f"{config.get('model')!r}. Use torch_model_from_config for other models.")
    return TorchCharLM(config)


# ============================================================================== conversion
def to_torch(obj: object) -> tnn.Module:
    """A PyTorch module computing the same function as the rnnkit object ``obj``.

    ``obj``: an rnnkit ``RNN`` / ``LSTM`` / ``GRU`` layer (-> ``torch.nn.RNN/LSTM/GRU`` with the
    same hyper-parameters), an ``RNNCell`` / ``LSTMCell`` / ``GRUCell`` (-> the ``torch.nn``
    cell of that name), ``Linear`` (-> ``torch.nn.Linear``), ``Embedding``
    (-> ``torch.nn.Embedding``), or a ``CharLM`` / ``SequenceClassifier`` / ``SequenceRegressor``
    / ``Seq2Seq`` (-> :class:`TorchCharLM` / ...). Weights are copied; the dtype (float32 or float64) and the
    train/eval mode follow ``obj``. Example::

        >>> import numpy as np, torch, rnnkit.nn
        >>> gru = rnnkit.nn.GRU(3, 4, bidirectional=True, dtype=np.float64, seed=0)
        >>> tl = to_torch(gru)
        >>> x = np.random.default_rng(0).standard_normal((5, 2, 3))
        >>> out, h = tl(torch.from_numpy(x))
        >>> bool(np.allclose(out.detach().numpy(), gru(x)[0], atol=1e-12))
        True
    """
    if isinstance(obj, rnn_nn.RNNCellBase):
        if obj.layer_norm:
            raise ConfigError(f"to_torch: expected a cell that torch.nn has (RNNCell, LSTMCell, "
                              f"GRUCell), got {type(obj).__name__}: torch.nn has no "
                              f"layer-normalised cell. Write the step in PyTorch with "
                              f"torch.nn.functional.layer_norm (the equations are in "
                              f"{type(obj).__name__}'s docstring) and load state_dict() into it.")
        tmod = getattr(tnn, obj.spec.cell_layer)(obj.input_size, obj.hidden_size, bias=obj.bias,
                                                 dtype=_torch_dtype(obj.dtype), **obj.spec.layer_kwargs)
    elif isinstance(obj, rnn_nn.RNNBase):
        if obj.learn_initial_state:
            raise ConfigError(f"to_torch: expected a layer without a learned initial state, got "
                              f"learn_initial_state=True: torch.nn.{obj.spec.layer} has no such "
                              f"parameters. Pass (h0, c0) to the torch layer yourself: they are "
                              f"obj.parameters()['h0'] (['c0']) repeated over the batch.")
        tmod = _make_torch_rnn(obj.mode, obj.input_size, obj.hidden_size, obj.num_layers, obj.bias,
                               obj.batch_first, obj.dropout, obj.bidirectional, _torch_dtype(obj.dtype),
                               obj.proj_size)
    elif isinstance(obj, rnn_nn.Linear):
        tmod = tnn.Linear(obj.in_features, obj.out_features, bias="bias" in obj.parameters(),
                          dtype=_torch_dtype(obj.dtype))
    elif isinstance(obj, rnn_nn.Embedding):
        tmod = tnn.Embedding(obj.num_embeddings, obj.embedding_dim, dtype=_torch_dtype(obj.dtype))
    elif isinstance(obj, (CharLM, SequenceClassifier, SequenceRegressor, Seq2Seq)):
        tmod = torch_model_from_config(obj.config.to_dict())
    else:
        raise TypeError(f"to_torch: expected an rnnkit RNN/LSTM/GRU, RNNCell/LSTMCell/GRUCell, Linear, Embedding, CharLM, "
                        f"SequenceClassifier or SequenceRegressor, got {type(obj).__name__}.")
    _load_into_torch(tmod, obj.state_dict())
    tmod.train(obj.training)
    return tmod


def from_torch(module: tnn.Module, dtype: DTypeLike = None) -> rnn_nn.Module:
    """The rnnkit object computing the same function as the PyTorch module ``module``.

    ``module``: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (an LSTM's ``proj_size`` included),
    ``RNNCell`` / ``LSTMCell`` / ``GRUCell``, ``Linear``,
    ``Embedding`` (without ``max_norm``; ``padding_idx`` does not change the forward pass, and
    the rnnkit copy gives that row a gradient like any other), or a torch model carrying an
    ``rnnkit_config`` dict (the ``Torch*`` models of this module). The rnnkit object is float64
    for a float64 module and float32 otherwise unless ``dtype`` says; its train/eval mode
    follows ``module``.
    """
    who = "from_torch"
    if not isinstance(module, tnn.Module):
        raise TypeError(f"{who}: expected a torch.nn.Module, got {type(module).__name__}.")
    cfg = getattr(module, "rnnkit_config", None)
    if isinstance(cfg, dict):
        cfg = dict(cfg, dtype=_np_dtype(who, module, dtype).name)
        out = rnn_nn.model_from_config(cfg)
    elif isinstance(module, (tnn.RNN, tnn.LSTM, tnn.GRU)):
        proj = {"proj_size": module.proj_size} if getattr(module, "proj_size", 0) else {}
        out = rnn_nn.recurrent_layer(
            module.mode, module.input_size, module.hidden_size, num_layers=module.num_layers,
            bias=module.bias, batch_first=module.batch_first, dropout=float(module.dropout),
            bidirectional=module.bidirectional, dtype=_np_dtype(who, module, dtype), **proj)
    elif isinstance(module, _TORCH_CELLS):
        spec = next(s for s in CELLS.values() if isinstance(module, getattr(tnn, s.cell_layer))
                    and s.layer_kwargs.get("nonlinearity") in (None, getattr(module, "nonlinearity", None)))
        out = rnn_nn.recurrent_cell(spec, module.input_size, module.hidden_size, bias=module.bias,
                                    dtype=_np_dtype(who, module, dtype))
    elif isinstance(module, tnn.Linear):
        out = rnn_nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                            dtype=_np_dtype(who, module, dtype))
    elif isinstance(module, tnn.Embedding):
        if module.max_norm is not None:
            raise ConfigError(f"{who}: expected an Embedding without max_norm, got max_norm="
                              f"{module.max_norm}. rnnkit's Embedding does not renormalise rows.")
        out = rnn_nn.Embedding(module.num_embeddings, module.embedding_dim,
                               dtype=_np_dtype(who, module, dtype))
    else:
        raise TypeError(f"{who}: expected torch.nn.RNN/LSTM/GRU, RNNCell/LSTMCell/GRUCell, Linear, Embedding or a model "
                        f"with an rnnkit_config dict (TorchCharLM, ...), got {type(module).__name__}.")
    out.load_state_dict(_numpy_state(module))
    out.train(module.training)
    return out
