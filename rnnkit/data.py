"""Text and batching for character-level language models and other sequence tasks.

Data flows one way: ``text -> Vocab -> integer batches (T, N) -> model``. Everything here is
time-major: a batch of token ids is an int64 array of shape ``(T, N)`` (time steps first, one
column per sequence), which is the layout ``rnnkit.nn`` layers expect.

Two ways to cut a text into training examples:

* **lines mode** (makemore style, :class:`LinesDataset`): every line (a name, a word, a short
  sentence) is one independent example. One reserved boundary token ``<eos>`` with id 0 marks
  both the start and the end of a line:

  ``input  = [<eos>, c_1, ..., c_L]``,
  ``target = [c_1, ..., c_L, <eos>]``  (the targets are the inputs shifted left by one).

  Sequences of one batch are padded to the longest one; padded input positions hold ``pad_id``
  (0 by default, a valid id so embeddings can look it up), padded targets hold
  :data:`IGNORE_INDEX` (-100), which the losses skip, and ``lengths`` (N,) gives each true
  length ``L + 1``.
* **stream mode** (char-rnn style, :class:`StreamDataset`): the whole text is one long id
  stream, cut into ``batch_size`` contiguous tracks that are read in chunks of ``seq_len``
  steps, so the hidden state can be carried from one chunk to the next (truncated BPTT).

:func:`detect_mode` chooses between them for ``mode='auto'``.

Example::

    >>> from rnnkit.data import Vocab, LinesDataset, BOUNDARY
    >>> import numpy as np
    >>> lines = ["emma", "olivia", "ava"]
    >>> vocab = Vocab.build(lines, specials=(BOUNDARY,))
    >>> ds = LinesDataset(lines, vocab)
    >>> b = ds.get_batch([0, 2])
    >>> b.x.shape, b.lengths.tolist()
    ((5, 2), [5, 4])
"""

from __future__ import annotations

import codecs
import os
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from ._validate import check_float, check_int
from .errors import CheckpointError, ConfigError, DataError, DTypeError, ShapeError

#: The reserved boundary token of lines mode: id 0, used as both start (BOS) and end (EOS).
BOUNDARY = "<eos>"
#: Target value at padded positions; the cross-entropy losses skip it (PyTorch's default).
IGNORE_INDEX = -100
#: ``read_text(path, encoding=BYTES)`` reads each byte as one Latin-1 character (never fails).
BYTES = "bytes"
#: Format tag written by :meth:`Vocab.to_json`.
VOCAB_FORMAT = "rnnkit.vocab"
VOCAB_VERSION = 1

__all__ = [
    "BOUNDARY",
    "IGNORE_INDEX",
    "BYTES",
    "Vocab",
    "read_text",
    "split_lines",
    "LinesBatch",
    "LinesDataset",
    "StreamChunk",
    "StreamDataset",
    "detect_mode",
    "train_val_split",
    "split_stream",
    "unigram_entropy",
]


def _preview(chars, limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f", ... ({len(chars)} in all)" if len(chars) > limit else "")


