"""Reading text files and looking at their shape (lines or one stream)."""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .._validate import check_int, to_numpy
from ..errors import ConfigError, DataError, DTypeError
from ..io import _SURROGATE, open_regular

#: ``read_text(path, encoding=BYTES)`` reads each byte as one Latin-1 character (never fails).
BYTES = "bytes"


#: The largest text file :func:`read_text` reads whole (128 MiB: enwik8's 100 MB fits). The
#: stream pipeline of ``rnnkit train`` peaks at 10 to 15 bytes of memory per byte of text
#: (under 16, tested), so at most about 2 GB.
MAX_TEXT_BYTES = 128 * 1024 * 1024


#: Bytes read (and decoded) at a time by :func:`~rnnkit.data.iter_text`.
BLOCK_BYTES = 4 << 20

#: Codecs that decode labels (domain names), not files: their incremental decoders do not
#: decode a file piece by piece the way they decode it whole, so no text is read with them.
_LABEL_CODECS = ("punycode", "idna")


def check_text_codec(who: str, encoding, errors: str = "strict") -> None:
    """Refuse anything but a text encoding (or :data:`BYTES`) and a known error handler, with
    a :class:`ConfigError` naming ``encoding``: unknown names, byte-to-byte and str-to-str
    codecs (``rot13``, ``base64``, ``hex``, ``zlib``) and the label codecs ``punycode`` and
    ``idna``."""
    if not isinstance(encoding, str):
        raise ConfigError(f"{who}: expected encoding as a string, got {type(encoding).__name__}.")
    if encoding == BYTES:
        return
    want = f"expected a text encoding (e.g. 'utf-8', 'latin-1') or {BYTES!r}, got {encoding!r}"
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"{who}: {want}, which Python does not know.") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ConfigError(f"{who}: {want}, which is not a text encoding (it transforms bytes "
                          f"to bytes or text to text).")
    if info.name in _LABEL_CODECS:
        raise ConfigError(f"{who}: {want}, which encodes domain-name labels, not text files.")
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError):
        raise ConfigError(f"{who}: expected errors to be 'strict', 'replace' or 'ignore', "
                          f"got {errors!r}.") from None


def iter_text(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict",
              block_bytes: int | None = None, max_bytes: int | None = None,
              who: str = "read_text") -> Iterator[str]:
    """The text of ``path`` in pieces of about ``block_bytes`` (default :data:`~rnnkit.data.text.BLOCK_BYTES`)
    bytes each: the one reader of every text file, whatever its size.

    The pieces joined equal :func:`read_text`'s result; every check :func:`read_text`
    documents is made here, on each piece as it is decoded (a lone surrogate is found in the
    block that holds it, not after the whole file). ``max_bytes=None`` reads a file of any
    size.
    """
    check_text_codec(who, encoding, errors)
    block = check_int(who, "block_bytes", BLOCK_BYTES if block_bytes is None else block_bytes, 1)
    p = os.fspath(path)
    f, size = open_regular(p, who, "text", None, error=DataError)
    with f:
        if max_bytes is not None and size > max_bytes:
            raise DataError(f"{who}: the text file {p!r} is {size:,} bytes, more than the "
                            f"{max_bytes:,} bytes rnnkit reads whole. Train on an excerpt "
                            f"(e.g. `head -c 100M {p} > part.txt`), or split the file.")
        if size == 0:
            raise DataError(f"{who}: expected a non-empty text file, got {p!r}, which is empty "
                            f"(0 bytes). Put some training text in it.")
        block = min(block, size + 1)         # never a buffer larger than the file
        exact = encoding == BYTES
        decoder = codecs.getincrementaldecoder("latin-1" if exact else encoding)(
            "strict" if exact else errors)
        held_cr, offset, chars = False, 0, 0
        while True:
            try:
                raw = f.read(block)
            except OSError as e:
                raise DataError(f"{who}: could not read {p!r}: {e.strerror or e}.") from None
            final = not raw
            buffered = len(decoder.getstate()[0])
            try:
                piece = decoder.decode(raw, final)
            except UnicodeDecodeError as e:
                at = max(0, offset - buffered + e.start)
                bad = e.object[e.start:e.end][:4]
                shown = f"byte(s) {' '.join(f'0x{b:02x}' for b in bad)} " if bad else ""
                raise DataError(f"{who}: expected {encoding} text in {p!r}, got {shown}at byte "
                                f"offset {at} that are not valid {encoding} ({e.reason}). If the "
                                f"file is Latin-1 / Windows text, use --encoding latin-1 "
                                f"(read_text(path, encoding='latin-1')); for any binary-ish file "
                                f"use --encoding bytes (encoding='bytes'), which maps each byte "
                                f"to one character.") from None
            except UnicodeError as e:        # e.g. UTF-16 / UTF-32 without a byte-order mark
                hint = (f" Name the byte order: --encoding {encoding}-le or {encoding}-be."
                        if "BOM" in str(e) else "")
                raise DataError(f"{who}: cannot decode {p!r} as {encoding}: {e}.{hint}") from None
            offset += len(raw)
            if not exact:
                bad = _SURROGATE.search(piece)
                if bad is not None:
                    raise DataError(f"{who}: decoding {p!r} as {encoding} with errors={errors!r} "
                                    f"gives a lone surrogate (U+{ord(bad.group()):04X}) at "
                                    f"character {chars + bad.start()}, which is not valid "
                                    f"Unicode and cannot be saved or printed. Use another "
                                    f"encoding, or --encoding bytes.")
                chars += len(piece)
                if held_cr:
                    piece = "\r" + piece
                held_cr = piece.endswith("\r") and not final
                if held_cr:
                    piece = piece[:-1]
                if "\r" in piece:
                    piece = piece.replace("\r\n", "\n").replace("\r", "\n")
            if piece:
                yield piece
            if final:
                return


