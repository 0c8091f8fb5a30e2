"""Attacks on the trust boundary: hostile checkpoint directories, the no-pickle rule, and
bounded-memory streaming.

* Hostile directories: a real checkpoint written by ``rnnkit train`` is copied and damaged in
  one way per case (tensors that disagree with ``config.json``, missing / extra tensors,
  integer weights, config values of the wrong type or absurd size, a vocabulary that
  disagrees with the embedding, a damaged ``trainer.json`` or optimizer state). Every case is
  sent to every loader that must refuse it - ``rnnkit sample / info / eval`` (through the
  real CLI entry point, in-process) and ``Trainer.resume()`` - both as a "flat" directory
  someone sent you and as a version directory whose manifest the attacker re-hashed. Each must
  give an :class:`RnnkitError` naming the file, and the CLI exit 1 with one stderr line.
  The number of hostile directories tried is printed for ``docs/reliability.md``.
* No pickle: the package source never imports pickle or enables ``allow_pickle``.
* Streaming: forward-only inference over 100,000 steps in chunks keeps a tracemalloc peak far
  below what a backward cache would need, and equal to the peak of 10,000 steps.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tokenize
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import main
from rnnkit.data import MAX_TEXT_BYTES, StreamDataset, StreamSource, Vocab, detect_mode, load_text_data, read_text
from rnnkit.errors import CheckpointError, ConfigError, DataError, DTypeError, NoForwardError, NonFiniteError
from rnnkit.io import load_safetensors, save_safetensors
from rnnkit.train import Checkpointing, TrainConfig, Trainer

from counts import report
from needs import require

REPO = Path(__file__).resolve().parents[1]
TEXT = ("the quick brown fox jumps over the lazy dog; pack my box with five dozen "
        "liquor jugs.\n") * 12
COUNT = {"cases": 0, "directories": 0, "loads": 0}
UNEXPECTED = re.compile(r"rnnkit: error: unexpected \w+:")     # the CLI's catch-all: a bug


@pytest.fixture(scope="module", autouse=True)
def _fast():
    """Durability has its own tests (test_checkpoint.py, test_kill.py): no fsync here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        mp.setattr("rnnkit.plot_hook.maybe_plot", lambda directory: None)
        yield


def cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A genuine stream-mode run directory written by `rnnkit train` (2 versions + best/)."""
    root = tmp_path_factory.mktemp("trained")
    text = root / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = root / "run"
    code = main(["train", str(text), "--out", str(out), "--steps", "4", "--eval-every", "2",
                 "--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4",
                 "--seq-len", "8", "--batch-size", "4", "--mode", "stream", "--quiet",
                 "--num-samples", "0"])
    assert code == 0
    return out, text


def _newest(run):
    return sorted(p for p in run.iterdir() if p.name.startswith("ckpt-"))[-1]


# ---------------------------------------------------------------- mutations of one version dir

def _edit_json(name, fn):
    def mutate(d):
        p = d / name
        obj = json.loads(p.read_text())
        res = fn(obj)
        p.write_text(json.dumps(obj if res is None else res))
    return mutate


def _edit_tensors(name, fn):
    def mutate(d):
        p = d / name
        t = load_safetensors(p)
        fn(t)
        save_safetensors(p, t)
    return mutate


def _write(name, data):
    def mutate(d):
        (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return mutate


def _remove(name):
    return lambda d: (d / name).unlink()


def _setitem(key, value):
    def f(obj):
        obj[key] = value
    return f


def _delitem(key):
    return lambda obj: obj.pop(key)


def _retype(key, dtype):
    def f(t):
        t[key] = t[key].astype(dtype)
    return f


def _nan(key):
    def f(t):
        t[key] = t[key].copy()
        t[key].flat[0] = np.nan
    return f


def _opt_meta(fn):
    """Edit the optimizer metadata JSON stored in optimizer.safetensors' header."""
    def mutate(d):
        from rnnkit.io import load_safetensors_with_metadata
        p = d / "optimizer.safetensors"
        t, meta = load_safetensors_with_metadata(p)
        m = json.loads(meta["rnnkit.optimizer_meta"])
        fn(m)
        meta["rnnkit.optimizer_meta"] = json.dumps(m)
        save_safetensors(p, t, metadata=meta)
    return mutate


M, C, V, T, O, A = ("model.safetensors", "config.json", "vocab.json", "trainer.json",
                    "optimizer.safetensors", "trainer.safetensors")