def _codepoints(text: str) -> np.ndarray:
    """Code points of ``text`` as a uint32 array (lone surrogates allowed)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


class Vocab:
    """Characters <-> integer ids.

    Ids ``0 .. len(specials)-1`` are the special tokens (in the order given), then one id per
    character in sorted (code point) order, so the same text always gives the same ids. For
    lines mode pass ``specials=(BOUNDARY,)``: ``<eos>`` gets id 0 and serves as both start and
    end of a line (:attr:`bos_id` == :attr:`eos_id` == 0).

    Special tokens are strings of two or more characters (``"<eos>"``); :meth:`encode` never
    produces them from text, it maps every character to its own id.

    Example::

        >>> v = Vocab.build("hello", specials=(BOUNDARY,))
        >>> v.itos
        ['<eos>', 'e', 'h', 'l', 'o']
        >>> v.encode("hell").tolist()
        [2, 1, 3, 3]
        >>> v.decode([0, 2, 1, 0], skip_specials=True)
        'he'
    """

    def __init__(self, chars: Iterable[str], specials: Sequence[str] = ()):
        who = "Vocab"
        specials = tuple(specials)
        chars = list(chars)
        for s in specials:
            if not isinstance(s, str) or len(s) < 2:
                raise ConfigError(f"{who}: expected special tokens as strings of 2 or more "
                                  f"characters (like {BOUNDARY!r}), got {s!r}. A 1-character "
                                  f"special would collide with the text's characters.")
        if len(set(specials)) != len(specials):
            raise ConfigError(f"{who}: expected distinct special tokens, got {list(specials)!r}.")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ConfigError(f"{who}: expected single characters, got {c!r}.")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ConfigError(f"{who}: expected distinct characters, got duplicates {_preview(dup)}.")
        self.specials: tuple[str, ...] = specials
        self.chars: tuple[str, ...] = tuple(chars)
        self.itos: list[str] = list(specials) + list(chars)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        # Lookup table for vectorized encode: sorted code points -> ids.
        cps = np.array([ord(c) for c in chars], dtype=np.uint32)
        order = np.argsort(cps, kind="stable")
        self._cps = cps[order]                                              # (C,)
        self._ids = (order + len(specials)).astype(np.int64)                # (C,)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, text_or_lines, specials: Sequence[str] = ()) -> "Vocab":
        """Vocabulary of every character in a string or in an iterable of strings (sorted).

        ``Vocab.build(lines, specials=(BOUNDARY,))`` is the lines-mode vocabulary.
        """
        if isinstance(text_or_lines, str):
            chars = set(text_or_lines)
        else:
            chars = set()
            try:
                items = iter(text_or_lines)
            except TypeError:
                raise DataError(f"Vocab.build: expected a string or an iterable of strings, got "
                                f"{type(text_or_lines).__name__}.") from None
            for i, line in enumerate(items):
                if not isinstance(line, str):
                    raise DataError(f"Vocab.build: expected an iterable of strings, got item {i} "
                                    f"of type {type(line).__name__} ({line!r:.40}).")
                chars.update(line)
        if not chars:
            raise DataError("Vocab.build: expected some text, got no characters at all. "
                            "Check that the data file or list of lines is not empty.")
        return cls(sorted(chars), specials)

    # -- properties --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token) -> bool:
        return token in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos and self.specials == other.specials

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self.specials)!r}, chars={''.join(self.chars)!r:.60})"

    @property
    def bos_id(self) -> int | None:
        """Id of the :data:`BOUNDARY` token (start of a line), or None if absent."""
        return self.stoi.get(BOUNDARY)

    @property
    def eos_id(self) -> int | None:
        """Id of the :data:`BOUNDARY` token (end of a line); the same token as :attr:`bos_id`."""
        return self.stoi.get(BOUNDARY)

    # -- encode / decode ---------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text``: int64 array of shape ``(len(text),)``.

        Raises :class:`DataError` naming the characters that are not in the vocabulary.
        """
        if not isinstance(text, str):
            raise DataError(f"Vocab.encode: expected a str, got {type(text).__name__}.")
        cp = _codepoints(text)                                              # (L,)
        if cp.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self._cps.size == 0:
            pos = np.zeros(cp.shape, dtype=np.intp)
            found = np.zeros(cp.shape, dtype=bool)
        else:
            pos = np.searchsorted(self._cps, cp)                            # (L,)
            pos_c = np.minimum(pos, self._cps.size - 1)
            found = self._cps[pos_c] == cp
            pos = pos_c
        if not found.all():
            unknown = sorted({chr(c) for c in np.unique(cp[~found]).tolist()})
            first = int(np.argmin(found))
            raise DataError(f"Vocab.encode: expected only characters of the vocabulary "
                            f"({len(self.chars)} characters), got {len(unknown)} unknown "
                            f"character(s): {_preview(unknown)} (first at position {first}). "
                            f"Rebuild the vocabulary with Vocab.build on text that contains them, "
                            f"or remove/replace those characters in the text.")
        return self._ids[pos]

    def decode(self, ids, skip_specials: bool = False) -> str:
        """Text of a sequence of ids; special tokens are written out as their names
        (``"<eos>"``) unless ``skip_specials``."""
        try:
            arr = np.asarray(ids)
        except (ValueError, TypeError):     # ragged nesting
            raise DTypeError(f"Vocab.decode: expected a flat sequence of integer ids, got a "
                             f"ragged {type(ids).__name__}.") from None
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise DTypeError(f"Vocab.decode: expected integer ids, got dtype {arr.dtype}.")
        arr = arr.reshape(-1)
        bad = (arr < 0) | (arr >= len(self.itos))
        if bad.any():
            raise DataError(f"Vocab.decode: expected ids in [0, {len(self.itos) - 1}], got "
                            f"{arr[bad][:5].tolist()}. Decode with the vocabulary the model "
                            f"was trained with.")
        n_sp = len(self.specials)
        itos = self.itos
        return "".join(itos[i] for i in arr.tolist() if not (skip_specials and i < n_sp))

    # -- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """JSON-ready dict: ``{"format", "version", "specials": [...], "chars": [...]}``."""
        return {"format": VOCAB_FORMAT, "version": VOCAB_VERSION,
                "specials": list(self.specials), "chars": list(self.chars)}

    @classmethod
    def from_json(cls, obj) -> "Vocab":
        """Inverse of :meth:`to_json`. Validates everything; a damaged or hostile dict raises
        :class:`CheckpointError` saying what is wrong. Ids keep the stored order."""
        who = "Vocab.from_json"
        fix = "The vocab.json file is damaged or was not written by rnnkit; re-save the checkpoint."
        if not isinstance(obj, dict):
            raise CheckpointError(f"{who}: expected a JSON object (dict), got "
                                  f"{type(obj).__name__}. {fix}")
        if obj.get("format") != VOCAB_FORMAT:
            raise CheckpointError(f"{who}: expected format {VOCAB_FORMAT!r}, got "
                                  f"{obj.get('format')!r:.60}. {fix}")
        version = obj.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version != VOCAB_VERSION:
            raise CheckpointError(f"{who}: expected version {VOCAB_VERSION}, got {version!r:.60}. "
                                  f"Upgrade rnnkit or re-save the checkpoint.")
        extra = set(obj) - {"format", "version", "specials", "chars"}
        if extra:
            raise CheckpointError(f"{who}: expected keys format, version, specials, chars, got "
                                  f"unexpected {sorted(map(str, extra))!r:.100}. {fix}")
        out = {}
        for key in ("specials", "chars"):
            val = obj.get(key)
            if not isinstance(val, list):
                raise CheckpointError(f"{who}: expected {key!r} to be a list of strings, got "
                                      f"{type(val).__name__}. {fix}")
            for i, s in enumerate(val):
                if not isinstance(s, str):
                    raise CheckpointError(f"{who}: expected {key}[{i}] to be a string, got "
                                          f"{type(s).__name__} ({s!r:.40}). {fix}")
            out[key] = val
        for i, c in enumerate(out["chars"]):
            if len(c) != 1:
                raise CheckpointError(f"{who}: expected chars[{i}] to be exactly one character, "
                                      f"got {c!r:.40} (length {len(c)}). {fix}")
        for i, s in enumerate(out["specials"]):
            if len(s) < 2:
                raise CheckpointError(f"{who}: expected specials[{i}] to have 2 or more "
                                      f"characters, got {s!r}. {fix}")
        for key in ("specials", "chars"):
            seen, dup = set(), []
            for s in out[key]:
                if s in seen:
                    dup.append(s)
                seen.add(s)
            if dup:
                raise CheckpointError(f"{who}: expected distinct {key}, got duplicate(s) "
                                      f"{_preview(sorted(set(dup)))}. {fix}")
        if not out["chars"]:
            raise CheckpointError(f"{who}: expected at least one character, got none. {fix}")
        return cls(out["chars"], out["specials"])


