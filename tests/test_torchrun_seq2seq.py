"""torchrun for a seq2seq run: `torchrun --nproc_per_node=2 -m rnnkit train pairs.tsv --engine
torch` (gloo on CPU) against the same command in one process. Each process takes half of the
pairs of every global batch (cut to its own longest source and target); DDP averages the
gradients, so after the same steps the weights and the validation losses equal the
one-process run's (float64, no dropout). A rank with other pairs stops the job with one line."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.checkpoint import load_checkpoint, read_metrics
from rnnkit.cli import main
from tests.needs import require

require("torch")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_io")]

REPO = Path(__file__).resolve().parents[1]
WORDS = ["abc", "ba", "cab", "aab", "bca", "ccb", "acb", "bb", "cba", "abca", "cc", "bacab",
         "a", "caab", "bbca", "acab"]
OPTS = ["--engine", "torch", "--device", "cpu", "--hidden-size", "6", "--embedding-size", "4",
        "--batch-size", "8", "--steps", "12", "--eval-every", "6", "--dtype", "float64",
        "--quiet", "--num-samples", "0"]


def _torchrun(args, cwd, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", RNNKIT_DIST_TIMEOUT="60",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "rnnkit", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()) for k in a)


def test_torchrun_two_processes_train_the_seq2seq_of_one(tmp_path):
    import torch
    pairs = tmp_path / "rev.tsv"
    pairs.write_text("".join(f"{w}\t{w[::-1]}\n" for w in WORDS * 4))
    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(pairs), "--out", str(one), *OPTS]) == 0
    finally:
        torch.set_num_threads(threads)
    r = _torchrun([pairs, "--out", two, *OPTS], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [s for s in (r.stdout + r.stderr).splitlines() if s.startswith("rnnkit")]
    assert "2 processes (torchrun" in lines[0] and "Traceback" not in r.stderr
    assert any("seq2seq" in s for s in lines)
    c1, c2 = load_checkpoint(one), load_checkpoint(two)
    assert c1.config["model"] == c2.config["model"] == "Seq2Seq"
    weights = _max_diff(c1.model_state, c2.model_state)
    print(f"\nseq2seq: torchrun 2 processes vs 1 after 12 steps: max |dw| = {weights:.2e}")
    assert weights < 1e-9
    m1, m2 = read_metrics(one), read_metrics(two)
    assert [m["step"] for m in m2] == [6, 12]                              # written once
    assert max(abs(a["val_loss"] - b["val_loss"]) for a, b in zip(m1, m2)) < 1e-9
    assert [a["val_exact_match"] for a in m1] == [b["val_exact_match"] for b in m2]
    assert c2.trainer_state["engine"]["world_size"] == 2


def test_a_rank_with_other_pairs_stops_the_seq2seq_job_with_one_line(tmp_path):
    a, b = tmp_path / "node0", tmp_path / "node1"
    a.mkdir()
    b.mkdir()
    (a / "p.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in WORDS * 4))
    (b / "p.tsv").write_text("".join(f"{w}\t{w.upper()}\n" for w in WORDS * 4))   # other targets
    env = dict(os.environ, OMP_NUM_THREADS="1", RNNKIT_DIST_TIMEOUT="40",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                               "--nproc_per_node=1", f"--node_rank={rank}", "--master_addr=127.0.0.1",
                               f"--master_port={port}", "--max_restarts=0", "-m", "rnnkit", "train",
                               "p.tsv", "--out", str(tmp_path / "run"), *OPTS],
                              cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank, cwd in enumerate((a, b))]
    try:
        errs = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert all(p.returncode != 0 for p in procs)
    ours = [ln for ln in errs[0].splitlines() if ln.startswith("rnnkit: error:")]
    assert len(ours) == 1 and "rank 1" in ours[0], errs[0]
