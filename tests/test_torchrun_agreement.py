"""torchrun across two nodes, simulated on this machine (`torchrun --nnodes 2` on localhost,
one process per node, gloo): the ranks agree on the model and the data before DDP is built,
so a rank with another text or other options stops the job with one error line instead of
a deadlock or silently different numbers; a rank that fails before joining says so on its
own terminal; and nothing waits longer than RNNKIT_DIST_TIMEOUT."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import require

require("torch")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog. " * 40
OTHER = "pack my box with five dozen liquor jugs! " * 40              # another vocabulary
OPTS = ["--engine", "torch", "--device", "cpu", "--hidden-size", "8", "--num-layers", "1",
        "--seq-len", "8", "--batch-size", "4", "--mode", "stream", "--steps", "2",
        "--eval-every", "2", "--quiet", "--num-samples", "0"]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(node_args, cwds, timeout=240, dist_timeout=40):
    """Start node 0 and node 1 (one torchrun each) and wait for both: [(code, stderr)].
    ``dist_timeout``: RNNKIT_DIST_TIMEOUT, how long a process waits for the other."""
    port = _port()
    env = dict(os.environ, OMP_NUM_THREADS="1", RNNKIT_DIST_TIMEOUT=str(dist_timeout),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    procs = []
    for rank, (args, cwd) in enumerate(zip(node_args, cwds)):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}",
               "--max_restarts=0", "-m", "rnnkit", "train", *map(str, args)]
        procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    out = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=timeout)         # a hang fails the test here
            out.append((p.returncode, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


def _ours(err):
    return [ln for ln in err.splitlines() if ln.startswith("rnnkit: error:")]


@pytest.fixture
def nodes(tmp_path):
    a, b = tmp_path / "node0", tmp_path / "node1"
    a.mkdir()
    b.mkdir()
    (a / "input.txt").write_text(TEXT)
    (b / "input.txt").write_text(TEXT)
    return a, b, tmp_path


def test_two_nodes_with_the_same_text_train(nodes):
    a, b, root = nodes
    run = root / "run"
    (r0, e0), (r1, e1) = two_nodes([["input.txt", "--out", run, *OPTS]] * 2, [a, b])
    assert r0 == 0 and r1 == 0, (e0, e1)
    assert "2 processes (torchrun" in e0


def test_a_node_with_another_text_stops_the_job_with_one_line(nodes):
    a, b, root = nodes
    (b / "input.txt").write_text(OTHER)
    (r0, e0), (r1, e1) = two_nodes([["input.txt", "--out", root / "run", *OPTS]] * 2, [a, b])
    assert r0 != 0 and r1 != 0
    lines = _ours(e0)
    assert len(lines) == 1, e0
    assert "rank 1" in lines[0] and ("vocab" in lines[0] or "text" in lines[0]), lines[0]


def test_a_node_with_other_options_stops_the_job(nodes):
    a, b, root = nodes
    other = [x if x != "8" else x for x in OPTS]
    other[other.index("--seq-len") + 1] = "16"
    (r0, e0), (r1, e1) = two_nodes([["input.txt", "--out", root / "run", *OPTS],
                                    ["input.txt", "--out", root / "run", *other]], [a, b])
    assert r0 != 0 and r1 != 0
    lines = _ours(e0)
    assert len(lines) == 1 and "seq_len" in lines[0] and "rank 1" in lines[0], e0


def test_a_node_whose_text_is_missing_is_reported_once_by_rank_0(nodes):
    a, b, root = nodes
    (b / "input.txt").unlink()
    (r0, e0), (r1, e1) = two_nodes([["input.txt", "--out", root / "run", *OPTS]] * 2, [a, b])
    assert r0 != 0 and r1 != 0
    lines = _ours(e0)
    assert len(lines) == 1 and "rank 1" in lines[0] and "input.txt" in lines[0], e0
    assert _ours(e1) == [], e1                      # said once, on rank 0's terminal


def test_a_node_failing_before_joining_says_so_on_its_terminal(nodes):
    """Rank 1 stops at its option check and never joins; rank 0 waits RNNKIT_DIST_TIMEOUT
    (10 s here: the wait starts once rank 0 itself is up, so the machine's load does not
    shorten it) and gives up with one line."""
    a, b, root = nodes
    (r0, e0), (r1, e1) = two_nodes([["input.txt", "--out", root / "run", *OPTS],
                                    ["input.txt", "--out", root / "run", *OPTS, "--lr", "-1"]], [a, b],
                                   dist_timeout=10)
    assert r0 != 0 and r1 != 0
    lines = _ours(e1)
    assert len(lines) == 1 and "rank 1" in lines[0] and "--lr" in lines[0], e1
    assert len(_ours(e0)) == 1, e0                  # rank 0 gives up after the timeout