# name -> (mutation, file the error must name, which loaders must refuse it)
# loaders: "sample", "info", "eval" (the CLI commands) and "resume" (Trainer.resume())
ALL, RESUME = ("sample", "info", "eval", "resume"), ("resume",)
CASES = {
    # model.safetensors vs config.json
    "weight shape disagrees with config": (_edit_tensors(M, lambda t: t.update(
        {"head.weight": np.zeros((t["head.weight"].shape[0], 9), np.float32)})), M, ALL),
    "transposed weight": (_edit_tensors(M, lambda t: t.update(
        {"rnn.weight_hh_l0": np.ascontiguousarray(t["rnn.weight_hh_l0"].T)})), M, ALL),
    "missing tensor": (_edit_tensors(M, lambda t: t.pop("head.bias")), M, ALL),
    "extra tensor": (_edit_tensors(M, lambda t: t.update({"rnn.weight_ih_l1": np.zeros((32, 8), np.float32)})), M, ALL),
    "renamed tensor": (_edit_tensors(M, lambda t: t.update({"head.w": t.pop("head.weight")})), M, ALL),
    "int32 weights": (_edit_tensors(M, _retype("head.weight", np.int32)), M, ALL),
    "int64 weights": (_edit_tensors(M, _retype("rnn.weight_ih_l0", np.int64)), M, ALL),
    "float16 weights": (_edit_tensors(M, _retype("embedding.weight", np.float16)), M, ALL),
    "bool weights": (_edit_tensors(M, _retype("head.bias", np.bool_)), M, ALL),
    "NaN weight": (_edit_tensors(M, _nan("rnn.weight_hh_l0")), M, ALL),
    "no tensors at all": (lambda d: save_safetensors(d / M, {}), M, ALL),
    "truncated model file": (lambda d: (d / M).write_bytes((d / M).read_bytes()[:-7]), M, ALL),
    "model file missing": (_remove(M), M, ALL),
    # config.json
    "hidden_size 10**9": (_edit_json(C, _setitem("hidden_size", 10 ** 9)), C, ALL),
    "num_layers 10**6": (_edit_json(C, _setitem("num_layers", 10 ** 6)), C, ALL),
    "vocab_size 10**7 x hidden 65536": (_edit_json(C, lambda c: c.update(vocab_size=10 ** 7, hidden_size=65536)),
                                        C, ALL),
    "hidden_size negative": (_edit_json(C, _setitem("hidden_size", -8)), C, ALL),
    "hidden_size as string": (_edit_json(C, _setitem("hidden_size", "8")), C, ALL),
    "hidden_size as float": (_edit_json(C, _setitem("hidden_size", 8.0)), C, ALL),
    "hidden_size as bool": (_edit_json(C, _setitem("hidden_size", True)), C, ALL),
    "hidden_size null": (_edit_json(C, _setitem("hidden_size", None)), C, ALL),
    "hidden_size changed (weights for 8)": (_edit_json(C, _setitem("hidden_size", 16)), M, ALL),
    "dropout as string": (_edit_json(C, _setitem("dropout", "0.5")), C, ALL),
    "dropout 1.5": (_edit_json(C, _setitem("dropout", 1.5)), C, ALL),
    "unknown cell": (_edit_json(C, _setitem("cell", "transformer")), C, ALL),
    "dtype float16": (_edit_json(C, _setitem("dtype", "float16")), C, ALL),
    "unknown key": (_edit_json(C, _setitem("exec", "import os")), C, ALL),
    "model GPT": (_edit_json(C, _setitem("model", "GPT")), C, ALL),
    "model missing": (_edit_json(C, _delitem("model")), C, ALL),
    "config is a list": (_write(C, "[1, 2, 3]"), C, ALL),
    "config not JSON": (_write(C, "{'model': 'CharLM'}"), C, ALL),
    "config with NaN": (_write(C, '{"model": "CharLM", "dropout": NaN}'), C, ALL),
    "config 11 MB": (_write(C, '{"model": "CharLM", "pad": "' + "x" * (11 * 2 ** 20) + '"}'), C, ALL),
    "config deeply nested": (_write(C, "[" * 100_000 + "]" * 100_000), C, ALL),
    "config missing": (_remove(C), C, ALL),
    # vocab.json vs the embedding
    "vocab one char more": (_edit_json(V, lambda v: v["chars"].append("\u2603")), V, ALL),
    "vocab one char less": (_edit_json(V, lambda v: v["chars"].pop()), V, ALL),
    "vocab wrong format tag": (_edit_json(V, _setitem("format", "pickle")), V, ALL),
    "vocab chars not strings": (_edit_json(V, lambda v: v.update(chars=list(range(len(v["chars"]))))), V, ALL),
    "vocab multi-char entries": (_edit_json(V, lambda v: v["chars"].__setitem__(0, "ab")), V, ALL),
    "vocab duplicate chars": (_edit_json(V, lambda v: v["chars"].__setitem__(1, v["chars"][0])), V, ALL),
    "vocab is a list": (_write(V, '["a", "b"]'), V, ALL),
    "vocab not JSON": (_write(V, "\x00\x01garbage"), V, ALL),
    "vocab missing": (_remove(V), V, ("sample", "eval", "resume")),   # info works without it
    # trainer.json (resume; info shows some of it)
    "trainer step as string": (_edit_json(T, _setitem("step", "four")), T, RESUME),
    "trainer step negative": (_edit_json(T, _setitem("step", -3)), T, RESUME),
    "trainer step float": (_edit_json(T, _setitem("step", 2.5)), T, RESUME),
    "trainer step missing": (_edit_json(T, _delitem("step")), T, RESUME),
    "trainer history not a list": (_edit_json(T, _setitem("history", 5)), T, RESUME),
    "trainer best_val_loss string": (_edit_json(T, _setitem("best_val_loss", "low")), T, RESUME),
    "trainer rng_states garbage": (_edit_json(T, _setitem("rng_states", {"rnn": {"state": 1}})), T, RESUME),
    "trainer extra not an object": (_edit_json(T, _setitem("extra", [1])), T, RESUME),
    "trainer is a list": (_write(T, "[]"), T, RESUME),
    "trainer missing": (_remove(T), T, RESUME),
    # optimizer.safetensors
    "optimizer state wrong shape": (_edit_tensors(O, lambda t: t.update(
        {"exp_avg/head.weight": np.zeros((3, 3), np.float32)})), O, RESUME),
    "optimizer state missing array": (_edit_tensors(O, lambda t: t.pop("exp_avg_sq/head.bias")), O, RESUME),
    "optimizer state extra array": (_edit_tensors(O, lambda t: t.update({"exp_avg/x": np.zeros(1, np.float32)})),
                                    O, RESUME),
    "optimizer state int": (_edit_tensors(O, _retype("exp_avg/head.bias", np.int32)), O, RESUME),
    "optimizer state NaN": (_edit_tensors(O, _nan("exp_avg/rnn.weight_hh_l0")), O, RESUME),
    "optimizer meta other class": (_opt_meta(_setitem("class", "SGD")), O, RESUME),
    "optimizer meta step string": (_opt_meta(_setitem("step", "3")), O, RESUME),
    "optimizer meta shapes disagree": (_opt_meta(lambda m: m["params"].update({"head.bias": [99]})), O, RESUME),
    "optimizer file missing": (_remove(O), O, RESUME),
    # trainer.safetensors: the carried TBPTT state of a stream run
    "carry wrong shape": (_edit_tensors(A, lambda t: t.update({"carry.h": np.zeros((1, 3, 8), np.float32)})),
                          A, RESUME),
    "carry NaN": (_edit_tensors(A, _nan("carry.c")), A, RESUME),
    "carry c missing (LSTM)": (_edit_tensors(A, lambda t: t.pop("carry.c")), A, RESUME),
    "carry int": (_edit_tensors(A, _retype("carry.h", np.int32)), A, RESUME),
    # the edges: file, text and output boundaries
    "float64 weights beyond float32 (config float32)": (_edit_tensors(M, lambda t: t.update(
        {"head.bias": np.full(t["head.bias"].shape, 1e300)})), M, ALL),
    "tensor far larger than the config says (header-first)": (_edit_tensors(M, lambda t: t.update(
        {"head.weight": np.zeros((t["head.weight"].shape[0], 50_000), np.float32)})), M, ALL),
    "30,000 unexpected tensors": (_edit_tensors(M, lambda t: t.update(
        {f"junk.{i}": np.zeros(1, np.float32) for i in range(30_000)})), M, ALL),
    "vocab gains the boundary token (stream run)": (_edit_json(V, lambda v: v.update(
        specials=["<eos>"], chars=v["chars"][:-1])), V, ALL),
    "trainer RNG state out of range": (_edit_json(T, lambda tj: tj["rng_states"]["rnn"][
        "state"].update(state=2 ** 200)), T, RESUME),
    "optimizer state with 10,000 extra arrays": (_edit_tensors(O, lambda t: t.update(
        {f"exp_avg/junk.{i}": np.zeros(1, np.float32) for i in range(10_000)})), O, RESUME),
}


