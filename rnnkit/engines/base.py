"""What every engine is (:class:`Engine`) and the process group of one process
(:class:`LocalGroup`); see :mod:`rnnkit.engines`. The engines (``numpy.py``, ``torch.py``)
build on this module, and the package's ``make_engine`` picks one of them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DistributedError

if TYPE_CHECKING:
    from ..nn.models import LossResult
    from ..nn.module import Module
    from ..train import TrainConfig

__all__ = ["Engine", "LocalGroup"]


class LocalGroup:
    """The process group of a single process: rank 0 of 1, agreement is trivial."""

    rank = 0
    local_rank = 0
    world_size = 1
    backend = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def allreduce(self, values: Sequence[float], error: BaseException | None = None) -> list:
        """The sums of ``values`` over the processes (here: ``values``). An ``error`` raised
        in any process is raised in every process (here: ``error`` itself)."""
        if error is not None:
            raise error
        return list(values)

    def agree(self, error: BaseException | None = None) -> None:
        """Raise ``error`` (of this process) or the first failing process's error everywhere."""
        self.allreduce((), error)

    @contextlib.contextmanager
    def agreed(self) -> Iterator[None]:
        """``with group.agreed(): ...``: run the block here; if it fails in any process, it
        fails in every process (with the error of the first failing one)."""
        try:
            yield
        except Exception as e:
            if getattr(e, "_rnnkit_agreed", False):
                raise
            self.agree(e)
        else:
            self.agree(None)

    def main_first(self, fn: Callable[[], object]) -> object:
        """``fn()`` on the main process first, then (once it succeeded) on the others; for
        work that fills a cache the others then reuse (the encoded corpus)."""
        return fn()

    def broadcast(self, obj: object) -> object:
        """The main process's ``obj`` in every process."""
        return obj

    def all_gather(self, obj: object) -> list:
        """Every process's ``obj``, in rank order (here: ``[obj]``)."""
        return [obj]

    def check_same(self, facts: dict) -> None:
        """Refuse to go on unless every process has the main process's ``facts`` (a flat,
        JSON-able dict: the model config, the options, fingerprints of the data): a
        :class:`DistributedError` in every process naming the first rank that differs and
        how, so that no process builds another model (DDP would wait for it forever) or
        trains on other data (silently other numbers)."""
        gathered = self.all_gather(facts)
        main = gathered[0]
        for rank, theirs in enumerate(gathered[1:], 1):
            diff = [k for k in dict.fromkeys([*main, *theirs]) if main.get(k) != theirs.get(k)]
            if diff:
                shown = "; ".join(f"{k}: rank {rank} has {theirs.get(k)!r:.80}, rank 0 "
                                  f"{main.get(k)!r:.80}" for k in diff[:3])
                more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
                err = DistributedError(
                    f"the {len(gathered)} processes of this torchrun job differ before training "
                    f"({shown}{more}); every process must train the same model on the same data: "
                    f"give every node the same options and the same text.")
                err._rnnkit_agreed = True          # every process raises it; rank 0 reports
                raise err

    def close(self, in_sync: bool = True) -> None:
        """Leave the group; ``in_sync``: every process got here the same way."""

    def describe(self) -> str:
        return "1 process"


class Engine:
    """The interface :class:`rnnkit.train.Trainer` drives (see the module docstring).

    Attributes: ``name`` ("numpy" / "torch"), ``model`` (the rnnkit model; it holds the
    engine's weights after :meth:`sync_model`), ``group`` (the process group).
    """

    name = "engine"

    def __init__(self, model: Module, config: TrainConfig, group: LocalGroup | None = None):
        self.model = model
        self.config = config
        self.group = group if group is not None else LocalGroup()

    # -- processes -----------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.group.is_main

    def any(self, flags: Sequence[bool]) -> list[bool]:
        """Per flag: True when it is set in any process."""
        return [v > 0 for v in self.group.allreduce([1.0 if f else 0.0 for f in flags])]

    def agreed(self) -> contextlib.AbstractContextManager:
        """The group's :meth:`LocalGroup.agreed`: a block that fails in every process if it
        fails in any."""
        return self.group.agreed()

    def info(self) -> dict:
        """JSON kept in trainer.json: which engine, device and number of processes ran."""
        return {"name": self.name, "device": self.device_name(), "world_size": self.group.world_size}

    def device_name(self) -> str:
        return "cpu"

    def describe(self) -> str:
        """One line for people: ``numpy (CPU), 1 process``."""
        raise NotImplementedError

    @property
    def uses_dropout(self) -> bool:
        """True when training draws dropout masks (then the random stream matters)."""
        raise NotImplementedError

    # -- one step ------------------------------------------------------------------------
    def forward(self, source: object, step: int, carry: object) -> tuple[LossResult, int]:
        """``(LossResult, tokens)`` of the batch ``step`` of ``source``: the loss (mean over
        the global batch, the same number in every process), the number of items it averages
        over, the new carried state (engine-native), and ``source.tokens_in(batch)``. A batch
        that starts a pass over the text (``reset``) or a source that carries no state starts
        from the zero state."""
        raise NotImplementedError

    def discard(self) -> None:
        """Forget the last forward (its loss was refused)."""
        raise NotImplementedError

    def update(self, lr: float) -> tuple:
        """Backward of the last forward, clipping, optimizer step at rate ``lr``; returns
        ``(norm, finite)``: the global gradient norm before clipping (no step is taken when it
        is NaN/inf) and whether every weight is finite after the step."""
        raise NotImplementedError

    def detach(self, carry: object) -> object:
        """The carried state, cut from the graph of the step that produced it."""
        raise NotImplementedError

    def evaluate(self, source: object) -> float:
        """Mean loss over every batch of ``source`` (eval mode, no gradients)."""
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def sync_model(self) -> None:
        """Make ``model`` hold the engine's current weights."""

    def optimizer_state(self) -> tuple:
        raise NotImplementedError

    def load_optimizer_state(self, arrays: dict, meta: dict) -> None:
        raise NotImplementedError

    def rng_state(self) -> tuple:
        """``(json, arrays)``: the dropout generators, merged into trainer.json and
        trainer.safetensors. Collective (every process calls it); arrays only on the main one."""
        raise NotImplementedError

    def load_rng_state(self, json: dict, arrays: dict, saved_engine: dict, step: int) -> bool:
        """Restore the generators saved by :meth:`rng_state` when the checkpoint was written
        by this kind of engine (same device type and number of processes); otherwise start a
        fresh stream (a function of the seed and ``step``). Returns True when restored."""
        raise NotImplementedError

    def carry_to_numpy(self, carry: object) -> np.ndarray | tuple[np.ndarray, np.ndarray] | None:
        """The carried state of the whole batch as rnnkit's NumPy state (``h`` or ``(h, c)``,
        each (num_layers, N, H)) or None. Collective under torchrun."""
        raise NotImplementedError

    def carry_from_numpy(self, arrays: np.ndarray | tuple[np.ndarray, np.ndarray] | None) -> object:
        """The engine's carried state from rnnkit's NumPy state of the whole batch (or None)."""
        raise NotImplementedError

    def snapshot(self) -> object:
        """A copy of the weights and optimizer state, for :meth:`restore`."""
        raise NotImplementedError

    def restore(self, snapshot: object) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.group.close()
