"""The small base class every rnnkit layer and model shares.

The contract (PyTorch-like, explicit backward):

* ``out = layer(*inputs)``; ``grads_in = layer.backward(*grads_out)`` for the last call.
* ``parameters()`` / ``gradients()``: dicts name -> array with identical keys and shapes.
  The arrays are the live ones: optimizers update ``parameters()`` in place, and parameter
  gradients accumulate into ``gradients()`` until ``zero_grad()``.
* ``state_dict()`` / ``load_state_dict()``: PyTorch's keys and shapes.
* ``train()`` / ``eval()`` switch dropout.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._mode import init_enabled
from .._validate import fmt_shape, key_mismatch, short_list, to_numpy
from ..errors import DTypeError, NonFiniteError, ParameterKeyError, ShapeError


class Module:
    """Base class: parameters, gradients, state_dict, train/eval, child modules."""

    training: bool = True

    def __init__(self):
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._children: dict[str, Module] = {}
        self.training = True

    # -- registration --------------------------------------------------------------------
    def _add_param(self, name: str, shape: tuple, dtype, init) -> None:
        """Register parameter ``name``: ``init(shape)`` draws its initial values, except while
        a model is built to receive saved weights (:func:`rnnkit._mode.no_init`): then zeros,
        and no random numbers are drawn."""
        value = np.asarray(init(shape), dtype) if init_enabled() else np.zeros(shape, dtype)
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)

    def _add_child(self, name: str, module: Module | None) -> None:
        if module is not None:
            self._children[name] = module
        setattr(self, name, module)

    # -- parameters ----------------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """name -> parameter array (live; update in place). Children are prefixed ``child.``."""
        out = dict(self._params)
        for cname, child in self._children.items():
            for k, v in child.parameters().items():
                out[f"{cname}.{k}"] = v
        return out

    def gradients(self) -> dict[str, np.ndarray]:
        """name -> accumulated gradient, same keys and shapes as :meth:`parameters`."""
        out = dict(self._grads)
        for cname, child in self._children.items():
            for k, v in child.gradients().items():
                out[f"{cname}.{k}"] = v
        return out

    def zero_grad(self) -> None:
        for g in self._grads.values():
            g.fill(0)
        for child in self._children.values():
            child.zero_grad()

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters().values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under PyTorch's names."""
        return {k: v.copy() for k, v in self.parameters().items()}

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike], strict: bool = True) -> None:
        """Copy values in place (optimizer references stay valid). Accepts NumPy arrays or
        torch tensors. A missing key, an unexpected key or a wrong shape raises an error that
        names it; nothing is changed unless every entry is valid."""
        who = f"{type(self).__name__}.load_state_dict"
        params = self.parameters()
        if not hasattr(state_dict, "keys"):
            raise ParameterKeyError(f"{who}: expected a dict name -> array, got {type(state_dict).__name__}.")
        mismatch = key_mismatch(params, state_dict.keys())
        if strict and mismatch:
            raise ParameterKeyError(f"{who}: {mismatch} key(s). Expected exactly the keys "
                                    f"{short_list(list(params))}; was the state_dict saved from a "
                                    f"model with the same configuration?")
        self._copy_values(who, params, state_dict)

    def _copy_values(self, who: str, params: dict, state_dict: Mapping, shapes_checked: bool = False) -> None:
        """Copy the entries of ``state_dict`` into ``params`` (this module's live arrays), all
        or nothing: real numbers, finite, and finite in the parameter's dtype; their shapes too
        unless ``shapes_checked`` (``rnnkit.nn.registry.built_with``: a model load compared
        them with the config once, against the file's header)."""
        staged = {}
        for k, p in params.items():
            if k not in state_dict:
                continue
            v = to_numpy(who, k, state_dict[k])
            if v.dtype.kind not in "fiu":
                raise DTypeError(f"{who}: expected {k} to hold real numbers, got dtype {v.dtype}.")
            if not shapes_checked and v.shape != p.shape:
                raise ShapeError(f"{who}: expected {k} of shape {fmt_shape(p.shape)}, got "
                                 f"{fmt_shape(v.shape)}. Build the model with the configuration the "
                                 f"weights were saved with.")
            if not np.isfinite(v).all():
                raise NonFiniteError(f"{who}: {k} contains NaN or infinite values; refusing to load it.")
            with np.errstate(over="ignore"):
                cast = v.astype(p.dtype, copy=False)       # the values the layer would hold
            if not np.isfinite(cast).all():
                big = float(np.abs(v[~np.isfinite(cast)]).max())
                raise NonFiniteError(f"{who}: {k} holds values out of {p.dtype} range (up to "
                                     f"{big:.3g}; {p.dtype} ends at {float(np.finfo(p.dtype).max):.3g}), "
                                     f"which would load as inf; refusing to load it.")
            staged[k] = cast
        for k, v in staged.items():
            params[k][...] = v

    # -- modes ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self.forward(*args, **kwargs)
