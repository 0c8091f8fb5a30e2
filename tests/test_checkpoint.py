"""Tests of rnnkit.io (safetensors / JSON files) and rnnkit.checkpoint (the run directory).

References are independent of the code under test: the input arrays themselves, hand-built
safetensors bytes, the ``safetensors`` package, and raw file contents.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnnkit.checkpoint import (
    Checkpoint,
    append_metrics,
    has_checkpoint,
    list_versions,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
    truncate_metrics,
)
from rnnkit.errors import CheckpointError, ConfigError, ParameterKeyError, ShapeError
from rnnkit.io import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    load_safetensors,
    load_safetensors_with_metadata,
    read_json,
    read_jsonl,
    read_safetensors_header,
    save_safetensors,
)
from rnnkit.load import load_model
from rnnkit.nn.registry import config_from_dict, model_from_config

from needs import require

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
SHAPES = [(), (0,), (5,), (2, 3), (3, 0, 2), (2, 1, 3, 2)]


def _values(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def _raw_file(header, data=b"", pad=True, length=None):
    """Hand-built safetensors bytes: u64 length + JSON header (+ spaces) + data."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


# ------------------------------------------------------------------ safetensors round trips


@pytest.mark.parametrize("code", list(DTYPES))
def test_roundtrip_every_dtype_and_shape(tmp_path, code):
    dtype = DTYPES[code]
    tensors = {f"t{i}": _values(dtype, s, seed=i) for i, s in enumerate(SHAPES)}
    path = tmp_path / "x.safetensors"
    save_safetensors(path, tensors, metadata={"who": "test", "ünïcode": "✓"})
    out, meta = load_safetensors_with_metadata(path)
    assert meta == {"who": "test", "ünïcode": "✓"}
    assert sorted(out) == sorted(tensors)
    for k, ref in tensors.items():
        got = out[k]
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
        assert got.flags.writeable and got.dtype.isnative and not isinstance(got, np.memmap)
    # the header declares the dtype code we expect
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {code}


def test_exact_bytes_against_hand_built_file(tmp_path):
    a = np.array([[1.0, -2.0]], dtype=np.float32)
    b = np.array([7], dtype=np.int64)
    path = tmp_path / "x.safetensors"
    save_safetensors(path, {"a": a, "b": b})
    # itemsize-descending order: b (8 bytes) then a (4 bytes), so each tensor is aligned; the
    # order of the keys in the header is the writer's choice
    header = {"a": {"data_offsets": [8, 16], "dtype": "F32", "shape": [1, 2]},
              "b": {"data_offsets": [0, 8], "dtype": "I64", "shape": [1]}}
    data = struct.pack("<q", 7) + struct.pack("<2f", 1.0, -2.0)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and len(raw) == 8 + n + len(data)
    assert json.loads(raw[8:8 + n]) == header
    assert raw[8:8 + n].rstrip(b" ").endswith(b"}")     # padded with spaces only
    assert raw[8 + n:] == data


def test_non_native_and_non_contiguous_inputs(tmp_path):
    big = np.arange(6, dtype=">f8").reshape(2, 3)
    strided = np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2].T
    path = tmp_path / "x.safetensors"
    save_safetensors(path, {"big": big, "strided": strided})
    out = load_safetensors(path)
    np.testing.assert_array_equal(out["big"], np.arange(6.0).reshape(2, 3))
    assert out["big"].dtype == np.float64 and out["big"].dtype.isnative
    np.testing.assert_array_equal(out["strided"], np.arange(20).reshape(4, 5)[:, ::2].T)


@pytest.mark.parametrize("bad", [{"a": np.array(["x"])}, {"a": np.zeros(2, complex)},
                                 {1: np.zeros(2)}, {"__metadata__": np.zeros(2)}])
def test_save_refuses_unstorable(tmp_path, bad):
    with pytest.raises(CheckpointError):
        save_safetensors(tmp_path / "x.safetensors", bad)
    assert not list(tmp_path.iterdir())  # no temp file left behind


def test_save_refuses_non_string_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="str -> str"):
        save_safetensors(tmp_path / "x.safetensors", {"a": np.zeros(1)}, metadata={"n": 1})


# ------------------------------------------------------------------ interop with safetensors


def test_ours_load_with_safetensors_numpy_and_torch(tmp_path):
    st_np = require("safetensors.numpy")
    tensors = {f"{code}.w": _values(dt, (3, 2), seed=i) for i, (code, dt) in enumerate(DTYPES.items())}
    tensors["scalar"] = np.float32(3.5) * np.ones((), np.float32)
    tensors["empty"] = np.zeros((0, 4), np.float32)
    path = tmp_path / "ours.safetensors"
    save_safetensors(path, tensors, metadata={"format": "np"})
    ref = st_np.load_file(str(path))
    assert sorted(ref) == sorted(tensors)
    for k in tensors:
        assert ref[k].dtype == tensors[k].dtype and ref[k].shape == tensors[k].shape
        np.testing.assert_array_equal(ref[k], tensors[k])

    torch = require("torch")
    st_torch = require("safetensors.torch")
    tt = st_torch.load_file(str(path))
    for k in tensors:
        np.testing.assert_array_equal(tt[k].numpy(), tensors[k])
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"format": "np"}
    assert tt["F32.w"].dtype == torch.float32


