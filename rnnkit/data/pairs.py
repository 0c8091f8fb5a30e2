"""Pairs mode: ``source<TAB>target`` examples for sequence-to-sequence models.

A pairs file has one pair per line, the source and the target separated by exactly one tab
(the format of the PyTorch and Keras translation tutorials); empty lines are skipped and each
side is stripped of surrounding whitespace. Source and target get vocabularies of their own.

Batches are time-major. With ``B`` the boundary id (0) of the target vocabulary, a pair
``(s_1..s_S, c_1..c_L)`` becomes::

    src[:, n] = [s_1, ..., s_S]           padded with 0 (the source vocabulary's <eos>)
    x[:, n]   = [B,   c_1, ..., c_L]      decoder inputs (teacher forcing), padded with B
    y[:, n]   = [c_1, ..., c_L, B  ]      targets, padded with IGNORE_INDEX (-100)

Example::

    >>> from rnnkit.data.pairs import PairsDataset, pair_vocabs
    >>> pairs = [("ab", "x"), ("b", "yx")]
    >>> sv, tv = pair_vocabs(pairs)
    >>> b = PairsDataset(pairs, sv, tv).get_batch([0, 1])
    >>> b.src.T.tolist(), b.src_lengths.tolist(), b.y.T.tolist()
    ([[1, 2], [2, 0]], [2, 1], [[1, 0, -100], [2, 1, 0]])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigError, DataError
from .lines import EVAL_BATCH_TOKENS, IGNORE_INDEX
from .sources import EpochOrder
from .splits import VAL_FRAC, train_val_split
from .stream import BATCH_SIZE
from .text import MAX_LINE_CHARS, read_text
from .vocab import BOUNDARY, Vocab

SEPARATOR = "\t"


def is_pairs_text(text: str) -> bool:
    """True when ``text`` has a non-empty line and every non-empty line has exactly one tab
    (what ``rnnkit train FILE`` takes for a pairs file)."""
    seen = False
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.count(SEPARATOR) != 1:
            return False
        seen = True
    return seen


def parse_pairs(text: str, origin: str = "pairs") -> list:
    """The ``(source, target)`` pairs of a pairs text (see the module docstring).

    Raises :class:`DataError` naming ``origin`` and the line (1-based) for a line with no
    tab or with more than one, an empty source or target, or a side longer than
    :data:`~rnnkit.data.text.MAX_LINE_CHARS`; and for a text without any pair."""
    if not isinstance(text, str):
        raise DataError(f"parse_pairs: expected a str, got {type(text).__name__}.")
    pairs = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        tabs = line.count(SEPARATOR)
        if tabs != 1:
            what = "no tab" if tabs == 0 else f"{tabs} tabs"
            raise DataError(f"{origin}: line {number} has {what} ({line.strip()[:60]!r}); expected "
                            f"one pair per line, 'source<TAB>target' with exactly one tab. Fix the "
                            f"line (a tab inside a source or target cannot be represented).")
        src, tgt = (side.strip() for side in line.split(SEPARATOR))
        for side, value in (("source", src), ("target", tgt)):
            if not value:
                raise DataError(f"{origin}: line {number} has an empty {side} ({line.strip()[:60]!r});"
                                f" expected a non-empty source and target on each side of the tab.")
            if len(value) > MAX_LINE_CHARS:
                raise DataError(f"{origin}: line {number} has a {side} of {len(value):,} characters; "
                                f"pairs mode takes at most {MAX_LINE_CHARS:,} per side.")
        pairs.append((src, tgt))
    if not pairs:
        raise DataError(f"{origin}: expected at least one 'source<TAB>target' line, got none.")
    return pairs


def read_pairs(path: str | os.PathLike, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """:func:`parse_pairs` of the file ``path`` (read by :func:`~rnnkit.data.read_text`)."""
    return parse_pairs(read_text(path, encoding=encoding), str(path))


def pair_vocabs(pairs: Sequence[tuple[str, str]]) -> PairVocabs:
    """``(source_vocab, target_vocab)`` (a :class:`PairVocabs`): one :class:`Vocab` per side,
    each with the boundary token ``<eos>`` as id 0 (the target's start and end; the source's
    padding)."""
    return PairVocabs(Vocab.build([s for s, _ in pairs], specials=(BOUNDARY,)),
                      Vocab.build([t for _, t in pairs], specials=(BOUNDARY,)))


class PairVocabs(NamedTuple):
    """The two vocabularies of a pairs run (a seq2seq checkpoint's ``vocab.json`` holds both:
    ``{"source": ..., "target": ...}``, each :meth:`Vocab.to_json`)."""
    source: Vocab
    target: Vocab

    def to_json(self) -> dict:
        """``{"source": source.to_json(), "target": target.to_json()}``."""
        return {"source": self.source.to_json(), "target": self.target.to_json()}

    @classmethod
    def from_json(cls, obj: dict) -> PairVocabs:
        """Inverse of :meth:`to_json`; a damaged dict raises :class:`CheckpointError`."""
        from ..errors import CheckpointError
        if not isinstance(obj, dict) or set(obj) != {"source", "target"}:
            keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"PairVocabs.from_json: expected a JSON object with the keys "
                                  f"'source' and 'target' (a seq2seq run's vocab.json), got {keys!r:.80}.")
        return cls(Vocab.from_json(obj["source"]), Vocab.from_json(obj["target"]))


class PairsBatch(NamedTuple):
    """One padded pairs batch, time-major (see the module docstring).

    src (S, N), src_lengths (N,); x, y (T, N) with ``lengths`` (N,) = target length + 1."""
    src: np.ndarray
    src_lengths: np.ndarray
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray


def _pad(ids_list, pad, T=None):
    lengths = np.fromiter((len(a) for a in ids_list), np.int64, len(ids_list))
    T = int(lengths.max()) if T is None else T
    out = np.full((T, len(ids_list)), pad, np.int64)
    for n, a in enumerate(ids_list):
        out[:len(a), n] = a
    return out, lengths


class PairsDataset:
    """Encoded (source, target) pairs; :meth:`get_batch` pads any subset of them.

    Characters outside a vocabulary raise :class:`DataError` (from :meth:`Vocab.encode`)."""

    def __init__(self, pairs: Sequence, src_vocab: Vocab, tgt_vocab: Vocab):
        who = "PairsDataset"
        for v, side in ((src_vocab, "src_vocab"), (tgt_vocab, "tgt_vocab")):
            if not isinstance(v, Vocab) or v.eos_id is None:
                raise ConfigError(f"{who}: expected {side} to be a Vocab with the boundary token "
                                  f"{BOUNDARY!r}; build both with pair_vocabs(pairs).")
        pairs = list(pairs)
        if not pairs:
            raise DataError(f"{who}: expected at least one pair, got none.")
        self.pairs = pairs
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.boundary_id = int(tgt_vocab.eos_id)
        self.src_ids = [src_vocab.encode(s) for s, _ in pairs]
        self.tgt_ids = [tgt_vocab.encode(t) for _, t in pairs]
        self.sizes = np.fromiter((max(len(a), len(b) + 1) for a, b in zip(self.src_ids, self.tgt_ids)),
                                 np.int64, len(pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def get_batch(self, indices: ArrayLike) -> PairsBatch:
        """The padded batch of the pairs ``indices`` (in that order)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            raise ConfigError(f"PairsDataset.get_batch: expected a non-empty 1-D array of integer "
                              f"indices, got {idx.dtype} array of shape {idx.shape}.")
        src, src_lengths = _pad([self.src_ids[i] for i in idx], int(self.src_vocab.eos_id))
        B = self.boundary_id
        tgt = [self.tgt_ids[i] for i in idx]
        x, lengths = _pad([np.concatenate(([B], t)) for t in tgt], B)
        y, _ = _pad([np.concatenate((t, [B])) for t in tgt], IGNORE_INDEX)
        return PairsBatch(src, src_lengths, x, y, lengths)

    def index_batches(self, max_tokens: int = EVAL_BATCH_TOKENS, max_pairs: int = 256) -> Iterator[np.ndarray]:
        """Every pair once, in order, in batches of at most ``max_pairs`` pairs whose padded
        size stays within ``max_tokens``."""
        start, longest = 0, 0
        for i, n in enumerate(self.sizes.tolist()):
            grown = max(longest, n)
            if i > start and ((i - start + 1) * grown > max_tokens or i - start >= max_pairs):
                yield np.arange(start, i)
                start, grown = i, n
            longest = grown
        if len(self) > start:
            yield np.arange(start, len(self))


