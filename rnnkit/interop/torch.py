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
==================================  ==========================================================

The ``Torch*`` models are plain ``torch.nn.Module`` subclasses with the attributes
``embedding`` (None for one-hot or feature input; the regressor has none), ``rnn`` and ``head``, the same
``state_dict`` keys as the rnnkit model (``embedding.weight``, ``rnn.weight_ih_l0``, ...,
``head.weight``, ``head.bias``), the dtype of the rnnkit model, and a ``forward`` that computes
the same numbers (time-major inputs; ``lengths`` through packed sequences; 'last' / 'mean'
pooling). They keep the rnnkit config as the dict ``module.rnnkit_config``, which is what
:func:`from_torch` rebuilds the rnnkit model from.

A trained checkpoint loads into PyTorch in three lines (no key renaming)::

    >>> import json, safetensors.torch
    >>> from rnnkit.interop.torch import charlm_torch_module
    >>> cfg = json.load(open("runs/x/config.json"))
    >>> m = charlm_torch_module(cfg)
    >>> m.load_state_dict(safetensors.torch.load_file("runs/x/model.safetensors"))
    >>> logits, state = m(torch.tensor([[3], [1]]))    # tokens (T=2, N=1) -> logits (2, 1, V)

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

try:
    import torch
    from torch import nn as tnn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("rnnkit.interop.torch needs PyTorch, which is not installed. Install it "
                      "with: pip install 'rnnkit[torch]'") from e

from .. import nn as rnn_nn
from ..cells import CELLS, cell_spec
from ..errors import ConfigError, DTypeError
from ..nn.models import (CharLM, CharLMConfig, SequenceClassifier, SequenceClassifierConfig,
                         SequenceRegressor, SequenceRegressorConfig)

__all__ = ["to_torch", "from_torch", "charlm_torch_module", "torch_model_from_config",
           "TorchCharLM", "TorchSequenceClassifier", "TorchSequenceRegressor"]

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
                    bidirectional, dtype):
    """``torch.nn.RNN/LSTM/GRU`` for any cell name or mode: the spec names the class (the same
    name in rnnkit.nn and torch.nn) and its keyword arguments (the RNN's nonlinearity)."""
    spec = cell_spec(cell)
    kw = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, bias=bias,
              batch_first=batch_first, dropout=dropout, bidirectional=bidirectional, dtype=dtype,
              **spec.layer_kwargs)
    with warnings.catch_warnings():
        # torch warns about dropout with num_layers=1 (it has no effect); rnnkit allows it too.
        warnings.simplefilter("ignore", UserWarning)
        return getattr(tnn, spec.layer)(**kw)


