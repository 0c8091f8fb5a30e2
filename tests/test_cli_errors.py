"""Every subcommand over a table of bad options and files: one clear error, never the catch-all.

Each case runs ``rnnkit ARGV`` through the real entry point (``rnnkit.cli.main``, in-process)
and must end with exit code 1 (an error rnnkit names) or 2 (a usage error), exactly one line
on stderr that starts with ``rnnkit`` and holds ``error:``, no traceback, no ``unexpected``
(the catch-all reserved for bugs), and a line short enough to read. Where the case says so,
the line must name the option or file at fault. Output paths are checked before any work: no
case may leave a checkpoint behind. The number of cases is printed for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnkit.checkpoint import has_checkpoint, list_versions
from rnnkit.cli import main
from rnnkit.io import load_safetensors, save_safetensors

from counts import report
from test_reliability import _rehash, cli

pytestmark = pytest.mark.usefixtures("fast_io")

NAMES = "\n".join(f"{a}{b}" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal")
                  for b in ("a", "ie", "o", "y", "elle", "ric", "an")) + "\n"
PROSE = ("the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n"
         * 12)
TINY = ["--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4", "--batch-size", "4",
        "--seq-len", "8", "--quiet", "--num-samples", "0"]
UNEXPECTED = re.compile(r"unexpected \w+:")
COUNT = {"cases": 0}


def _hostile_resume(root, run, name, edit):
    """A copy of ``run`` whose every version's trainer.json was edited (manifests rehashed)."""
    d = root / name
    shutil.copytree(run, d)
    for v in list_versions(d):
        tj = json.loads((v / "trainer.json").read_text())
        edit(tj)
        (v / "trainer.json").write_text(json.dumps(tj))
        _rehash(v)
    return d