def _rehash(d):
    """What an attacker can do: recompute the manifest so that it verifies."""
    m = json.loads((d / "checkpoint.json").read_text())
    files = {}
    for name in m["files"]:
        if (d / name).exists():
            data = (d / name).read_bytes()
            files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    m["files"] = files
    (d / "checkpoint.json").write_text(json.dumps(m))


def _hostile(trained, tmp_path, case, variant):
    run, _ = trained
    d = tmp_path / f"hostile-{variant}"
    shutil.copytree(_newest(run), d)
    if variant == "flat":
        (d / "checkpoint.json").unlink()
    CASES[case][0](d)
    if variant == "rehashed":
        _rehash(d)
    return d


def _resume_trainer(d, text):
    """Trainer.resume() for the same model and data as the `trained` run."""
    vocab = Vocab.build(text.read_text())
    ids = vocab.encode(text.read_text())
    cut = len(ids) - round(len(ids) * 0.1)
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell="lstm", hidden_size=8, num_layers=1,
                          embedding_size=4, dropout=0.2,     # the CLI's default dropout,
                          init="orthogonal", forget_bias=1.0)    # and initialisation
    model = nn.CharLM(cfg, seed=0)
    src = StreamSource(StreamDataset(ids[:cut], 8, 4))
    return Trainer(model, src, None, TrainConfig(steps=6, eval_every=2, progress=False,
                                                 lr=3e-3, clip=5.0),
                   checkpoint=Checkpointing(d, vocab=vocab.to_json()), log=lambda m: None).resume()


@pytest.mark.slow
def test_unchanged_copies_load(trained, tmp_path, capsys):
    """The baseline: both variants of an unmodified copy pass every loader."""
    run, text = trained
    for variant in ("flat", "rehashed"):
        d = tmp_path / variant
        shutil.copytree(_newest(run), d)
        if variant == "flat":
            (d / "checkpoint.json").unlink()
        for argv in (("sample", d, "--length", "5"), ("info", d), ("eval", d, text)):
            code, out, err = cli(capsys, *argv)
            assert code == 0, err
        tr = _resume_trainer(d, text)
        assert tr.step == 4
        assert tr.fit().steps == 6


@pytest.mark.parametrize("variant", ["flat", "rehashed"])
@pytest.mark.parametrize("case", [      # the cases with 10,000s of entries take seconds: CI
    pytest.param(c, marks=pytest.mark.slow if re.search(r"\d,000", c) else ()) for c in CASES])
def test_hostile_checkpoint_directory(trained, tmp_path, capsys, case, variant):
    _, text = trained
    _, bad_file, loaders = CASES[case]
    d = _hostile(trained, tmp_path, case, variant)
    COUNT["directories"] += 1
    COUNT["cases"] += variant == "flat"
    commands = [c for c in [("sample", d, "--length", "5"), ("info", d), ("eval", d, text)]
                if c[0] in loaders]
    for argv in commands:
        COUNT["loads"] += 1
        code, out, err = cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 1, (argv[0], code, err)
        assert len(lines) == 1 and lines[0].startswith("rnnkit: error:"), err
        assert "Traceback" not in err and not UNEXPECTED.match(lines[0]), err
        assert bad_file in err, (argv[0], err)
        assert len(lines[0]) < 2000, (argv[0], len(lines[0]))          # lists are capped
    # Trainer.resume(): refuses with a CheckpointError/ConfigError naming the file
    COUNT["loads"] += 1
    with pytest.raises((CheckpointError, ConfigError)) as info:
        _resume_trainer(d, text)
    assert bad_file in str(info.value) or str(d) in str(info.value), info.value
    assert len(str(info.value)) < 2000, len(str(info.value))            # lists are capped
    if loaders == RESUME:
        # damage to training state never blocks using the model
        code, out, err = cli(capsys, "sample", d, "--length", "5")
        COUNT["loads"] += 1
        assert code == 0 or (code == 1 and bad_file in err and not UNEXPECTED.match(err)), err


def test_hostile_best_dir_is_refused_not_skipped(trained, tmp_path, capsys):
    """`rnnkit sample DIR` reads DIR/best first; damage there is reported, naming best/."""
    run, _ = trained
    d = tmp_path / "run"
    shutil.copytree(run, d)
    best = _newest(d / "best")
    CASES["weight shape disagrees with config"][0](best)
    _rehash(best)
    code, out, err = cli(capsys, "sample", d, "--length", "5")
    assert code == 1 and "best" in err and M in err and len(err.strip().splitlines()) == 1, err
    code, out, err = cli(capsys, "sample", d, "--length", "5", "--latest")
    assert code == 0, err


def test_cli_resume_from_hostile_saved_options(trained, tmp_path, capsys):
    """`rnnkit train --resume` reads the command-line options saved in trainer.json."""
    run, _ = trained
    for key, value in [("hidden_size", "8"), ("seq_len", -1), ("lr", "fast"), ("bogus", 1),
                       ("file", 42)]:
        d = tmp_path / f"run-{key}"
        shutil.copytree(run, d)
        for v in [p for p in d.iterdir() if p.name.startswith("ckpt-")]:
            tj = json.loads((v / T).read_text())
            tj["extra"]["cli"][key] = value
            (v / T).write_text(json.dumps(tj))
            _rehash(v)
        code, out, err = cli(capsys, "train", "--resume", d, "--steps", "6", "--quiet")
        assert code == 1, err
        assert len(err.strip().splitlines()) == 1 and not UNEXPECTED.match(err), err
        assert T in err or key in err, err


