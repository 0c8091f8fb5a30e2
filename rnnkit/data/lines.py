"""Lines mode (makemore style): every line of a text is one independent example.

One reserved boundary token ``<eos>`` with id 0 marks both the start and the end of a line::

    input  = [<eos>, c_1, ..., c_L]
    target = [c_1, ..., c_L, <eos>]     (the targets are the inputs shifted left by one)

Sequences of one batch are padded to the longest one; padded input positions hold ``pad_id``
(the boundary id by default, a valid id so embeddings can look it up), padded targets hold
``IGNORE_INDEX`` (-100), which the losses skip, and ``lengths`` (N,) gives each true
length ``L + 1``. Batches are time-major: (T, N) int64.

Example::

    >>> from rnnkit.data import Vocab, LinesDataset, BOUNDARY
    >>> lines = ["emma", "olivia", "ava"]
    >>> vocab = Vocab.build(lines, specials=(BOUNDARY,))
    >>> b = LinesDataset(lines, vocab).get_batch([0, 2])
    >>> b.x.shape, b.lengths.tolist()
    ((5, 2), [5, 4])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._validate import check_int
from ..errors import ConfigError, DataError
from ..ops import IGNORE_INDEX  # noqa: F401  (target value at padded positions; the losses skip it)
from .vocab import BOUNDARY, Vocab

#: Evaluation batches hold at most this many padded steps (``N * T``): see
#: :meth:`LinesDataset.index_batches`.
EVAL_BATCH_TOKENS = 16384


class LinesBatch(NamedTuple):
    """One padded lines-mode batch, time-major.

    x: (T, N) int64 inputs ``[<eos>, c_1..c_L]``, padded with ``pad_id``.
    y: (T, N) int64 targets ``[c_1..c_L, <eos>]``, padded with :data:`IGNORE_INDEX`.
    lengths: (N,) int64, ``L + 1`` per sequence; ``T == lengths.max()``.
    """
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray


class LinesDataset:
    """Independent short sequences (one per line) for a character-level LM, makemore style.

    For a line ``c_1 .. c_L`` (``B`` = the boundary id, 0)::

        x[:, n] = [B,   c_1, ..., c_L]        length L + 1, then pad_id
        y[:, n] = [c_1, ..., c_L, B  ]        length L + 1, then IGNORE_INDEX (-100)

    so ``y[t, n] == x[t + 1, n]`` inside the sequence. Batches are time-major ``(T, N)`` with
    ``T = max(lengths)``.

    Args:
        lines: list of strings (an empty string is allowed: x = [B], y = [B]).
        vocab: a :class:`Vocab` with the :data:`BOUNDARY` special token.
        pad_id: input id at padded positions (default: the boundary id; any valid id works,
            the targets there are ignored).

    Example::

        >>> vocab = Vocab.build(["ab", "b"], specials=(BOUNDARY,))
        >>> b = LinesDataset(["ab", "b"], vocab).get_batch([0, 1])
        >>> b.x.T.tolist(), b.y.T.tolist(), b.lengths.tolist()
        ([[0, 1, 2], [0, 2, 0]], [[1, 2, 0], [2, 0, -100]], [3, 2])
    """

    def __init__(self, lines: Sequence[str], vocab: Vocab, pad_id: int | None = None):
        who = "LinesDataset"
        if not isinstance(vocab, Vocab):
            raise ConfigError(f"{who}: expected vocab to be a rnnkit.data.Vocab, got {type(vocab).__name__}.")
        if vocab.eos_id is None:
            raise DataError(f"{who}: expected a vocabulary with the boundary token {BOUNDARY!r}, "
                            f"got specials {list(vocab.specials)!r}. Build it with "
                            f"Vocab.build(lines, specials=(BOUNDARY,)).")
        if isinstance(lines, str):
            raise DataError(f"{who}: expected a list of lines, got one str. Use split_lines(text).")
        lines = list(lines)
        if not lines:
            raise DataError(f"{who}: expected at least one line, got none. Check the data file.")
        for i, s in enumerate(lines):
            if not isinstance(s, str):
                raise DataError(f"{who}: expected every line to be a str, got line {i} of type "
                                f"{type(s).__name__}.")
        self.vocab = vocab
        self.lines = lines
        self.boundary_id = int(vocab.eos_id)
        self.pad_id = self.boundary_id if pad_id is None else check_int(who, "pad_id", pad_id, 0, len(vocab) - 1)
        self.ids = vocab.encode("".join(lines))                             # (sum L,)
        self.line_lengths = np.fromiter((len(s) for s in lines), dtype=np.int64, count=len(lines))  # (M,)
        self.offsets = np.zeros(len(lines), dtype=np.int64)                 # (M,)
        np.cumsum(self.line_lengths[:-1], out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def max_len(self) -> int:
        """Longest sequence (``max L + 1``), i.e. the largest possible ``T``."""
        return int(self.line_lengths.max()) + 1

    def index_batches(self, order: ArrayLike | None = None, max_tokens: int = EVAL_BATCH_TOKENS,
                      max_lines: int = 256) -> Iterator[np.ndarray]:
        """Split ``order`` (line indices; default all in order) into consecutive batches of at
        most ``max_lines`` lines whose padded size ``len(batch) * (longest line + 1)`` stays
        within ``max_tokens`` (a line longer than that gets a batch of its own). Yields int64
        index arrays; evaluation uses them so memory follows the real lengths."""
        order = np.arange(len(self.lines)) if order is None else np.asarray(order, dtype=np.int64)
        start, longest = 0, 0
        for i, n in enumerate((self.line_lengths[order] + 1).tolist()):
            grown = max(longest, n)
            if i > start and ((i - start + 1) * grown > max_tokens or i - start >= max_lines):
                yield order[start:i]
                start, grown = i, n
            longest = grown
        if len(order) > start:
            yield order[start:]

    def get_batch(self, indices: ArrayLike) -> LinesBatch:
        """The padded batch of the lines ``indices`` (in that order), built without a Python
        loop over the lines."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            raise ConfigError(f"LinesDataset.get_batch: expected a non-empty 1-D array of integer "
                              f"indices, got {idx.dtype} array of shape {idx.shape}.")
        if idx.min() < 0 or idx.max() >= len(self.lines):
            raise ConfigError(f"LinesDataset.get_batch: expected indices in [0, {len(self.lines) - 1}], "
                              f"got values from {idx.min()} to {idx.max()}.")
        Lc = self.line_lengths[idx]                                         # (N,) characters
        lengths = Lc + 1                                                    # (N,)
        T, N = int(lengths.max()), idx.size
        off = self.offsets[idx][None, :]                                    # (1, N)
        t = np.arange(T, dtype=np.int64)[:, None]                           # (T, 1)
        x = np.full((T, N), self.pad_id, dtype=np.int64)
        y = np.full((T, N), IGNORE_INDEX, dtype=np.int64)
        x[0] = self.boundary_id
        mx = (t >= 1) & (t <= Lc[None, :])                                  # (T, N)
        x[mx] = self.ids[np.broadcast_to(off + t - 1, (T, N))[mx]]
        my = t < Lc[None, :]                                                # (T, N)
        y[my] = self.ids[np.broadcast_to(off + t, (T, N))[my]]
        y[Lc, np.arange(N)] = self.boundary_id
        return LinesBatch(x, y, lengths)