def test_safetensors_package_files_load_with_ours(tmp_path):
    st_np = require("safetensors.numpy")
    tensors = {f"{code}.w": _values(dt, s, seed=i)
               for i, ((code, dt), s) in enumerate(zip(DTYPES.items(), SHAPES * 2))}
    path = tmp_path / "theirs.safetensors"
    st_np.save_file(tensors, str(path), metadata={"k": "v"})
    out, meta = load_safetensors_with_metadata(path)
    assert meta == {"k": "v"}
    for k in tensors:
        assert out[k].dtype == tensors[k].dtype
        np.testing.assert_array_equal(out[k], tensors[k])


def test_torch_written_file_loads_with_ours(tmp_path):
    torch = require("torch")
    st_torch = require("safetensors.torch")
    w = torch.randn(4, 3, dtype=torch.float64)
    path = tmp_path / "t.safetensors"
    st_torch.save_file({"rnn.weight_ih_l0": w, "n": torch.arange(5)}, str(path))
    out = load_safetensors(path)
    np.testing.assert_array_equal(out["rnn.weight_ih_l0"], w.numpy())
    np.testing.assert_array_equal(out["n"], np.arange(5))


# ------------------------------------------------------------------ hostile / damaged files

_GOOD_H = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
_GOOD_D = struct.pack("<2f", 1.0, 2.0)


def _entry(dtype="F32", shape=(2,), offs=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offs)}


HOSTILE = {
    "empty file": b"",
    "shorter than 8 bytes": b"\x10\x00\x00",
    "truncated header": _raw_file(_GOOD_H, _GOOD_D)[:20],
    "truncated data": _raw_file(_GOOD_H, _GOOD_D)[:-3],
    "header length 2**63": _raw_file(_GOOD_H, _GOOD_D, length=2 ** 63),
    "header length 2**64-1": _raw_file(_GOOD_H, _GOOD_D, length=2 ** 64 - 1),
    "header length > file": _raw_file(_GOOD_H, _GOOD_D, length=4096),
    "header length over the 100 MB bound": _raw_file(_GOOD_H, _GOOD_D, length=200 * 2 ** 20),
    "non-JSON header": _raw_file(b"this is not json at all!", _GOOD_D),
    "non-UTF-8 header": _raw_file(b'{"\xff\xfe": 1}  ', b""),
    "JSON array header": _raw_file([1, 2, 3], b""),
    "JSON string header": _raw_file("hello", b""),
    "entry not an object": _raw_file({"a": [1, 2]}, b""),
    "entry missing data_offsets": _raw_file({"a": {"dtype": "F32", "shape": [0]}}, b""),
    "entry with extra key": _raw_file({"a": {**_entry(), "exec": "rm -rf /"}}, _GOOD_D),
    "dtype not a string": _raw_file({"a": _entry(dtype=4)}, _GOOD_D),
    "unknown dtype F8_E4M3X": _raw_file({"a": _entry(dtype="F8_E4M3X", offs=(0, 2))}, b"\0\0"),
    "unsupported dtype BF16": _raw_file({"a": _entry(dtype="BF16", offs=(0, 4))}, b"\0" * 4),
    "negative shape": _raw_file({"a": _entry(shape=(-2,))}, _GOOD_D),
    "float shape": _raw_file({"a": _entry(shape=(2.0,))}, _GOOD_D),
    "bool shape": _raw_file({"a": _entry(shape=(True, True))}, _GOOD_D),
    "shape not a list": _raw_file({"a": _entry() | {"shape": 2}}, _GOOD_D),
    "too many dims": _raw_file({"a": _entry(shape=(1,) * 40, offs=(0, 4))}, b"\0" * 4),
    "huge declared shape": _raw_file({"a": _entry(shape=(2 ** 40, 2 ** 40), offs=(0, 8))}, _GOOD_D),
    "huge shape with a zero dim": _raw_file({"a": _entry(shape=(0, 2 ** 62, 2 ** 62), offs=(0, 0))}),
    "huge shape matching huge offsets": _raw_file({"a": _entry(shape=(2 ** 30,), offs=(0, 2 ** 32))}, _GOOD_D),
    "offsets beyond the file": _raw_file({"a": _entry(offs=(8, 16))}, _GOOD_D),
    "offsets negative": _raw_file({"a": _entry(offs=(-8, 0))}, _GOOD_D),
    "offsets reversed": _raw_file({"a": _entry(offs=(8, 0))}, _GOOD_D),
    "offsets not ints": _raw_file({"a": _entry(offs=(0.0, 8.0))}, _GOOD_D),
    "offsets three values": _raw_file({"a": _entry() | {"data_offsets": [0, 4, 8]}}, _GOOD_D),
    "overlapping offsets": _raw_file({"a": _entry(), "b": _entry(offs=(4, 12))}, _GOOD_D + b"\0" * 4),
    "same offsets twice": _raw_file({"a": _entry(), "b": _entry()}, _GOOD_D),
    "gap between tensors": _raw_file({"a": _entry(shape=(1,), offs=(0, 4)),
                                      "b": _entry(shape=(1,), offs=(8, 12))}, b"\0" * 12),
    "shape/offset mismatch": _raw_file({"a": _entry(shape=(3,))}, _GOOD_D),
    "trailing garbage": _raw_file(_GOOD_H, _GOOD_D + b"GARBAGE!"),
    "duplicate keys": _raw_file(b'{"a":' + json.dumps(_entry()).encode() + b',"a":'
                                + json.dumps(_entry()).encode() + b"}", _GOOD_D),
    "non-string metadata": _raw_file({"__metadata__": {"n": 1}, **_GOOD_H}, _GOOD_D),
    "metadata not an object": _raw_file({"__metadata__": ["x"], **_GOOD_H}, _GOOD_D),
    "NaN in header": _raw_file(b'{"__metadata__":{}, "a": {"dtype":"F32","shape":[NaN],'
                               b'"data_offsets":[0,8]}}', _GOOD_D),
    "deeply nested header": _raw_file(b"[" * 200_000 + b"]" * 200_000, b""),
    "BOOL byte not 0/1": _raw_file({"a": _entry(dtype="BOOL", shape=(2,), offs=(0, 2))}, b"\x01\x07"),
    "huge integer in header": _raw_file(b'{"a": {"dtype":"F32","shape":[' + b"9" * 5000
                                        + b'],"data_offsets":[0,8]}}', _GOOD_D),
}


