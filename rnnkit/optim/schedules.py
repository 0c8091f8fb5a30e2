"""Learning-rate schedules: the rate as a pure function of the optimizer step.

``lr = schedule(k)`` is the rate for the k-th optimizer step (k = 0, 1, ...), in the closed
forms of ``torch.optim.lr_scheduler``; pass it as ``opt.step(grads, lr=schedule(k))``.
Schedules carry no state, so they are checkpointed by :meth:`Schedule.to_config` and rebuilt by
:func:`schedule_from_config` (``SCHEDULES`` maps the config names to the classes).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from .._validate import check_float, check_int
from ..errors import ConfigError

__all__ = ["Schedule", "ConstantLR", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
           "schedule_from_config", "SCHEDULES", "SCHEDULE_NAMES"]


class Schedule:
    """A learning rate as a pure function of the step: ``lr = schedule(k)``.

    ``k`` is the number of optimizer steps taken so far, so ``schedule(k)`` is the rate used
    by step k (k = 0 for the first step). The closed forms are those of
    ``torch.optim.lr_scheduler`` (the lr that ``optimizer.param_groups[0]["lr"]`` holds after
    ``k`` calls of ``scheduler.step()``). Schedules hold no state: checkpoint them with
    :meth:`to_config` and rebuild with :func:`schedule_from_config`.
    """

    base_lr: float

    def __call__(self, step: int) -> float:
        k = check_int(type(self).__name__, "step", step, 0)
        return float(self._lr(k))

    def _lr(self, k: int) -> float:
        raise NotImplementedError

    def to_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        cfg = self.to_config()
        name = cfg.pop("name")
        return f"{name}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Schedule) and self.to_config() == other.to_config()

    __hash__ = None


class ConstantLR(Schedule):
    """``lr(k) = base_lr`` (note: not torch's ``ConstantLR``, which scales for a few steps)."""

    def __init__(self, base_lr: float):
        self.base_lr = check_float("ConstantLR", "base_lr", base_lr, 0.0)

    def _lr(self, k):
        return self.base_lr

    def to_config(self) -> dict:
        return {"name": "ConstantLR", "base_lr": self.base_lr}


class StepLR(Schedule):
    """``lr(k) = base_lr * gamma ** (k // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1):
        self.base_lr = check_float("StepLR", "base_lr", base_lr, 0.0)
        self.step_size = check_int("StepLR", "step_size", step_size, 1)
        self.gamma = check_float("StepLR", "gamma", gamma, 0.0)

    def _lr(self, k):
        return self.base_lr * self.gamma ** (k // self.step_size)

    def to_config(self) -> dict:
        return {"name": "StepLR", "base_lr": self.base_lr, "step_size": self.step_size,
                "gamma": self.gamma}


class ExponentialLR(Schedule):
    """``lr(k) = base_lr * gamma ** k`` (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, base_lr: float, gamma: float):
        self.base_lr = check_float("ExponentialLR", "base_lr", base_lr, 0.0)
        self.gamma = check_float("ExponentialLR", "gamma", gamma, 0.0)

    def _lr(self, k):
        return self.base_lr * self.gamma ** k

    def to_config(self) -> dict:
        return {"name": "ExponentialLR", "base_lr": self.base_lr, "gamma": self.gamma}


class CosineAnnealingLR(Schedule):
    """``lr(k) = eta_min + (base_lr - eta_min) * (1 + cos(pi * k / T_max)) / 2``.

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``; like PyTorch's it is
    periodic (it rises again after ``T_max`` steps). Wrap it to stop at ``T_max`` if needed.
    """

    def __init__(self, base_lr: float, T_max: int, eta_min: float = 0.0):
        self.base_lr = check_float("CosineAnnealingLR", "base_lr", base_lr, 0.0)
        self.T_max = check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = check_float("CosineAnnealingLR", "eta_min", eta_min, 0.0)

    def _lr(self, k):
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * k / self.T_max)) / 2

    def to_config(self) -> dict:
        return {"name": "CosineAnnealingLR", "base_lr": self.base_lr, "T_max": self.T_max,
                "eta_min": self.eta_min}