def _run_rnn(rnn, x, state, lengths):
    """``rnn(x, state)`` over right-padded sequences of ``lengths`` (packed), outputs 0 past
    each sequence's end; time-major or batch-first as the rnn says."""
    if lengths is None:
        return rnn(x, state)
    lengths = torch.as_tensor(np.asarray(lengths) if not torch.is_tensor(lengths) else lengths)
    lengths = lengths.to(device="cpu", dtype=torch.int64)
    T = x.shape[1 if rnn.batch_first else 0]
    packed = pack_padded_sequence(x, lengths, batch_first=rnn.batch_first, enforce_sorted=False)
    out, state_n = rnn(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=rnn.batch_first, total_length=T)
    return out, state_n


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
        return _make_torch_rnn(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers,
                               True, False, cfg.dropout, bidirectional, self._dtype)

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
    """

    _cfg_cls = CharLMConfig

    def __init__(self, config: dict):
        super().__init__()
        cfg = self._init_common(config, "TorchCharLM")
        V, E = cfg.vocab_size, cfg.embedding_size
        self.embedding = tnn.Embedding(V, E, dtype=self._dtype) if E > 0 else None
        self.rnn = self._rnn(cfg, E if E > 0 else V, False)
        self.head = tnn.Linear(cfg.hidden_size, V, dtype=self._dtype)

    def forward(self, tokens, state=None, lengths=None):
        tokens = torch.as_tensor(tokens).long()                                 # (T, N)
        if self.embedding is not None:
            x = self.embedding(tokens)                                          # (T, N, E)
        else:
            V = self.rnnkit_config["vocab_size"]
            x = tnn.functional.one_hot(tokens, V).to(self.head.weight.dtype)   # (T, N, V)
        out, state = _run_rnn(self.rnn, x, state, lengths)                      # (T, N, H)
        return self.head(out), state                                            # (T, N, V)


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
        self.head = tnn.Linear(D * cfg.hidden_size, cfg.num_classes, dtype=self._dtype)

    def forward(self, x, lengths=None):
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
        self.head = tnn.Linear(D * cfg.hidden_size, cfg.output_size, dtype=self._dtype)

    def forward(self, x, lengths=None):
        x = torch.as_tensor(x, dtype=self.head.weight.dtype)                    # (T, N, D_in)
        out, state = _run_rnn(self.rnn, x, None, lengths)                       # (T, N, D*H)
        if self.rnnkit_config["many_to_many"]:
            return self.head(out)                                               # (T, N, out)
        return self.head(self._pool(out, state, lengths))                       # (N, out)


_TORCH_MODELS = {"CharLM": (TorchCharLM, CharLM), "SequenceClassifier": (TorchSequenceClassifier, SequenceClassifier),
                 "SequenceRegressor": (TorchSequenceRegressor, SequenceRegressor)}


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
def to_torch(obj) -> tnn.Module:
    """A PyTorch module computing the same function as the rnnkit object ``obj``.

    ``obj``: an rnnkit ``RNN`` / ``LSTM`` / ``GRU`` layer (-> ``torch.nn.RNN/LSTM/GRU`` with the
    same hyper-parameters), an ``RNNCell`` / ``LSTMCell`` / ``GRUCell`` (-> the ``torch.nn``
    cell of that name), ``Linear`` (-> ``torch.nn.Linear``), ``Embedding``
    (-> ``torch.nn.Embedding``), or a ``CharLM`` / ``SequenceClassifier`` / ``SequenceRegressor``
    (-> :class:`TorchCharLM` / ...). Weights are copied; the dtype (float32 or float64) and the
    train/eval mode follow ``obj``. Example::

        >>> tl = to_torch(rnnkit.nn.GRU(3, 4, bidirectional=True, dtype=np.float64))
        >>> out, h = tl(torch.randn(5, 2, 3, dtype=torch.float64))
    """
    if isinstance(obj, rnn_nn.RNNCellBase):
        tmod = getattr(tnn, obj.spec.cell_layer)(obj.input_size, obj.hidden_size, bias=obj.bias,
                                                 dtype=_torch_dtype(obj.dtype), **obj.spec.layer_kwargs)
    elif isinstance(obj, rnn_nn.RNNBase):
        tmod = _make_torch_rnn(obj.mode, obj.input_size, obj.hidden_size, obj.num_layers, obj.bias,
                               obj.batch_first, obj.dropout, obj.bidirectional, _torch_dtype(obj.dtype))
    elif isinstance(obj, rnn_nn.Linear):
        tmod = tnn.Linear(obj.in_features, obj.out_features, bias="bias" in obj.parameters(),
                          dtype=_torch_dtype(obj.dtype))
    elif isinstance(obj, rnn_nn.Embedding):
        tmod = tnn.Embedding(obj.num_embeddings, obj.embedding_dim, dtype=_torch_dtype(obj.dtype))
    elif isinstance(obj, (CharLM, SequenceClassifier, SequenceRegressor)):
        tmod = torch_model_from_config(obj.config.to_dict())
    else:
        raise TypeError(f"to_torch: expected an rnnkit RNN/LSTM/GRU, RNNCell/LSTMCell/GRUCell, Linear, Embedding, CharLM, "
                        f"SequenceClassifier or SequenceRegressor, got {type(obj).__name__}.")
    _load_into_torch(tmod, obj.state_dict())
    tmod.train(obj.training)
    return tmod


def from_torch(module, dtype=None):
    """The rnnkit object computing the same function as the PyTorch module ``module``.

    ``module``: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (``proj_size`` must be 0),
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
        if getattr(module, "proj_size", 0):
            raise ConfigError(f"{who}: expected an LSTM with proj_size=0, got proj_size="
                              f"{module.proj_size}. rnnkit has no projected LSTM.")
        out = rnn_nn.recurrent_layer(
            module.mode, module.input_size, module.hidden_size, num_layers=module.num_layers,
            bias=module.bias, batch_first=module.batch_first, dropout=float(module.dropout),
            bidirectional=module.bidirectional, dtype=_np_dtype(who, module, dtype))
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
