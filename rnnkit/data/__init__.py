"""Text and batching for character-level language models and other sequence tasks.

Data flows one way::

    text file / built-in corpus --read_text--> str --Vocab--> int ids
        --LinesDataset | StreamDataset--> time-major batches (T, N)
        --LinesSource | StreamSource | ArraySource--> the trainer, one batch per step

* :mod:`~rnnkit.data.vocab` - :class:`Vocab`, characters <-> ids.
* :mod:`~rnnkit.data.text` - :func:`read_text`, :func:`iter_text`, :func:`split_lines`, :func:`detect_mode`.
* :mod:`~rnnkit.data.lines` - lines mode (makemore): one example per line, padded batches.
* :mod:`~rnnkit.data.stream` - stream mode (char-rnn): parallel tracks for truncated BPTT.
* :mod:`~rnnkit.data.splits` - validation splits.
* :mod:`~rnnkit.data.sources` - batch sources: the batch at step k is a pure function of
  (seed, k), which is what makes a resumed run replay a straight one exactly.
* :mod:`~rnnkit.data.corpus` - :func:`load_text_data`, the pipeline of ``rnnkit train``.
* :mod:`~rnnkit.data.pairs` - pairs mode (``source<TAB>target``) for sequence-to-sequence
  models: :func:`load_pairs_data`, :class:`PairsDataset`, :class:`PairsSource`.

Everything is time-major: a batch of token ids is an int64 array of shape ``(T, N)`` (time
steps first, one column per sequence), the layout ``rnnkit.nn`` layers expect.

Example::

    >>> from rnnkit.data import Vocab, LinesDataset, LinesSource, BOUNDARY
    >>> lines = ["emma", "olivia", "ava"]
    >>> vocab = Vocab.build(lines, specials=(BOUNDARY,))
    >>> batch, reset = LinesSource(LinesDataset(lines, vocab), batch_size=2, seed=0).batch(0)
    >>> batch.x.shape[1], reset
    (2, True)
"""

from .corpus import TextData, load_text_data
from .lines import IGNORE_INDEX, LinesBatch, LinesDataset
from .pairs import (
                    PairsBatch,
                    PairsData,
                    PairsDataset,
                    PairsSource,
                    PairVocabs,
                    is_pairs_text,
                    load_pairs_data,
                    pair_vocabs,
                    parse_pairs,
                    read_pairs,
)
from .sources import ArrayBatch, ArraySource, EpochOrder, LinesSource, StreamSource
from .splits import split_stream, train_val_split
from .stream import StreamChunk, StreamDataset
from .text import (
    BYTES,
    MAX_LINE_CHARS,
    MAX_TEXT_BYTES,
    LineShape,
    check_line_lengths,
    detect_mode,
    dropped_chars,
    iter_text,
    read_text,
    split_lines,
    unigram_entropy,
)
from .vocab import BOUNDARY, Vocab

__all__ = [
    "BOUNDARY", "IGNORE_INDEX", "BYTES", "MAX_TEXT_BYTES", "MAX_LINE_CHARS", "Vocab", "read_text",
    "split_lines", "dropped_chars", "iter_text", "LineShape", "detect_mode", "check_line_lengths",
    "unigram_entropy", "LinesBatch", "LinesDataset", "StreamChunk", "StreamDataset",
    "train_val_split", "split_stream", "EpochOrder", "LinesSource", "StreamSource", "ArrayBatch",
    "ArraySource", "TextData", "load_text_data", "PairsBatch", "PairsData",
    "PairsDataset", "PairsSource", "is_pairs_text", "load_pairs_data", "pair_vocabs", "parse_pairs",
    "read_pairs", "PairVocabs",
]