class PairsSource:
    """Shuffled epochs of pairs (a batch source, see :mod:`rnnkit.data.sources`)."""

    carries_state = False

    def __init__(self, dataset: PairsDataset, batch_size: int, seed: int = 0):
        self.dataset = dataset
        self.order = EpochOrder(len(dataset), BATCH_SIZE.check("PairsSource", "batch_size", batch_size), seed)
        self.batch_size, self.per_epoch = self.order.batch_size, self.order.per_epoch

    def batch(self, step: int) -> tuple[PairsBatch, bool]:
        return self.dataset.get_batch(self.order.indices(step)), True

    def eval_batches(self, batch_size: int = 256) -> Iterator[PairsBatch]:
        for idx in self.dataset.index_batches(max_pairs=batch_size):
            yield self.dataset.get_batch(idx)

    def tokens_in(self, batch: PairsBatch) -> int:
        return int(np.sum(batch.lengths))


@dataclass
class PairsData:
    """Pairs made ready for training (see :func:`load_pairs_data`)."""

    name: str
    origin: str
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: PairsSource
    val: PairsSource | None
    train_pairs: list
    val_pairs: list
    summary: str
    mode: str = "pairs"

    @property
    def vocab(self) -> PairVocabs:
        """Both vocabularies (what the checkpoint's vocab.json stores)."""
        return PairVocabs(self.src_vocab, self.tgt_vocab)


