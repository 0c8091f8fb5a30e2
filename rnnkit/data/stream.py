"""Stream mode (char-rnn style): one long id stream read as parallel tracks, so the hidden
state can be carried from one chunk to the next (truncated backpropagation through time)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._validate import Range, check_int, to_numpy
from ..errors import DataError, DTypeError, ShapeError

#: The range of the chunk length of stream mode (``rnnkit train --seq-len`` checks with it too).
SEQ_LEN = Range("int", 1)
#: The range of the sequences per batch of every batch source (and of ``rnnkit train
#: --batch-size``).
BATCH_SIZE = Range("int", 1)


class StreamChunk(NamedTuple):
    """One stream-mode chunk: x (T, N) int64 inputs, y (T, N) int64 targets (x shifted by 1)."""
    x: np.ndarray
    y: np.ndarray


class StreamDataset:
    """One long id stream, read as ``batch_size`` parallel tracks (char-rnn style).

    With ``N = batch_size``, ``T = seq_len`` and ``L = (len(ids) - 1) // N`` steps per track
    (the tail that does not fill a track is dropped)::

        track n covers positions  n*L .. n*L + L - 1          (inputs)
        chunk k:  x[t, n] = ids[n*L + k*T + t]
                  y[t, n] = ids[n*L + k*T + t + 1]            t = 0 .. T-1

    Chunk ``k + 1`` continues every track exactly where chunk ``k`` ended, so the final hidden
    state of one chunk is the right initial state of the next (truncated BPTT).
    ``num_chunks = L // T`` (a partial last chunk is dropped). Chunk indices past
    ``num_chunks`` wrap around (epoch ``k // num_chunks``); at every ``k % num_chunks == 0``
    the tracks restart from their beginning, so reset the carried state there.

    Example::

        >>> ds = StreamDataset(np.arange(21), seq_len=3, batch_size=2)
        >>> ds.num_chunks
        3
        >>> ds.chunk(0).x.tolist()
        [[0, 10], [1, 11], [2, 12]]
        >>> ds.chunk(1).x[:, 0].tolist()
        [3, 4, 5]
    """

    def __init__(self, ids: ArrayLike, seq_len: int, batch_size: int):
        who = "StreamDataset"
        T = SEQ_LEN.check(who, "seq_len", seq_len)
        N = BATCH_SIZE.check(who, "batch_size", batch_size)
        arr = to_numpy(who, "ids", ids)
        if arr.ndim != 1:
            raise ShapeError(f"{who}: expected ids of shape (length,), got shape {arr.shape}. "
                             f"Flatten the stream (ids.reshape(-1)).")
        if arr.size and arr.dtype.kind not in "iu":
            raise DTypeError(f"{who}: expected integer ids, got dtype {arr.dtype}. Encode text "
                             f"with Vocab.encode first.")
        if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
            raise DataError(f"{who}: expected non-negative ids, got minimum {arr.min()}.")
        L = (arr.size - 1) // N if arr.size else 0
        if L < T:
            raise DataError(f"{who}: expected at least batch_size * seq_len + 1 = {N * T + 1} ids "
                            f"to fill one chunk, got {arr.size}. Use a longer text or lower "
                            f"batch_size / seq_len.")
        self.seq_len, self.batch_size, self.track_len = T, N, L
        self.num_chunks = L // T
        self.ids = arr                      # kept as given: a compact dtype or a memory map works
        self._offsets = (np.arange(T)[:, None] + L * np.arange(N)[None, :]).astype(np.int64)  # (T, N)

    def __len__(self) -> int:
        return self.num_chunks

    def chunk(self, k: int) -> StreamChunk:
        """Chunk ``k`` (taken modulo ``num_chunks``): x, y of shape (T, N)."""
        k = check_int("StreamDataset.chunk", "k", k, 0) % self.num_chunks
        idx = self._offsets + k * self.seq_len                              # (T, N)
        return StreamChunk(self.ids[idx].astype(np.int64), self.ids[idx + 1].astype(np.int64))