def _flat_copy(root, run, name, edit_config=None, edit_model=None):
    d = root / name
    shutil.copytree(list_versions(run)[0], d)
    (d / "checkpoint.json").unlink()
    if edit_config:
        cfg = json.loads((d / "config.json").read_text())
        edit_config(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
    if edit_model:
        t = load_safetensors(d / "model.safetensors")
        edit_model(t)
        save_safetensors(d / "model.safetensors", t)
    return d


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Files and directories the table refers to by name (``{name}`` in an argv)."""
    import onnx
    from onnx import TensorProto, helper

    from rnnkit import nn
    from rnnkit.interop.onnx import export
    root = tmp_path_factory.mktemp("edges")
    p = {"root": root}
    p["names"] = root / "names.txt"
    p["names"].write_text(NAMES)
    p["prose"] = root / "prose.txt"
    p["prose"].write_text(PROSE)
    for kind, f, mode in (("lines", p["names"], "lines"), ("stream", p["prose"], "stream")):
        p[kind] = root / kind
        assert main(["train", str(f), "--out", str(p[kind]), "--steps", "4", "--eval-every", "2",
                     "--mode", mode, *TINY]) == 0
    p["stream_onnx"] = root / "stream.onnx"
    assert main(["export", str(p["stream"]), "--onnx", str(p["stream_onnx"])]) == 0
    p["layer_onnx"] = root / "layer.onnx"
    export(nn.LSTM(3, 4, seed=0), p["layer_onnx"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "bare",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p["bare_onnx"] = root / "bare.onnx"
    onnx.save(helper.make_model(graph), p["bare_onnx"])
    m = onnx.load(p["stream_onnx"])
    for prop in m.metadata_props:
        if prop.key == "hidden_size":
            prop.value = "lots"
    p["badmeta_onnx"] = root / "badmeta.onnx"
    onnx.save(m, p["badmeta_onnx"])
    p["garbage"] = root / "garbage.onnx"
    p["garbage"].write_bytes(b"\x08\x01not an onnx model at all")
    p["fifo"] = root / "fifo"
    os.mkfifo(p["fifo"])
    p["afile"] = root / "afile.txt"
    p["afile"].write_text("just a file\n")
    p["adir"] = root / "adir"
    p["adir"].mkdir()
    p["empty"] = root / "empty.txt"
    p["empty"].write_bytes(b"")
    p["onechar"] = root / "one.txt"
    p["onechar"].write_text("z" * 500)
    p["latin"] = root / "latin.txt"
    p["latin"].write_bytes(b"caf\xe9 au lait\n" * 50)
    p["surrogate"] = root / "surrogate.txt"
    p["surrogate"].write_text("abc\\ud800def\n" * 50)
    p["longline"] = root / "long.txt"
    p["longline"].write_text(NAMES + "x" * 50_000 + "\n" + NAMES)
    p["unknown_chars"] = root / "unknown.txt"
    p["unknown_chars"].write_text("ZZZ QQQ 123\n" * 5)
    p["badname"] = root / os.fsdecode(b"na\xffmes.txt")
    p["badname"].write_text(NAMES)
    p["resume_rng"] = _hostile_resume(root, p["lines"], "resume-rng", lambda tj: tj["rng_states"][
        "rnn"]["state"].update(state=2 ** 200))
    p["resume_seed"] = _hostile_resume(root, p["lines"], "resume-seed",
                                       lambda tj: tj["extra"]["cli"].update(seed=-1))
    p["resume_lr"] = _hostile_resume(root, p["lines"], "resume-lr",
                                     lambda tj: tj["extra"]["cli"].update(lr=-0.5))
    p["resume_zero"] = _hostile_resume(root, p["lines"], "resume-zero",
                                       lambda tj: tj["extra"]["cli"].update(file="/dev/zero"))
    p["f64_huge"] = _flat_copy(root, p["lines"], "f64-huge", edit_model=lambda t: t.update(
        {"head.bias": np.full(t["head.bias"].shape, 1e300)}))
    p["hidden_15000"] = _flat_copy(root, p["lines"], "hidden-15000", edit_config=lambda c: c.update(
        hidden_size=15000))
    p["metrics_run"] = root / "metrics-run"
    return p


# (id, argv with {name} placeholders, text the error line must contain or None)
CASES = [
    # -- train: numbers
    ("train --epochs nan", ["train", "{names}", "--epochs", "nan"], "--epochs"),
    ("train --epochs inf", ["train", "{names}", "--epochs", "inf"], "--epochs"),
    ("train --epochs -1", ["train", "{names}", "--epochs", "-1"], "--epochs"),
    ("train --epochs 0", ["train", "{names}", "--epochs", "0"], "--epochs"),
    ("train --lr nan", ["train", "{names}", "--lr", "nan"], "--lr"),
    ("train --lr -1", ["train", "{names}", "--lr", "-1"], "--lr"),
    ("train --lr 0", ["train", "{names}", "--lr", "0"], "--lr"),
    ("train --lr inf", ["train", "{names}", "--lr", "inf"], "--lr"),
    ("train --dropout nan", ["train", "{names}", "--dropout", "nan"], "--dropout"),
    ("train --dropout 1", ["train", "{names}", "--dropout", "1"], "--dropout"),
    ("train --val-frac -0.1", ["train", "{names}", "--val-frac", "-0.1"], "--val-frac"),
    ("train --val-frac nan", ["train", "{names}", "--val-frac", "nan"], "--val-frac"),
    ("train --clip -1", ["train", "{names}", "--clip", "-1"], "--clip"),
    ("train --clip nan", ["train", "{names}", "--clip", "nan"], "--clip"),
    ("train --weight-decay -1", ["train", "{names}", "--weight-decay", "-1"], "--weight-decay"),
    ("train --weight-decay inf", ["train", "{names}", "--weight-decay", "inf"], "--weight-decay"),
    ("train --steps 0", ["train", "{names}", "--steps", "0"], "--steps"),
    ("train --steps -5", ["train", "{names}", "--steps", "-5"], "--steps"),
    ("train --seed -1", ["train", "{names}", "--seed", "-1"], "--seed"),
    ("train --hidden-size 0", ["train", "{names}", "--hidden-size", "0"], "--hidden-size"),
    ("train --hidden-size 10**6", ["train", "{names}", "--hidden-size", "1000000"], "--hidden-size"),
    ("train --num-layers 0", ["train", "{names}", "--num-layers", "0"], "--num-layers"),
    ("train --embedding-size -1", ["train", "{names}", "--embedding-size", "-1"], "--embedding-size"),
    ("train --seq-len 0", ["train", "{names}", "--seq-len", "0"], "--seq-len"),
    ("train --batch-size 0", ["train", "{names}", "--batch-size", "0"], "--batch-size"),
    ("train --eval-every 0", ["train", "{names}", "--eval-every", "0"], "--eval-every"),
    ("train --patience -1", ["train", "{names}", "--patience", "-1"], "--patience"),
    ("train --warmup -1", ["train", "{names}", "--warmup", "-1"], "--warmup"),
    ("train --num-samples -1", ["train", "{names}", "--num-samples", "-1"], "--num-samples"),
    ("train --steps abc (usage)", ["train", "--steps", "abc"], "--steps"),
    ("train --cell transformer (usage)", ["train", "--cell", "transformer"], "--cell"),
    ("train --steps with --epochs (usage)", ["train", "--steps", "3", "--epochs", "1"], "--epochs"),
    # -- train: output and resume directories
    ("train --out ''", ["train", "{names}", "--out", ""], "--out"),
    ("train --out a file", ["train", "{names}", "--out", "{afile}"], "afile.txt"),
    ("train --out /dev/null", ["train", "{names}", "--out", "/dev/null"], "/dev/null"),
    ("train --out below a file", ["train", "{names}", "--out", "{afile}/run"], "afile.txt"),
    ("train --out holds a run", ["train", "{names}", "--out", "{lines}"], "--overwrite"),
    ("train --resume ''", ["train", "--resume", ""], "--resume"),
    ("train --resume missing", ["train", "--resume", "{root}/nothing"], "nothing"),
    ("train --resume a file", ["train", "--resume", "{afile}"], "afile.txt"),
    ("train --resume with another --out", ["train", "--resume", "{lines}", "--out", "{adir}"], "--out"),
    ("train --resume with --overwrite", ["train", "--resume", "{lines}", "--overwrite"], "--overwrite"),
    ("train --resume changed option", ["train", "--resume", "{lines}", "--hidden-size", "9"], "--hidden-size"),
    ("train --resume RNG state out of range", ["train", "--resume", "{resume_rng}"], "trainer.json"),
    ("train --resume saved seed -1", ["train", "--resume", "{resume_seed}"], "trainer.json"),
    ("train --resume saved lr -0.5", ["train", "--resume", "{resume_lr}"], "trainer.json"),
    ("train --resume saved FILE /dev/zero", ["train", "--resume", "{resume_zero}"], "/dev/zero"),
    # -- train: text files
    ("train FILE /dev/zero", ["train", "/dev/zero", "--encoding", "bytes"], "/dev/zero"),
    ("train FILE /dev/urandom", ["train", "/dev/urandom", "--encoding", "bytes"], "/dev/urandom"),
    ("train FILE a FIFO", ["train", "{fifo}"], "fifo"),
    ("train FILE a directory", ["train", "{adir}"], "adir"),
    ("train FILE missing", ["train", "{root}/missing.txt"], "missing.txt"),
    ("train FILE empty", ["train", "{empty}"], "empty.txt"),
    ("train FILE one distinct character", ["train", "{onechar}", "--out", "{root}/one-run"], "one.txt"),
    ("train FILE not UTF-8", ["train", "{latin}"], "--encoding"),
    ("train --encoding rot13", ["train", "{names}", "--encoding", "rot13"], "rot13"),
    ("train --encoding nonsense", ["train", "{names}", "--encoding", "klingon"], "klingon"),
    ("train text with a lone surrogate", ["train", "{surrogate}", "--encoding", "unicode_escape"], "surrogate.txt"),
    ("train FILE name not UTF-8", ["train", "{badname}", "--out", "{root}/badname-run", *TINY], "FILE"),
    ("train --mode lines with a 50k line", ["train", "{longline}", "--mode", "lines"], "long.txt"),
    ("train stream too short for the batch", ["train", "{prose}", "--mode", "stream"], "--batch-size"),
    # -- sample
    ("sample --num 0", ["sample", "{lines}", "--num", "0"], "--num"),
    ("sample --length 0", ["sample", "{stream}", "--length", "0"], "--length"),
    ("sample --temperature nan", ["sample", "{lines}", "--temperature", "nan"], "temperature"),
    ("sample --temperature -1", ["sample", "{lines}", "--temperature", "-1"], "temperature"),
    ("sample --top-p 2", ["sample", "{lines}", "--top-p", "2"], "top_p"),
    ("sample --top-k -1", ["sample", "{lines}", "--top-k", "-1"], "top_k"),
    ("sample --beam -1", ["sample", "{lines}", "--beam", "-1"], "--beam"),
    ("sample --beam 10**6", ["sample", "{lines}", "--beam", "1000000"], "--beam"),
    ("sample --seed -1", ["sample", "{lines}", "--seed", "-1"], "--seed"),
    ("sample --prime unknown", ["sample", "{lines}", "--prime", "QX"], "prime"),
    ("sample --onnx missing", ["sample", "{stream}", "--onnx", "{root}/none.onnx"], "none.onnx"),
    ("sample --onnx a directory", ["sample", "{stream}", "--onnx", "{adir}"], "adir"),
    ("sample --onnx /dev/zero", ["sample", "{stream}", "--onnx", "/dev/zero"], "/dev/zero"),
    ("sample --onnx a FIFO", ["sample", "{stream}", "--onnx", "{fifo}"], "fifo"),
    ("sample --onnx not ONNX", ["sample", "{stream}", "--onnx", "{garbage}"], "garbage.onnx"),
    ("sample --onnx a text file", ["sample", "{stream}", "--onnx", "{afile}"], "afile.txt"),
    ("sample --onnx without rnnkit metadata", ["sample", "{stream}", "--onnx", "{bare_onnx}"], "bare.onnx"),
    ("sample --onnx a layer, not a char LM", ["sample", "{stream}", "--onnx", "{layer_onnx}"], "layer.onnx"),
    ("sample --onnx damaged metadata", ["sample", "{stream}", "--onnx", "{badmeta_onnx}"], "badmeta.onnx"),
    ("sample --onnx of another vocabulary", ["sample", "{lines}", "--onnx", "{stream_onnx}"], "stream.onnx"),
    ("sample DIR ''", ["sample", ""], "DIR"),
    ("sample DIR missing", ["sample", "{root}/nothing"], "nothing"),
    ("sample DIR a file", ["sample", "{afile}"], "afile.txt"),
    ("sample weights beyond float32", ["sample", "{f64_huge}"], "model.safetensors"),
    # -- eval
    ("eval FILE /dev/zero", ["eval", "{lines}", "/dev/zero"], "/dev/zero"),
    ("eval FILE a FIFO", ["eval", "{lines}", "{fifo}"], "fifo"),
    ("eval FILE a directory", ["eval", "{lines}", "{adir}"], "adir"),
    ("eval FILE missing", ["eval", "{lines}", "{root}/missing.txt"], "missing.txt"),
    ("eval FILE empty", ["eval", "{stream}", "{empty}"], "empty.txt"),
    ("eval FILE unknown characters", ["eval", "{lines}", "{unknown_chars}"], "unknown.txt"),
    ("eval --encoding rot13", ["eval", "{lines}", "{names}", "--encoding", "rot13"], "rot13"),
    ("eval DIR missing", ["eval", "{root}/nothing", "{names}"], "nothing"),
    ("eval weights beyond float32", ["eval", "{f64_huge}", "{names}"], "model.safetensors"),
    # -- info
    ("info DIR ''", ["info", ""], "DIR"),
    ("info DIR missing", ["info", "{root}/nothing"], "nothing"),
    ("info DIR a file", ["info", "{afile}"], "afile.txt"),
    ("info weights beyond float32", ["info", "{f64_huge}"], "model.safetensors"),
    ("info config hidden_size 15000", ["info", "{hidden_15000}"], "model.safetensors"),
    # -- export
    ("export --onnx a directory", ["export", "{lines}", "--onnx", "{adir}"], "--onnx"),
    ("export --onnx /dev/null", ["export", "{lines}", "--onnx", "/dev/null"], "/dev/null"),
    ("export --onnx below a file", ["export", "{lines}", "--onnx", "{afile}/m.onnx"], "afile.txt"),
    ("export --onnx ''", ["export", "{lines}", "--onnx", ""], "--onnx"),
    ("export --onnx inside a version", ["export", "{lines}", "--onnx", "{lines}/ckpt-000002/m.onnx"], "ckpt-000002"),
    ("export --onnx onto the run's config", ["export", "{lines}", "--onnx", "{lines}/config.json"], "config.json"),
    ("export --onnx inside best/", ["export", "{lines}", "--onnx", "{lines}/best/m.onnx"], "best"),
    ("export DIR missing", ["export", "{root}/nothing", "--onnx", "{root}/x.onnx"], "nothing"),
    ("export --onnx missing (usage)", ["export", "{lines}"], "--onnx"),
    # -- plot
    ("plot --out a file", ["plot", "{lines}", "--out", "{afile}"], "afile.txt"),
    ("plot --out /dev/null", ["plot", "{lines}", "--out", "/dev/null"], "/dev/null"),
    ("plot --out below a file", ["plot", "{lines}", "--out", "{afile}/pics"], "afile.txt"),
    ("plot --out inside best/", ["plot", "{lines}", "--out", "{lines}/best"], "best"),
    ("plot --text ''", ["plot", "{lines}", "--text", ""], "--text"),
    ("plot --text unknown characters", ["plot", "{lines}", "--text", "QQ"], "Q"),
    ("plot DIR missing", ["plot", "{root}/nothing"], "nothing"),
    ("plot DIR ''", ["plot", ""], "DIR"),
    # -- no command / unknown command
    ("unknown command (usage)", ["bench"], "bench"),
]


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_bad_input_gets_one_clear_error(case, paths, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                # a default runs/ would land here (it must not)
    _, argv, needle = next(c for c in CASES if c[0] == case)
    fmt = {k: str(v) for k, v in paths.items()}
    args = [a.format(**fmt) for a in argv]
    if args[0] == "train" and "--resume" not in args:      # tiny, quiet, into tmp_path
        for opt, value in (("--out", tmp_path / "run"), ("--hidden-size", 8), ("--num-layers", 1),
                           ("--num-samples", 0), ("--quiet", None)):
            if opt not in args:
                args += [opt] + ([str(value)] if value is not None else [])
    code, out, err = cli(capsys, *args)
    COUNT["cases"] += 1
    lines = err.strip().splitlines()
    assert code in (1, 2), (code, err)
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("rnnkit") and "error:" in line, line
    assert not UNEXPECTED.search(line) and "Traceback" not in err, line
    assert len(line) < 1200, len(line)
    if needle is not None:
        assert needle in line, (needle, line)
    # nothing was trained: no checkpoint written where a run would have gone
    assert not has_checkpoint(tmp_path / "run") and not (tmp_path / "runs").exists()


report("CLI error cases (every subcommand)",
       lambda: COUNT["cases"] and f"{COUNT['cases']} of {len(CASES)}")


@pytest.mark.parametrize("out", ["/dev/null", "{adir}", "{afile}/report.md", ""])
def test_bench_refuses_its_output_path_before_running(paths, capsys, monkeypatch, out):
    """benchmarks/bench.py used to find an unwritable --out only after the whole benchmark."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench

    def never(**kw):
        raise AssertionError("the benchmark ran before --out was checked")
    monkeypatch.setattr(bench, "run", never)
    with pytest.raises(SystemExit) as e:
        bench.main(["--quick", "--quiet", "--out", out.format(**{k: str(v) for k, v in paths.items()})])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err.strip().splitlines()[-1] and "Traceback" not in err


# ============================================================================== decisions
# (borderline inputs, each with its decision tested)

def _peak_cli(argv):
    """(exit code, tracemalloc peak) of rnnkit ARGV with its output discarded."""
    import contextlib
    import tracemalloc
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null):
        tracemalloc.start()
        try:
            code = main([str(a) for a in argv])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return code, peak


