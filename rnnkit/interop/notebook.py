"""Converters between the notebook's parameter dicts (:mod:`rnnkit.scratch`) and PyTorch's
state dicts of a one-layer, one-direction ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (which
:mod:`rnnkit.nn` layers share), as float64 NumPy arrays; torch is not imported.

>>> import numpy as np
>>> from rnnkit.interop.notebook import to_torch_state_dict
>>> rng = np.random.default_rng(0)
>>> p = {"Wax": rng.standard_normal((5, 3)), "Waa": rng.standard_normal((5, 5)),
...      "ba": rng.standard_normal((5, 1))}
>>> sorted(to_torch_state_dict("rnn", p))
['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_float_array, check_choice, check_shape, require_keys, short_list, to_numpy
from ..errors import ParameterKeyError
from ..scratch import check_parameters

__all__ = ["rnn_params_to_torch", "rnn_params_from_torch", "lstm_params_to_torch",
           "lstm_params_from_torch", "gru_params_to_torch", "gru_params_from_torch",
           "to_torch_state_dict", "from_torch_state_dict"]


# ----------------------------------------------------------------------------------------
# Converters: notebook dicts <-> PyTorch state dicts (one layer, one direction)
# ----------------------------------------------------------------------------------------
#
# PyTorch keeps, for G gates of size H, weight_ih_l0 (G*H, n_x), weight_hh_l0 (G*H, H),
# bias_ih_l0 (G*H,), bias_hh_l0 (G*H,), gate blocks stacked in row order:
#   RNN  G=1: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
#   LSTM G=4: i, f, g, o
#   GRU  G=3: r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
# Output-layer keys (Wya / Wy, by) are not part of a recurrent layer: to_torch ignores them
# and from_torch does not produce them.

_TORCH_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_LSTM_TORCH_ORDER = ("i", "f", "c", "o")   # PyTorch's i, f, g, o; the notebook's g is "c"


def _read_state_dict(who, state_dict, gates):
    """Validate a single-layer, unidirectional state dict; return (w_ih, w_hh, b_ih, b_hh, H)."""
    require_keys(who, "state_dict", state_dict, _TORCH_KEYS,
                 "(A single-layer unidirectional layer; bias=False layers are not supported.)")
    extra = sorted(str(k) for k in state_dict if k not in _TORCH_KEYS)
    if extra:
        raise ParameterKeyError(
            f"{who}: expected only the keys {', '.join(_TORCH_KEYS)}, got also {short_list(extra)}. Only a "
            f"single-layer unidirectional layer converts to a notebook dict; pass the l0 "
            f"weights alone.")
    arr = {k: as_float_array(who, f"state_dict['{k}']", to_numpy(who, k, state_dict[k]),
                             dtype=np.float64)
           for k in _TORCH_KEYS}
    w_hh = arr["weight_hh_l0"]
    check_shape(who, "state_dict['weight_hh_l0']", w_hh, ((f"{gates}*H", None), ("H", None)))
    H = w_hh.shape[1]
    check_shape(who, "state_dict['weight_hh_l0']", w_hh, ((f"{gates}*H", gates * H), ("H", H)))
    check_shape(who, "state_dict['weight_ih_l0']", arr["weight_ih_l0"],
                ((f"{gates}*H", gates * H), ("n_x", None)))
    for k in ("bias_ih_l0", "bias_hh_l0"):
        check_shape(who, f"state_dict['{k}']", arr[k], ((f"{gates}*H", gates * H),))
    return arr["weight_ih_l0"], w_hh, arr["bias_ih_l0"], arr["bias_hh_l0"], H


def _state_dict(w_ih, w_hh, b_ih, b_hh):
    return {"weight_ih_l0": np.ascontiguousarray(w_ih), "weight_hh_l0": np.ascontiguousarray(w_hh),
            "bias_ih_l0": np.ascontiguousarray(b_ih), "bias_hh_l0": np.ascontiguousarray(b_hh)}


def rnn_params_to_torch(parameters: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Notebook RNN dict -> ``torch.nn.RNN`` (tanh, 1 layer) state dict of float64 arrays.

    ``weight_ih_l0 = Wax (H, n_x)``, ``weight_hh_l0 = Waa (H, H)``, ``bias_ih_l0 = ba[:, 0]``,
    ``bias_hh_l0 = 0``. ``Wya``/``by`` are ignored (not part of the recurrent layer).
    Load into torch with ``{k: torch.from_numpy(v) for k, v in sd.items()}``.
    """
    p, n_x, n_a, _ = check_parameters("rnn", parameters, False, "rnn_params_to_torch")
    return _state_dict(p["Wax"], p["Waa"], p["ba"][:, 0], np.zeros(n_a))


