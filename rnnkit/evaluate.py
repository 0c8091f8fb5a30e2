"""Scoring a text with a trained character LM: the algorithm behind ``rnnkit eval``.

:func:`score_text` is the model-side counterpart of :meth:`rnnkit.engines.Engine.evaluate`
(which averages a training run's validation batches): it takes any text, checks that the
model's vocabulary covers it, and sums the cross-entropy of every character under ``no_grad``
in bounded memory.

* lines mode (a vocabulary with the boundary token): each non-empty line, as training
  keeps it (:func:`~rnnkit.data.split_lines`; :attr:`TextScore.dropped` counts the rest), is one example
  ``<bos> line <eos>``; lines shorter than :data:`LONG_LINE` are batched by similar length
  (bounded N x T, :meth:`~rnnkit.data.LinesDataset.index_batches`), longer ones are scored
  one at a time in chunks with the state carried;
* stream mode: the whole text as one sequence, in chunks of :data:`CHUNK_STEPS` steps with
  the state carried.

Example::

    >>> loaded = load_model("runs/names")                          # doctest: +SKIP
    >>> s = score_text(loaded.model, loaded.vocab, text, source="names.txt")  # doctest: +SKIP
    >>> s.characters, s.loss, s.bits_per_char                      # doctest: +SKIP
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._mode import no_grad
from .data import LinesDataset, Vocab, dropped_chars, split_lines
from .errors import DataError
from .nn.losses import CrossEntropyLoss
from .nn.module import Module
from .ops import LN2

__all__ = ["TextScore", "score_text", "LONG_LINE", "CHUNK_STEPS"]

#: Lines mode: lines this long or longer are scored one by one, in chunks.
LONG_LINE = 1024
#: Steps per forward call over a long line or a stream (the state is carried between calls).
CHUNK_STEPS = 4096


class TextScore(NamedTuple):
    """The summed cross-entropy of a text (nats) and the number of characters it is over."""

    total: float
    characters: int
    dropped: int | None = None       # lines mode: characters no line kept (blank lines, edges)

    @property
    def loss(self) -> float:
        """Mean cross-entropy per character, in nats."""
        return self.total / self.characters

    @property
    def bits_per_char(self) -> float:
        """Mean cross-entropy per character, in bits."""
        return self.loss / LN2


def score_text(model: Module, vocab: Vocab, text: str, *, source: str = "text", hint: str = "") -> TextScore:
    """Score ``text`` with the char LM ``model`` and its ``vocab`` (lines or stream mode as
    the vocabulary says). Characters the vocabulary lacks (line ends aside) are one
    DataError naming ``source`` (and ``hint``, where to see the alphabet)."""
    lines = split_lines(text) if vocab.bos_id is not None else None      # what training kept
    seen = set().union(*map(set, lines)) if lines is not None else set(text)
    unknown = sorted({ch for ch in seen if ch not in vocab.stoi and ch not in "\r\n"})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise DataError(f"{source}: {len(unknown)} character(s) the model never saw: {shown}. "
                        f"A character model can only score text in its training alphabet "
                        f"({len(vocab)} symbols{hint}); remove or replace them.")
    crit = CrossEntropyLoss(reduction="sum")
    total, count = 0.0, 0

    def score_stream(ids, state=None):
        """Summed loss of predicting ids[1:] from ids[:-1], in chunks with the state carried."""
        nonlocal total, count
        for i in range(0, len(ids) - 1, CHUNK_STEPS):
            x = ids[i: min(i + CHUNK_STEPS, len(ids) - 1)][:, None]
            logits, state = model(x, state)
            total += crit(logits, ids[i + 1: i + 1 + len(x)][:, None])
            count += crit.last_count

    with no_grad():
        if lines is not None:
            if not lines:
                raise DataError(f"{source}: no non-empty lines to evaluate.")
            ds = LinesDataset(lines, vocab)      # names unknown characters clearly
            order = np.argsort(ds.line_lengths, kind="stable")
            short = order[ds.line_lengths[order] < LONG_LINE]
            for idx in ds.index_batches(short):  # similar lengths together, bounded N x T
                b = ds.get_batch(idx)
                logits, _ = model(b.x, None, b.lengths)
                total += crit(logits, b.y)
                count += crit.last_count
            bos = np.array([vocab.bos_id], np.int64)
            for i in order[len(short):]:         # long lines one at a time, chunked
                o, n = ds.offsets[i], ds.line_lengths[i]
                score_stream(np.concatenate([bos, ds.ids[o:o + n], bos]))
        else:
            ids = vocab.encode(text)
            if len(ids) < 2:
                raise DataError(f"{source}: need at least 2 characters to evaluate, got {len(ids)}.")
            score_stream(ids)
    return TextScore(float(total), int(count), dropped_chars(text, lines) if lines is not None else None)
