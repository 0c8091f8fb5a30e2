"""The NumPy engine: rnnkit's own layers, losses and optimizers in one process (the default,
and the reference the torch engine is tested against).

The step is the model's contract (:mod:`rnnkit.nn.models`): ``model.loss(batch, carry)``,
``model.backward_loss()``, ``model.gradients()``; the optimizer updates
``model.parameters()`` in place. Dropout draws from the NumPy generators of the model's
modules, whose states are checkpointed in trainer.json (``rng_states``).
"""

from __future__ import annotations

import math

import numpy as np

from .._mode import no_grad
from ..cells import map_state
from ..optim import clip_grad_norm, clip_grad_value, global_norm
from .base import Engine

__all__ = ["NumpyEngine"]


def _rng_owners(module, prefix=""):
    """(path, module) for every sub-module holding a random generator (dropout)."""
    if getattr(module, "rng", None) is not None:
        yield prefix or "<root>", module
    for name, child in getattr(module, "_children", {}).items():
        yield from _rng_owners(child, f"{prefix}.{name}" if prefix else name)


def _jsonable_rng_state(state):
    return {k: _jsonable_rng_state(v) if isinstance(v, dict) else (int(v) if isinstance(v, (int, np.integer)) else v)
            for k, v in state.items()}


def _detach(carry):
    return map_state(lambda a: np.array(a, copy=True), carry)


def _all_finite(arrays) -> bool:
    """True when every array is free of NaN/inf (one reduction each; exact check on doubt)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(np.add.reduce(a, axis=None)) or np.isfinite(a).all()
                   for a in arrays)


class NumpyEngine(Engine):
    """Train an rnnkit model with rnnkit's optimizers (see :class:`rnnkit.engines.Engine`)."""

    name = "numpy"

    def __init__(self, model, config, group=None):
        super().__init__(model, config, group)
        self.params = model.parameters()
        self.optimizer = config.make_optimizer(self.params)

    def describe(self) -> str:
        return f"numpy {np.__version__} on the CPU, {self.group.describe()}"

    @property
    def uses_dropout(self) -> bool:
        return any((getattr(m, "dropout", 0) and getattr(m, "num_layers", 2) > 1) or getattr(m, "p", 0)
                   or getattr(m, "regularised", False)
                   for _, m in _rng_owners(self.model)) or bool(    # a one-layer stack drops nothing
            getattr(getattr(self.model, "config", None), "embedding_dropout", 0))

    # -- one step ------------------------------------------------------------------------
    def forward(self, source, step, carry):
        batch, reset = source.batch(step)
        if reset or not source.carries_state:
            carry = None
        return self.model.loss(batch, carry), source.tokens_in(batch)

    def discard(self):
        self.model.zero_grad()

    def update(self, lr):
        cfg = self.config
        self.model.backward_loss()
        grads = self.model.gradients()
        if cfg.clip:
            norm = clip_grad_norm(grads, cfg.clip)
        else:
            norm = global_norm(grads)
        if cfg.clip_value:
            clip_grad_value(grads, cfg.clip_value)
        if not math.isfinite(norm):
            self.model.zero_grad()
            return norm, True
        with np.errstate(over="ignore", invalid="ignore"):
            self.optimizer.step(grads, lr=lr)
        finite = _all_finite(self.params.values())
        self.model.zero_grad()
        return norm, finite

    def detach(self, carry):
        return _detach(carry)

    def evaluate(self, source):
        """Mean loss over all batches of ``source``, weighted by item counts, in eval mode
        without caches. Stream sources carry the state."""
        was_training = self.model.training
        self.model.eval()
        total, count, carry = 0.0, 0, None
        try:
            with no_grad():
                for b in source.eval_batches():
                    res = self.model.loss(b, carry)
                    total += res.loss * res.count
                    count += res.count
                    carry = res.carry if source.carries_state else None
        finally:
            self.model.train(was_training)
        return total / max(count, 1)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state):
        self.model.load_state_dict(state)

    def optimizer_state(self):
        return self.optimizer.state_dict()

    def load_optimizer_state(self, arrays, meta):
        self.optimizer.load_state_dict(arrays, meta)

    def rng_state(self):
        return {"rng_states": {path: _jsonable_rng_state(m.rng.bit_generator.state)
                               for path, m in _rng_owners(self.model)}}, {}

    def load_rng_state(self, json, arrays, saved_engine, step):
        states = json.get("rng_states", {})
        for path, m in _rng_owners(self.model):
            if path in states:
                m.rng.bit_generator.state = states[path]
        return saved_engine.get("name", "numpy") == "numpy"

    def carry_to_numpy(self, carry):
        return carry

    def carry_from_numpy(self, arrays):
        return arrays

    def snapshot(self):
        arrays, meta = self.optimizer.state_dict()
        return ({k: v.copy() for k, v in self.params.items()},
                {k: v.copy() for k, v in arrays.items()}, meta)

    def restore(self, snapshot):
        params, arrays, meta = snapshot
        for k, v in params.items():
            self.params[k][...] = v
        self.optimizer.load_state_dict(arrays, meta)