def rnn_params_from_torch(state_dict: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """``torch.nn.RNN`` state dict (1 layer, 1 direction) -> notebook dict ``Wax, Waa, ba``.

    ``ba = (bias_ih_l0 + bias_hh_l0)[:, None]``. ``Wya``/``by`` are not produced: add your own
    output layer. Values may be numpy arrays or CPU torch tensors; the result is float64.
    """
    w_ih, w_hh, b_ih, b_hh, H = _read_state_dict("rnn_params_from_torch", state_dict, 1)
    return {"Wax": w_ih.copy(), "Waa": w_hh.copy(), "ba": (b_ih + b_hh)[:, None]}


def lstm_params_to_torch(parameters: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Notebook LSTM dict -> ``torch.nn.LSTM`` (1 layer) state dict of float64 arrays.

    The notebook's gates f, i, c, o act on ``[a; x]`` with one bias each; PyTorch stacks
    i, f, g, o rows and splits input and hidden weights::

        weight_ih_l0 = [Wi[:, H:]; Wf[:, H:]; Wc[:, H:]; Wo[:, H:]]   # (4H, n_x)
        weight_hh_l0 = [Wi[:, :H]; Wf[:, :H]; Wc[:, :H]; Wo[:, :H]]   # (4H, H)
        bias_ih_l0   = [bi; bf; bc; bo]                               # (4H,) the whole bias
        bias_hh_l0   = 0                                              # (4H,)

    ``Wy``/``by`` are ignored (not part of the recurrent layer).
    """
    p, n_x, H, _ = check_parameters("lstm", parameters, False, "lstm_params_to_torch")
    w_ih = np.concatenate([p["W" + g][:, H:] for g in _LSTM_TORCH_ORDER], axis=0)
    w_hh = np.concatenate([p["W" + g][:, :H] for g in _LSTM_TORCH_ORDER], axis=0)
    b_ih = np.concatenate([p["b" + g][:, 0] for g in _LSTM_TORCH_ORDER])
    return _state_dict(w_ih, w_hh, b_ih, np.zeros(4 * H))


def lstm_params_from_torch(state_dict: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """``torch.nn.LSTM`` state dict (1 layer, 1 direction) -> notebook dict (no ``Wy``/``by``).

    For each PyTorch block k in i, f, g, o (notebook name i, f, c, o)::

        W<k> = [weight_hh_l0[k-rows] | weight_ih_l0[k-rows]]     # (H, H + n_x), a first
        b<k> = (bias_ih_l0 + bias_hh_l0)[k-rows][:, None]         # (H, 1)
    """
    w_ih, w_hh, b_ih, b_hh, H = _read_state_dict("lstm_params_from_torch", state_dict, 4)
    b = b_ih + b_hh
    p = {}
    for j, g in enumerate(_LSTM_TORCH_ORDER):
        rows = slice(j * H, (j + 1) * H)
        p["W" + g] = np.concatenate([w_hh[rows], w_ih[rows]], axis=1)
        p["b" + g] = b[rows][:, None]
    return {k: p[k] for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")}


def gru_params_to_torch(parameters: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Notebook-style GRU dict -> ``torch.nn.GRU`` (1 layer) state dict of float64 arrays.

    PyTorch stacks rows r, z, n::

        weight_ih_l0 = [Wr[:, H:]; Wz[:, H:]; Wnx]     # (3H, n_x)
        weight_hh_l0 = [Wr[:, :H]; Wz[:, :H]; Wna]     # (3H, H)
        bias_ih_l0   = [br; bz; bnx]                   # (3H,)
        bias_hh_l0   = [0;  0;  bna]                   # (3H,) bna must stay inside r * (...)

    ``Wy``/``by`` are ignored (not part of the recurrent layer).
    """
    p, n_x, H, _ = check_parameters("gru", parameters, False, "gru_params_to_torch")
    w_ih = np.concatenate([p["Wr"][:, H:], p["Wz"][:, H:], p["Wnx"]], axis=0)
    w_hh = np.concatenate([p["Wr"][:, :H], p["Wz"][:, :H], p["Wna"]], axis=0)
    b_ih = np.concatenate([p["br"][:, 0], p["bz"][:, 0], p["bnx"][:, 0]])
    b_hh = np.concatenate([np.zeros(2 * H), p["bna"][:, 0]])
    return _state_dict(w_ih, w_hh, b_ih, b_hh)


def gru_params_from_torch(state_dict: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """``torch.nn.GRU`` state dict (1 layer, 1 direction) -> notebook-style GRU dict.

    ::

        Wr  = [W_hr | W_ir]  (H, H + n_x);   br  = (b_ir + b_hr)[:, None]
        Wz  = [W_hz | W_iz]  (H, H + n_x);   bz  = (b_iz + b_hz)[:, None]
        Wnx = W_in (H, n_x);  bnx = b_in[:, None];  Wna = W_hn (H, H);  bna = b_hn[:, None]

    ``Wy``/``by`` are not produced: add your own output layer.
    """
    w_ih, w_hh, b_ih, b_hh, H = _read_state_dict("gru_params_from_torch", state_dict, 3)
    r, z, n = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)
    return {
        "Wr": np.concatenate([w_hh[r], w_ih[r]], axis=1), "br": (b_ih[r] + b_hh[r])[:, None],
        "Wz": np.concatenate([w_hh[z], w_ih[z]], axis=1), "bz": (b_ih[z] + b_hh[z])[:, None],
        "Wnx": w_ih[n].copy(), "bnx": b_ih[n][:, None].copy(),
        "Wna": w_hh[n].copy(), "bna": b_hh[n][:, None].copy(),
    }


_TO_TORCH = {"rnn": rnn_params_to_torch, "lstm": lstm_params_to_torch, "gru": gru_params_to_torch}
_FROM_TORCH = {"rnn": rnn_params_from_torch, "lstm": lstm_params_from_torch, "gru": gru_params_from_torch}


def to_torch_state_dict(kind: str, parameters: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """``kind`` in ``'rnn', 'lstm', 'gru'``: call the matching ``*_params_to_torch``."""
    check_choice("to_torch_state_dict", "kind", kind, tuple(_TO_TORCH))
    return _TO_TORCH[kind](parameters)


def from_torch_state_dict(kind: str, state_dict: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """``kind`` in ``'rnn', 'lstm', 'gru'``: call the matching ``*_params_from_torch``."""
    check_choice("from_torch_state_dict", "kind", kind, tuple(_FROM_TORCH))
    return _FROM_TORCH[kind](state_dict)