def read_text(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict",
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a whole text file.

    ``encoding`` is any Python text codec name, or :data:`BYTES` (``"bytes"``): every byte
    becomes the Latin-1 character with the same value (256 possible characters, never fails).
    Line endings ``\\r\\n`` and ``\\r`` become ``\\n`` (except with ``"bytes"``, which is exact).
    ``errors`` is passed to the decoder (``"strict"``, ``"replace"``, ``"ignore"``).

    Only a regular file of at most ``max_bytes`` (:data:`MAX_TEXT_BYTES`, 128 MiB) is read:
    a FIFO, a device such as ``/dev/zero`` or a directory is refused at once (opened without
    blocking, then checked with fstat, as the checkpoint readers do). Larger texts are read
    piece by piece with :func:`~rnnkit.data.iter_text`, which makes every check below.

    Raises :class:`DataError` naming the file for a missing path, a file that is not a
    regular file, one over ``max_bytes``, an empty file, bytes that are not valid in
    ``encoding`` (naming the byte offset), UTF-16/UTF-32 without a byte-order mark, or a
    decoded text that is not valid Unicode (lone surrogates, which no file can store);
    :class:`ConfigError` for an unknown encoding or one that is not a text encoding
    (``rot13``, ``base64``, ``zlib``, ``punycode``, ...).

    Example::

        >>> text = read_text("input.txt")                      # doctest: +SKIP
        >>> text = read_text("legacy.txt", encoding="latin-1") # doctest: +SKIP
    """
    who = "read_text"
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"{who}: expected a file path (str or os.PathLike), got {type(path).__name__}.")
    max_bytes = check_int(who, "max_bytes", max_bytes, 1)
    return "".join(iter_text(path, encoding, errors, block_bytes=max_bytes + 1,
                             max_bytes=max_bytes, who=who))


def split_lines(text: str) -> list[str]:
    """Lines-mode examples of a text: split at ``\\n`` only (not at the other characters
    ``str.splitlines`` treats as breaks, such as form feeds or bytes read with
    ``encoding='bytes'``), every line stripped of surrounding whitespace, empty lines dropped
    (as makemore does). :func:`dropped_chars` counts what this leaves out."""
    if not isinstance(text, str):
        raise DataError(f"split_lines: expected a str, got {type(text).__name__}.")
    return [s for s in (line.strip() for line in text.split("\n")) if s]


def dropped_chars(text: str, lines: list) -> int:
    """How many characters of ``text`` lines mode leaves out: everything that is neither in
    ``lines`` (:func:`split_lines` of ``text``) nor the one line break that ends each of them
    (surrounding whitespace, blank lines)."""
    return len(text) - sum(map(len, lines)) - min(len(lines), text.count("\n"))


#: detect_mode thresholds: lines mode needs at least this many non-empty lines ...
AUTO_MIN_LINES = 50
#: ... whose median length (characters, after stripping) is at most this ...
AUTO_MAX_MEDIAN_LEN = 40
#: ... and none longer than this: the longest line a lines-mode example may have. A lines-mode
#: batch is padded to its longest line, so this bounds a batch at ``batch_size x 1,001``
#: steps; longer lines are text to be read as a stream.
MAX_LINE_CHARS = 1000
#: ... and at most this fraction of the non-empty lines indented (starting with whitespace),
#: and at most this fraction of blank lines between them: code, verse in stanzas and
#: paragraphs carry meaning in what lines mode would strip, so they are streams.
AUTO_MAX_LAYOUT_FRAC = 0.02


class LineShape:
    """The shape of a text's lines, fed piece by piece (:meth:`update`, then :meth:`finish`),
    for :func:`detect_mode`: non-empty lines, a histogram of their stripped lengths (capped
    at ``MAX_LINE_CHARS + 1``), the indented ones and the blank lines between them. Memory
    does not grow with the text."""

    def __init__(self):
        self.lengths = np.zeros(MAX_LINE_CHARS + 2, dtype=np.int64)
        self.nonempty = self.indented = self.blank = 0
        self._pending_blank = 0           # blank lines not yet followed by a non-empty one
        self._tail = ""                   # the unfinished last line of the pieces so far

    def update(self, piece: str) -> LineShape:
        """Count the lines that ``piece`` completes."""
        parts = (self._tail + piece).split("\n")
        tail = parts.pop()
        if len(tail) > 4 * MAX_LINE_CHARS:    # a huge line: its ends decide all we count
            tail = tail[:2 * MAX_LINE_CHARS] + tail[-2 * MAX_LINE_CHARS:]
        self._tail = tail
        self._count(parts)
        return self

    def finish(self) -> LineShape:
        """Count the last line (one without a final line break)."""
        if self._tail:
            self._count([self._tail])
            self._tail = ""
        return self

    def _count(self, lines) -> None:
        cap = MAX_LINE_CHARS + 1
        for line in lines:
            n = len(line.strip())
            if not n:
                self._pending_blank += 1
                continue
            self.blank += self._pending_blank if self.nonempty else 0
            self._pending_blank = 0
            self.nonempty += 1
            self.indented += line[0].isspace()
            self.lengths[min(n, cap)] += 1

    def mode(self) -> str:
        """``'lines'`` or ``'stream'`` (the rules of :func:`detect_mode`)."""
        n = self.nonempty
        if n < AUTO_MIN_LINES or self.lengths[MAX_LINE_CHARS + 1]:
            return "stream"
        if self.indented > AUTO_MAX_LAYOUT_FRAC * n or self.blank > AUTO_MAX_LAYOUT_FRAC * n:
            return "stream"
        cum = np.cumsum(self.lengths)
        lo, hi = (np.searchsorted(cum, k, side="right") for k in ((n - 1) // 2, n // 2))
        return "lines" if (lo + hi) / 2 <= AUTO_MAX_MEDIAN_LEN else "stream"


def detect_mode(text: str | Sequence[str]) -> str:
    """``'lines'`` or ``'stream'`` for ``mode='auto'``; ``text`` is a str or an iterable of
    pieces of one (e.g. :func:`~rnnkit.data.iter_text`, for a file too large to read whole).

    Lines mode when the text has at least ``AUTO_MIN_LINES`` (50) non-empty lines, their
    median length is at most ``AUTO_MAX_MEDIAN_LEN`` (40) characters, none is longer than
    ``MAX_LINE_CHARS`` (1,000), and at most ``AUTO_MAX_LAYOUT_FRAC`` (2%) of them are indented
    and at most as many blank lines lie between them - a list of names, words or short items.
    Anything else is a stream, which keeps every character: prose, code (its indentation and
    blank lines mean something, and lines mode would strip them), verse in stanzas, a few long
    lines, one huge line among short ones.
    """
    shape = LineShape()
    for piece in ([text] if isinstance(text, str) else text):
        shape.update(piece)
    return shape.finish().mode()


def check_line_lengths(text: str, origin: str, limit: int = MAX_LINE_CHARS) -> None:
    """Refuse a text with a line longer than ``limit`` characters for lines mode
    (:class:`DataError` naming ``origin``, the line number and its length)."""
    for number, line in enumerate(text.split("\n"), 1):
        n = len(line.strip())
        if n > limit:
            raise DataError(f"{origin}: line {number} has {n:,} characters; lines mode takes lines "
                            f"of at most {limit:,} (every batch is padded to its longest line). "
                            f"Use --mode stream for this text, or split the long lines.")


def unigram_entropy(ids: ArrayLike, vocab_size: int) -> float:
    """Entropy in nats of the empirical unigram distribution of ``ids``:
    ``H = -sum_v p_v log p_v`` with ``p_v = count_v / len(ids)``.

    The cross-entropy of the best context-free predictor; a trained model should beat it.
    """
    who = "unigram_entropy"
    V = check_int(who, "vocab_size", vocab_size, 1)
    arr = to_numpy(who, "ids", ids).reshape(-1)
    if arr.size == 0:
        raise DataError(f"{who}: expected at least one id, got none.")
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{who}: expected integer ids, got dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() >= V:
        raise DataError(f"{who}: expected ids in [0, {V - 1}], got range [{arr.min()}, {arr.max()}].")
    p = np.bincount(arr, minlength=V) / arr.size                            # (V,)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
