"""Batch sources: what the trainer draws its batches from.

A source's batch at step ``k`` is a pure function of ``(seed, k)``, so a run resumed at step
``k`` replays exactly the batches a straight run would have drawn. Every source has

* ``batch(step) -> (batch, reset)``: the training batch of that step, and whether a carried
  recurrent state must be reset before it;
* ``eval_batches()``: every example once, in order (validation);
* ``tokens_in(batch)``: the number of predicted items it holds (for throughput);
* ``carries_state``: True when the final state of one batch is the initial state of the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .._validate import check_int
from .lines import LinesBatch, LinesDataset
from .stream import BATCH_SIZE, StreamChunk, StreamDataset


class EpochOrder:
    """Shuffled epochs of ``n`` examples in batches of ``batch_size`` (the last partial batch of
    an epoch is dropped). Batch ``k`` is slice ``k % per_epoch`` of the permutation of epoch
    ``k // per_epoch``, drawn from ``default_rng([seed, epoch])``."""

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        self.n = n
        self.batch_size = min(batch_size, n)
        self.seed = check_int("EpochOrder", "seed", seed, 0)
        self.per_epoch = max(1, n // self.batch_size)
        self._epoch, self._perm = None, None

    def indices(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.per_epoch)
        if self._epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]


class LinesSource:
    """Lines mode (makemore): shuffled epochs of independent lines, state reset per example."""

    carries_state = False

    def __init__(self, dataset: LinesDataset, batch_size: int, seed: int = 0):
        self.dataset = dataset
        self.order = EpochOrder(len(dataset), BATCH_SIZE.check("LinesSource", "batch_size", batch_size), seed)
        self.batch_size, self.per_epoch = self.order.batch_size, self.order.per_epoch

    def batch(self, step: int) -> tuple[LinesBatch, bool]:
        return self.dataset.get_batch(self.order.indices(step)), True

    def eval_batches(self, batch_size: int = 256) -> Iterator[LinesBatch]:
        """Every line once, in order, in batches of at most ``batch_size`` lines and
        :data:`~rnnkit.data.lines.EVAL_BATCH_TOKENS` padded steps."""
        for idx in self.dataset.index_batches(max_lines=batch_size):
            yield self.dataset.get_batch(idx)

    def tokens_in(self, batch: LinesBatch) -> int:
        return int(np.sum(batch.lengths))


class StreamSource:
    """Stream mode (char-rnn): chunk ``k % num_chunks`` of ``batch_size`` tracks; the state
    is carried between consecutive chunks and reset when a pass over the text restarts."""

    carries_state = True

    def __init__(self, dataset: StreamDataset):
        self.dataset = dataset
        self.per_epoch = dataset.num_chunks

    def batch(self, step: int) -> tuple[StreamChunk, bool]:
        k = step % self.dataset.num_chunks
        return self.dataset.chunk(k), k == 0

    def eval_batches(self, batch_size: int = 0) -> Iterator[StreamChunk]:
        for k in range(self.dataset.num_chunks):
            yield self.dataset.chunk(k)

    def tokens_in(self, batch: StreamChunk) -> int:
        return int(batch.x.size)


@dataclass
class ArrayBatch:
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None


class ArraySource:
    """Supervised examples stored as arrays with the batch on axis ``batch_axis`` of ``x``
    (1 for time-major sequences (T, N, ...)) and axis 0 of ``y`` unless ``y_batch_axis``.
    Shuffled epochs as in :class:`LinesSource`. With ``lengths``, each batch is cut to its
    longest sequence."""

    carries_state = False

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, lengths: np.ndarray | None = None,
                 seed: int = 0, batch_axis: int = 1, y_batch_axis: int = 0):
        self.x, self.y, self.lengths = x, y, lengths
        self.n = x.shape[batch_axis]
        self.batch_axis, self.y_batch_axis = batch_axis, y_batch_axis
        self.order = EpochOrder(self.n, BATCH_SIZE.check("ArraySource", "batch_size", batch_size), seed)
        self.batch_size, self.per_epoch = self.order.batch_size, self.order.per_epoch

    def _take(self, idx):
        x = np.take(self.x, idx, axis=self.batch_axis)
        y = np.take(self.y, idx, axis=self.y_batch_axis)
        lengths = None
        if self.lengths is not None:
            lengths = self.lengths[idx]
            T = int(lengths.max())
            x = x[:T]
            if self.y_batch_axis == 1:
                y = y[:T]
        return ArrayBatch(x, y, lengths)

    def batch(self, step: int) -> tuple[ArrayBatch, bool]:
        return self._take(self.order.indices(step)), True

    def eval_batches(self, batch_size: int = 512) -> Iterator[ArrayBatch]:
        for i in range(0, self.n, batch_size):
            yield self._take(np.arange(i, min(self.n, i + batch_size)))

    def tokens_in(self, batch: ArrayBatch) -> int:
        return int(np.asarray(batch.y).shape[self.y_batch_axis])