# --------------------------------------------------------------------------------------------
# Reading text
# --------------------------------------------------------------------------------------------


def read_text(path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Read a whole text file.

    ``encoding`` is any Python codec name, or :data:`BYTES` (``"bytes"``): every byte becomes
    the Latin-1 character with the same value (256 possible characters, never fails). Line
    endings ``\\r\\n`` and ``\\r`` become ``\\n`` (except with ``"bytes"``, which is exact).
    ``errors`` is passed to :meth:`bytes.decode` (``"strict"``, ``"replace"``, ``"ignore"``).

    Raises :class:`DataError` for a missing path, a directory, an empty file, or bytes that
    are not valid in ``encoding`` (naming the byte offset).

    Example::

        >>> text = read_text("input.txt")                      # doctest: +SKIP
        >>> text = read_text("legacy.txt", encoding="latin-1") # doctest: +SKIP
    """
    who = "read_text"
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"{who}: expected a file path (str or os.PathLike), got {type(path).__name__}.")
    if not isinstance(encoding, str):
        raise ConfigError(f"{who}: expected encoding as a string, got {type(encoding).__name__}.")
    p = os.fspath(path)
    if os.path.isdir(p):
        raise DataError(f"{who}: expected a text file, got the directory {p!r}. "
                        f"Pass the path of a file inside it.")
    if not os.path.exists(p):
        raise DataError(f"{who}: expected an existing text file, got {p!r}, which does not exist. "
                        f"Check the path (relative paths start from {os.getcwd()!r}).")
    if encoding != BYTES:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"{who}: expected a known text encoding (e.g. 'utf-8', 'latin-1') "
                              f"or {BYTES!r}, got {encoding!r}.") from None
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{who}: could not read {p!r}: {e.strerror or e}. "
                        f"Check the file's permissions.") from None
    if not raw:
        raise DataError(f"{who}: expected a non-empty text file, got {p!r}, which is empty (0 bytes). "
                        f"Put some training text in it.")
    if encoding == BYTES:
        return raw.decode("latin-1")
    try:
        text = raw.decode(encoding, errors)
    except UnicodeDecodeError as e:
        bad = raw[e.start:e.end][:4]
        raise DataError(f"{who}: expected {encoding} text in {p!r}, got byte(s) "
                        f"{' '.join(f'0x{b:02x}' for b in bad)} at byte offset {e.start} that are "
                        f"not valid {encoding} ({e.reason}). If the file is Latin-1 / Windows text, "
                        f"use --encoding latin-1 (read_text(path, encoding='latin-1')); for any "
                        f"binary-ish file use --encoding bytes (encoding='bytes'), which maps each "
                        f"byte to one character.") from None
    except LookupError as e:  # bad errors= handler
        raise ConfigError(f"{who}: expected errors to be 'strict', 'replace' or 'ignore', got "
                          f"{errors!r} ({e}).") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split_lines(text: str) -> list[str]:
    """Lines-mode examples of a text: split at ``\n`` only (not at the other characters
    ``str.splitlines`` treats as breaks, such as form feeds or bytes read with
    ``encoding='bytes'``), every line stripped of surrounding whitespace, empty lines dropped
    (as makemore does)."""
    if not isinstance(text, str):
        raise DataError(f"split_lines: expected a str, got {type(text).__name__}.")
    return [s for s in (line.strip() for line in text.split("\n")) if s]


# --------------------------------------------------------------------------------------------
# Lines mode
# --------------------------------------------------------------------------------------------


class LinesBatch(NamedTuple):
    """One padded lines-mode batch, time-major.

    x: (T, N) int64 inputs ``[<eos>, c_1..c_L]``, padded with ``pad_id``.
    y: (T, N) int64 targets ``[c_1..c_L, <eos>]``, padded with :data:`IGNORE_INDEX`.
    lengths: (N,) int64, ``L + 1`` per sequence; ``T == lengths.max()``.
    """
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray


def _as_generator(who: str, rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    raise ConfigError(f"{who}: expected rng to be a numpy.random.Generator, got "
                      f"{type(rng).__name__}. Pass np.random.default_rng(seed).")


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

    def get_batch(self, indices) -> LinesBatch:
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

    def sample(self, batch_size: int, rng: np.random.Generator) -> LinesBatch:
        """A batch of ``batch_size`` lines drawn uniformly with replacement (makemore's
        infinite loader). Each call advances ``rng`` only, so checkpointing the generator's
        state gives an exact resume."""
        n = check_int("LinesDataset.sample", "batch_size", batch_size, 1)
        rng = _as_generator("LinesDataset.sample", rng)
        return self.get_batch(rng.integers(0, len(self.lines), size=n))

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Batches per epoch."""
        b = check_int("LinesDataset.num_batches", "batch_size", batch_size, 1)
        return len(self.lines) // b if drop_last else -(-len(self.lines) // b)

    def batches(self, batch_size: int, rng: np.random.Generator | None, epochs: int | None = 1,
                drop_last: bool = False, start: int = 0) -> Iterator[LinesBatch]:
        """Iterate over shuffled epochs.

        Each epoch draws one permutation ``rng.permutation(len(self))`` and yields its
        consecutive slices of ``batch_size`` lines. ``epochs=None`` streams forever.
        ``rng=None`` keeps the file order (for evaluation). ``start`` skips the first ``start``
        batches of the first epoch: to resume exactly, pass a generator in the state it had at
        the start of that epoch.
        """
        who = "LinesDataset.batches"
        b = check_int(who, "batch_size", batch_size, 1)
        if epochs is not None:
            epochs = check_int(who, "epochs", epochs, 0)
        start = check_int(who, "start", start, 0)
        if rng is not None:
            rng = _as_generator(who, rng)
        M = len(self.lines)
        nb = self.num_batches(b, drop_last)
        if nb == 0:
            raise DataError(f"{who}: expected at least batch_size={b} lines with drop_last=True, "
                            f"got {M}. Lower batch_size or set drop_last=False.")
        e = 0
        while epochs is None or e < epochs:
            order = rng.permutation(M) if rng is not None else np.arange(M)
            first = start if e == 0 else 0
            for k in range(first, nb):
                yield self.get_batch(order[k * b:(k + 1) * b])
            e += 1


# --------------------------------------------------------------------------------------------
# Stream mode
# --------------------------------------------------------------------------------------------


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

    def __init__(self, ids, seq_len: int, batch_size: int):
        who = "StreamDataset"
        T = check_int(who, "seq_len", seq_len, 1)
        N = check_int(who, "batch_size", batch_size, 1)
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ShapeError(f"{who}: expected ids of shape (length,), got shape {arr.shape}. "
                             f"Flatten the stream (ids.reshape(-1)).")
        if arr.size and arr.dtype.kind not in "iu":
            raise DTypeError(f"{who}: expected integer ids, got dtype {arr.dtype}. Encode text "
                             f"with Vocab.encode first.")
        if arr.size and arr.min() < 0:
            raise DataError(f"{who}: expected non-negative ids, got minimum {arr.min()}.")
        L = (arr.size - 1) // N if arr.size else 0
        if L < T:
            raise DataError(f"{who}: expected at least batch_size * seq_len + 1 = {N * T + 1} ids "
                            f"to fill one chunk, got {arr.size}. Use a longer text or lower "
                            f"batch_size / seq_len.")
        arr = arr.astype(np.int64, copy=False)
        self.seq_len, self.batch_size, self.track_len = T, N, L
        self.num_chunks = L // T
        self._x = np.ascontiguousarray(arr[:N * L].reshape(N, L).T)        # (L, N)
        self._y = np.ascontiguousarray(arr[1:N * L + 1].reshape(N, L).T)   # (L, N)

    def __len__(self) -> int:
        return self.num_chunks

    def chunk(self, k: int) -> StreamChunk:
        """Chunk ``k`` (taken modulo :attr:`num_chunks`): x, y of shape (T, N)."""
        k = check_int("StreamDataset.chunk", "k", k, 0) % self.num_chunks
        s = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return StreamChunk(self._x[s].copy(), self._y[s].copy())            # (T, N) each

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[StreamChunk]:
        """Chunks ``start, start + 1, ..., stop - 1`` in order, wrapping around the epochs
        (``stop=None`` streams forever). ``chunks(start=k)`` resumes exactly where ``k``
        chunks of ``chunks()`` left off."""
        k = check_int("StreamDataset.chunks", "start", start, 0)
        if stop is not None:
            stop = check_int("StreamDataset.chunks", "stop", stop, 0)
        while stop is None or k < stop:
            yield self.chunk(k)
            k += 1

    def epoch(self) -> Iterator[StreamChunk]:
        """The :attr:`num_chunks` chunks of one pass over the data."""
        return self.chunks(0, self.num_chunks)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

#: detect_mode thresholds: lines mode needs at least this many non-empty lines ...
AUTO_MIN_LINES = 50
#: ... whose median length (characters, after stripping) is at most this.
AUTO_MAX_MEDIAN_LEN = 40


def detect_mode(text: str) -> str:
    """``'lines'`` or ``'stream'`` for ``mode='auto'``.

    Lines mode when the text has at least ``AUTO_MIN_LINES`` (50) non-empty lines and their
    median length is at most ``AUTO_MAX_MEDIAN_LEN`` (40) characters - a list of names, words
    or short items. Anything else (prose, code, a few long lines) is a stream.
    """
    lines = split_lines(text)
    if len(lines) < AUTO_MIN_LINES:
        return "stream"
    med = float(np.median(np.fromiter((len(s) for s in lines), dtype=np.int64, count=len(lines))))
    return "lines" if med <= AUTO_MAX_MEDIAN_LEN else "stream"


def train_val_split(items: Sequence, val_frac: float, rng: np.random.Generator) -> tuple[list, list]:
    """Random split of a list of examples (lines mode): ``(train, val)``.

    ``round(len(items) * val_frac)`` items go to ``val`` (at least 1 when ``val_frac > 0`` and
    there are 2 or more items; ``train`` always keeps at least one). Both parts keep the
    original order of the items. ``rng`` is a ``numpy.random.Generator``.
    """
    who = "train_val_split"
    f = check_float(who, "val_frac", val_frac, 0.0, 1.0, max_inclusive=False)
    rng = _as_generator(who, rng)
    items = list(items)
    M = len(items)
    if M == 0:
        raise DataError(f"{who}: expected at least one item, got none.")
    n_val = int(round(M * f))
    if f > 0 and M >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, M - 1)
    is_val = np.zeros(M, dtype=bool)
    is_val[rng.permutation(M)[:n_val]] = True
    return ([it for it, v in zip(items, is_val) if not v], [it for it, v in zip(items, is_val) if v])


