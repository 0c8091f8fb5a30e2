"""Reading text files and looking at their shape (lines or one stream)."""

from __future__ import annotations

import codecs
import os

import numpy as np

from .._validate import check_int, to_numpy
from ..errors import ConfigError, DataError, DTypeError
from ..io import _SURROGATE, open_regular

#: ``read_text(path, encoding=BYTES)`` reads each byte as one Latin-1 character (never fails).
BYTES = "bytes"


#: The largest text file :func:`read_text` reads whole (128 MiB: enwik8's 100 MB fits). The
#: stream pipeline of ``rnnkit train`` peaks at 10 to 15 bytes of memory per byte of text
#: (under 16, tested), so at most about 2 GB.
MAX_TEXT_BYTES = 128 * 1024 * 1024


def read_text(path, encoding: str = "utf-8", errors: str = "strict",
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a whole text file.

    ``encoding`` is any Python text codec name, or :data:`BYTES` (``"bytes"``): every byte
    becomes the Latin-1 character with the same value (256 possible characters, never fails).
    Line endings ``\\r\\n`` and ``\\r`` become ``\\n`` (except with ``"bytes"``, which is exact).
    ``errors`` is passed to ``bytes.decode`` (``"strict"``, ``"replace"``, ``"ignore"``).

    Only a regular file of at most ``max_bytes`` (:data:`MAX_TEXT_BYTES`, 128 MiB) is read:
    a FIFO, a device such as ``/dev/zero`` or a directory is refused at once (opened without
    blocking, then checked with fstat, as the checkpoint readers do).

    Raises :class:`DataError` naming the file for a missing path, a file that is not a
    regular file, one over ``max_bytes``, an empty file, bytes that are not valid in
    ``encoding`` (naming the byte offset), or a decoded text that is not valid Unicode (lone
    surrogates, which no file can store); :class:`ConfigError` for an unknown encoding.

    Example::

        >>> text = read_text("input.txt")                      # doctest: +SKIP
        >>> text = read_text("legacy.txt", encoding="latin-1") # doctest: +SKIP
    """
    who = "read_text"
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"{who}: expected a file path (str or os.PathLike), got {type(path).__name__}.")
    if not isinstance(encoding, str):
        raise ConfigError(f"{who}: expected encoding as a string, got {type(encoding).__name__}.")
    max_bytes = check_int(who, "max_bytes", max_bytes, 1)
    p = os.fspath(path)
    if encoding != BYTES:
        try:
            b"a".decode(encoding)           # a text codec: 'rot13' or 'base64' are refused here
        except UnicodeDecodeError:
            pass
        except LookupError as e:
            raise ConfigError(f"{who}: expected a text encoding (e.g. 'utf-8', 'latin-1') or "
                              f"{BYTES!r}, got {encoding!r} ({e}).") from None
        try:
            codecs.lookup_error(errors)
        except (LookupError, TypeError):
            raise ConfigError(f"{who}: expected errors to be 'strict', 'replace' or 'ignore', "
                              f"got {errors!r}.") from None
    f, size = open_regular(p, who, "text", None, error=DataError)
    with f:
        if size > max_bytes:
            raise DataError(f"{who}: the text file {p!r} is {size:,} bytes, more than the "
                            f"{max_bytes:,} bytes rnnkit reads whole. Train on an excerpt "
                            f"(e.g. `head -c 100M {p} > part.txt`), or split the file.")
        try:
            raw = f.read()
        except OSError as e:
            raise DataError(f"{who}: could not read {p!r}: {e.strerror or e}.") from None
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
    del raw
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise DataError(f"{who}: decoding {p!r} as {encoding} with errors={errors!r} gives a lone "
                        f"surrogate (U+{ord(bad.group()):04X}) at character {bad.start()}, which is "
                        f"not valid Unicode and cannot be saved or printed. Use another encoding, "
                        f"or --encoding bytes.")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split_lines(text: str) -> list[str]:
    """Lines-mode examples of a text: split at ``\\n`` only (not at the other characters
    ``str.splitlines`` treats as breaks, such as form feeds or bytes read with
    ``encoding='bytes'``), every line stripped of surrounding whitespace, empty lines dropped
    (as makemore does)."""
    if not isinstance(text, str):
        raise DataError(f"split_lines: expected a str, got {type(text).__name__}.")
    return [s for s in (line.strip() for line in text.split("\n")) if s]


#: detect_mode thresholds: lines mode needs at least this many non-empty lines ...
AUTO_MIN_LINES = 50
#: ... whose median length (characters, after stripping) is at most this ...
AUTO_MAX_MEDIAN_LEN = 40
#: ... and none longer than this: the longest line a lines-mode example may have. A lines-mode
#: batch is padded to its longest line, so this bounds a batch at ``batch_size x 1,001``
#: steps; longer lines are text to be read as a stream.
MAX_LINE_CHARS = 1000


def detect_mode(text: str) -> str:
    """``'lines'`` or ``'stream'`` for ``mode='auto'``.

    Lines mode when the text has at least ``AUTO_MIN_LINES`` (50) non-empty lines, their
    median length is at most ``AUTO_MAX_MEDIAN_LEN`` (40) characters and none is longer than
    ``MAX_LINE_CHARS`` (1,000) - a list of names, words or short items. Anything else (prose,
    code, a few long lines, one huge line among short ones) is a stream.
    """
    lines = split_lines(text)
    if len(lines) < AUTO_MIN_LINES:
        return "stream"
    lengths = np.fromiter((len(s) for s in lines), dtype=np.int64, count=len(lines))
    if lengths.max() > MAX_LINE_CHARS:
        return "stream"
    return "lines" if float(np.median(lengths)) <= AUTO_MAX_MEDIAN_LEN else "stream"


def check_line_lengths(text: str, origin: str, limit: int = MAX_LINE_CHARS) -> None:
    """Refuse a text with a line longer than ``limit`` characters for lines mode
    (:class:`DataError` naming ``origin``, the line number and its length)."""
    for number, line in enumerate(text.split("\n"), 1):
        n = len(line.strip())
        if n > limit:
            raise DataError(f"{origin}: line {number} has {n:,} characters; lines mode takes lines "
                            f"of at most {limit:,} (every batch is padded to its longest line). "
                            f"Use --mode stream for this text, or split the long lines.")


def unigram_entropy(ids, vocab_size: int) -> float:
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