class LinearWarmup(Schedule):
    """Linear warm-up for ``warmup_steps`` steps, then the wrapped schedule (shifted).

    ::

        lr(k) = base_lr * (start_factor + (1 - start_factor) * k / warmup_steps)   k < warmup_steps
        lr(k) = schedule(k - warmup_steps)                                          otherwise

    with ``base_lr = schedule(0)``. This is ``SequentialLR([LinearLR(start_factor,
    total_iters=warmup_steps), schedule], milestones=[warmup_steps])`` in PyTorch.

    Args:
        schedule_or_base_lr: a :class:`Schedule`, or a number for a constant rate after warm-up.
        warmup_steps: length of the ramp (>= 0; 0 means no warm-up).
        start_factor: fraction of ``base_lr`` at step 0, in [0, 1] (torch's default 1/3).

    Example::

        sched = LinearWarmup(CosineAnnealingLR(1e-3, T_max=1000), warmup_steps=100)
    """

    def __init__(self, schedule_or_base_lr: Schedule | float, warmup_steps: int,
                 start_factor: float = 1.0 / 3.0):
        who = "LinearWarmup"
        if isinstance(schedule_or_base_lr, Schedule):
            self.schedule = schedule_or_base_lr
        elif isinstance(schedule_or_base_lr, numbers.Real) and not isinstance(
                schedule_or_base_lr, bool):
            self.schedule = ConstantLR(schedule_or_base_lr)
        else:
            raise ConfigError(f"{who}: expected a Schedule or a base learning rate, got "
                              f"{schedule_or_base_lr!r}.")
        self.warmup_steps = check_int(who, "warmup_steps", warmup_steps, 0)
        self.start_factor = check_float(who, "start_factor", start_factor, 0.0, 1.0)
        self.base_lr = self.schedule(0)

    def _lr(self, k):
        if k < self.warmup_steps:
            return self.base_lr * (self.start_factor
                                   + (1.0 - self.start_factor) * k / self.warmup_steps)
        return self.schedule(k - self.warmup_steps)

    def to_config(self) -> dict:
        return {"name": "LinearWarmup", "schedule": self.schedule.to_config(),
                "warmup_steps": self.warmup_steps, "start_factor": self.start_factor}


#: The schedules a training run names (``TrainConfig.schedule``, ``rnnkit train --schedule``);
#: :meth:`rnnkit.train.TrainConfig.make_schedule` builds each from the classes above.
SCHEDULE_NAMES = ("constant", "cosine", "step", "exponential")

#: The schedule classes by class name, as :meth:`Schedule.to_config` records them.
SCHEDULES = {c.__name__: c for c in (ConstantLR, StepLR, ExponentialLR, CosineAnnealingLR,
                                     LinearWarmup)}


def schedule_from_config(config: Mapping) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_config` output (JSON round-trip safe).

    Example::

        s = schedule_from_config({"name": "StepLR", "base_lr": 0.1, "step_size": 10})
    """
    who = "schedule_from_config"
    if not isinstance(config, Mapping) or "name" not in config:
        raise ConfigError(f"{who}: expected a dict with a 'name' key, got {config!r}.")
    cfg = dict(config)
    name = cfg.pop("name")
    if name not in SCHEDULES:
        raise ConfigError(f"{who}: expected name to be one of "
                          f"{', '.join(repr(c) for c in SCHEDULES)}, got {name!r}.")
    if name == "LinearWarmup":
        inner = cfg.pop("schedule", None)
        if inner is None:
            raise ConfigError(f"{who}: LinearWarmup config needs a 'schedule' entry.")
        cfg["schedule_or_base_lr"] = schedule_from_config(inner)
    try:
        return SCHEDULES[name](**cfg)
    except TypeError as e:
        raise ConfigError(f"{who}: bad arguments for {name}: {e}.") from None
