"""Reading text files and looking at their shape (lines or one stream)."""

from __future__ import annotations

import codecs
import os

import numpy as np

from .._validate import check_int
from ..errors import ConfigError, DataError, DTypeError

#: ``read_text(path, encoding=BYTES)`` reads each byte as one Latin-1 character (never fails).
BYTES = "bytes"


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
