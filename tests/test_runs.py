"""Run directories under attack: --overwrite leaves nothing of the old run, one writer at a
time (the run lock), readers keep working while a run trains, a killed trainer's lock recovers.

The trainers here are real ``python -m rnnkit train`` processes (the lock is an operating-system
lock, so a second writer must be another process); the commands that must be refused or must
keep working run in-process through ``rnnkit.cli.main``. References are independent of the CLI:
the checkpoint files themselves, an ONNX model's own metadata, ``os.getpid`` of the trainer.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from test_kill import _start, _wait_for

from rnnkit.checkpoint import has_checkpoint, list_versions, load_checkpoint, read_metrics
from rnnkit.errors import CheckpointError, RunLockedError
from rnnkit.runlock import HOLDER_FILE, RunLock, lock_holder

from test_reliability import cli

pytestmark = pytest.mark.usefixtures("fast_io")

NAMES = "\n".join(f"{a}{b}" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal", "ida")
                  for b in ("a", "ie", "o", "y", "elle", "ric")) + "\n"
PROSE = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was "
         "the age of foolishness.\n") * 20
TINY = ["--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4", "--batch-size", "4",
        "--seq-len", "8", "--quiet", "--num-samples", "0"]


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error:"), err
    assert "unexpected" not in err and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "names.txt").write_text(NAMES)
    (tmp_path / "prose.txt").write_text(PROSE)
    return tmp_path / "names.txt", tmp_path / "prose.txt"


# ============================================================================== --overwrite
def test_overwrite_leaves_nothing_of_the_old_run(tmp_path, capsys, files):
    """A names LSTM overwritten by a prose GRU without validation data (so no new best/):
    info, sample, export, metrics and resume must all see only the GRU."""
    names, prose = files
    run = tmp_path / "run"
    assert cli(capsys, "train", names, "--out", run, "--steps", 6, "--eval-every", 2,
               "--mode", "lines", *TINY)[0] == 0
    for picture in ("loss.png", "gates.png", "units.png"):
        (run / picture).write_bytes(b"\x89PNG old run")
    (run / "notes.txt").write_text("mine")                  # not rnnkit's: must survive
    assert (run / "best").is_dir() and len(read_metrics(run)) == 3
    code, _, err = cli(capsys, "train", prose, "--out", run, "--overwrite", "--cell", "gru",
                       "--steps", 3, "--eval-every", 100, "--val-frac", 0, "--mode", "stream", *TINY)
    assert code == 0, err
    assert "deleted the previous run" in err
    assert not (run / "best").exists()
    assert sorted(p.name for p in list_versions(run)) == ["ckpt-000001"]
    assert not any((run / p).exists() for p in ("loss.png", "gates.png", "units.png"))
    assert (run / "notes.txt").read_text() == "mine"
    assert [r["step"] for r in read_metrics(run)] == [3]   # only the new run's final record
    ck = load_checkpoint(run)
    assert ck.config["cell"] == "gru" and ck.trainer_state["step"] == 3
    code, out, _ = cli(capsys, "info", run, "--json")
    assert code == 0 and json.loads(out)["config"]["cell"] == "gru"
    code, out, err = cli(capsys, "sample", run, "--length", 40)
    assert code == 0, err
    assert set(out.strip()) <= set(PROSE)                   # the GRU's vocabulary, not names
    assert cli(capsys, "export", run, "--onnx", tmp_path / "m.onnx")[0] == 0
    import onnx
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert meta["cell"].lower() == "gru"
    code, _, err = cli(capsys, "train", "--resume", run, "--steps", 5)
    assert code == 0, err
    assert load_checkpoint(run).trainer_state["step"] == 5


def test_overwrite_then_no_best_means_sample_uses_the_new_weights(tmp_path, capsys, files):
    """sample/export pick DIR/best when it exists: after --overwrite it must not be the old one."""
    names, _ = files
    run = tmp_path / "run"
    assert cli(capsys, "train", names, "--out", run, "--steps", 2, "--eval-every", 2, *TINY)[0] == 0
    old_best = load_checkpoint(run / "best").model_state
    assert cli(capsys, "train", names, "--out", run, "--overwrite", "--seed", 7, "--steps", 2,
               "--eval-every", 2, *TINY)[0] == 0
    new_best = load_checkpoint(run / "best").model_state
    assert any((old_best[k] != new_best[k]).any() for k in old_best)
    assert load_checkpoint(run / "best").trainer_state["step"] == 2
    assert len(list_versions(run / "best")) == 1


def test_resume_and_overwrite_help_and_refusals(capsys):
    _, out, _ = cli(capsys, "train", "--help")
    text = " ".join(out.split())
    assert "best/, metrics.jsonl" in text and "is deleted first" in text


# ============================================================================== the lock
def test_run_lock_in_one_process(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(CheckpointError, match="run directory"):
        RunLock(d).acquire()
    d.mkdir()
    with RunLock(d, command="rnnkit train test") as lock:
        assert lock.held
        info = lock_holder(d)
        assert info["pid"] == os.getpid() and info["command"] == "rnnkit train test"
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(d).acquire()                  # another lock object: refused, names the holder
    assert not (d / HOLDER_FILE).exists()         # released: the record is gone
    with RunLock(d):                              # and it can be taken again
        pass


def _long_trainer(tmp_path, run, log_name, extra=()):
    log = tmp_path / log_name
    proc = _start(["--resume", run, "--steps", "1000000", "--eval-every", "3", "--quiet",
                   *extra], log)
    _wait_for(proc, log, f"resumed from {run}")
    return proc, log


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_second_writer_refused_readers_work_killed_lock_recovers(tmp_path, capsys, files):
    names, _ = files
    run = tmp_path / "run"
    assert cli(capsys, "train", names, "--out", run, "--steps", 3, "--eval-every", 3, *TINY)[0] == 0
    proc, log = _long_trainer(tmp_path, run, "a.log")
    try:
        deadline = time.monotonic() + 30
        while (lock_holder(run) or {}).get("pid") != proc.pid and time.monotonic() < deadline:
            time.sleep(0.02)
        # a second writer, resuming or overwriting: refused, naming the holder
        code, _, err = cli(capsys, "train", "--resume", run, "--steps", 10)
        assert code == 1
        line = one_error_line(err)
        assert f"pid {proc.pid}" in line and "--resume" in line, line
        code, _, err = cli(capsys, "train", names, "--out", run, "--overwrite", *TINY)
        assert code == 1 and f"pid {proc.pid}" in one_error_line(err)
        assert has_checkpoint(run / "best")          # the refused --overwrite deleted nothing
        # readers never take the lock: they work while the run trains
        for argv in (("info", run), ("sample", run, "--num", 3), ("eval", run, names),
                     ("export", run, "--onnx", tmp_path / "m.onnx"),
                     ("plot", run, "--out", tmp_path / "pics")):
            code, out, err = cli(capsys, *argv)
            assert code == 0, (argv[0], err)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    # the OS released the lock with the process; the stale record does not block anyone
    assert (run / HOLDER_FILE).exists() and lock_holder(run)["pid"] == proc.pid
    step = load_checkpoint(run).trainer_state["step"]
    code, _, err = cli(capsys, "train", "--resume", run, "--steps", step + 2)
    assert code == 0, err
    assert load_checkpoint(run).trainer_state["step"] == step + 2
    assert not (run / HOLDER_FILE).exists()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_two_resumes_started_together_one_wins(tmp_path, capsys, files):
    """Two `train --resume DIR` processes started at the same moment: exactly one trains, the
    other exits 1 with one line naming the winner; metrics never hold a step twice."""
    names, _ = files
    run = tmp_path / "run"
    assert cli(capsys, "train", names, "--out", run, "--steps", 3, "--eval-every", 3, *TINY)[0] == 0
    logs = [tmp_path / f"p{i}.log" for i in range(2)]
    procs = [_start(["--resume", run, "--steps", "1000000", "--eval-every", "2", "--quiet"], log)
             for log in logs]
    try:
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.02)
        done = [i for i, p in enumerate(procs) if p.poll() is not None]
        assert len(done) == 1, [log.read_text() for log in logs]
        loser, winner = procs[done[0]], procs[1 - done[0]]
        assert loser.returncode == 1
        lines = logs[done[0]].read_text().strip().splitlines()
        assert len(lines) == 1 and f"is in use by process pid {winner.pid}" in lines[0], lines
        _wait_for(winner, logs[1 - done[0]], "resumed from")
        time.sleep(0.5)                                  # let it train and save a few times
        winner.send_signal(signal.SIGTERM)
        assert winner.wait(timeout=60) == 0, logs[1 - done[0]].read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == sorted(set(steps)) and steps[-1] >= 4, steps
