"""Texts larger than memory, for stream mode: read in blocks, encoded into a compact id file.

``rnnkit train BIG.txt`` never holds the text, nor its ids as int64, in memory. A text file of
at least :data:`STREAM_MIN_BYTES` (stream mode) is read twice, block by block
(:data:`BLOCK_BYTES`), decoded incrementally with the same rules as
:func:`rnnkit.data.read_text` (``\\r\\n`` and ``\\r`` become ``\\n``; ``encoding="bytes"``
maps each byte to one character):

1. the first pass collects the characters (the vocabulary, in :meth:`Vocab.build`'s order)
   and counts them;
2. the second pass writes the ids, one per character, as ``uint8`` (vocabularies of up to 256
   symbols), ``uint16`` (up to 65,536) or ``uint32``, into ``CACHE/ids.<dtype>``.

The trainer reads the file through ``numpy.memmap``: a batch gathers its chunks by index
(:class:`rnnkit.data.StreamDataset`), so memory stays bounded whatever the text's size. The
id file is kept with the run (``rnnkit train`` uses ``DIR/data/``) beside ``ids.json``, which
records the source: its path, size, modification time and a SHA-256 of its first and last
MiB, and the SHA-256 of the id file itself. The next run on the same directory (``--resume``)
reuses the ids when all of these still match (the id file is hashed again first, so damaged
ids are never trained on), and encodes the file again otherwise. Without a cache directory the ids are kept in
memory (one byte per character for a small alphabet).

Example::

    >>> vocab, ids = load_encoded("big.txt", cache_dir="runs/big/data")   # doctest: +SKIP
    >>> ids.dtype, ids.shape                                              # doctest: +SKIP
    (dtype('uint8'), (200000000,))
"""

from __future__ import annotations

import hashlib
import os
import secrets
import warnings
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError
from ..io import atomic_write_json, open_regular, read_json
from . import text as _text
from .vocab import Vocab, _codepoints

__all__ = ["BLOCK_BYTES", "STREAM_MIN_BYTES", "ids_dtype", "iter_text", "is_large_text",
           "load_encoded"]

#: Bytes read (and decoded) at a time (the text reader's block, :data:`rnnkit.data.text.BLOCK_BYTES`).
BLOCK_BYTES = _text.BLOCK_BYTES
#: Stream-mode text files at least this large are encoded block by block (smaller ones are
#: read whole, as before).
STREAM_MIN_BYTES = 4 << 20
#: The file's head and tail bytes that go into its fingerprint.
_FINGERPRINT_BYTES = 1 << 20
_CACHE_FORMAT, _CACHE_VERSION = "rnnkit.ids", 2


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type holding ids ``0 .. vocab_size - 1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise ConfigError(f"ids_dtype: a vocabulary of {vocab_size:,} symbols is too large.")


def _regular_file(path) -> tuple[str, os.stat_result]:
    """The path and stat of a non-empty regular text file (the text reader's checks)."""
    p = os.fspath(path)
    f, size = open_regular(p, "read_text", "text", None, error=DataError)
    with f:
        st = os.fstat(f.fileno())
    if size == 0:
        raise DataError(f"read_text: expected a non-empty text file, got {p!r}, which is empty "
                        f"(0 bytes). Put some training text in it.")
    return p, st


def is_large_text(path) -> bool:
    """True for a regular file of at least :data:`STREAM_MIN_BYTES` bytes."""
    try:
        st = os.stat(os.fspath(path))
    except (OSError, TypeError, ValueError):
        return False
    import stat
    return stat.S_ISREG(st.st_mode) and st.st_size >= STREAM_MIN_BYTES


def iter_text(path, encoding: str = "utf-8", block_bytes: int | None = None):
    """The text of ``path`` in pieces of about ``block_bytes`` (default :data:`BLOCK_BYTES`)
    bytes, through :func:`rnnkit.data.text.iter_text` (the one text reader, with all of
    :func:`rnnkit.data.read_text`'s checks): the pieces joined equal its result."""
    return _text.iter_text(path, encoding, block_bytes=block_bytes or BLOCK_BYTES)


def _fingerprint(path, size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_FINGERPRINT_BYTES))
        if size > 2 * _FINGERPRINT_BYTES:
            f.seek(size - _FINGERPRINT_BYTES)
        h.update(f.read(_FINGERPRINT_BYTES))
    return h.hexdigest()


def _scan(path, encoding, block_bytes) -> tuple[list, int]:
    """Pass 1: the sorted characters of the text and its length in characters."""
    seen = np.zeros(0, dtype=bool)
    length = 0
    for piece in iter_text(path, encoding, block_bytes):
        cps = _codepoints(piece)
        length += cps.size
        top = int(cps.max()) + 1
        if top > seen.size:
            seen = np.concatenate([seen, np.zeros(top - seen.size, dtype=bool)])
        seen[cps] = True
    return [chr(c) for c in np.flatnonzero(seen).tolist()], length