@pytest.mark.slow
def test_sample_streams_any_number_of_lines(paths, capsys):
    """`sample --num N` generates 1,000 samples at a time and prints them as they come: the
    first 1,000 of N equal `--num 1000`, and memory does not grow with N."""
    code, out_1000, _ = cli(capsys, "sample", paths["lines"], "--num", 1000, "--seed", 3)
    assert code == 0
    code, out_2500, _ = cli(capsys, "sample", paths["lines"], "--num", 2500, "--seed", 3)
    assert code == 0
    lines = out_2500.split("\n")[:-1]
    assert len(lines) == 2500 and lines[:1000] == out_1000.split("\n")[:-1]
    _, peak_small = _peak_cli(["sample", paths["lines"], "--num", 1000])
    _, peak_big = _peak_cli(["sample", paths["lines"], "--num", 8000])
    assert peak_big < 1.5 * peak_small + 256 * 1024, (peak_small, peak_big)


@pytest.mark.slow
def test_sample_stream_prints_as_it_generates(paths, capsys, monkeypatch):
    import io
    import sys
    writes = []

    class Recorder(io.StringIO):
        def write(self, s):
            writes.append(s)
            return super().write(s)
    monkeypatch.setattr(sys, "stdout", Recorder())
    assert main(["sample", str(paths["stream"]), "--length", "10000", "--seed", "1"]) == 0
    text = "".join(writes)
    assert len(text) == 10000 + 1 + 1                   # the start character, 10,000, newline
    assert len([w for w in writes if w != "\n"]) >= 3   # pieces of at most 4,096 characters
    monkeypatch.undo()
    code, out, _ = cli(capsys, "sample", paths["stream"], "--length", 10000, "--seed", 1)
    assert out == text                                  # the same text as one piece would be
    _, peak_small = _peak_cli(["sample", paths["stream"], "--length", 2000])
    _, peak_big = _peak_cli(["sample", paths["stream"], "--length", 20000])
    assert peak_big < 1.5 * peak_small + 256 * 1024, (peak_small, peak_big)


