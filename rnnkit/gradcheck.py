"""Finite-difference gradient checks for any layer or model with the rnnkit contract.

The contract: ``outputs = module(*inputs, **kwargs)`` and
``input_grads = module.backward(*output_grads)``, where ``output_grads`` has the structure
of ``outputs`` (a tuple of arrays / tuples / None) and ``input_grads`` the structure of the
positional ``inputs`` (None for integer inputs such as token ids). Parameters and their
gradients come from ``module.parameters()`` / ``module.gradients()``.

The check draws a random weight ``W`` for every float output and differentiates the scalar
``L = sum(out * W)`` (every output element matters), compares the analytic gradient of every
parameter, float input and initial state with central differences
``(L(p + eps) - L(p - eps)) / (2 eps)`` in float64, and reports per name::

    rel_error = max|numeric - analytic| / max(max|numeric|, max|analytic|, 1e-300)

Example::

    >>> import numpy as np, rnnkit.nn as nn
    >>> from rnnkit.gradcheck import gradcheck
    >>> gru = nn.GRU(3, 4, dtype=np.float64, seed=0)
    >>> report = gradcheck(gru, np.random.randn(5, 2, 3))
    >>> report.worst < 1e-7
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._validate import make_rng
from .errors import ConfigError

if TYPE_CHECKING:
    from .nn.module import Module


@dataclass
class GradcheckReport:
    """Worst relative error per checked name (parameters and ``input[i]`` paths)."""

    errors: dict = field(default_factory=dict)
    checked: dict = field(default_factory=dict)     # name -> number of entries checked

    @property
    def worst(self) -> float:
        return max(self.errors.values()) if self.errors else 0.0

    def assert_ok(self, tol: float = 1e-7) -> None:
        bad = {k: v for k, v in self.errors.items() if not v < tol}
        if bad:
            raise AssertionError(f"gradient check failed (rel. error >= {tol:g}):\n{self}")

    def __str__(self):
        w = max((len(k) for k in self.errors), default=4)
        return "\n".join(f"{k:<{w}}  {v:.3e}  ({self.checked.get(k, 0)} entries)"
                         for k, v in sorted(self.errors.items(), key=lambda kv: -kv[1]))


def _leaves(obj, path=""):
    """Yield (path, array) for every float array in a nested tuple/list structure."""
    if obj is None:
        return
    if isinstance(obj, (tuple, list)):
        for i, o in enumerate(obj):
            yield from _leaves(o, f"{path}[{i}]")
        return
    a = np.asarray(obj)
    if a.dtype.kind == "f":
        yield path, obj


def _weights_like(obj, rng):
    if obj is None:
        return None
    if isinstance(obj, (tuple, list)):
        return type(obj)(_weights_like(o, rng) for o in obj)
    a = np.asarray(obj)
    if a.dtype.kind != "f":
        return None
    return rng.standard_normal(a.shape)


def _dot(out, w):
    if out is None or w is None:
        return 0.0
    if isinstance(out, (tuple, list)):
        return sum(_dot(o, wi) for o, wi in zip(out, w))
    return float(np.sum(np.asarray(out, dtype=np.float64) * w))


def _get(obj, path_idx):
    for i in path_idx:
        obj = obj[i]
    return obj


def gradcheck(module: Module, *inputs: ArrayLike, eps: float = 1e-6, seed: int = 0,
              max_entries: int | None = None, check_inputs: bool = True,
              **kwargs: object) -> GradcheckReport:
    """Compare ``module.backward`` with central differences; see the module docstring.

    ``max_entries`` checks at most that many randomly chosen entries per array (None = all).
    The module should be float64 and in a deterministic mode (``eval()`` or dropout 0);
    inputs are used as given (convert them to float64 first).
    """
    rng = make_rng("gradcheck", seed)
    params = module.parameters()
    for k, p in params.items():
        if p.dtype != np.float64:
            raise ConfigError(f"gradcheck: expected float64 parameters, got {k} with dtype {p.dtype}. "
                              f"Build the module with dtype=np.float64.")
    inputs = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
              for a in inputs]
    inputs = [tuple(np.array(s, dtype=np.float64) for s in a) if isinstance(a, tuple) else a for a in inputs]

    out = module(*inputs, **kwargs)
    weights = _weights_like(out, rng)

    def loss():
        return _dot(module(*inputs, **kwargs), weights)

    # analytic
    module.zero_grad()
    module(*inputs, **kwargs)
    gin = module.backward(*weights) if isinstance(out, tuple) else module.backward(weights)
    grads = {k: v.copy() for k, v in module.gradients().items()}
    if len(inputs) == 1 and not isinstance(gin, tuple):
        gin = (gin,)
    report = GradcheckReport()

    def check(name, arr, ana):
        flat = arr.reshape(-1)
        n = flat.size
        idx = np.arange(n) if (max_entries is None or n <= max_entries) else rng.choice(n, max_entries, replace=False)
        num = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + eps
            lp = loss()
            flat[i] = old - eps
            lm = loss()
            flat[i] = old
            num[j] = (lp - lm) / (2 * eps)
        a = np.zeros(n) if ana is None else np.asarray(ana, dtype=np.float64).reshape(-1)
        a = a[idx]
        denom = max(np.abs(num).max(initial=0), np.abs(a).max(initial=0), 1e-300)
        report.errors[name] = float(np.abs(num - a).max(initial=0) / denom) if denom > 1e-300 else 0.0
        report.checked[name] = len(idx)

    for k, p in params.items():
        if not p.flags.c_contiguous:
            raise ConfigError(f"gradcheck: parameter {k} must be C-contiguous.")
        check(k, p, grads[k])
    if check_inputs:
        for i, a in enumerate(inputs):
            if a is None:
                continue
            g = gin[i] if gin is not None and i < len(gin) else None
            if isinstance(a, tuple):
                for j, s in enumerate(a):
                    if s.dtype.kind == "f":
                        check(f"input[{i}][{j}]", s, g[j] if g is not None else None)
            elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
                check(f"input[{i}]", a, g)
    module.zero_grad()
    return report
