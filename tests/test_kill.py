"""SIGKILL the real ``rnnkit train`` process at random moments, again and again.

A tiny stream-mode model checkpoints every 2 steps (``--eval-every 2``), so the process spends
most of its time inside saves (the ``best/`` copy, the new version, the manifest, fsyncs,
rotation) and most kills land in the middle of one. After every kill:

* ``load_checkpoint`` loads the directory with no warning (a kill never damages a committed
  version, so no fallback is needed), its step never goes backwards, and every file of the
  loaded version belongs to the same step (trainer.json step == optimizer step count, the
  weights fit config.json and vocab.json);
* the next round is ``rnnkit train --resume DIR``, which must print ``resumed from DIR at step
  K`` for the step just loaded before it is killed in turn.

At the end the run is resumed to completion, and its weights must equal bit for bit those of
the same training done in one go without interruption: the kills lost nothing.
Every few rounds SIGTERM is sent instead: the process must save and exit 0.

``RNNKIT_KILLS`` sets the number of kills (default 20; e.g. 200 for a long local run); the
figures are printed (``-s``) and written to ``$RNNKIT_REPORT_DIR/kill_counts.json`` if set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnnkit.checkpoint import list_versions, load_checkpoint
from rnnkit.data import Vocab
from rnnkit.io import load_safetensors
from rnnkit.nn import model_from_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")]

REPO = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("RNNKIT_KILLS", "20"))
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was "
        "the age of foolishness, it was the epoch of belief.\n") * 25
MODEL = ["--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4", "--seq-len", "8",
         "--batch-size", "4", "--mode", "stream", "--eval-every", "2", "--quiet",
         "--num-samples", "0"]
FOREVER = "1000000"


def _start(args, log):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "rnnkit", "train", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=log.parent)


def _wait_for(proc, log, needle, timeout=60.0):
    """Wait until ``needle`` appears in the process's stderr; fail if it exits first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        text = log.read_text(errors="replace")
        if needle in text:
            return text
        if proc.poll() is not None:
            pytest.fail(f"rnnkit train exited with {proc.returncode} before {needle!r}:\n{text}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"timeout waiting for {needle!r}:\n{log.read_text(errors='replace')}")


def _check_consistent(run: Path, last_step_evaluated: bool = False) -> int:
    """Load the directory and check that every file of the version is from one step.
    ``last_step_evaluated``: the run ended at this step (``--steps``), which is evaluated even
    when it is not a multiple of --eval-every."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no fallback: the newest version is intact
        ck = load_checkpoint(run)
    step = ck.trainer_state["step"]
    assert ck.optimizer_meta["step"] == step, (ck.path, ck.optimizer_meta["step"], step)
    model = model_from_config(ck.config)
    model.load_state_dict(ck.model_state)
    assert len(Vocab.from_json(ck.vocab)) == ck.config["vocab_size"]
    evals = [r["step"] for r in ck.trainer_state["history"]]
    want = list(range(2, step + 1, 2)) + ([step] if last_step_evaluated and step % 2 else [])
    assert evals == want, (step, evals)                            # no evaluation lost or doubled
    return step


def _debris(run: Path) -> bool:
    """Leftovers of an unfinished save (temporary version dirs or files), here or in best/."""
    names = os.listdir(run) + (os.listdir(run / "best") if (run / "best").is_dir() else [])
    return any(n.startswith((".tmp-", ".old-")) or ".tmp-" in n for n in names)


def test_sigkill_real_training_process_then_resume(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    rng = np.random.default_rng(int(os.environ.get("RNNKIT_KILL_SEED", "0")))
    stats = {"kills": 0, "kills_during_save": 0, "sigterm_stops": 0, "resumes": 0}
    last = 0
    t_start = time.monotonic()
    rounds = 0
    while stats["kills"] < KILLS:
        rounds += 1
        log = tmp_path / f"round{rounds}.log"
        if last == 0 and not list_versions(run):
            proc = _start([text, "--out", run, "--steps", FOREVER, *MODEL], log)
            _wait_for(proc, log, "rnnkit train:")
        else:
            proc = _start(["--resume", run, "--steps", FOREVER, "--quiet"], log)
            _wait_for(proc, log, f"resumed from {run} at step {last}")
            stats["resumes"] += 1
        time.sleep(float(rng.uniform(0.0, 0.6)))
        if rounds % 7 == 4:                       # SIGTERM: save, then exit 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()
            out = log.read_text()
            assert "SIGTERM received" in out and "continue with --resume" in out, out
            stats["sigterm_stops"] += 1
            assert not _debris(run)
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            assert proc.returncode == -signal.SIGKILL
            stats["kills"] += 1
            stats["kills_during_save"] += _debris(run)
        step = _check_consistent(run) if list_versions(run) else 0
        assert step >= last, (step, last)           # never goes backwards
        last = step
    # finish the run, and compare with the same training done in one go
    final = last + 4
    log = tmp_path / "final.log"
    proc = _start(["--resume", run, "--steps", final, "--quiet"], log)
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert f"resumed from {run} at step {last}" in log.read_text()
    assert _check_consistent(run, last_step_evaluated=True) == final
    straight = tmp_path / "straight"
    proc = _start([text, "--out", straight, "--steps", final, *MODEL], tmp_path / "straight.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "straight.log").read_text()
    a = load_safetensors(list_versions(run)[0] / "model.safetensors")
    b = load_safetensors(list_versions(straight)[0] / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    oa = load_safetensors(list_versions(run)[0] / "optimizer.safetensors")
    ob = load_safetensors(list_versions(straight)[0] / "optimizer.safetensors")
    for k in ob:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    stats.update(final_step=final, seconds=round(time.monotonic() - t_start, 1))
    print(f"\nkills survived: {stats}")
    out_dir = os.environ.get("RNNKIT_REPORT_DIR")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        Path(out_dir, "kill_counts.json").write_text(json.dumps(stats, indent=2))
    assert stats["kills"] == KILLS and last > 0
