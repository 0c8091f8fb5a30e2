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
import tokenize
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import main
from rnnkit.data import StreamDataset, Vocab
from rnnkit.errors import CheckpointError, ConfigError, RnnkitError
from rnnkit.io import load_safetensors, save_safetensors
from rnnkit.data import StreamSource
from rnnkit.train import Checkpointing, TrainConfig, Trainer

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
    "vocab_size 10**7 x hidden 65536": (_edit_json(C, lambda c: c.update(vocab_size=10 ** 7, hidden_size=65536)), C, ALL),
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
    "optimizer state extra array": (_edit_tensors(O, lambda t: t.update({"exp_avg/x": np.zeros(1, np.float32)})), O, RESUME),
    "optimizer state int": (_edit_tensors(O, _retype("exp_avg/head.bias", np.int32)), O, RESUME),
    "optimizer state NaN": (_edit_tensors(O, _nan("exp_avg/rnn.weight_hh_l0")), O, RESUME),
    "optimizer meta other class": (_opt_meta(_setitem("class", "SGD")), O, RESUME),
    "optimizer meta step string": (_opt_meta(_setitem("step", "3")), O, RESUME),
    "optimizer meta shapes disagree": (_opt_meta(lambda m: m["params"].update({"head.bias": [99]})), O, RESUME),
    "optimizer file missing": (_remove(O), O, RESUME),
    # trainer.safetensors: the carried TBPTT state of a stream run
    "carry wrong shape": (_edit_tensors(A, lambda t: t.update({"carry.h": np.zeros((1, 3, 8), np.float32)})), A, RESUME),
    "carry NaN": (_edit_tensors(A, _nan("carry.c")), A, RESUME),
    "carry c missing (LSTM)": (_edit_tensors(A, lambda t: t.pop("carry.c")), A, RESUME),
    "carry int": (_edit_tensors(A, _retype("carry.h", np.int32)), A, RESUME),
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
                          embedding_size=4, dropout=0.2)     # the CLI's default dropout
    model = nn.CharLM(cfg, seed=0)
    src = StreamSource(StreamDataset(ids[:cut], 8, 4))
    return Trainer(model, src, None, TrainConfig(steps=6, eval_every=2, progress=False,
                                                 lr=3e-3, clip=5.0),
                   checkpoint=Checkpointing(d, vocab=vocab.to_json()), log=lambda m: None).resume()


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
@pytest.mark.parametrize("case", list(CASES))
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
    # Trainer.resume(): refuses with a CheckpointError/ConfigError naming the file
    COUNT["loads"] += 1
    with pytest.raises((CheckpointError, ConfigError)) as info:
        _resume_trainer(d, text)
    assert bad_file in str(info.value) or str(d) in str(info.value), info.value
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


def test_report_hostile_counts(capsys):
    """Figures for docs/reliability.md: hostile directories tried here, plus the hostile
    safetensors files of test_checkpoint.py (its HOSTILE table)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_tc", Path(__file__).with_name("test_checkpoint.py"))
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    with capsys.disabled():
        print(f"\nhostile checkpoint directories: {COUNT['cases']} cases x 2 variants = "
              f"{COUNT['directories']} directories, {COUNT['loads']} refused loads; "
              f"test_checkpoint.py HOSTILE safetensors files: {len(tc.HOSTILE)}")
    if COUNT["directories"]:
        assert COUNT["directories"] == 2 * len(CASES)


# ---------------------------------------------------------------- no pickle anywhere

def _code_tokens(path):
    """Names and strings of a Python file, comments excluded."""
    toks = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [(t.type, t.string, t.start[0]) for t in toks if t.type in (tokenize.NAME, tokenize.STRING, tokenize.OP)]


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
                    and (i == 0 or toks[i - 1][1] not in (".", "def")):
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