def _hostile_counts():
    """Figures for docs/reliability.md: hostile directories tried here, plus the hostile
    safetensors files of test_checkpoint.py (its HOSTILE table)."""
    if not COUNT["directories"]:
        return None
    import importlib.util
    spec = importlib.util.spec_from_file_location("_tc", Path(__file__).with_name("test_checkpoint.py"))
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    return (f"{COUNT['cases']} cases x 2 variants = {COUNT['directories']} directories, "
            f"{COUNT['loads']} refused loads; test_checkpoint.py HOSTILE safetensors files: "
            f"{len(tc.HOSTILE)}")


report("hostile checkpoint directories", _hostile_counts)


# ---------------------------------------------------------------- no pickle anywhere

def _code_tokens(path):
    """Names and strings of a Python file, comments excluded."""
    toks = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [(t.type, t.string, t.start[0]) for t in toks if t.type in (tokenize.NAME, tokenize.STRING, tokenize.OP)]


#: The one module that executes code on purpose: `rnnkit check` runs the learner's own
#: notebook functions, in a child process (never data read from a file).
RUNS_LEARNER_CODE = {"check/sandbox.py"}


def test_no_pickle_in_the_package():
    files = sorted((REPO / "rnnkit").rglob("*.py"))
    assert len(files) > 15
    bad = []
    for f in files:
        src = f.read_text(encoding="utf-8")
        toks = _code_tokens(f)
        names = [s for t, s, _ in toks if t == tokenize.NAME]
        for forbidden in ("pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"):
            if forbidden in names:
                bad.append(f"{f.name}: uses {forbidden}")
        if "allow_pickle" in names:
            for m in re.finditer(r"allow_pickle\s*=\s*(\w+)", src):
                if m.group(1) != "False":
                    bad.append(f"{f.name}: allow_pickle={m.group(1)}")
        for i, (t, s, line) in enumerate(toks):
            # torch.load / np.load without allow_pickle=False / eval / exec of data
            if s == "load" and i >= 2 and toks[i - 1][1] == "." and toks[i - 2][1] in ("torch", "np", "numpy"):
                call = src.splitlines()[line - 1]
                if toks[i - 2][1] == "torch" or "allow_pickle=False" not in call:
                    bad.append(f"{f.name}:{line}: {call.strip()}")
            if t == tokenize.NAME and s in ("eval", "exec") and i + 1 < len(toks) and toks[i + 1][1] == "(" \
                    and (i == 0 or toks[i - 1][1] not in (".", "def")) \
                    and f.relative_to(REPO / "rnnkit").as_posix() not in RUNS_LEARNER_CODE:
                bad.append(f"{f.name}:{line}: {s}(")
    assert not bad, bad


def test_no_pickle_check_catches_a_violation(tmp_path, monkeypatch):
    """The scanner itself can fail: a planted violation is found."""
    pkg = tmp_path / "rnnkit"
    shutil.copytree(REPO / "rnnkit", pkg, ignore=shutil.ignore_patterns("__pycache__", "data"))
    (pkg / "evil.py").write_text("import numpy as np\nx = np.load('f.npy', allow_pickle=True)\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    with pytest.raises(AssertionError, match="allow_pickle"):
        test_no_pickle_in_the_package()


# ---------------------------------------------------------------- bounded-memory streaming

def _stream_peak(layer, steps, chunk=1024, D=16):
    """tracemalloc peak (bytes) of a forward-only pass over ``steps`` steps fed in chunks with
    the state carried, as `rnnkit eval` does."""
    x = np.random.default_rng(0).standard_normal((chunk, 1, D)).astype(np.float32)
    state = None
    tracemalloc.start()
    try:
        with rnnkit.no_grad():
            for _ in range(steps // chunk):
                out, state = layer(x, state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out, state


@pytest.mark.slow
def test_stream_100k_steps_in_bounded_memory():
    H, D = 32, 16
    lstm = nn.LSTM(D, H, seed=0)
    peak_10k, _, _ = _stream_peak(lstm, 10 * 1024)
    peak_100k, out, (h, c) = _stream_peak(lstm, 100 * 1024)
    # A backward cache of 100k steps needs at least the gates (T, 4H) + states 3 x (T, H)
    # in float32: 102,400 * 7 * 32 * 4 bytes = 91.75 MB.
    cache_bytes = 100 * 1024 * 7 * H * 4
    assert peak_100k < 2 * 2 ** 20, peak_100k                    # < 2 MB
    assert peak_100k < cache_bytes / 40
    assert peak_100k <= 1.25 * peak_10k + 64 * 1024, (peak_10k, peak_100k)   # flat in T
    assert lstm._cache is None
    assert np.isfinite(out).all() and np.isfinite(h).all() and np.isfinite(c).all()


@pytest.mark.slow
def test_grad_mode_keeps_a_cache_that_grows_with_T():
    """Control for the test above: with gradients on, the peak grows ~linearly with T, so the
    flat peak of no_grad() is a property of streaming and not of the measurement."""
    H, D = 32, 16
    lstm = nn.LSTM(D, H, seed=0)
    x = np.random.default_rng(0).standard_normal((2048, 1, D)).astype(np.float32)
    peaks = []
    for T in (1024, 2048):
        tracemalloc.start()
        try:
            lstm(x[:T])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            lstm._cache = None
        peaks.append(peak)
    assert peaks[1] > 1.7 * peaks[0], peaks
    assert peaks[1] > 2048 * 7 * H * 4, peaks       # at least the cache formula


# ================================================================ the edges
# Text files, lines-mode memory, header-first loading, the divergence guard end to end,
# float64 values beyond float32, the Python API's errors and hostile ONNX files.

NAMES13 = "\n".join(f"{a}{b}" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal",
                                        "ida", "jon") for b in ("a", "ie", "o", "y", "elle", "ric")) + "\n"


def _peak(fn):
    """(result, tracemalloc peak in bytes) of fn()."""
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _quiet_cli(argv):
    """main(argv) with stdout/stderr discarded (captured output would count as memory)."""
    import contextlib
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null):
        return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def lines_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lines13")
    f = root / "names.txt"
    f.write_text(NAMES13)
    out = root / "run"
    assert main(["train", str(f), "--out", str(out), "--steps", "6", "--eval-every", "3",
                 "--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4",
                 "--batch-size", "8", "--mode", "lines", "--dtype", "float64", "--quiet",
                 "--num-samples", "0"]) == 0
    return out


# ---------------------------------------------------------------- 1. text files
def _special_text_paths(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:                 # sparse: the size is real, nothing is written
        f.truncate(MAX_TEXT_BYTES + 1)
    (tmp_path / "a-directory").mkdir()
    return {"/dev/zero": Path("/dev/zero"), "/dev/urandom": Path("/dev/urandom"), "fifo": fifo,
            "directory": tmp_path / "a-directory", "over the size bound": big}


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "fifo", "directory",
                                  "over the size bound"])
