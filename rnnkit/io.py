"""Low-level, defensive file formats: safetensors for arrays, JSON / JSON-lines for the rest.

Checkpoints travel between users, so every reader here treats its file as hostile: a damaged
or crafted file raises :class:`rnnkit.errors.CheckpointError` whose message names the file and
the problem -- never a crash, a hang, code execution (there is no pickle anywhere) or an
allocation larger than the file itself. Every writer is atomic: it writes a temporary file in
the target's directory, flushes and fsyncs it, ``os.replace``-s it onto the target and fsyncs
the directory, so a reader (or a process killed mid-write) sees the old file or the new one,
never a mixture.

The safetensors format (https://github.com/huggingface/safetensors) is read and written by
its reference implementation, the ``safetensors`` package: it parses and validates the
header (length, JSON, dtypes, shapes, offsets tiling the data region exactly, 100 MB header
bound) before any tensor is allocated, and serialises the tensors. rnnkit keeps what the
package does not do: it refuses anything but a regular file within ``max_bytes`` before the
package opens it (a FIFO or ``/dev/zero`` would hang or never end), writes atomically,
wraps every exception of the package in a :class:`CheckpointError` naming the file, applies
its dtype policy (:data:`SAFETENSORS_DTYPES`; BF16 and other codes NumPy cannot hold are
refused with a hint), and is stricter than the package about the header: no duplicate keys,
no unknown keys in an entry, BOOL bytes 0 or 1 only.

Example::

    >>> save_safetensors("w.safetensors", {"head.weight": np.ones((2, 3), np.float32)})
    >>> load_safetensors("w.safetensors")["head.weight"].shape
    (2, 3)
    >>> read_safetensors_header("w.safetensors")
    ({'head.weight': (dtype('float32'), (2, 3))}, {})
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import stat
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from .errors import CheckpointError, ConfigError

__all__ = [
    "SAFETENSORS_DTYPES",
    "MAX_HEADER_BYTES",
    "MAX_JSON_BYTES",
    "save_safetensors",
    "load_safetensors",
    "load_safetensors_with_metadata",
    "read_safetensors_header",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_copy",
    "loads_json",
    "read_json",
    "append_jsonl",
    "read_jsonl",
    "sha256_file",
    "find_json_problem",
    "fsync_dir",
    "is_int",
    "open_regular",
    "check_output_dir",
    "check_output_file",
]

#: safetensors dtype code -> little-endian NumPy dtype: the codes rnnkit reads and writes.
#: Other codes the format knows (BF16, F8_*, F6_*, F4, C64) are refused with a hint.
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODE_OF_KIND_SIZE = {(np.dtype(dt).kind, np.dtype(dt).itemsize): code
                      for code, dt in SAFETENSORS_DTYPES.items()}

#: Largest safetensors header read (the safetensors package refuses longer ones).
MAX_HEADER_BYTES = 100 * 1024 * 1024   # the safetensors package refuses longer headers
#: Largest JSON file read (config.json, vocab.json, trainer.json, checkpoint.json).
MAX_JSON_BYTES = 10 * 1024 * 1024      # config.json, vocab.json, trainer.json, checkpoint.json
MAX_JSONL_BYTES = 256 * 1024 * 1024    # metrics.jsonl grows with training; still bounded
_MAX_DIMS = 32                         # NumPy 1.x's limit
_MAX_ELEMENTS = 2 ** 56                # shapes whose element count exceeds this are absurd
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
# safetensors >= 0.8 can read tensors with pread(2) instead of through a memory map: a file
# truncated in place while it is being read then gives an error instead of a SIGBUS crash.
try:
    _SAFE_OPEN_OPTIONS = ({"backend": "pread"} if tuple(
        int(x) for x in safetensors.__version__.split(".")[:2]) >= (0, 8) else {})
except ValueError:
    _SAFE_OPEN_OPTIONS = {}
_CHUNK = 1 << 20
#: A lone surrogate (U+D800..U+DFFF): what ``surrogateescape`` makes of undecodable bytes in file
#: names; UTF-8 cannot store it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_int(x: object) -> bool:
    """True for a Python ``int`` that is not a ``bool`` (JSON integers as ``json`` parses them)."""
    return isinstance(x, int) and not isinstance(x, bool)


# ---------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------

def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it survives power loss (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path, write_fn, who: str) -> None:
    """Create ``path`` atomically: ``write_fn(fileobj)`` fills a temp file that replaces it."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(f"{who}: cannot write {path}: directory {directory} does not exist. "
                              f"Create it first (e.g. Path(...).mkdir(parents=True)).")
    tmp = directory / f".{path.name}.tmp-{secrets.token_hex(6)}"
    try:
        # O_EXCL + random name: never follows or clobbers anything; mode 0o666 minus umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(f"{who}: cannot write {path}: {e}. Check the path, the "
                                  f"permissions and the free disk space.") from e
        raise
    fsync_dir(directory)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, who: str = "atomic_copy") -> None:
    """Replace ``dst`` by a copy of the file ``src`` atomically (the same temp file + fsync +
    ``os.replace`` + dir fsync as every other write here)."""
    with open(src, "rb") as f_src:
        _atomic_write(dst, lambda f: shutil.copyfileobj(f_src, f, 1 << 20), who)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + ``os.replace`` + dir fsync)."""
    _atomic_write(path, lambda f: f.write(data), "atomic_write_bytes")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Example::

        >>> atomic_write_text("LATEST", "ckpt-000003\\n")
    """
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text: expected text as str, got {type(text).__name__}.")
    data = text.encode("utf-8")
    _atomic_write(path, lambda f: f.write(data), "atomic_write_text")