def _assert_clean_failure(fn, path, peak_limit=4 * 2 ** 20):
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value), str(info.value)
    assert peak < peak_limit, f"peak allocation {peak} bytes"
    return info.value


def test_good_hostile_baseline_loads(tmp_path):
    # the hostile cases are mutations of this file, which is valid
    path = tmp_path / "good.safetensors"
    path.write_bytes(_raw_file(_GOOD_H, _GOOD_D))
    np.testing.assert_array_equal(load_safetensors(path)["a"], [1.0, 2.0])


# both readers refuse every hostile file; the header reader reads no tensor data, so it cannot
# see a BOOL byte other than 0/1
READERS = {"load": load_safetensors, "header": read_safetensors_header}
_DATA_ONLY = {"BOOL byte not 0/1"}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_safetensors_raise_checkpoint_error(tmp_path, case, reader):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(HOSTILE[case])
    if reader == "header" and case in _DATA_ONLY:
        read_safetensors_header(path)
        return
    _assert_clean_failure(lambda: READERS[reader](path), path)


@pytest.mark.parametrize("reader", list(READERS))
def test_hostile_special_paths(tmp_path, reader):
    read = READERS[reader]
    d = tmp_path / "adir.safetensors"
    d.mkdir()
    _assert_clean_failure(lambda: read(d), d)
    missing = tmp_path / "missing.safetensors"
    _assert_clean_failure(lambda: read(missing), missing)
    if os.path.exists("/dev/zero"):
        link = tmp_path / "zero.safetensors"
        link.symlink_to("/dev/zero")
        _assert_clean_failure(lambda: read(link), link)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.safetensors"
        os.mkfifo(fifo)  # opening a FIFO without a writer would block forever
        t0 = time.perf_counter()
        _assert_clean_failure(lambda: read(fifo), fifo)
        assert time.perf_counter() - t0 < 5
    big = tmp_path / "big.safetensors"
    save_safetensors(big, {"a": np.zeros(1000)})
    _assert_clean_failure(lambda: read(big, max_bytes=100), big)


def test_hostile_messages_name_the_problem(tmp_path):
    path = tmp_path / "hostile.safetensors"
    expected = {"unsupported dtype BF16": r"dtype BF16 is not supported.*F32.*t\.float\(\)",
                "duplicate keys": "duplicate key 'a'",
                "entry with extra key": "'exec'",
                "trailing garbage": "not a valid safetensors file",
                "BOOL byte not 0/1": "other than 0 and 1"}
    for case, msg in expected.items():
        path.write_bytes(HOSTILE[case])
        with pytest.raises(CheckpointError, match=msg) as info:
            load_safetensors(path)
        e = info.value     # no exception of the package is chained to it (or shown)
        assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)


def test_read_safetensors_header(tmp_path):
    tensors = {"rnn.weight_ih_l0": np.zeros((8, 3), np.float32), "n": np.arange(5),
               "scalar": np.float64(2.0) * np.ones(()), "flags": np.zeros((2, 0), np.bool_)}
    path = tmp_path / "m.safetensors"
    save_safetensors(path, tensors, metadata={"format": "np"})
    specs, meta = read_safetensors_header(path)
    assert meta == {"format": "np"}
    assert list(specs) == sorted(tensors)
    assert specs == {k: (v.dtype, v.shape) for k, v in tensors.items()}
    assert all(isinstance(dt, np.dtype) and isinstance(shape, tuple) for dt, shape in specs.values())
    st_np = require("safetensors.numpy")      # a file the package wrote, no metadata
    st_np.save_file({"w": np.ones((2, 3), np.float16)}, str(path))
    assert read_safetensors_header(path) == ({"w": (np.dtype(np.float16), (2, 3))}, {})


def test_read_safetensors_header_reads_no_data(tmp_path):
    path = tmp_path / "big.safetensors"
    save_safetensors(path, {"w": np.ones((2048, 4096), np.float32)})     # 32 MiB of data
    tracemalloc.start()
    try:
        specs, _ = read_safetensors_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert specs == {"w": (np.dtype(np.float32), (2048, 4096))}
    assert peak < 2 ** 20, f"peak allocation {peak} bytes"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_the_package_reads_the_file_that_was_checked(tmp_path, monkeypatch):
    import rnnkit.io as rio
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"a": np.arange(3.0)})
    real_open = rio.open_regular

    def swap_after_check(*args):
        opened = real_open(*args)
        os.replace(path, tmp_path / "checked.safetensors")   # the checked file moves away ...
        save_safetensors(path, {"b": np.zeros(2)})            # ... and another takes its name
        return opened

    monkeypatch.setattr(rio, "open_regular", swap_after_check)
    out = load_safetensors(path)
    assert list(out) == ["a"]
    np.testing.assert_array_equal(out["a"], np.arange(3.0))