def _encode(path, encoding, vocab: Vocab, dtype, length: int, write, block_bytes) -> None:
    """Pass 2: ``write(ids)`` for the ids of every piece of the text, in order."""
    cps_v = np.array([ord(c) for c in vocab.chars], dtype=np.int64)
    table = np.zeros(int(cps_v.max()) + 1, dtype=dtype)
    known = np.zeros(table.size, dtype=bool)
    table[cps_v] = [vocab.stoi[c] for c in vocab.chars]
    known[cps_v] = True
    changed = DataError(f"{os.fspath(path)!r} changed while it was being encoded; run again.")
    pos = 0
    for piece in iter_text(path, encoding, block_bytes):
        cps = _codepoints(piece)
        if pos + cps.size > length or int(cps.max()) >= table.size or not known[cps].all():
            raise changed
        write(pos, table[cps])
        pos += cps.size
    if pos != length:
        raise changed


def _cached(cache: Path, meta: dict):
    """The memory-mapped ids in ``cache`` when ``cache/ids.json`` describes ``meta``'s
    source exactly and the id file has the right size; else None."""
    try:
        saved = read_json(cache / "ids.json", what="encoded text")
    except CheckpointError:
        return None
    if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in meta.items()):
        return None
    chars, length, dtype = saved.get("chars"), saved.get("length"), saved.get("dtype")
    try:
        vocab = Vocab(chars)
        dt = np.dtype(dtype)
        ok = (dt == ids_dtype(len(vocab)) and isinstance(length, int) and length > 0
              and (cache / f"ids.{dt.name}").stat().st_size == length * dt.itemsize)
    except (TypeError, ValueError, OSError):
        return None
    if not ok:
        return None
    ids_file = cache / f"ids.{dt.name}"
    if _file_sha256(ids_file) != saved.get("ids_sha256"):
        warnings.warn(f"{ids_file} does not match the SHA-256 recorded in {cache / 'ids.json'} "
                      f"(the id cache is damaged); encoding {meta['source']} again.", stacklevel=3)
        return None
    return vocab, np.memmap(ids_file, dtype=dt, mode="r", shape=(length,))


def _file_sha256(path, block: int = 1 << 22):
    """SHA-256 of a file read in blocks (None if it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(block):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def load_encoded(path, encoding: str = "utf-8", cache_dir=None,
                 block_bytes: int | None = None) -> tuple[Vocab, np.ndarray]:
    """``(vocab, ids)`` of the text file ``path``, built in two streaming passes (see the
    module docstring). With ``cache_dir`` the ids are a read-only ``numpy.memmap`` of
    ``cache_dir/ids.<dtype>`` (reused when the source is unchanged and the id file still has
    the SHA-256 written with it; a damaged one is encoded again, with a warning naming it);
    without, an array."""
    block_bytes = block_bytes or BLOCK_BYTES
    p, st = _regular_file(path)
    meta = {"format": _CACHE_FORMAT, "version": _CACHE_VERSION, "source": os.path.abspath(p),
            "size": st.st_size, "mtime_ns": st.st_mtime_ns, "encoding": encoding,
            "fingerprint": _fingerprint(p, st.st_size)}
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        hit = _cached(cache, meta)
        if hit is not None:
            return hit
    chars, length = _scan(p, encoding, block_bytes)
    if not chars:
        raise DataError(f"{p!r} holds no characters to train on.")
    vocab = Vocab(chars)
    dt = ids_dtype(len(vocab))
    if cache is None:
        ids = np.empty(length, dtype=dt)

        def put(pos, chunk):
            ids[pos:pos + chunk.size] = chunk
        _encode(p, encoding, vocab, dt, length, put, block_bytes)
        return vocab, ids
    final = cache / f"ids.{dt.name}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "ids.json").unlink(missing_ok=True)          # the old ids are no longer valid
        tmp = cache / f".ids.{dt.name}.tmp-{secrets.token_hex(4)}"
        digest = hashlib.sha256()

        def put_file(pos, chunk):
            digest.update(chunk.tobytes())
            chunk.tofile(f)
        try:
            with open(tmp, "wb") as f:                       # written, not mapped: the pages
                _encode(p, encoding, vocab, dt, length,      # stay out of this process's RSS
                        put_file, block_bytes)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        atomic_write_json(cache / "ids.json", dict(meta, chars=list(vocab.chars), length=length,
                                                   dtype=dt.name, ids_sha256=digest.hexdigest()))
    except OSError as e:
        raise DataError(f"cannot write the encoded text into {cache}: {e}.") from None
    return vocab, np.memmap(final, dtype=dt, mode="r", shape=(length,))