def split_stream(seq, val_frac: float):
    """Split a stream (a str or a 1-D array) by position: the last ``val_frac`` of it is the
    validation part. Returns ``(train, val)`` of the same type as ``seq``."""
    who = "split_stream"
    f = check_float(who, "val_frac", val_frac, 0.0, 1.0, max_inclusive=False)
    n = len(seq)
    if n == 0:
        raise DataError(f"{who}: expected a non-empty stream, got length 0.")
    n_val = min(int(round(n * f)), n - 1)
    cut = n - n_val
    return seq[:cut], seq[cut:]


def unigram_entropy(ids, vocab_size: int) -> float:
    """Entropy in nats of the empirical unigram distribution of ``ids``:
    ``H = -sum_v p_v log p_v`` with ``p_v = count_v / len(ids)``.

    The cross-entropy of the best context-free predictor; a trained model should beat it.
    """
    who = "unigram_entropy"
    V = check_int(who, "vocab_size", vocab_size, 1)
    arr = np.asarray(ids).reshape(-1)
    if arr.size == 0:
        raise DataError(f"{who}: expected at least one id, got none.")
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{who}: expected integer ids, got dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() >= V:
        raise DataError(f"{who}: expected ids in [0, {V - 1}], got range [{arr.min()}, {arr.max()}].")
    p = np.bincount(arr, minlength=V) / arr.size                            # (V,)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