def test_file_truncated_while_being_read_is_an_error_not_a_crash(tmp_path):
    # e.g. `cp` over a checkpoint that another process is loading; with a memory map this
    # would kill the reader with SIGBUS, hence a subprocess
    st = require("safetensors")
    if tuple(int(x) for x in st.__version__.split(".")[:2]) < (0, 8):
        pytest.skip("safetensors < 0.8 reads through a memory map only")
    script = textwrap.dedent("""
        import os, sys, numpy as np
        import rnnkit.io as rio
        path = sys.argv[1]
        rio.save_safetensors(path, {"w": np.ones(100_000, np.float32)})
        check = rio._check_strict_header
        def check_then_truncate(*args):
            check(*args)
            os.truncate(path, 1000)
        rio._check_strict_header = check_then_truncate
        try:
            rio.load_safetensors(path)
        except rio.CheckpointError as e:
            print("CheckpointError:", e)
    """)
    path = tmp_path / "m.safetensors"
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"CheckpointError: load_safetensors: {path}"), proc.stdout


# ------------------------------------------------------------------ JSON helpers


def test_atomic_write_json_format_and_errors(tmp_path):
    path = tmp_path / "c.json"
    atomic_write_json(path, {"b": np.int64(3), "a": [np.float32(0.5), True, None]})
    assert path.read_text() == '{\n  "a": [\n    0.5,\n    true,\n    null\n  ],\n  "b": 3\n}\n'
    with pytest.raises(CheckpointError, match=r"\['hist'\]\[1\]\['loss'\] is non-finite"):
        atomic_write_json(path, {"hist": [{"loss": 1.0}, {"loss": float("nan")}]})
    with pytest.raises(CheckpointError, match="ndarray"):
        atomic_write_json(path, {"w": np.zeros(2)})
    with pytest.raises(CheckpointError, match="non-string key"):
        atomic_write_json(path, {1: 2})
    assert json.loads(path.read_text()) == {"a": [0.5, True, None], "b": 3}  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]          # no temp files


def test_atomic_write_leaves_old_file_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "LATEST"
    atomic_write_text(path, "old\n")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CheckpointError, match="No space left"):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST"]


@pytest.mark.parametrize("content, msg", [
    (b"{not json", "not valid JSON"),
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b'{"a": NaN}', "NaN"),
    (b"\xff\xfe{}", "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested|JSON"),
])
def test_read_json_rejects(tmp_path, content, msg):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    err = _assert_clean_failure(lambda: read_json(path), path)
    assert __import__("re").search(msg, str(err))


def test_read_json_missing_and_size_bound(tmp_path):
    path = tmp_path / "vocab.json"
    _assert_clean_failure(lambda: read_json(path, what="vocab"), path)
    path.write_text('{"x": "' + "a" * 2000 + '"}')
    err = _assert_clean_failure(lambda: read_json(path, max_bytes=1000), path)
    assert "limit" in str(err)
    assert read_json(path)["x"] == "a" * 2000


def test_jsonl_torn_last_line_and_append_after_crash(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_jsonl(path) == []
    append_jsonl(path, {"step": 1, "loss": 2.5})
    append_jsonl(path, {"step": 2, "loss": 2.0})
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "lo')          # a writer killed mid-line
    assert read_jsonl(path) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]
    append_jsonl(path, {"step": 3, "loss": 1.5})  # resume: the new record stays intact
    with pytest.warns(UserWarning, match="skipped 1"):
        got = read_jsonl(path)
    assert got == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}, {"step": 3, "loss": 1.5}]
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"step": 3, "lo' and json.loads(lines[3]) == {"loss": 1.5, "step": 3}


# ------------------------------------------------------------------ checkpoint directory


def _state(value=0.0, dtype=np.float32, H=4, V=5):
    rng = np.random.default_rng(int(value))
    return {"embedding.weight": rng.standard_normal((V, 3)).astype(dtype),
            "rnn.weight_ih_l0": rng.standard_normal((4 * H, 3)).astype(dtype),
            "rnn.weight_hh_l0": rng.standard_normal((4 * H, H)).astype(dtype),
            "head.weight": np.full((V, H), value, dtype),
            "head.bias": np.zeros(V, dtype)}


CONFIG = {"model": "CharLM", "cell": "lstm", "hidden_size": 4, "num_layers": 1,
          "embedding_size": 3, "vocab_size": 5, "dropout": 0.0}


def _save(d, step, **kw):
    return save_checkpoint(d, model_state=_state(step), config=CONFIG, vocab={"chars": "abcde"},
                           optimizer_state={"m.head.weight": np.full((5, 4), step, np.float64),
                                            "step": np.array(step, np.int64)},
                           optimizer_meta={"name": "adam", "lr": 0.01, "betas": [0.9, 0.999]},
                           trainer_state={"step": step, "rng": {"state": 2 ** 100 + step}}, **kw)