def test_best_weights_named_only_when_they_exist(paths, capsys, tmp_path):
    code, _, err = cli(capsys, "train", paths["names"], "--out", tmp_path / "a", "--steps", 2,
                       "--val-frac", 0, *TINY)
    assert code == 0 and "best weights" not in err and not (tmp_path / "a" / "best").exists()
    code, _, err = cli(capsys, "train", paths["names"], "--out", tmp_path / "b", "--steps", 2,
                       "--eval-every", 2, *TINY)
    assert code == 0 and f"best weights in {tmp_path / 'b' / 'best'}" in err


def test_resume_with_its_own_out_is_accepted(paths, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(paths["lines"], run)
    code, _, err = cli(capsys, "train", "--resume", run, "--out", run, "--steps", 5)
    assert code == 0, err


def test_ctrl_c_while_importing_is_one_line(monkeypatch, capsys):
    """Ctrl-C while NumPy and the rest load (before rnnkit.cli exists): `rnnkit` prints one
    line and exits 130 instead of a long traceback."""
    import importlib.abc
    import sys

    import rnnkit.__main__ as entry

    class Interrupt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "rnnkit.cli":
                raise KeyboardInterrupt
            return None
    monkeypatch.delitem(sys.modules, "rnnkit.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupt(), *sys.meta_path])
    assert entry.run() == 130
    assert capsys.readouterr().err == "rnnkit: error: interrupted\n"