def _json_default(obj):
    # NumPy scalars are common in configs and histories; convert them losslessly.
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(type(obj).__name__)


def find_json_problem(obj: object, where: str = "obj", depth: int = 0) -> tuple[str, str] | None:
    """Return ``(path, description)`` of the first value JSON cannot hold, or None."""
    if depth > 200:
        return where, "nesting deeper than 200 levels"
    if isinstance(obj, str):
        bad = _SURROGATE.search(obj)
        return None if bad is None else (
            where, f"a string that is not valid Unicode (lone surrogate U+{ord(bad.group()):04X} "
                   f"at index {bad.start()}), which UTF-8 cannot store")
    if obj is None or isinstance(obj, (bool, int, np.bool_, np.integer)):
        return None
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else (where, f"non-finite number {obj!r}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                return f"{where}[{k!r}]", f"non-string key {k!r} ({type(k).__name__})"
            p = find_json_problem(k, f"{where} key {k!r:.60}", depth + 1)
            if p:
                return p
            p = find_json_problem(v, f"{where}[{k!r}]", depth + 1)
            if p:
                return p
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            p = find_json_problem(v, f"{where}[{i}]", depth + 1)
            if p:
                return p
        return None
    return where, f"a {type(obj).__name__} (not JSON serializable)"


def _dumps_json(obj, who: str, path, indent=2) -> str:
    problem = find_json_problem(obj)
    if problem is None:
        try:
            return json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False,
                              default=_json_default, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as e:
            problem = ("obj", str(e))
    where, what = problem
    raise CheckpointError(f"{who}: cannot write {path} as JSON: {where} is {what}. Store only "
                          f"dicts with str keys, lists, str, int, finite float, bool and None "
                          f"(convert arrays with .tolist(), NaN/inf to None or a string).")


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as pretty, key-sorted, strict JSON (no NaN/inf) to ``path`` atomically.

    NumPy scalars are converted to Python numbers. Anything else JSON cannot represent raises
    :class:`CheckpointError` naming the offending element, e.g. ``obj['history'][3]['loss'] is
    non-finite number nan``.
    """
    text = _dumps_json(obj, "atomic_write_json", path) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")), "atomic_write_json")


# ---------------------------------------------------------------------------------------------
# output paths, checked before any work starts
# ---------------------------------------------------------------------------------------------

def _kind(mode) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "a regular file" if stat.S_ISREG(mode) else "a special file")


def check_output_dir(path: str | os.PathLike, name: str = "directory") -> Path:
    """Check that ``path`` can be a directory rnnkit writes into, without creating anything:
    it is a writable directory, or it does not exist yet and its nearest existing ancestor
    is a writable directory. ``name`` is what the user called it (``"--out"``). Raises
    :class:`~rnnkit.errors.ConfigError` (empty path, a file or device in the way, no write
    permission); returns ``Path(path)``."""
    if path is None or not str(path).strip():
        raise ConfigError(f"{name}: expected a directory path, got an empty string. Give a "
                          f"directory such as runs/my-run (use . for the current directory).")
    p = Path(path)
    probe = p
    while True:
        try:
            st = os.stat(probe)
            break
        except FileNotFoundError:
            if probe.parent == probe:
                raise ConfigError(f"{name} {path}: no existing parent directory.") from None
            probe = probe.parent
        except OSError as e:             # ENOTDIR (a file in the path), EACCES, ELOOP ...
            raise ConfigError(f"{name} {path}: cannot use this path: {e.strerror or e}. Choose "
                              f"a directory you can write to.") from None
    if not stat.S_ISDIR(st.st_mode):
        where = "it" if probe == p else f"{probe}"
        raise ConfigError(f"{name} {path}: expected a directory, but {where} is "
                          f"{_kind(st.st_mode)}. Choose another path.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{name} {path}: cannot write into {probe} (no permission or a "
                          f"read-only file system). Choose a directory you can write to.")
    return p


def check_output_file(path: str | os.PathLike, name: str = "file", example: str = "model.onnx") -> Path:
    """Check that ``path`` can be a regular file rnnkit (re)writes, without creating anything:
    not a directory, a device such as ``/dev/null`` or a FIFO, and in a directory that exists
    or can be created (:func:`check_output_dir`). Raises :class:`~rnnkit.errors.ConfigError`
    naming ``name`` (``"--onnx"``), suggesting a file name like ``example``; returns
    ``Path(path)``."""
    if path is None or not str(path).strip():
        raise ConfigError(f"{name}: expected a file path, got an empty string.")
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise ConfigError(f"{name} {path}: cannot use this path: {e.strerror or e}. Choose a "
                          f"file path you can write to.") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{name} {path}: expected a file path, got {_kind(st.st_mode)}. "
                              f"Name a file, e.g. {p / example if stat.S_ISDIR(st.st_mode) else example}.")
        if not os.access(p, os.W_OK):
            raise ConfigError(f"{name} {path}: the file exists and cannot be written (no "
                              f"permission or a read-only file system).")
    check_output_dir(p.parent if str(p.parent) else Path("."), name=f"{name} {path}: directory")
    return p


# ---------------------------------------------------------------------------------------------
# safe reading
# ---------------------------------------------------------------------------------------------

def open_regular(path: str | os.PathLike, who: str, what: str, max_bytes: int | None,
                 error: type[Exception] = CheckpointError) -> tuple[BinaryIO, int]:
    """Open ``path`` for binary reading; refuse anything but a regular file within max_bytes.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of hanging; the fstat check then
    refuses FIFOs, devices (``/dev/zero``) and directories. Returns ``(fileobj, size)``.
    Problems raise ``error`` (:class:`CheckpointError` by default; the text reader of
    :mod:`rnnkit.data` passes :class:`~rnnkit.errors.DataError`) naming the file.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise error(f"{who}: {what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise error(f"{who}: expected {what} file {path} to be a regular file, got a "
                    f"directory.") from None
    except OSError as e:
        raise error(f"{who}: cannot open {what} file {path}: {e.strerror or e}.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
                    "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a special file")
            raise error(f"{who}: expected {what} file {path} to be a regular file, got {kind}.")
        size = st.st_size
        if max_bytes is not None and size > max_bytes:
            raise error(f"{who}: {what} file {path} is {size} bytes, more than the limit of "
                        f"{max_bytes} bytes. It is not a file rnnkit wrote; pass a larger "
                        f"max_bytes if you trust it.")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    return f, size


def _read_exact(f, n: int, path, who: str, what: str) -> bytes:
    """Read exactly ``n`` bytes (``n`` already checked against the real file size)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:got + _CHUNK])
        if not k:
            raise CheckpointError(f"{who}: {path} is truncated: expected {n} bytes of {what}, "
                                  f"the file ended after {got} (was it modified while reading?).")
        got += k
    return bytes(buf)


def _read_bounded(path, who: str, what: str, max_bytes: int) -> bytes:
    f, size = open_regular(path, who, what, max_bytes)
    with f:
        return _read_exact(f, size, path, who, what)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads_json(text: str) -> Any:
    """``json.loads`` as rnnkit reads its own files: strict JSON (``NaN``/``Infinity`` and
    duplicate keys raise ValueError)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


class _Overflow(float):
    """A JSON number beyond float's range (``1e400``), which Python would read as infinity;
    kept with its text so that the error can name it and where it was."""

    literal = ""


def _float_parser(seen: list):
    """json's ``parse_float``: a float, or an :class:`_Overflow` noted in ``seen``."""
    def parse(text: str) -> float:
        v = float(text)
        if math.isfinite(v):
            return v
        big = _Overflow(v)
        big.literal = text
        seen.append(big)
        return big
    return parse


def _find_overflow(obj, where: str = ""):
    """``(path, literal)`` of the first :class:`_Overflow` in a parsed JSON value, or None."""
    stack = [(obj, where)]
    while stack:
        o, w = stack.pop()
        if isinstance(o, _Overflow):
            return w or "the value", o.literal
        if isinstance(o, dict):
            stack.extend((v, f"{w}[{k!r}]" if w else k) for k, v in reversed(list(o.items())))
        elif isinstance(o, list):
            stack.extend((v, f"{w}[{i}]") for i, v in reversed(list(enumerate(o))))
    return None


def _parse_json(data: bytes, path, who: str, what: str):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{who}: {what} in {path} is not valid UTF-8 ({e}). The file is "
                              f"damaged or not a file rnnkit wrote.") from None
    try:
        seen = []
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant,
                         parse_float=_float_parser(seen))
        if seen:
            bad = _find_overflow(obj)
            if bad is not None:
                raise CheckpointError(f"{who}: {what} in {path}: {bad[0]} = {bad[1]:.40} is beyond "
                                      f"the range of a float (it would load as infinity). The "
                                      f"file is damaged or not a file rnnkit wrote.")
        return obj
    except RecursionError:
        raise CheckpointError(f"{who}: {what} in {path} is nested too deeply to be a valid "
                              f"file.") from None
    except ValueError as e:  # JSONDecodeError, duplicate keys, NaN, over-long integers
        raise CheckpointError(f"{who}: {what} in {path} is not valid JSON: {e}. The file is "
                              f"damaged or not a file rnnkit wrote.") from None