def test_checkpoint_round_trip(tmp_path):
    d = tmp_path / "run"
    assert not has_checkpoint(d)
    path = _save(d, 7)
    assert has_checkpoint(d) and path == d / "ckpt-000001"
    ck = load_checkpoint(d)
    assert isinstance(ck, Checkpoint) and ck.path == path
    ref = _state(7)
    assert sorted(ck.model_state) == sorted(ref)
    for k in ref:
        assert ck.model_state[k].dtype == np.float32
        np.testing.assert_array_equal(ck.model_state[k], ref[k])
    assert ck.config == CONFIG and ck.vocab == {"chars": "abcde"}
    assert ck.trainer_state == {"step": 7, "rng": {"state": 2 ** 100 + 7}}
    assert ck.optimizer_meta == {"name": "adam", "lr": 0.01, "betas": [0.9, 0.999]}
    np.testing.assert_array_equal(ck.optimizer_state["m.head.weight"], np.full((5, 4), 7.0))
    assert ck.optimizer_state["step"].dtype == np.int64 and int(ck.optimizer_state["step"]) == 7
    no_opt = load_checkpoint(d, load_optimizer=False)
    assert no_opt.optimizer_state is None and no_opt.optimizer_meta is None
    # convenience copies at the top level are byte-identical to the version's files
    for name in ("model.safetensors", "config.json", "vocab.json"):
        assert (d / name).read_bytes() == (path / name).read_bytes()
    assert (d / "LATEST").read_text().strip() == "ckpt-000001"
    assert json.loads((d / "config.json").read_text()) == CONFIG


def test_checkpoint_versions_rotate_and_flat_and_best(tmp_path):
    d = tmp_path / "run"
    for step in range(1, 5):
        _save(d, step)
    assert [p.name for p in list_versions(d)] == ["ckpt-000004", "ckpt-000003"]
    assert load_checkpoint(d).trainer_state["step"] == 4
    assert (d / "LATEST").read_text().strip() == "ckpt-000004"
    # best/ is a checkpoint directory of its own, ignored by the parent's version scan
    save_checkpoint(d / "best", model_state=_state(2), config=CONFIG, vocab={"chars": "abcde"})
    assert load_checkpoint(d).trainer_state["step"] == 4
    best = load_checkpoint(d / "best")
    np.testing.assert_array_equal(best.model_state["head.weight"], np.full((5, 4), 2.0))
    assert best.optimizer_state is None and best.trainer_state is None
    # a flat directory (someone sent model.safetensors + config.json) loads too
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("model.safetensors", "config.json", "vocab.json"):
        (flat / name).write_bytes((d / name).read_bytes())
    ck = load_checkpoint(flat)
    np.testing.assert_array_equal(ck.model_state["head.weight"], np.full((5, 4), 4.0))
    # a version directory loads on its own
    assert load_checkpoint(d / "ckpt-000003").trainer_state["step"] == 3


def test_vocab_removed_from_top_level_when_new_version_has_none(tmp_path):
    d = tmp_path / "run"
    _save(d, 1)
    save_checkpoint(d, model_state=_state(2), config=CONFIG)
    assert not (d / "vocab.json").exists() and load_checkpoint(d).vocab is None


def test_missing_directory_message(tmp_path):
    d = tmp_path / "nope"
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*rnnkit train --out"):
        load_checkpoint(d)
    d.mkdir()
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*rnnkit train --out"):
        load_checkpoint(d)


# --- simulated crashes


def test_leftover_tmp_dir_is_ignored_then_cleaned(tmp_path):
    d = tmp_path / "run"
    _save(d, 1)
    junk = d / ".tmp-ckpt-000002-deadbeef"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"\x00" * 5)   # killed mid-save
    assert load_checkpoint(d).trainer_state["step"] == 1
    _save(d, 2)
    assert not junk.exists()
    assert load_checkpoint(d).trainer_state["step"] == 2


def test_leftovers_in_best_are_cleaned_by_the_next_run_save(tmp_path):
    # A kill during the best/ copy leaves debris there; the next save of the run may come long
    # before best/ is written again (no better validation), and must clean it all the same.
    d = tmp_path / "run"
    _save(d, 1)
    _save(d / "best", 1)
    junk = d / "best" / ".tmp-ckpt-000002-deadbeef"
    junk.mkdir()
    (d / "best" / ".model.safetensors.tmp-0a1b").write_bytes(b"\x00")
    _save(d, 2)
    assert sorted(n for n in os.listdir(d / "best") if n.startswith(".")) == []
    assert load_checkpoint(d / "best").trainer_state["step"] == 1


@pytest.mark.parametrize("damage", ["delete manifest", "flip model byte", "truncate trainer",
                                    "delete config", "hostile manifest name"])
def test_damaged_newest_version_falls_back(tmp_path, damage):
    d = tmp_path / "run"
    _save(d, 1)
    newest = _save(d, 2)
    if damage == "delete manifest":
        (newest / "checkpoint.json").unlink()
    elif damage == "flip model byte":
        raw = bytearray((newest / "model.safetensors").read_bytes())
        raw[-1] ^= 0xFF
        (newest / "model.safetensors").write_bytes(bytes(raw))
    elif damage == "truncate trainer":
        p = newest / "trainer.json"
        p.write_bytes(p.read_bytes()[:5])
    elif damage == "delete config":
        (newest / "config.json").unlink()
    else:
        m = json.loads((newest / "checkpoint.json").read_text())
        m["files"]["../../../etc/passwd"] = {"size": 1, "sha256": "0" * 64}
        (newest / "checkpoint.json").write_text(json.dumps(m))
    with pytest.warns(UserWarning, match="ckpt-000002"):
        ck = load_checkpoint(d)
    assert ck.trainer_state["step"] == 1 and ck.path.name == "ckpt-000001"
    np.testing.assert_array_equal(ck.model_state["head.weight"], np.full((5, 4), 1.0))