def test_text_inputs_refused_before_reading(tmp_path, kind):
    path = _special_text_paths(tmp_path)[kind]
    for encoding in ("utf-8", "bytes"):
        with pytest.raises(DataError) as e:
            _, peak = _peak(lambda: read_text(path, encoding=encoding))
        assert str(path) in str(e.value)
        _, peak = _peak(lambda: pytest.raises(DataError, read_text, path, encoding=encoding))
        assert peak < 1 << 20, peak                     # nothing of the file was read


@pytest.mark.slow
def test_text_fifo_never_blocks_the_cli(tmp_path, lines_run):
    """A FIFO with no writer used to block `rnnkit eval` / `train` forever: both must refuse
    it at once (the subprocess deadline only turns a hang into a failure)."""
    fifo = _special_text_paths(tmp_path)["fifo"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for argv in (["eval", str(lines_run), str(fifo)], ["train", str(fifo), "--out", str(tmp_path / "r")]):
        proc = subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and "FIFO" in proc.stderr, proc.stderr


def test_resume_reads_the_saved_file_with_the_same_checks(trained, tmp_path, capsys):
    """The FILE saved in trainer.json is read on resume: a hostile one is refused the same way."""
    run, _ = trained
    fifo = _special_text_paths(tmp_path)["fifo"]
    for target in ("/dev/zero", str(fifo)):
        d = tmp_path / f"run-{Path(target).name}"
        shutil.copytree(run, d)
        for v in [p for p in d.iterdir() if p.name.startswith("ckpt-")]:
            tj = json.loads((v / T).read_text())
            tj["extra"]["cli"]["file"] = target
            (v / T).write_text(json.dumps(tj))
            _rehash(v)
        code, out, err = cli(capsys, "train", "--resume", d, "--steps", "6")
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert target in err and not UNEXPECTED.match(err), err


# ---------------------------------------------------------------- 2. lines-mode memory
@pytest.mark.slow
def test_auto_mode_reads_a_huge_line_as_a_stream_in_bounded_memory(tmp_path):
    """59 short lines and one 50,000-character line: auto mode used to pick lines mode and pad
    every batch to 50,001 steps (1.29 GiB asked for by the default model)."""
    short = [f"name{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(59)]
    f = tmp_path / "mixed.txt"
    f.write_text("\n".join(short[:30] + ["ab" * 25_000] + short[30:]) + "\n")
    assert detect_mode(f.read_text()) == "stream"
    with pytest.raises(DataError, match=r"line 31 has 50,000 characters.*--mode stream") as e:
        load_text_data(f, mode="lines")
    assert str(f) in str(e.value)
    code, peak = _peak(lambda: _quiet_cli([
        "train", f, "--out", tmp_path / "run", "--steps", 2, "--eval-every", 2, "--hidden-size",
        8, "--num-layers", 1, "--quiet", "--num-samples", 0]))
    assert code == 0
    assert load_checkpoint(tmp_path / "run").trainer_state["extra"]["cli"]["mode"] == "stream"
    # lines mode would hold the gate cache of a (50,001 x batch) batch: 50,001 x 53 x 32 x 4 B
    assert peak < 32 * 2 ** 20, peak
    COUNT["train 50k-line file (MB)"] = round(peak / 2 ** 20, 1)


@pytest.mark.slow
def test_lines_mode_refuses_a_1mb_line_before_allocating(tmp_path):
    f = tmp_path / "one-line.txt"
    f.write_text("abcdefghij" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"line 1 has 1,000,000 characters"):
        _, peak = _peak(lambda: load_text_data(f, mode="lines"))
    _, peak = _peak(lambda: pytest.raises(DataError, load_text_data, f, mode="lines"))
    assert peak < 16 * 2 ** 20, peak                  # the text itself, nothing padded


def _reference_lines_bpc(run, text):
    """Bits per character of a lines model on ``text``, one whole line per forward pass
    (no batching, no chunking): the independent reference for `rnnkit eval`."""
    from rnnkit.data import Vocab, split_lines
    from rnnkit.nn import model_from_config
    ck = load_checkpoint(run / "best", load_optimizer=False)
    model = model_from_config(ck.config)
    model.load_state_dict(ck.model_state)
    model.eval()
    vocab = Vocab.from_json(ck.vocab)
    total, count = 0.0, 0
    with rnnkit.no_grad():
        for line in split_lines(text):
            ids = np.array([vocab.bos_id] + vocab.encode(line).tolist() + [vocab.bos_id])
            logits, _ = model(ids[:-1][:, None])
            z = logits[:, 0].astype(np.float64)
            logp = z - z.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            total -= logp[np.arange(len(ids) - 1), ids[1:]].sum()
            count += len(ids) - 1
    return total / count / np.log(2), count


def test_eval_lines_model_on_long_lines_matches_reference(lines_run, tmp_path, capsys):
    """Lines of very different lengths (one of 3,000 characters, longer than a chunk): eval
    batches by length and chunks the long line with the state carried; the numbers equal the
    one-line-at-a-time reference."""
    text = NAMES13 + ("annabobcideve" * 231)[:3000] + "\n" + "bob\nida\n"
    f = tmp_path / "mixed.txt"
    f.write_text(text)
    code, out, err = cli(capsys, "eval", lines_run, f)
    assert code == 0, err
    bpc = float(out.strip().splitlines()[-1].split()[-1])
    ref, count = _reference_lines_bpc(lines_run, text)
    assert f"characters: {count}" in out
    assert bpc == pytest.approx(ref, abs=1e-6)


@pytest.mark.slow
def test_eval_lines_model_on_a_long_line_in_bounded_memory(lines_run, tmp_path):
    """`eval` on a 1 MB single line used to take 1.1 GB (the whole line's logits and
    caches at once). Now each forward call holds at most 1,024 steps: memory is the text's
    own arrays (about 30 bytes per character), linear in the line. Measured on lines of
    20,000 and 200,000 characters (both far past the 1,024-step chunk; 200,000 steps
    padded would already need 200,001 x V x 8 bytes of logits alone)."""
    from rnnkit.load import load_model
    V = len(load_model(lines_run).vocab)
    n = 200_000
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("anna" * (n // 40) + "\n")
    big.write_text("anna" * (n // 4) + "\n")
    code, peak_small = _peak(lambda: _quiet_cli(["eval", lines_run, small]))
    assert code == 0
    code, peak_big = _peak(lambda: _quiet_cli(["eval", lines_run, big]))
    assert code == 0
    assert peak_big < 48 * n, peak_big                 # under 48 bytes per character
    assert peak_big < (n + 1) * V * 8 / 2              # far below the padded line's logits
    assert peak_big < 12 * peak_small                  # ~linear in the text, 10x longer
    COUNT["eval 200k-character line (bytes per character)"] = round(peak_big / n, 1)


@pytest.mark.slow
def test_stream_text_pipeline_memory_per_byte(tmp_path):
    """What MAX_TEXT_BYTES means in memory: load_text_data (read, vocabulary, ids, split) of a
    4 MB stream-mode text peaks at < 16 bytes per byte of file (ids are int64: 8 of them)."""
    words = np.array(["alpha", "beta", "gamma", "épsilon", "zeta", "théta", "\n"])
    f = tmp_path / "big.txt"
    f.write_text(" ".join(np.random.default_rng(0).choice(words, 700_000)))
    size = f.stat().st_size
    data, peak = _peak(lambda: load_text_data(f, mode="stream"))
    assert data.mode == "stream"
    assert peak < 16 * size, peak / size
    COUNT["text pipeline (bytes per byte)"] = round(peak / size, 1)


# ---------------------------------------------------------------- 3. header before data
def test_config_compared_with_header_before_any_data_is_read(trained, tmp_path, capsys):
    """A checkpoint whose weights disagree with config.json is refused from the safetensors
    header: a 25 MB tensor of the wrong shape is never read (the check used to come after
    loading every tensor)."""
    run, _ = trained
    d = tmp_path / "flat"
    shutil.copytree(_newest(run), d)
    (d / "checkpoint.json").unlink()
    t = load_safetensors(d / M)
    t["head.weight"] = np.zeros((t["head.weight"].shape[0], 200_000), np.float32)
    save_safetensors(d / M, t)
    assert (d / M).stat().st_size > 20 * 2 ** 20
    (code, out, err), peak = _peak(lambda: cli(capsys, "info", d))
    assert code == 1 and "does not match config.json" in err and M in err, err
    assert peak < 4 * 2 ** 20, peak


def test_small_checkpoint_claiming_a_huge_model_is_refused_before_building_it(trained, tmp_path, capsys):
    """A 19 KB checkpoint whose config says hidden_size=15000 (inside the 4 GiB
    bound with one layer): `info` refuses it without building the 3.4 GB model."""
    run, _ = trained
    d = tmp_path / "flat"
    shutil.copytree(_newest(run), d)
    (d / "checkpoint.json").unlink()
    cfg = json.loads((d / C).read_text())
    cfg.update(hidden_size=15000, num_layers=1)
    (d / C).write_text(json.dumps(cfg))
    nn.CharLMConfig.from_dict(cfg)                      # the config itself is valid
    (code, out, err), peak = _peak(lambda: cli(capsys, "info", d))
    assert code == 1 and M in err and "60000" in err, err
    assert peak < 4 * 2 ** 20, peak


# ---------------------------------------------------------------- 6. the divergence guard
@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--mode", "lines"], ["--mode", "lines", "--dtype", "float64"],
                                   ["--mode", "stream", "--optimizer", "sgd"]],
                         ids=["float32-adam", "float64-adam", "stream-sgd"])
def test_lr_1e39_rolls_back_and_advises_end_to_end(tmp_path, extra):
    """`--lr 1e39` overflows float32 in the first update: the run must stop with one error
    line that says to lower the learning rate, no raw warnings, and the checkpoint must hold
    the last good (here: the initial) weights."""
    f = tmp_path / "names.txt"
    f.write_text(NAMES13 * 3)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = ["train", str(f), "--out", str(out), "--lr", "1e39", "--steps", "5", "--eval-every", "2",
            "--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4", "--batch-size", "8",
            "--seq-len", "8", "--quiet", "--num-samples", "0", *extra]
    proc = subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("rnnkit train:") for ln in lines[:2]), proc.stderr
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr
    err = lines[2]
    assert err.startswith("rnnkit: error: training stopped") and "lower the learning rate" in err
    assert "rolled back" in err and "NaN" not in err and "Clean the data" not in err, err
    ck = load_checkpoint(out)
    step = ck.trainer_state["step"]
    assert step == 0
    # the last good state is the initial model: rebuild it independently from config + seed
    ref = nn.CharLM(nn.CharLMConfig.from_dict(ck.config), seed=0).state_dict()
    for k, v in ref.items():
        np.testing.assert_array_equal(ck.model_state[k], v, err_msg=k)


# ---------------------------------------------------------------- 7. beyond float32
def test_load_state_dict_checks_finiteness_after_the_cast():
    lstm = nn.LSTM(3, 4, seed=0)
    before = lstm.state_dict()
    sd = {k: v.astype(np.float64) for k, v in before.items()}
    sd["weight_hh_l0"][1, 2] = 1e300                    # finite in float64, inf in float32
    with pytest.raises(NonFiniteError, match="out of float32 range"):
        lstm.load_state_dict(sd)
    for k, v in lstm.state_dict().items():              # nothing changed
        np.testing.assert_array_equal(v, before[k])
    sd["weight_hh_l0"][1, 2] = 3e38                     # within float32: loads
    lstm.load_state_dict(sd)
    assert lstm.parameters()["weight_hh_l0"][1, 2] == np.float32(3e38)
    l64 = nn.LSTM(3, 4, seed=0, dtype=np.float64)
    sd["weight_hh_l0"][1, 2] = 1e300
    l64.load_state_dict(sd)                             # float64 layer: a finite value
    assert l64.parameters()["weight_hh_l0"][1, 2] == 1e300


@pytest.mark.parametrize("which", ["h", "c"])
def test_step_refuses_a_nan_state(which):
    """`LSTM.step` used to accept a NaN state and return NaN silently."""
    lstm = nn.LSTM(3, 4, num_layers=2, seed=0)
    h, c = np.zeros((2, 1, 4), np.float32), np.zeros((2, 1, 4), np.float32)
    (h if which == "h" else c)[1, 0, 2] = np.nan
    with pytest.raises(NonFiniteError, match=f"{which}0"):
        lstm.step(np.zeros((1, 3), np.float32), (h, c))
    gru = nn.GRU(3, 4, seed=0)
    with pytest.raises(NonFiniteError, match="h0"):
        gru.step(np.zeros((1, 3), np.float32), np.full((1, 1, 4), np.inf, np.float32))


def test_sample_with_overflowing_weights_names_the_checkpoint(trained, tmp_path, capsys):
    """Finite weights that overflow in the forward pass: one line naming the checkpoint, no
    raw overflow warnings, no advice to clean data."""
    run, _ = trained
    d = tmp_path / "flat"
    shutil.copytree(_newest(run), d)
    (d / "checkpoint.json").unlink()
    def overflow(t):          # saturated gates make h ~ +1, so head.weight @ h overflows
        for k in ("rnn.bias_ih_l0", "head.weight", "head.bias"):
            t[k] = np.full(t[k].shape, 100.0 if k.startswith("rnn") else 3e38, np.float32)
    _edit_tensors(M, overflow)(d)
    code, out, err = cli(capsys, "sample", d, "--length", "20")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert str(d) in err and "overflow" in err and "warning" not in err, err


# ---------------------------------------------------------------- CLI warnings
@pytest.mark.slow
def test_cli_warnings_are_one_line_each(trained, tmp_path, capsys):
    run, text = trained
    d = tmp_path / "run"
    shutil.copytree(run, d)
    with open(d / "metrics.jsonl", "a") as f:
        f.write("garbage {{{\n")
        f.write(json.dumps({"step": 99, "train_loss": 1.0}) + "\n")
    code, out, err = cli(capsys, "plot", d, "--out", tmp_path / "pics")
    assert code == 0, err
    warn = [ln for ln in err.splitlines() if ln]
    assert len(warn) == 1 and warn[0].startswith("rnnkit: warning: read_jsonl: skipped 1"), err
    # a damaged newest version: the fallback warning once (it used to print twice on resume)
    newest = _newest(d)
    (newest / M).write_bytes(b"damaged")
    code, out, err = cli(capsys, "train", "--resume", d, "--steps", "5")
    assert code == 0, err
    warnings_ = [ln for ln in err.splitlines() if ln.startswith("rnnkit: warning")]
    assert len(warnings_) == 1 and warnings_[0].startswith("rnnkit: warning: load_checkpoint"), err
    assert "Warning:" not in err and ".py:" not in err, err


# ---------------------------------------------------------------- 9. the Python API
def _seed_cases():
    from rnnkit.analysis import gradient_norms_through_time
    from rnnkit.data import EpochOrder
    from rnnkit.gradcheck import gradcheck
    from rnnkit.nn import Dropout, Embedding, Linear
    makers = {
        "LSTM": lambda s: nn.LSTM(2, 3, seed=s), "GRU": lambda s: nn.GRU(2, 3, seed=s),
        "RNN": lambda s: nn.RNN(2, 3, seed=s), "Linear": lambda s: Linear(2, 3, seed=s),
        "Embedding": lambda s: Embedding(5, 2, seed=s), "Dropout": lambda s: Dropout(0.5, seed=s),
        "CharLM": lambda s: nn.CharLM(nn.CharLMConfig(vocab_size=5, hidden_size=3, num_layers=1), seed=s),
        "SequenceClassifier": lambda s: nn.SequenceClassifier(nn.SequenceClassifierConfig(
            input_size=2, hidden_size=3), seed=s),
        "SequenceRegressor": lambda s: nn.SequenceRegressor(nn.SequenceRegressorConfig(hidden_size=3), seed=s),
        "gradcheck": lambda s: gradcheck(nn.Linear(2, 2, dtype=np.float64), np.ones((1, 2)), seed=s),
        "gradient_norms_through_time": lambda s: gradient_norms_through_time("rnn", T=3, hidden_size=2, seed=s),
        "EpochOrder": lambda s: EpochOrder(10, 2, seed=s),
    }
    return [(f"{name} seed={bad!r}", (lambda m=m, b=bad: m(b)), ConfigError)
            for name, m in makers.items() for bad in (-1, 1.5, "x", True)]


def _api_cases(tmp_path):
    from rnnkit.data import StreamDataset, Vocab, unigram_entropy
    from rnnkit.interop.onnx import export
    from rnnkit.interop.onnx_runtime import OnnxCharLM
    from rnnkit.nn import CrossEntropyLoss, Embedding, MSELoss
    ragged = [[1, 2], [3]]
    lstm = nn.LSTM(2, 3, seed=0)
    huge = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    huge["bias_ih_l0"][0] = 1e300
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x01garbage")
    (tmp_path / "afile").write_text("x")
    return [
        ("Embedding ragged ids", lambda: Embedding(5, 2, seed=0)(ragged), DTypeError),
        ("CrossEntropyLoss ragged target", lambda: CrossEntropyLoss()(np.zeros((2, 3)), ragged), DTypeError),
        ("CrossEntropyLoss ragged mask", lambda: CrossEntropyLoss()(np.zeros((2, 3)), [0, 1], ragged), DTypeError),
        ("LSTM ragged lengths", lambda: lstm(np.zeros((3, 2, 2)), None, ragged), DTypeError),
        ("LSTM ragged x", lambda: lstm([[[1, 2]], [[1]]]), DTypeError),
        ("StreamDataset ragged ids", lambda: StreamDataset(ragged, 1, 1), DTypeError),
        ("unigram_entropy ragged ids", lambda: unigram_entropy(ragged, 4), DTypeError),
        ("Vocab.decode ragged ids", lambda: Vocab.build("abc").decode(ragged), DTypeError),
        ("load_state_dict ragged", lambda: lstm.load_state_dict({**lstm.state_dict(), "bias_ih_l0": ragged}),
         DTypeError),
        ("load_state_dict beyond float32", lambda: lstm.load_state_dict(huge), NonFiniteError),
        ("CrossEntropyLoss.backward before forward", lambda: CrossEntropyLoss().backward(), NoForwardError),
        ("MSELoss.backward twice", lambda: [m := MSELoss(), m(np.ones(2), np.zeros(2)), m.backward(),
                                            m.backward()], NoForwardError),
        ("OnnxCharLM missing file", lambda: OnnxCharLM(tmp_path / "none.onnx"), CheckpointError),
        ("OnnxCharLM directory", lambda: OnnxCharLM(tmp_path), CheckpointError),
        ("OnnxCharLM /dev/zero", lambda: OnnxCharLM("/dev/zero"), CheckpointError),
        ("OnnxCharLM garbage", lambda: OnnxCharLM(tmp_path / "garbage.onnx"), CheckpointError),
        ("export to a directory", lambda: export(lstm, tmp_path), ConfigError),
        ("export below a file", lambda: export(lstm, tmp_path / "afile" / "x.onnx"), ConfigError),
        ("read_text /dev/zero", lambda: read_text("/dev/zero"), DataError),
        ("read_text rot13", lambda: read_text(tmp_path / "afile", encoding="rot13"), ConfigError),
        *_seed_cases(),
    ]


@pytest.mark.slow
def test_python_api_raises_rnnkit_errors(tmp_path):
    """Twelve cases that used to leak a NumPy error, and their neighbours: each raises the documented
    RnnkitError subclass, never a raw NumPy / torch / onnxruntime exception."""
    cases = _api_cases(tmp_path)
    failures = []
    for name, fn, cls in cases:
        try:
            fn()
        except cls:
            continue
        except Exception as e:  # noqa: BLE001 - report every leak at once
            failures.append(f"{name}: {type(e).__name__}: {e}")
            continue
        failures.append(f"{name}: no error")
    assert not failures, failures
    COUNT["api_cases"] = len(cases)


@pytest.mark.slow
def test_bfloat16_tensors_load_exactly():
    torch = require("torch")
    lstm = nn.LSTM(2, 3, seed=0)
    sd = {k: torch.tensor(v).to(torch.bfloat16) for k, v in lstm.state_dict().items()}
    lstm.load_state_dict(sd)
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, sd[k].float().numpy())


# ---------------------------------------------------------------- hostile ONNX files
def _onnx_cases(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from rnnkit.interop.onnx import export
    cfg = dict(cell="lstm", vocab_size=5, hidden_size=3, num_layers=1, embedding_size=2)
    lm = nn.CharLM(nn.CharLMConfig(**cfg), seed=0)
    good = tmp_path / "good.onnx"
    export(lm.state_dict(), good, config=cfg)
    data = good.read_bytes()

    def with_meta(**changes):
        m = onnx.load(good)
        props = {p.key: p.value for p in m.metadata_props}
        props.update(changes)
        props = {k: v for k, v in props.items() if v is not None}
        del m.metadata_props[:]
        helper.set_model_props(m, props)
        return m.SerializeToString()

    def renamed_input():
        m = onnx.load(good)
        for node in m.graph.node:
            node.input[:] = ["toks" if i == "tokens" else i for i in node.input]
        m.graph.input[0].name = "toks"
        return m.SerializeToString()

    bare = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])).SerializeToString()
    export(nn.GRU(2, 3, seed=0), tmp_path / "layer.onnx")
    return {
        "empty file": b"",
        "garbage": b"\x08\x01" + os.urandom(64),
        "truncated model": data[: len(data) // 2],
        "text file": b"hello world\n",
        "bare graph, no metadata": bare,
        "a layer export, not a char LM": (tmp_path / "layer.onnx").read_bytes(),
        "metadata cell unknown": with_meta(cell="transformer"),
        "metadata vocab_size not a number": with_meta(vocab_size="lots"),
        "metadata vocab_size negative": with_meta(vocab_size="-5"),
        "metadata hidden_size missing": with_meta(hidden_size=None),
        "inputs renamed": renamed_input(),
        "cell says GRU, graph is LSTM": with_meta(cell="gru"),
    }


def test_hostile_onnx_files(tmp_path, capsys, trained):
    """OnnxCharLM (and `rnnkit sample --onnx`) over damaged and foreign ONNX files: one
    RnnkitError naming the file each, never onnxruntime's own exception."""
    from rnnkit.interop.onnx_runtime import OnnxCharLM
    run, _ = trained
    cases = _onnx_cases(tmp_path)
    for name, data in cases.items():
        path = tmp_path / f"{name.replace(' ', '_').replace(',', '')}.onnx"
        path.write_bytes(data)
        with pytest.raises((CheckpointError, ConfigError)) as e:
            OnnxCharLM(path)
        assert str(path) in str(e.value), (name, e.value)
        code, out, err = cli(capsys, "sample", run, "--onnx", path, "--length", "5")
        assert code == 1 and len(err.strip().splitlines()) == 1, (name, err)
        assert not UNEXPECTED.match(err) and str(path) in err, (name, err)
    COUNT["onnx_files"] = len(cases)


@pytest.mark.slow
def test_onnx_batch_0_is_refused_before_onnx_runtime(tmp_path):
    """ONNX Runtime aborts the whole process on a batch of 0 sequences (an upstream bug), so
    OnnxCharLM.step must refuse it itself. Run in a child: a regression kills only the child."""
    script = f"""
import numpy as np
from rnnkit import nn
from rnnkit.errors import ShapeError
from rnnkit.interop.onnx import export
from rnnkit.interop.onnx_runtime import OnnxCharLM
cfg = dict(cell="gru", vocab_size=5, hidden_size=3, num_layers=1, embedding_size=2)
export(nn.CharLM(nn.CharLMConfig(**cfg), seed=0).state_dict(), {str(tmp_path / 'lm.onnx')!r}, config=cfg)
lm = OnnxCharLM({str(tmp_path / 'lm.onnx')!r})
for tokens in (np.zeros((1, 0), np.int64), np.zeros((0,), np.int64), np.zeros((0, 2), np.int64)):
    try:
        lm.step(tokens)
    except ShapeError:
        print("refused")
"""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["refused"] * 3


report("Python API error cases, hostile ONNX files, memory peaks", lambda: (
    any(k in COUNT for k in ("api_cases", "onnx_files")) or any("(" in k for k in COUNT)) and (
    f"Python API error cases: {COUNT.get('api_cases')}; hostile ONNX files: "
    f"{COUNT.get('onnx_files')}; peaks: " + (", ".join(f"{k} {v}" for k, v in COUNT.items() if "(" in k)
                                             or "-")))