def read_json(path: str | os.PathLike, what: str = "config", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read a strict JSON file (no NaN/inf, no duplicate keys) of at most ``max_bytes``.

    Raises :class:`CheckpointError` naming ``path`` if the file is missing, not a regular
    file, too large, not UTF-8 or not valid JSON. Returns the parsed object (any JSON type;
    callers check the type they need).
    """
    data = _read_bounded(path, "read_json", what, max_bytes)
    return _parse_json(data, path, "read_json", f"the {what} JSON")


def sha256_file(path: str | os.PathLike, max_bytes: int | None = None) -> tuple[int, str]:
    """Return ``(size, sha256 hex digest)`` of a regular file, reading it in 1 MiB chunks."""
    f, _ = open_regular(path, "sha256_file", "checkpoint", max_bytes)
    h = hashlib.sha256()
    n = 0
    with f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            n += len(chunk)
            h.update(chunk)
    return n, h.hexdigest()


# ---------------------------------------------------------------------------------------------
# JSON lines
# ---------------------------------------------------------------------------------------------

def append_jsonl(path: str | os.PathLike, obj: object) -> None:
    """Append ``obj`` as one JSON line to ``path`` (created if missing), then flush + fsync.

    A line is written with a single ``write``; if a previous writer died mid-line (the file
    does not end in a newline), a newline is written first so the torn fragment stays on its
    own line, which :func:`read_jsonl` skips.
    """
    path = Path(path)
    line = _dumps_json(obj, "append_jsonl", path, indent=None)
    try:
        with open(path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            prefix = b""
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    prefix = b"\n"
                f.seek(0, os.SEEK_END)
            f.write(prefix + line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CheckpointError(f"append_jsonl: cannot append to {path}: {e}.") from e


def read_jsonl(path: str | os.PathLike, what: str = "metrics", max_bytes: int = MAX_JSONL_BYTES) -> list:
    """Read a JSON-lines file written by :func:`append_jsonl`; a missing file gives ``[]``.

    A torn last line (a writer killed mid-append) is skipped silently. Other undecodable lines
    (a torn line that a later append followed) are skipped with a :class:`UserWarning`.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    data = _read_bounded(path, "read_jsonl", what, max_bytes)
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        lines.pop()  # the empty string after the final newline
    out, bad = [], []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            out.append(loads_json(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, RecursionError):
            if i == len(lines) - 1 and not complete:
                continue  # torn last line: the writer was killed mid-append
            bad.append(i + 1)
    if bad:
        warnings.warn(f"read_jsonl: skipped {len(bad)} undecodable line(s) in {path} "
                      f"(line numbers {bad[:10]}{'...' if len(bad) > 10 else ''}); they are "
                      f"records torn by a crash.", UserWarning, stacklevel=2)
    return out


# ---------------------------------------------------------------------------------------------
# safetensors (the format itself is the safetensors package's business)
# ---------------------------------------------------------------------------------------------

def _call_library(fn, problem: str, advice: str):
    """Return ``fn()``, a call into the safetensors package; whatever it raises (its
    ``SafetensorError``, an ``OSError``, a NumPy ``ValueError`` ...) becomes a CheckpointError."""
    try:
        return fn()
    except Exception as e:
        raise CheckpointError(f"{problem}: {type(e).__name__}: {str(e):.300}. {advice}") from None


def _dtype_code(who: str, name: str, arr: np.ndarray) -> str:
    code = _CODE_OF_KIND_SIZE.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise CheckpointError(
            f"{who}: expected tensor {name!r} with a dtype safetensors can store "
            f"({', '.join(SAFETENSORS_DTYPES)}), got {arr.dtype}. Convert it with "
            f".astype(np.float32) (or another supported dtype) first.")
    return code


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> None:
    """Write ``tensors`` (name -> ndarray) to ``path`` in the safetensors format, atomically.

    The safetensors package serialises (its layout: tensors ordered by decreasing alignment,
    then name, header padded to 8 bytes); rnnkit writes the bytes atomically.
    Supported dtypes: F64, F32, F16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL. Arrays of any
    shape are accepted, including 0-d and empty ones; non-native byte order and non-contiguous
    arrays are converted. ``metadata`` must map str to str.

    Example::

        >>> save_safetensors("m.safetensors", {"head.bias": np.zeros(4, np.float32)},
        ...                  metadata={"format": "np"})
    """
    who = "save_safetensors"
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{who}: expected tensors as a dict name -> np.ndarray, got "
                              f"{type(tensors).__name__}.")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise CheckpointError(f"{who}: expected metadata as a dict of str -> str, got "
                                  f"{metadata!r:.200}. Encode other values with json.dumps.")
    prepared = {}
    for name, arr in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise CheckpointError(f"{who}: expected tensor names as str other than "
                                  f"'__metadata__', got {name!r}.")
        if not isinstance(arr, np.ndarray):
            arr = np.asarray(arr)
        # little-endian, C-contiguous: the package reads each array's buffer as it is
        prepared[name] = np.asarray(arr, dtype=SAFETENSORS_DTYPES[_dtype_code(who, name, arr)],
                                    order="C")
    data = _call_library(lambda: safetensors.numpy.save(prepared, metadata=metadata),
                         f"{who}: cannot serialise the tensors for {path}",
                         "Check the tensor names and arrays.")
    _atomic_write(path, lambda f: f.write(data), who)


def _fd_name(fd: int, path: Path) -> str:
    """A name that opens the very file behind ``fd`` (``/proc/self/fd/N`` where it exists), so
    the package opens the file just checked even if ``path`` was swapped for a FIFO meanwhile."""
    name = f"/proc/self/fd/{fd}"
    return name if os.path.exists(name) else str(path)


def _check_header_entries(info: dict, path, who: str) -> dict:
    """Apply rnnkit's policy to name -> (code, shape) from the package; return name -> (native
    np.dtype, shape), sorted by name. Refused: codes outside SAFETENSORS_DTYPES (BF16 ...), more than 32
    dimensions, shapes NumPy cannot hold even when empty (e.g. (0, 2**62, 2**62))."""
    out = {}
    for name, (code, shape) in sorted(info.items()):
        def bad(msg):
            return CheckpointError(f"{who}: {path}: tensor {name!r}: {msg}.")
        if code not in SAFETENSORS_DTYPES:
            raise bad(f"dtype {code} is not supported (rnnkit reads "
                      f"{', '.join(SAFETENSORS_DTYPES)}; NumPy has no BF16 or 8-bit floats). "
                      f"Convert the tensor to F32 before saving, e.g. with torch: t.float()")
        if len(shape) > _MAX_DIMS:
            raise bad(f"expected at most {_MAX_DIMS} dimensions, got {len(shape)}")
        if math.prod(max(d, 1) for d in shape) > _MAX_ELEMENTS:
            raise bad(f"shape {list(shape)!r:.200} is absurdly large")
        out[name] = (SAFETENSORS_DTYPES[code].newbyteorder("="), shape)
    return out


def _check_strict_header(f, size: int, specs: dict, path, who: str) -> None:
    """Refuse what the package's JSON parser lets through: duplicate keys (it keeps the last,
    another reader may keep the first) and unknown keys in a tensor entry.

    The package has already proven that the tensors tile everything after the header, so the
    header is the ``size - 8 - data bytes`` bytes after the 8-byte length; rnnkit re-reads that
    JSON text with its strict parser and looks at nothing else.
    """
    data_len = sum(math.prod(shape) * dtype.itemsize for dtype, shape in specs.values())
    f.seek(8)
    header = _parse_json(_read_exact(f, size - 8 - data_len, path, who, "header"), path, who,
                         "the safetensors header")
    for name, entry in header.items():
        if name != "__metadata__" and not (isinstance(entry, dict) and set(entry) == _ENTRY_KEYS):
            raise CheckpointError(f"{who}: {path}: tensor {name!r}: expected exactly the keys "
                                  f"data_offsets, dtype, shape, got {entry!r:.200}. The file is "
                                  f"damaged or not a valid safetensors file.")


def _read_safetensors(path, max_bytes, who: str, with_data: bool):
    """The one reader: ``(specs, metadata, tensors or None)``; see load_safetensors_with_metadata."""
    path = Path(path)
    f, size = open_regular(path, who, "safetensors", max_bytes)   # before the package opens it
    problem = f"{who}: {path} is not a valid safetensors file"
    advice = "The file is damaged, truncated or not a safetensors file."
    with f:
        handle = _call_library(lambda: safe_open(_fd_name(f.fileno(), path), framework="np",
                                                 **_SAFE_OPEN_OPTIONS), problem, advice)
        with handle:
            def header():
                slices = {name: handle.get_slice(name) for name in handle.keys()}
                return ({name: (s.get_dtype(), tuple(s.get_shape())) for name, s in slices.items()},
                        handle.metadata() or {})
            info, metadata = _call_library(header, problem, advice)
            specs = _check_header_entries(info, path, who)
            _check_strict_header(f, size, specs, path, who)
            if not with_data:
                return specs, metadata, None
            # Every size is now proven to fit in the file: the package copies each tensor
            # into its own buffer, so memory is bounded by the file size.
            raw = _call_library(lambda: {name: handle.get_tensor(name) for name in specs},
                                problem, advice)
    tensors = {}  # sorted by name, like specs
    for name, arr in raw.items():
        dtype, shape = specs[name]
        arr = np.require(arr, dtype=dtype, requirements=("C", "W")).reshape(shape)
        if dtype == np.bool_ and arr.size and arr.view(np.uint8).max() > 1:
            raise CheckpointError(f"{who}: {path}: BOOL tensor {name!r} holds bytes other "
                                  f"than 0 and 1. The file is damaged.")
        tensors[name] = arr
    return specs, metadata, tensors


def read_safetensors_header(path: str | os.PathLike, max_bytes: int | None = None) -> tuple[dict, dict]:
    """Read only a safetensors file's header; return ``(specs, metadata)``.

    ``specs`` maps each tensor name (sorted) to ``(np.dtype, shape tuple)``; ``metadata`` is the
    ``__metadata__`` dict of str -> str (``{}`` when absent). No tensor data is read, so this is
    cheap for any file size, e.g. to compare a checkpoint's config with its weights before
    building a model. The file passes the same checks as in :func:`load_safetensors_with_metadata`
    except the BOOL values.

    Example::

        >>> import numpy as np
        >>> save_safetensors("model.safetensors", {"head.weight": np.zeros((65, 128), np.float32)})
        >>> specs, meta = read_safetensors_header("model.safetensors")
        >>> specs["head.weight"], meta
        ((dtype('float32'), (65, 128)), {})
    """
    specs, metadata, _ = _read_safetensors(path, max_bytes, "read_safetensors_header", False)
    return specs, metadata


def load_safetensors_with_metadata(path: str | os.PathLike, max_bytes: int | None = None) -> tuple[dict, dict]:
    """Load a safetensors file defensively; return ``(tensors, metadata)``.

    ``tensors`` maps name -> writable, native-endian ndarray (a copy, not a memmap);
    ``metadata`` is the ``__metadata__`` dict of str -> str (``{}`` when absent). The safetensors
    package checks every size the header declares against the real file before anything is
    allocated, so memory use is bounded by the file size. ``max_bytes`` (optional) bounds the
    file size.

    Raises :class:`CheckpointError` naming ``path`` for: a missing file or one that is not a
    regular file (checked before the package opens it); anything the package refuses (too
    short, a header length beyond the file or 100 MB, a header that is not a UTF-8 JSON object
    of valid entries, non-string metadata, offsets that do not tile the data region exactly,
    ...); duplicate keys or unknown entry keys in the header; dtypes outside
    :data:`SAFETENSORS_DTYPES`; more than 32 dimensions; BOOL bytes other than 0/1.
    """
    _, metadata, tensors = _read_safetensors(path, max_bytes, "load_safetensors", True)
    return tensors, metadata


def load_safetensors(path: str | os.PathLike, max_bytes: int | None = None) -> dict:
    """Load a safetensors file defensively; return name -> writable native ndarray.

    See :func:`load_safetensors_with_metadata` for the checks. Example::

        >>> import numpy as np
        >>> save_safetensors("model.safetensors", {"w": np.arange(3.0)})
        >>> load_safetensors("model.safetensors")
        {'w': array([0., 1., 2.])}
    """
    return load_safetensors_with_metadata(path, max_bytes=max_bytes)[0]