def load_pairs_data(file: str | os.PathLike | None = None, dataset: str | None = None, *,
                    encoding: str = "utf-8", val_frac: float = 0.1, batch_size: int = 64,
                    seed: int = 0, pairs: Sequence[tuple[str, str]] | None = None,
                    origin: str | None = None) -> PairsData:
    """Read a pairs file (or take the list ``pairs``, named ``dataset``: a built-in pair task's
    are ``rnnkit.datasets.corpus("dates").load()``), build both vocabularies from all pairs,
    hold out a random ``val_frac`` of the pairs (seeded) and wrap both parts in
    :class:`PairsSource` batch sources."""
    if VAL_FRAC.problem(val_frac):
        raise ConfigError(f"--val-frac: {VAL_FRAC.problem(val_frac)}.")
    if pairs is not None:
        name = dataset or "pairs"
        origin = origin or name
        pairs = list(pairs)
    elif file:
        from pathlib import Path
        name, origin = Path(file).stem or "pairs", str(file)
        pairs = read_pairs(file, encoding)
    else:
        raise ConfigError(f"load_pairs_data: expected a pairs FILE or the list pairs (a built-in "
                          f"task's: rnnkit.datasets.corpus(name).load()), got neither (dataset="
                          f"{dataset!r:.40}).")
    src_vocab, tgt_vocab = pair_vocabs(pairs)
    if val_frac > 0 and len(pairs) >= 2:
        tr, va = train_val_split(pairs, val_frac, np.random.default_rng(seed))
    else:
        tr, va = pairs, []
    train = PairsSource(PairsDataset(tr, src_vocab, tgt_vocab), batch_size, seed=seed)
    val = PairsSource(PairsDataset(va, src_vocab, tgt_vocab), batch_size, seed=seed) if va else None
    return PairsData(name, origin, src_vocab, tgt_vocab, train, val, tr, va,
                     f"{len(tr):,} train / {len(va):,} val pairs")
