"""Optimizers that update a name -> array dict of parameters in place.

``opt = Adam(model.parameters(), lr=1e-3)`` keeps the model's own arrays and
``opt.step(grads)`` updates them in place (``p -= ...``) from a gradient dict with the same keys
and shapes, so the model sees the new values without any copying back. The update rules are
those of ``torch.optim`` (single-tensor code path, ``maximize=False``), written with the same
operation order so that results agree with PyTorch to rounding (~1e-16 relative per step in
float64).

State (moments, step count, hyper-parameters) round-trips through
:meth:`Optimizer.state_dict` / :meth:`Optimizer.load_state_dict` as ``(arrays, meta)``: the
arrays are named ``"<state>/<param name>"`` (e.g. ``"exp_avg/rnn.weight_ih_l0"``) and fit in a
safetensors file; ``meta`` is plain JSON. :func:`get_optimizer` builds an optimizer by name
(the keys of ``OPTIMIZERS``), e.g. from a saved ``meta``.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Mapping

import numpy as np

from .._validate import check_bool, check_float, fmt_shape, key_mismatch
from ..errors import CheckpointError, ConfigError, DTypeError, ParameterKeyError, ShapeError

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS"]

# Written into every state meta (and checked on load): it names the package, not this module,
# so checkpoints written before rnnkit.optim was split into modules still load.
_STATE_FORMAT = "rnnkit.optim"
_STATE_VERSION = 1


def _key_diff(expected, got) -> str:
    """``"missing a, b and unexpected c"`` (lists capped, so a hostile file with 100k names
    gives a readable message)."""
    return key_mismatch(sorted(expected), sorted(got)) or ""


def _lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """``a <- a + w * (b - a)`` in place, rounded like ``torch.Tensor.lerp_`` on CPU."""
    if abs(w) < 0.5:
        d = b - a
        d *= w
        a += d
    else:
        d = b - a
        d *= 1.0 - w
        np.subtract(b, d, out=a)


def _check_betas(who: str, betas) -> tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ConfigError(f"{who}: expected betas as a pair (beta1, beta2), got {betas!r}. "
                          f"Use e.g. betas=(0.9, 0.999).")
    b1 = check_float(who, "betas[0]", betas[0], 0.0, 1.0, max_inclusive=False)
    b2 = check_float(who, "betas[1]", betas[1], 0.0, 1.0, max_inclusive=False)
    return b1, b2


class Optimizer:
    """Base class: holds the parameter dict, per-parameter state arrays and the step count.

    A subclass declares its hyper-parameters once, as its constructor's keyword arguments
    with PyTorch's defaults (``_HYPER`` is read from that signature; ``_set_hyper`` validates a
    dict of them), the names of its per-parameter state arrays in ``_state_names()`` and the
    update of one parameter in ``_update(p, g, state, step)``. State arrays are allocated at construction,
    zero-filled (or as the rule says) in each parameter's dtype.

    Args:
        params: ``{name: ndarray}`` of float32/float64 arrays, updated in place. The dict is
            copied (not the arrays), so later changes to the caller's dict have no effect.
        lr: learning rate (>= 0). Settable attribute: ``opt.lr = 0.01``.

    Attributes:
        params: the parameter dict (same array objects as the model's).
        state: ``{state_name: {param_name: ndarray}}``.
        step_count: number of :meth:`step` calls so far (``k`` in the update formulas, after
            the increment: the first step uses ``k = 1``).
    """

    #: the hyper-parameter names: a subclass's constructor arguments after ``params``
    _HYPER: tuple[str, ...] = ("lr",)
    name = "optimizer"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._HYPER = tuple(inspect.signature(cls.__init__).parameters)[2:]     # after self, params

    def _arguments(self, args: dict) -> dict:
        """The hyper-parameters out of a subclass constructor's ``locals()``."""
        return {h: args[h] for h in self._HYPER}

    def __init__(self, params: Mapping[str, np.ndarray], lr: float, **hyper: float | bool | tuple[float, float]):
        who = type(self).__name__
        if not isinstance(params, Mapping):
            raise ConfigError(f"{who}: expected params as a dict {{name: ndarray}}, got "
                              f"{type(params).__name__}. Pass model.parameters().")
        if len(params) == 0:
            raise ConfigError(f"{who}: expected at least one parameter, got an empty dict. "
                              f"Pass the model's parameter dict.")
        for k, p in params.items():
            if not isinstance(k, str):
                raise ConfigError(f"{who}: expected parameter names as strings, got {k!r}.")
            if not isinstance(p, np.ndarray):
                raise DTypeError(f"{who}: expected params[{k!r}] to be a NumPy array (updated in "
                                 f"place), got {type(p).__name__}. Pass the model's own arrays.")
            if p.dtype not in (np.float32, np.float64):
                raise DTypeError(f"{who}: expected params[{k!r}] with dtype float32 or float64, "
                                 f"got {p.dtype}. Convert the model with .astype(np.float32).")
            if not p.flags.writeable:
                raise ConfigError(f"{who}: expected params[{k!r}] to be writeable (it is updated "
                                  f"in place), got a read-only array. Pass a writeable copy.")
        self.params: dict[str, np.ndarray] = dict(params)
        self._set_hyper({"lr": lr, **hyper})
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {
            s: {k: self._init_state(s, p) for k, p in self.params.items()}
            for s in self._state_names()
        }

    # --- hyper-parameters -------------------------------------------------------------------
    def _set_hyper(self, hyper: Mapping) -> None:
        """Validate and set the hyper-parameters ``{name: value}`` (all of ``_HYPER``)."""
        extra = sorted(set(hyper) - set(self._HYPER))
        if extra:
            raise ConfigError(f"{type(self).__name__}: unexpected hyper-parameters {extra}.")
        self.lr = hyper["lr"]

    @property
    def lr(self) -> float:
        """Learning rate used by the next :meth:`step` (schedules set it)."""
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = check_float(type(self).__name__, "lr", value, 0.0)

    def hyperparameters(self) -> dict:
        """The hyper-parameters as a JSON-safe dict (``get_optimizer(name, params, **h)``)."""
        out = {}
        for h in self._HYPER:
            v = getattr(self, h)
            out[h] = list(v) if isinstance(v, tuple) else v
        return out

    def __repr__(self) -> str:
        h = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} params, {h}, step_count={self.step_count})"

    # --- subclass hooks ---------------------------------------------------------------------
    def _state_names(self) -> tuple[str, ...]:
        return ()

    def _init_state(self, state_name: str, p: np.ndarray) -> np.ndarray:
        return np.zeros_like(p)

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict, step: int) -> None:
        raise NotImplementedError

    # --- stepping ---------------------------------------------------------------------------
    def _check_grads(self, grads) -> dict[str, np.ndarray]:
        who = f"{type(self).__name__}.step"
        if not isinstance(grads, Mapping):
            raise ConfigError(f"{who}: expected grads as a dict {{name: ndarray}} with the "
                              f"parameters' names, got {type(grads).__name__}.")
        if grads.keys() != self.params.keys():
            raise ParameterKeyError(
                f"{who}: expected grads with exactly the parameters' keys, got "
                f"{_key_diff(self.params, grads)}. Pass the gradient dict of the same model.")
        out = {}
        for k, p in self.params.items():
            g = grads[k]
            if not isinstance(g, np.ndarray):
                g = np.asarray(g)
            if g.dtype.kind not in "fiu":
                raise DTypeError(f"{who}: expected grads[{k!r}] with a real float dtype, got "
                                 f"{g.dtype}.")
            if g.shape != p.shape:
                raise ShapeError(f"{who}: expected grads[{k!r}] of shape {fmt_shape(p.shape)} "
                                 f"(the parameter's shape), got {fmt_shape(g.shape)}.")
            out[k] = g if g.dtype == p.dtype else g.astype(p.dtype)
        return out

    def step(self, grads: Mapping, lr: float | None = None) -> None:
        """Apply one update to every parameter, in place.

        Args:
            grads: ``{name: ndarray}`` with exactly the parameters' keys and shapes (any
                real dtype; cast to each parameter's dtype). Not modified. Non-finite values
                are not refused here (they propagate; detect them with :func:`clip_grad_norm`).
            lr: if given, becomes ``self.lr`` before the update (like a scheduler writing the
                learning rate of a torch param group).

        Raises:
            ParameterKeyError: keys differ. ShapeError: a shape differs (the key is named).
        """
        g = self._check_grads(grads)
        if lr is not None:
            self.lr = lr
        self.step_count += 1
        k = self.step_count
        for name, p in self.params.items():
            st = {s: self.state[s][name] for s in self.state}
            self._update(p, g[name], st, k)

    # --- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """Return ``(arrays, meta)``: copies of the state arrays and JSON-safe metadata.

        ``arrays`` maps ``"<state>/<param name>"`` (e.g. ``"exp_avg/rnn.weight_ih_l0"``) to a
        copy of the array. ``meta`` = ``{"format", "version", "class", "name", "step",
        "hyper": {...}, "params": {name: [shape...]}, "dtypes": {name: "float32"}}``.
        """
        arrays = {f"{s}/{k}": a.copy() for s, d in self.state.items() for k, a in d.items()}
        meta = {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            "class": type(self).__name__,
            "name": self.name,
            "step": int(self.step_count),
            "hyper": self.hyperparameters(),
            "params": {k: [int(s) for s in p.shape] for k, p in self.params.items()},
            "dtypes": {k: str(p.dtype) for k, p in self.params.items()},
        }
        return arrays, meta

    def load_state_dict(self, arrays: Mapping, meta: Mapping) -> None:
        """Restore the state saved by :meth:`state_dict` (hyper-parameters, step, arrays).

        Everything is validated before anything is changed.

        Raises:
            ConfigError: ``meta`` was written by a different optimizer class.
            CheckpointError: malformed meta, different parameter names or shapes, missing or
                unexpected state arrays, wrong shapes, non-float or non-finite values.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(meta, Mapping):
            raise CheckpointError(f"{who}: expected meta as a dict, got {type(meta).__name__}.")
        if meta.get("format") != _STATE_FORMAT or meta.get("version") != _STATE_VERSION:
            raise CheckpointError(
                f"{who}: expected meta with format {_STATE_FORMAT!r} version {_STATE_VERSION}, "
                f"got format {meta.get('format')!r} version {meta.get('version')!r}. "
                f"Use the meta returned by Optimizer.state_dict().")
        if meta.get("class") != type(self).__name__:
            raise ConfigError(f"{who}: expected optimizer state of class {type(self).__name__}, "
                              f"got {meta.get('class')!r}. Build the optimizer named in the "
                              f"checkpoint (get_optimizer(meta['name'], params, **meta['hyper'])).")
        step = meta.get("step")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise CheckpointError(f"{who}: expected meta['step'] to be an integer >= 0, "
                                  f"got {step!r}.")
        hyper = meta.get("hyper")
        if not isinstance(hyper, Mapping) or set(hyper) != set(self._HYPER):
            got = sorted(hyper) if isinstance(hyper, Mapping) else hyper
            raise CheckpointError(f"{who}: expected meta['hyper'] with keys "
                                  f"{sorted(self._HYPER)}, got {got!r}.")
        shapes = meta.get("params")
        if not isinstance(shapes, Mapping) or shapes.keys() != self.params.keys():
            diff = _key_diff(self.params, shapes) if isinstance(shapes, Mapping) else repr(shapes)
            raise CheckpointError(f"{who}: expected the state of this model's parameters, got "
                                  f"different parameter names ({diff}).")
        for k, p in self.params.items():
            if not isinstance(shapes[k], (list, tuple)) or tuple(shapes[k]) != p.shape:
                raise CheckpointError(f"{who}: parameter {k!r} has shape {fmt_shape(p.shape)} but "
                                      f"the optimizer state was saved for shape {shapes[k]!r}.")
        # Validate hyper-parameters on a scratch object so that a failure changes nothing.
        scratch = object.__new__(type(self))
        try:
            scratch._set_hyper(dict(hyper))
        except ConfigError as e:
            raise CheckpointError(f"{who}: invalid hyper-parameters in meta: {e}") from None
        names = scratch._state_names()
        if not isinstance(arrays, Mapping):
            raise CheckpointError(f"{who}: expected arrays as a dict, got {type(arrays).__name__}.")
        expected = {f"{s}/{k}" for s in names for k in self.params}
        if set(arrays) != expected:
            raise CheckpointError(f"{who}: state arrays do not match this optimizer and model: "
                                  f"{_key_diff(expected, arrays)}.")
        new_state = {}
        for s in names:
            new_state[s] = {}
            for k, p in self.params.items():
                a = arrays[f"{s}/{k}"]
                a = np.asarray(a)
                if a.dtype.kind != "f":
                    raise CheckpointError(f"{who}: expected state array {s}/{k} with a float "
                                          f"dtype, got {a.dtype}.")
                if a.shape != p.shape:
                    raise CheckpointError(f"{who}: expected state array {s}/{k} of shape "
                                          f"{fmt_shape(p.shape)}, got {fmt_shape(a.shape)}.")
                if a.size and not np.isfinite(a).all():
                    raise CheckpointError(f"{who}: state array {s}/{k} contains NaN or inf; the "
                                          f"checkpoint is damaged.")
                new_state[s][k] = np.array(a, dtype=p.dtype, copy=True)
        self._set_hyper(dict(hyper))
        self.step_count = int(step)
        self.state = new_state


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum / Nesterov (``torch.optim.SGD``).

    For step k (k = 1, 2, ...)::

        g  = grad + weight_decay * p
        b  = g                                  if k == 1
        b  = momentum * b + (1 - dampening) * g otherwise        (only if momentum != 0)
        g  = g + momentum * b   if nesterov else   b             (only if momentum != 0)
        p -= lr * g

    State: ``momentum_buffer`` (only when momentum != 0).

    Example::

        opt = SGD({"w": w}, lr=0.1, momentum=0.9, nesterov=True)
        opt.step({"w": dw})
    """

    name = "sgd"

    def __init__(self, params: Mapping[str, np.ndarray], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, **self._arguments(locals()))

    def _set_hyper(self, hyper):
        who = type(self).__name__
        super()._set_hyper(hyper)
        self.momentum = check_float(who, "momentum", hyper["momentum"], 0.0)
        self.dampening = check_float(who, "dampening", hyper["dampening"])
        self.nesterov = check_bool(who, "nesterov", hyper["nesterov"])
        self.weight_decay = check_float(who, "weight_decay", hyper["weight_decay"], 0.0)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ConfigError(f"{who}: nesterov=True requires momentum > 0 and dampening = 0, "
                              f"got momentum={self.momentum}, dampening={self.dampening}.")

    def _state_names(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _update(self, p, g, st, step):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            buf = st["momentum_buffer"]
            if step == 1:
                buf[...] = g
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adagrad(Optimizer):
    r"""Adagrad (``torch.optim.Adagrad``).

    For step k (k = 1, 2, ...)::

        g    = grad + weight_decay * p
        clr  = lr / (1 + (k - 1) * lr_decay)
        s   += g * g                       (s starts at initial_accumulator_value)
        p   -= clr * g / (sqrt(s) + eps)

    State: ``sum``.
    """

    name = "adagrad"

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, **self._arguments(locals()))

    def _set_hyper(self, hyper):
        who = type(self).__name__
        super()._set_hyper(hyper)
        self.lr_decay = check_float(who, "lr_decay", hyper["lr_decay"], 0.0)
        self.weight_decay = check_float(who, "weight_decay", hyper["weight_decay"], 0.0)
        self.initial_accumulator_value = check_float(
            who, "initial_accumulator_value", hyper["initial_accumulator_value"], 0.0)
        self.eps = check_float(who, "eps", hyper["eps"], 0.0)

    def _state_names(self):
        return ("sum",)

    def _init_state(self, state_name, p):
        return np.full_like(p, self.initial_accumulator_value)

    def _update(self, p, g, st, step):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = self.lr / (1 + (step - 1) * self.lr_decay)
        s = st["sum"]
        s += g * g
        std = np.sqrt(s)
        std += self.eps
        upd = (-clr) * g
        upd /= std
        p += upd


class RMSprop(Optimizer):
    r"""RMSprop (``torch.optim.RMSprop``).

    For step k::

        g  = grad + weight_decay * p
        v  = alpha * v + (1 - alpha) * g * g
        m  = alpha * m + (1 - alpha) * g                    (centered only)
        a  = sqrt(v - m * m) + eps   if centered else   sqrt(v) + eps
        b  = momentum * b + g / a;   p -= lr * b            if momentum > 0
        p -= lr * g / a                                     otherwise

    State: ``square_avg``, plus ``grad_avg`` (centered) and ``momentum_buffer`` (momentum > 0).
    """

    name = "rmsprop"

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, **self._arguments(locals()))

    def _set_hyper(self, hyper):
        who = type(self).__name__
        super()._set_hyper(hyper)
        self.alpha = check_float(who, "alpha", hyper["alpha"], 0.0)
        self.eps = check_float(who, "eps", hyper["eps"], 0.0)
        self.weight_decay = check_float(who, "weight_decay", hyper["weight_decay"], 0.0)
        self.momentum = check_float(who, "momentum", hyper["momentum"], 0.0)
        self.centered = check_bool(who, "centered", hyper["centered"])

    def _state_names(self):
        names = ("square_avg",)
        if self.centered:
            names += ("grad_avg",)
        if self.momentum > 0:
            names += ("momentum_buffer",)
        return names

    def _update(self, p, g, st, step):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        v = st["square_avg"]
        v *= self.alpha
        v += ((1.0 - self.alpha) * g) * g
        if self.centered:
            m = st["grad_avg"]
            _lerp_(m, g, 1.0 - self.alpha)
            avg = v - m * m
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(v)
        avg += self.eps
        if self.momentum > 0:
            b = st["momentum_buffer"]
            b *= self.momentum
            b += g / avg
            p -= self.lr * b
        else:
            upd = (-self.lr) * g
            upd /= avg
            p += upd


class Adam(Optimizer):
    r"""Adam (``torch.optim.Adam``); ``weight_decay`` is an L2 term added to the gradient.

    For step k (k = 1, 2, ...)::

        g  = grad + weight_decay * p
        m  = beta1 * m + (1 - beta1) * g
        v  = beta2 * v + (1 - beta2) * g * g
        vm = max(vm, v)                      (amsgrad only; then v -> vm below)
        p -= lr / (1 - beta1**k) * m / (sqrt(v) / sqrt(1 - beta2**k) + eps)

    Note ``eps`` is added *after* the bias correction of ``sqrt(v)``, as in PyTorch.
    State: ``exp_avg``, ``exp_avg_sq``, plus ``max_exp_avg_sq`` (amsgrad).

    Example::

        opt = Adam(model.parameters(), lr=2e-3)
        opt.step(grads)
    """

    name = "adam"
    _decoupled = False

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, **self._arguments(locals()))

    def _set_hyper(self, hyper):
        who = type(self).__name__
        super()._set_hyper(hyper)
        self.betas = _check_betas(who, hyper["betas"])
        self.eps = check_float(who, "eps", hyper["eps"], 0.0)
        self.weight_decay = check_float(who, "weight_decay", hyper["weight_decay"], 0.0)
        self.amsgrad = check_bool(who, "amsgrad", hyper["amsgrad"])

    def _state_names(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _update(self, p, g, st, step):
        beta1, beta2 = self.betas
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = st["exp_avg"], st["exp_avg_sq"]
        _lerp_(m, g, 1.0 - beta1)
        v *= beta2
        v += ((1.0 - beta2) * g) * g
        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2 = 1.0 - beta2 ** step
        step_size = self.lr / bias_correction1
        bc2_sqrt = bias_correction2 ** 0.5
        if self.amsgrad:
            vm = st["max_exp_avg_sq"]
            np.maximum(vm, v, out=vm)
            v = vm
        denom = np.sqrt(v)
        denom /= bc2_sqrt
        denom += self.eps
        upd = (-step_size) * m
        upd /= denom
        p += upd


class AdamW(Adam):
    r"""AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay.

    For step k: first ``p *= 1 - lr * weight_decay``, then the Adam step of :class:`Adam`
    with no L2 term in the gradient.
    """

    name = "adamw"
    _decoupled = True

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, **self._arguments(locals()))


#: The optimizers by the name :func:`get_optimizer` and ``TrainConfig.optimizer`` take.
OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get_optimizer(name: str, params: Mapping[str, np.ndarray], **kwargs: float | bool | tuple[float, float]
                  ) -> Optimizer:
    """Build an optimizer by name: ``'sgd'``, ``'adagrad'``, ``'rmsprop'``, ``'adam'``, ``'adamw'``.

    ``kwargs`` are the class's hyper-parameters (``lr``, ``momentum``, ...). The name is
    case-insensitive. ``get_optimizer(meta["name"], params, **meta["hyper"])`` rebuilds the
    optimizer described by a :meth:`Optimizer.state_dict` meta.

    Example::

        opt = get_optimizer("adam", params, lr=2e-3)
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ConfigError(f"get_optimizer: expected name to be one of "
                          f"{', '.join(repr(c) for c in OPTIMIZERS)}, got {name!r}.")
    cls = OPTIMIZERS[key]
    allowed = set(cls._HYPER)
    extra = sorted(set(kwargs) - allowed)
    if extra:
        raise ConfigError(f"get_optimizer: unexpected argument(s) {extra} for {cls.__name__}; "
                          f"expected some of {sorted(allowed)}.")
    return cls(params, **kwargs)