def test_crash_before_commit_keeps_previous(tmp_path, monkeypatch):
    d = tmp_path / "run"
    _save(d, 1)
    real_rename = os.rename

    def killed(src, dst):
        if Path(src).name.startswith(".tmp-ckpt-"):
            raise KeyboardInterrupt  # stands in for a kill at the commit point
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        _save(d, 2)
    monkeypatch.undo()
    assert [p.name for p in list_versions(d)] == ["ckpt-000001"]
    assert load_checkpoint(d).trainer_state["step"] == 1


def test_every_version_damaged_is_an_error(tmp_path):
    d = tmp_path / "run"
    v = _save(d, 1)
    (v / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(d)


_KILL_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from rnnkit.checkpoint import (save_checkpoint, load_checkpoint, has_checkpoint,
                                   append_metrics, truncate_metrics)
    d = sys.argv[1]
    step = load_checkpoint(d).trainer_state["step"] if has_checkpoint(d) else 0
    truncate_metrics(d, step)
    cfg = {"model": "CharLM", "hidden_size": 64, "vocab_size": 100, "embedding_size": 64}
    print("ready", flush=True)
    while True:
        step += 1
        w = np.full((256, 256), step, np.float32)
        append_metrics(d, {"step": step, "val_loss": 1.0 / step})
        save_checkpoint(d, model_state={"head.weight": w, "rnn.weight_hh_l0": w[:64, :64]},
                        config=cfg, vocab={"n": step}, trainer_state={"step": step},
                        optimizer_state={"m": w.astype(np.float64)}, optimizer_meta={"step": step})
""")


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    d = tmp_path / "run"
    rng = np.random.default_rng(0)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    last = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(d)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        time.sleep(float(rng.uniform(0.05, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a clean kill never damages a committed version
            ck = load_checkpoint(d)
        step = ck.trainer_state["step"]
        assert step >= last  # resuming never goes backwards
        last = step
        # every file of the loaded version belongs to the same step
        np.testing.assert_array_equal(ck.model_state["head.weight"], np.full((256, 256), step))
        np.testing.assert_array_equal(ck.optimizer_state["m"], np.full((256, 256), step))
        assert ck.vocab == {"n": step} and ck.optimizer_meta == {"step": step}
        steps = [r["step"] for r in read_metrics(d)]  # at most one record past the checkpoint
        assert steps in (list(range(1, step + 1)), list(range(1, step + 2))), (step, steps)
        # leftovers of the killed save only (each save cleans its predecessors' debris)
        assert len([n for n in os.listdir(d) if n.startswith(".")]) <= 3, os.listdir(d)
    assert last >= 3


# --- hostile checkpoint contents


def _hostile_dir(tmp_path, config=None, model=None, vocab=None):
    d = tmp_path / "sent"
    d.mkdir()
    atomic_write_json(d / "config.json", CONFIG if config is None else config)
    save_safetensors(d / "model.safetensors", _state(1) if model is None else model)
    if vocab is not None:
        (d / "vocab.json").write_text(vocab)
    return d


@pytest.mark.parametrize("kw, bad_file", [
    ({"config": {"model": "CharLM", "hidden_size": 10 ** 9}}, "config.json"),
    ({"config": {"model": "CharLM", "hidden_size": 4096, "num_layers": 64,
                 "embedding_size": 4096, "vocab_size": 100}}, "config.json"),
    ({"config": {"hidden_size": 4}}, "config.json"),
    ({"config": ["CharLM"]}, "config.json"),
    ({"config": {"model": "CharLM", "hidden_size": "4"}}, "config.json"),
    ({"model": {"head.weight": np.zeros(3, np.int32)}}, "model.safetensors"),
    ({"vocab": "[1, 2]"}, "vocab.json"),
    ({"vocab": "{bad"}, "vocab.json"),
])
def test_hostile_checkpoint_contents(tmp_path, kw, bad_file):
    # through the model loader: the storage layer checks the files, the config class the values
    d = _hostile_dir(tmp_path, **kw)
    err = _assert_clean_failure(lambda: load_model(d, need_charlm=False), d / bad_file)
    assert isinstance(err, CheckpointError)


# Model configs are validated by their config classes (rnnkit.nn.models), before anything is
# allocated: field bounds, and the total size computed from the sizes alone.
_LM = {"model": "CharLM", "vocab_size": 30, "hidden_size": 8}


@pytest.mark.parametrize("config, msg", [
    ({**_LM, "hidden_size": 65537}, "hidden_size <= 65536"),
    ({**_LM, "num_layers": 65}, "num_layers <= 64"),
    ({**_LM, "vocab_size": 10_000_001}, "vocab_size <= 10000000"),
    ({**_LM, "embedding_size": -1}, "embedding_size >= 0"),
    ({**_LM, "hidden_size": 0}, "hidden_size >= 1"),
    ({"model": "SequenceRegressor", "input_size": 2.5}, "input_size to be an integer"),
    ({"model": "SequenceRegressor", "output_size": True}, "output_size to be an integer"),
    # 65536 hidden, 4 layers, LSTM: 4*4*H*(2H+2) ~ 1.4e11 params, far over 4 GiB
    ({"model": "SequenceRegressor", "hidden_size": 65536, "num_layers": 4, "input_size": 8}, "GiB"),
    # inside every field bound, but ~3.6e9 parameters (14 GiB)
    ({**_LM, "hidden_size": 15000, "embedding_size": 15000}, "GiB"),
])
def test_config_bounds_before_allocation(config, msg):
    with pytest.raises(ConfigError, match=msg):
        config_from_dict(config)


def test_config_accepts_zero_for_unused_inputs():
    # one-hot CharLM and the two input kinds of a classifier use 0 for "not used"
    for cfg in ({"model": "CharLM", "vocab_size": 30, "embedding_size": 0, "hidden_size": 8},
                {"model": "SequenceClassifier", "vocab_size": 0, "input_size": 3, "hidden_size": 8},
                {"model": "SequenceClassifier", "vocab_size": 30, "input_size": 0, "hidden_size": 8}):
        assert config_from_dict(cfg).to_dict()["model"] == cfg["model"]


@pytest.mark.parametrize("config", [
    {"model": "CharLM", "cell": "gru", "hidden_size": 12, "num_layers": 3, "embedding_size": 0,
     "vocab_size": 7},
    {"model": "SequenceClassifier", "cell": "lstm", "vocab_size": 9, "hidden_size": 5,
     "num_layers": 2, "bidirectional": True},
    {"model": "SequenceRegressor", "cell": "rnn_relu", "input_size": 3, "output_size": 2,
     "hidden_size": 4, "bidirectional": True},
])
def test_config_shapes_equal_the_built_model(config):
    # the shapes computed from the sizes alone are exactly those of the built model
    cfg = config_from_dict(config)
    model = model_from_config(config)
    assert cfg.parameter_shapes() == {k: v.shape for k, v in model.parameters().items()}
    assert cfg.num_parameters() == model.num_parameters()


def test_config_check_shapes_names_the_mismatch():
    cfg = config_from_dict({"model": "CharLM", "vocab_size": 5, "hidden_size": 3, "num_layers": 1})
    shapes = cfg.parameter_shapes()
    cfg.check_shapes(shapes)
    with pytest.raises(ShapeError, match=r"head.weight of shape \(5, 3\).*got \(5, 4\)"):
        cfg.check_shapes({**shapes, "head.weight": (5, 4)})
    with pytest.raises(ParameterKeyError, match="missing head.bias"):
        cfg.check_shapes({k: v for k, v in shapes.items() if k != "head.bias"})
    many = {**shapes, **{f"extra.{i}": (1,) for i in range(100_000)}}
    with pytest.raises(ParameterKeyError) as e:
        cfg.check_shapes(many)
    assert len(str(e.value)) < 500 and "100000 in all" in str(e.value)     # a capped list


def test_save_checkpoint_refuses_bad_inputs(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(CheckpointError, match="float32 or float64"):
        save_checkpoint(d, model_state={"w": np.zeros(2, np.int64)}, config=CONFIG)
    with pytest.raises(CheckpointError, match='"model"'):
        save_checkpoint(d, model_state=_state(), config={"hidden_size": 4})
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(d, model_state=_state(), config=CONFIG,
                        trainer_state={"best": float("inf")})
    assert not has_checkpoint(d)


def test_metrics(tmp_path):
    d = tmp_path / "run"
    assert read_metrics(d) == []
    append_metrics(d, {"step": 10, "val_loss": 2.0})
    append_metrics(d, {"step": 20, "val_loss": 1.5})
    with open(d / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 30, "val_')
    assert read_metrics(d) == [{"step": 10, "val_loss": 2.0}, {"step": 20, "val_loss": 1.5}]
    append_metrics(d, {"step": 30, "val_loss": 1.2})
    append_metrics(d, {"note": "no step"})
    assert truncate_metrics(d, 20) == 1   # resumed from the step-20 checkpoint
    assert (d / "metrics.jsonl").read_text().splitlines() == [
        '{"step": 10, "val_loss": 2.0}', '{"step": 20, "val_loss": 1.5}', '{"note": "no step"}']


# ---------------------------------------------------------------- run directories

def test_clear_run_removes_everything_rnnkit_wrote_and_nothing_else(tmp_path):
    from rnnkit.checkpoint import PICTURES, clear_run
    d = tmp_path / "run"
    for step in (1, 2, 3):
        _save(d, step)
    _save(d / "best", 2)
    append_metrics(d, {"step": 3, "val_loss": 1.0})
    for name in PICTURES:
        (d / name).write_bytes(b"png")
    (d / ".tmp-ckpt-000009-abc").mkdir()                     # a killed save's leftovers
    (d / "notes.txt").write_text("mine")
    (d / "model.onnx").write_bytes(b"user export")
    removed = clear_run(d)
    assert {"ckpt-000002", "ckpt-000003", "best/", "metrics.jsonl", "LATEST"} <= set(removed)
    assert sorted(os.listdir(d)) == ["model.onnx", "notes.txt"]
    assert not has_checkpoint(d) and read_metrics(d) == []
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(d)
    assert clear_run(d) == []                                 # idempotent
    flat = tmp_path / "flat"                                  # a flat checkpoint someone sent
    _save(flat, 1)
    v = list_versions(flat)[0]
    for f in os.listdir(v):
        os.replace(v / f, flat / f)
    v.rmdir()
    assert has_checkpoint(flat)
    clear_run(flat)
    assert not has_checkpoint(flat) and os.listdir(flat) == []


def test_check_config_sees_the_header_before_any_data(tmp_path, monkeypatch):
    """load_checkpoint(check_config=...) hands over the header (names, dtypes, shapes) before a
    single weight is read; a refusal there is reported, not skipped for an older version."""
    import rnnkit.checkpoint as ck_mod
    d = tmp_path / "run"
    _save(d, 1)
    _save(d, 2)
    seen = []

    def check(config, specs, version):
        seen.append((config["model"], {k: s for k, (_, s) in specs.items()}, version.name))
        raise CheckpointError(f"{version}: refused by the check")

    def no_data(*a, **k):
        raise AssertionError("tensor data was read before the check")
    monkeypatch.setattr(ck_mod, "load_safetensors", no_data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no fallback warning either
        with pytest.raises(CheckpointError, match="ckpt-000002: refused by the check"):
            load_checkpoint(d, check_config=check)
    assert seen == [("CharLM", {k: v.shape for k, v in _state().items()}, "ckpt-000002")]


def test_check_not_inside_run(tmp_path):
    from rnnkit.checkpoint import check_not_inside_run
    d = tmp_path / "run"
    _save(d, 1)
    _save(d / "best", 1)
    for bad in (d / "ckpt-000001" / "x.onnx", d / "ckpt-000001", d / "best" / "m.onnx",
                d / "best" / "ckpt-000001" / "y", d / "config.json", d / "model.safetensors",
                d / "LATEST", d / "metrics.jsonl"):
        with pytest.raises(ConfigError, match="--onnx"):
            check_not_inside_run(bad, "--onnx")
    for ok in (d / "model.onnx", d / "pics", d, tmp_path / "elsewhere" / "config.json",
               tmp_path / "best" / "m.onnx"):            # a directory named best, not a run's
        check_not_inside_run(ok, "--onnx")


def test_fallback_warning_lists_at_most_three_problems(tmp_path):
    d = tmp_path / "run"
    for step in range(1, 7):
        _save(d, step, keep=10)
    for v in list_versions(d)[:5]:
        (v / "model.safetensors").write_bytes(b"damaged")
    with pytest.warns(UserWarning) as rec:
        ck = load_checkpoint(d)
    assert ck.trainer_state["step"] == 1
    msg = str(rec[0].message)
    assert "skipped 5" in msg and msg.count("does not match the manifest") == 3
    assert "(5 in all)" in msg and rec[0].filename == __file__      # points at the caller


@pytest.mark.parametrize("kind", ["CharLM", "Seq2Seq"])
def test_a_model_load_validates_its_config_and_compares_shapes_once(tmp_path, monkeypatch, kind):
    """rnnkit.load: config.json is validated by its class once and compared with the
    safetensors header once, before any weight is read; the weights then go into the model
    without a second round of the same checks (the constructor sees a config that already
    passed with these values)."""
    from rnnkit import nn
    from rnnkit.checkpoint import save_checkpoint as save
    from rnnkit.load import load_checked
    if kind == "CharLM":
        cls = nn.CharLMConfig
        model = nn.CharLM(cls(vocab_size=4, hidden_size=3, num_layers=1, embedding_size=2), seed=0)
    else:
        cls = nn.Seq2SeqConfig
        model = nn.Seq2Seq(cls(src_vocab_size=4, tgt_vocab_size=5, hidden_size=3, embedding_size=2), seed=0)
    save(tmp_path / "run", model_state=model.state_dict(), config=model.config.to_dict())
    calls = {"validate": 0, "check_shapes": 0}
    validate, check_shapes = cls.validate, cls.check_shapes

    def counted(name, fn):
        def wrapper(self, *a):
            calls[name] += 1
            return fn(self, *a)
        return wrapper
    monkeypatch.setattr(cls, "validate", counted("validate", validate))
    monkeypatch.setattr(cls, "check_shapes", counted("check_shapes", check_shapes))
    calls["load_state_dict"] = 0          # its own comparison of names and shapes is not made
    monkeypatch.setattr(nn.Module, "load_state_dict", counted("load_state_dict", nn.Module.load_state_dict))
    _, loaded, _ = load_checked(tmp_path / "run")
    assert calls == {"validate": 1, "check_shapes": 1, "load_state_dict": 0}, calls
    assert all(np.array_equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_config_changed_after_it_passed_is_validated_again():
    from rnnkit import nn
    cfg = nn.CharLMConfig(vocab_size=4, hidden_size=3, num_layers=1).checked()
    nn.CharLM(cfg, seed=0)
    cfg.hidden_size = 0
    with pytest.raises(ConfigError, match="hidden_size >= 1"):
        nn.CharLM(cfg, seed=0)


def test_checkpoint_info_counts_what_the_files_hold(tmp_path):
    """rnnkit.load.checkpoint_info (what `rnnkit info` prints): the parameter count of the
    weights, the vocabulary's size, and the best loss also in bits (nats / ln 2)."""
    import math

    from rnnkit import nn
    from rnnkit.checkpoint import save_checkpoint as save
    from rnnkit.data import BOUNDARY, Vocab
    from rnnkit.load import checkpoint_info
    vocab = Vocab.build(["abc", "bca"], specials=(BOUNDARY,))
    model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=3, num_layers=1, embedding_size=2), seed=0)
    save(tmp_path / "run", model_state=model.state_dict(), config=model.config.to_dict(),
         vocab=vocab.to_json(), trainer_state={"step": 7, "best_val_loss": 1.5, "best_step": 5,
                                               "extra": {"cli": {"mode": "lines"}}})
    info = checkpoint_info(tmp_path / "run")
    assert info["parameters"] == sum(v.size for v in model.state_dict().values())
    assert (info["vocab_size"], info["steps_trained"], info["best_step"], info["mode"]) == (len(vocab), 7, 5, "lines")
    assert info["best_val_bits_per_char"] == pytest.approx(1.5 / math.log(2))
