"""Tests of the ``rnnkit`` command line (rnnkit.cli): train / sample / eval / info, exact resume,
Ctrl-C and SIGTERM, determinism and error handling.

Commands run in-process through ``rnnkit.cli.main([...])``; only the signal tests start a real
``python -m rnnkit`` process. References are independent of the CLI: weights read back with
``load_checkpoint``, losses recomputed from the model's forward pass with a NumPy
log-softmax, parameter counts from the LSTM formula, the names data set itself.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit._mode import no_grad
from rnnkit.checkpoint import has_checkpoint, load_checkpoint, read_metrics
from rnnkit.cli import main
from rnnkit.data import Vocab, read_text, split_lines, unigram_entropy
from rnnkit.errors import DataError
from rnnkit.nn import model_from_config
from rnnkit.plot_hook import maybe_plot as _REAL_MAYBE_PLOT

from needs import optional, require

REPO = Path(__file__).resolve().parents[1]
NAMES = datasets.names()[:400]
STREAM_TEXT = ("the quick brown fox jumps over the lazy dog; pack my box with five dozen "
               "liquor jugs. how vexingly quick daft zebras jump!\n") * 30
TINY = ["--hidden-size", "16", "--num-layers", "1", "--embedding-size", "8", "--batch-size", "16",
        "--quiet", "--num-samples", "0"]


pytestmark = pytest.mark.usefixtures("fast_io")


def cli(capsys, *argv):
    """Run ``rnnkit ARGV`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:          # argparse: usage errors and --help
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def names_file(tmp_path):
    return write(tmp_path / "names.txt", "\n".join(NAMES) + "\n")


@pytest.fixture
def stream_file(tmp_path):
    return write(tmp_path / "prose.txt", STREAM_TEXT)


def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def load_model(directory):
    ck = load_checkpoint(directory, load_optimizer=False)
    model = model_from_config(ck.config)
    model.load_state_dict(ck.model_state)
    model.eval()
    return model, Vocab.from_json(ck.vocab), ck


def assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rnnkit: error:")
    assert "Traceback" not in err
    return lines[0]


# ============================================================================== exact resume
@pytest.mark.parametrize("kind", ["lines", "stream"])
def test_cli_resume_equals_straight(tmp_path, capsys, names_file, stream_file, kind):
    f = names_file if kind == "lines" else stream_file
    opts = ["--hidden-size", "16", "--num-layers", "2", "--dropout", "0.2", "--embedding-size", "8",
            "--batch-size", "8", "--seq-len", "16", "--eval-every", "5", "--quiet", "--num-samples", "0"]
    a, b = tmp_path / "A", tmp_path / "B"
    assert cli(capsys, "train", f, "--steps", 20, "--out", a, *opts)[0] == 0
    assert cli(capsys, "train", f, "--steps", 10, "--out", b, *opts)[0] == 0
    assert load_checkpoint(b).trainer_state["step"] == 10
    code, out, err = cli(capsys, "train", "--resume", b, "--steps", 20)
    assert code == 0, err
    assert "resumed from" in err
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.trainer_state["extra"]["cli"]["mode"] == kind
    assert ca.trainer_state["step"] == cb.trainer_state["step"] == 20
    assert_states_equal(ca.model_state, cb.model_state)
    assert_states_equal(ca.optimizer_state, cb.optimizer_state)
    assert_states_equal(load_checkpoint(a / "best").model_state, load_checkpoint(b / "best").model_state)
    ma, mb = read_metrics(a), read_metrics(b)
    assert [r["step"] for r in ma] == [r["step"] for r in mb] == [5, 10, 15, 20]
    for ra, rb in zip(ma, mb):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_loss"] == rb["val_loss"]


# ============================================================================== determinism
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Small trained checkpoints (float64): {'lines': dir, 'stream': dir} and their data files."""
    root = tmp_path_factory.mktemp("trained")
    files = {"lines": write(root / "names.txt", "\n".join(NAMES) + "\n"),
             "stream": write(root / "prose.txt", STREAM_TEXT)}
    dirs = {}
    for kind, f in files.items():
        d = root / kind
        code = main(["train", str(f), "--out", str(d), "--steps", "150", "--lr", "0.01",
                     "--eval-every", "75", "--hidden-size", "32", "--num-layers", "1",
                     "--batch-size", "32", "--seq-len", "32", "--dtype", "float64", "--quiet",
                     "--num-samples", "0"])
        assert code == 0
        dirs[kind] = d
    return dirs, files


@pytest.mark.parametrize("kind", ["lines", "stream"])
def test_sample_is_deterministic_for_a_seed(capsys, trained, kind):
    d = trained[0][kind]
    extra = ["--num", "20"] if kind == "lines" else ["--length", "300"]
    c1, s1, e1 = cli(capsys, "sample", d, "--seed", 1, *extra)
    c2, s2, _ = cli(capsys, "sample", d, "--seed", 1, *extra)
    c3, s3, _ = cli(capsys, "sample", d, "--seed", 2, *extra)
    assert c1 == c2 == c3 == 0, e1
    assert s1 == s2
    assert s1 != s3
    if kind == "lines":
        assert len(s1.splitlines()) == 20
    else:
        assert len(s1.rstrip("\n")) > 300


def test_same_training_twice_gives_identical_weights(tmp_path, capsys, names_file):
    args = ["train", names_file, "--steps", 12, "--eval-every", 6, *TINY]
    for out, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert cli(capsys, *args, "--out", tmp_path / out, "--seed", seed)[0] == 0
    a, b, c = (load_checkpoint(tmp_path / x).model_state for x in "abc")
    assert_states_equal(a, b)
    assert any(not np.array_equal(a[k], c[k]) for k in a)     # another seed, other weights


# ============================================================================== eval
def test_eval_lines_beats_unigram_and_matches_reference(capsys, trained):
    d, f = trained[0]["lines"], trained[1]["lines"]
    code, out, err = cli(capsys, "eval", d, f)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"bits_per_char: (\d+\.\d+)", last)
    assert m, last
    bpc = float(m.group(1))
    model, vocab, _ = load_model(d / "best")
    total, count, targets = 0.0, 0, []
    with no_grad():
        for s in split_lines(read_text(f)):
            ids = [vocab.bos_id] + list(vocab.encode(s)) + [vocab.bos_id]
            logits, _ = model(np.array(ids[:-1])[:, None])
            total -= np_log_softmax(logits[:, 0])[np.arange(len(ids) - 1), ids[1:]].sum()
            count += len(ids) - 1
            targets += ids[1:]
    assert bpc == pytest.approx(total / count / math.log(2), abs=1e-6)
    assert f"characters: {count}" in out
    unigram_bits = unigram_entropy(np.array(targets), len(vocab)) / math.log(2)
    assert bpc < unigram_bits - 0.2, (bpc, unigram_bits)


def test_eval_stream_beats_unigram_and_matches_reference(capsys, trained):
    d, f = trained[0]["stream"], trained[1]["stream"]
    code, out, err = cli(capsys, "eval", d, f)
    assert code == 0, err
    m = re.fullmatch(r"bits_per_char: (\d+\.\d+)", out.strip().splitlines()[-1])
    assert m
    model, vocab, _ = load_model(d / "best")
    ids = vocab.encode(read_text(f))
    with no_grad():
        logits, _ = model(ids[:-1][:, None])               # one forward over the whole text
    nats = -np_log_softmax(logits[:, 0])[np.arange(len(ids) - 1), ids[1:]].mean()
    assert float(m.group(1)) == pytest.approx(nats / math.log(2), abs=1e-6)
    assert float(m.group(1)) < unigram_entropy(ids[1:], len(vocab)) / math.log(2) - 1.0


# ============================================================================== Ctrl-C / SIGTERM
@pytest.mark.slow
def test_sigterm_during_set_up_stops_at_the_first_step_boundary(tmp_path, capsys, names_file):
    """A SIGTERM that arrives while `rnnkit train` is still setting up (data, model, resume),
    before the training loop has its own handler, is kept for the loop: the run stops at step 0
    in the orderly way (checkpoint saved, exit 0, one message) instead of dying of the signal
    (which a scheduler's SIGTERM right after a resume used to do). In a child process, which
    the signal would otherwise kill."""
    out_dir = tmp_path / "run"
    driver = ("import os, signal, sys\n"
              "from rnnkit import cli, train_run\n"
              "real = train_run.run_data\n"
              "def run_data_then_sigterm(*a, **kw):\n"
              "    data = real(*a, **kw)\n"
              "    os.kill(os.getpid(), signal.SIGTERM)      # arrives during set-up\n"
              "    return data\n"
              "train_run.run_data = run_data_then_sigterm\n"
              "code = cli.main(sys.argv[1:])\n"
              "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, 'handler not restored'\n"
              "sys.exit(code)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", driver, "train", str(names_file), "--out",
                           str(out_dir), "--steps", "50", *map(str, TINY)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert "SIGTERM received at step 0" in proc.stderr, proc.stderr
    assert "continue with --resume" in proc.stderr and "Traceback" not in proc.stderr
    assert load_checkpoint(out_dir).trainer_state["step"] == 0
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 3)
    assert code == 0, err
    assert load_checkpoint(out_dir).trainer_state["step"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_and_resume_continues(tmp_path, capsys, names_file, sig):
    out_dir = tmp_path / "run"
    err_path = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "rnnkit", "train", str(names_file), "--out", str(out_dir),
           "--steps", "100000", "--eval-every", "1000000", *TINY]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(err_path, "w") as ferr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ferr, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while "steps ->" not in err_path.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, err_path.read_text()
                time.sleep(0.05)
            time.sleep(2.0)                                   # let it train for a while
            assert proc.poll() is None
            proc.send_signal(sig)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = err_path.read_text()
    # saved either way; Ctrl-C exits 130 as an interrupted command does, SIGTERM (an orderly
    # stop asked by a scheduler) 0
    assert proc.returncode == (130 if sig == signal.SIGINT else 0), err
    assert "Traceback" not in err
    assert ("Ctrl-C" if sig == signal.SIGINT else "SIGTERM") in err
    ck = load_checkpoint(out_dir)
    step = ck.trainer_state["step"]
    assert step > 0
    assert ck.trainer_state["extra"]["cli"]["steps"] == 100000
    code, out, err = cli(capsys, "train", "--resume", out_dir, "--steps", step + 3)
    assert code == 0, err
    assert f"resumed from {out_dir} at step {step}" in err
    assert load_checkpoint(out_dir).trainer_state["step"] == step + 3


# ============================================================================== errors
def test_missing_file(tmp_path, capsys):
    code, out, err = cli(capsys, "train", tmp_path / "nope.txt", *TINY)
    assert code == 1
    assert "nope.txt" in one_error_line(err) and "does not exist" in err


def test_empty_file(tmp_path, capsys):
    code, _, err = cli(capsys, "train", write(tmp_path / "empty.txt", ""), *TINY)
    assert code == 1
    assert "empty" in one_error_line(err)


@pytest.fixture
def binary_file(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    p = tmp_path / "blob.bin"
    p.write_bytes(b"\xff\xfe\x80" + data)
    return p


def test_non_utf8_file_suggests_encoding_and_bytes_works(tmp_path, capsys, binary_file):
    code, _, err = cli(capsys, "train", binary_file, *TINY)
    assert code == 1
    assert "--encoding" in one_error_line(err)
    out_dir = tmp_path / "bytes-run"
    code, _, err = cli(capsys, "train", binary_file, "--encoding", "bytes", "--mode", "stream",
                       "--steps", 3, "--seq-len", 16, "--out", out_dir, *TINY)
    assert code == 0, err
    ck = load_checkpoint(out_dir)
    vocab = Vocab.from_json(ck.vocab)
    assert set(vocab.chars) == set(binary_file.read_bytes().decode("latin-1"))
    assert ck.trainer_state["step"] == 3


@pytest.mark.parametrize("argv,needle", [
    (["train", "--no-such-option"], "unrecognized arguments"),
    (["train", "--steps", "abc"], "invalid int value"),
    (["train", "--hidden-size", "1.5"], "invalid int value"),
    (["train", "--cell", "transformer"], "invalid choice"),
    (["sample"], "required"),
    (["frobnicate"], "invalid choice"),
    (["bench"], "invalid choice"),          # the benchmark harness is benchmarks/bench.py
])
def test_usage_errors_exit_2(capsys, argv, needle):
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_no_command_exits_2(capsys):
    code, _, err = cli(capsys)
    assert code == 2 and "usage" in err.lower()


def test_bad_values_checked_after_parsing_exit_1(tmp_path, capsys, names_file):
    code, _, err = cli(capsys, "train", names_file, "--val-frac", 1.5, "--out", tmp_path / "x", *TINY)
    assert code == 1
    assert "--val-frac" in one_error_line(err)


def test_debug_shows_the_exception(tmp_path, capsys):
    with pytest.raises(DataError):
        main(["train", str(tmp_path / "nope.txt"), "--debug"])


def test_out_with_checkpoint_needs_resume_or_overwrite(tmp_path, capsys, names_file):
    out_dir = tmp_path / "run"
    args = ["train", names_file, "--steps", 2, "--out", out_dir, *TINY]
    assert cli(capsys, *args)[0] == 0
    code, _, err = cli(capsys, *args)
    line = one_error_line(err)
    assert code == 1
    assert "already holds a checkpoint" in line and "--resume" in line and "--overwrite" in line
    code, _, err = cli(capsys, *args, "--steps", 3, "--overwrite")
    assert code == 0, err
    assert load_checkpoint(out_dir).trainer_state["step"] == 3


def test_resume_with_changed_model_option_fails(tmp_path, capsys, names_file):
    out_dir = tmp_path / "run"
    assert cli(capsys, "train", names_file, "--steps", 2, "--out", out_dir, *TINY)[0] == 0
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 4, "--hidden-size", 24)
    assert code == 1
    line = one_error_line(err)
    assert "--hidden-size" in line and "24" in line and "16" in line
    # the same value is accepted
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 4, "--hidden-size", 16)
    assert code == 0, err


def test_resume_on_different_data_fails(tmp_path, capsys, names_file):
    out_dir = tmp_path / "run"
    assert cli(capsys, "train", names_file, "--steps", 2, "--out", out_dir, *TINY)[0] == 0
    original = names_file.read_text()
    # same path, other characters: refused as a changed text (its SHA-256), and even when
    # allowed, the vocabulary no longer matches
    write(names_file, "\n".join(n.upper() + "0123" for n in NAMES) + "\n")
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 4)
    assert code == 1
    assert "changed" in one_error_line(err) and "SHA-256" in err
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 4, "--allow-other-text")
    assert code == 1
    assert "vocab" in one_error_line(err).lower()
    # another file: refused by name; the same text under another name is the same text
    other = write(tmp_path / "other.txt", "\n".join(NAMES[::-1]) + "\n")
    code, _, err = cli(capsys, "train", other, "--resume", out_dir, "--steps", 4)
    assert code == 1
    assert "other.txt" in one_error_line(err)
    moved = write(tmp_path / "moved.txt", original)
    code, _, err = cli(capsys, "train", moved, "--resume", out_dir, "--steps", 4)
    assert code == 0, err


# ============================================================================== info / help
def test_info_parameter_count(tmp_path, capsys, names_file):
    out_dir = tmp_path / "run"
    assert cli(capsys, "train", names_file, "--steps", 2, "--out", out_dir, *TINY)[0] == 0
    V = len(set("".join(NAMES))) + 1                                   # characters + <eos>
    E, H = 8, 16
    expected = V * E + 4 * H * (E + H) + 2 * 4 * H + H * V + V         # embedding, LSTM, head
    code, out, err = cli(capsys, "info", out_dir)
    assert code == 0, err
    assert f"parameters: {expected}" in out.splitlines()
    assert "steps_trained: 2" in out.splitlines()
    code, out, _ = cli(capsys, "info", out_dir, "--json")
    info = json.loads(out)
    assert info["parameters"] == expected and info["vocab_size"] == V


@pytest.mark.parametrize("command,needle", [
    ("train", "default: 128"),
    ("sample", "default: 1.0"),
    ("eval", "default: utf-8"),
    ("info", "--json"),
    ("export", "--onnx"),
    ("plot", "--text"),
])
def test_help_of_each_subcommand(capsys, command, needle):
    code, out, err = cli(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: rnnkit {command}")
    assert needle in out
    if command in ("train", "sample"):
        assert out.count("default:") >= 8


def test_train_help_shows_defaults_of_model_options(capsys):
    _, out, _ = cli(capsys, "train", "--help")
    blocks = {" ".join(b.split()).split(" ")[0]: " ".join(b.split())
              for b in re.split(r"\n  (?=-)", out.split("options:", 1)[1])}
    for opt, default in [("--hidden-size", "128"), ("--num-layers", "2"), ("--cell", "lstm"),
                         ("--lr", "0.003"), ("--eval-every", "100"), ("--steps", "1000")]:
        assert f"default: {default}" in blocks[opt], blocks.get(opt)


# ============================================================================== the built-in job
@pytest.mark.slow
def test_train_without_file_uses_builtin_names(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rnnkit.plot_hook.maybe_plot", _REAL_MAYBE_PLOT)
    code, out, err = cli(capsys, "train", "--steps", 30, "--eval-every", 15, "--quiet",
                         "--hidden-size", 32, "--num-layers", 1)
    assert code == 0, err
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    m = re.fullmatch(r"new \(not in the training set\): (\d+)/(\d+)", lines[-1])
    assert m, lines[-1]
    k, n = int(m.group(1)), int(m.group(2))
    assert n == 10 and len(lines) == n + 1 and 0 <= k <= n
    samples = lines[:-1]
    assert sum(s.endswith("   (new)") for s in samples) == k
    all_names = set(datasets.names())
    for s in samples:
        if not s.endswith("   (new)"):
            assert s in all_names                       # "not new" means seen in training
    run = tmp_path / "runs" / "names"
    assert has_checkpoint(run) and has_checkpoint(run / "best")
    ck = load_checkpoint(run)
    assert ck.trainer_state["step"] == 30
    assert [r["step"] for r in read_metrics(run)] == [15, 30]
    assert ck.config["hidden_size"] == 32 and ck.config["num_layers"] == 1
    if optional("matplotlib") is None:
        return
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ============================================================================== LSTM options
def test_proj_size_and_learned_initial_state_train_save_show_and_sample(tmp_path, capsys, names_file):
    """`--proj-size P --learn-initial-state`: the checkpoint's config holds both, its weights
    are an LSTMP's (weight_hr_l0 of shape (P, H), h0 P wide) with the learned h0 moved by the
    training, `rnnkit info` shows them, the model samples and a resume keeps them."""
    out_dir = tmp_path / "run"
    code, _, err = cli(capsys, "train", names_file, "--steps", 4, "--eval-every", 2, "--proj-size", 6,
                       "--learn-initial-state", "--out", out_dir, *TINY)
    assert code == 0, err
    model, vocab, ck = load_model(out_dir)
    assert ck.config["proj_size"] == 6 and ck.config["learn_initial_state"] is True
    w = ck.model_state
    assert w["rnn.weight_hr_l0"].shape == (6, 16) and w["rnn.weight_hh_l0"].shape == (64, 6)
    assert w["rnn.h0"].shape == (1, 6) and w["rnn.c0"].shape == (1, 16) and w["head.weight"].shape[1] == 6
    assert np.abs(w["rnn.h0"]).max() > 0                    # zeros at the start: it was trained
    V = len(vocab)
    H, E, P = 16, 8, 6
    expected = V * E + 4 * H * (E + P) + 2 * 4 * H + P * H + P + H + P * V + V
    code, out, _ = cli(capsys, "info", out_dir)
    assert "  proj_size: 6" in out.splitlines() and "  learn_initial_state: True" in out.splitlines()
    assert f"parameters: {expected}" in out.splitlines()
    code, out, err = cli(capsys, "sample", out_dir, "--num", 3, "--seed", 1)
    assert code == 0 and len(out.splitlines()) == 3, err
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 6)
    assert code == 0, err
    assert load_model(out_dir)[2].config["proj_size"] == 6
    code, _, err = cli(capsys, "train", "--resume", out_dir, "--steps", 8, "--proj-size", 4)
    assert code == 1 and "--proj-size 4 differs from the run being resumed" in one_error_line(err)


@pytest.mark.slow
def test_a_proj_size_checkpoint_loads_into_torch_lstm_with_proj_size(tmp_path, capsys, names_file):
    """What torch can express: the saved weights load into torch.nn modules written here
    (Embedding -> LSTM(proj_size) -> Linear) with the same logits; and the torch engine
    trains such a model."""
    require("torch")
    import torch
    out_dir = tmp_path / "run"
    assert cli(capsys, "train", names_file, "--steps", 2, "--proj-size", 5, "--out", out_dir, *TINY)[0] == 0
    model, vocab, ck = load_model(out_dir)
    w = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in ck.model_state.items()}
    lstm = torch.nn.LSTM(8, 16, 1, proj_size=5, dtype=torch.float64)
    lstm.load_state_dict({k[4:]: v for k, v in w.items() if k.startswith("rnn.")})
    tokens = np.array([vocab.encode("emma")]).T                        # (T, 1)
    ref = lstm(w["embedding.weight"][torch.from_numpy(tokens)])[0] @ w["head.weight"].T + w["head.bias"]
    with no_grad():
        logits, _ = model(tokens)
    assert np.abs(logits - ref.detach().numpy()).max() < 1e-5         # float32 weights
    code, _, err = cli(capsys, "train", names_file, "--steps", 2, "--proj-size", 5, "--engine", "torch",
                       "--out", tmp_path / "torch-run", *TINY)
    assert code == 0, err
    assert load_model(tmp_path / "torch-run")[2].model_state["rnn.weight_hr_l0"].shape == (5, 16)


@pytest.mark.parametrize("argv,needle", [
    (["--cell", "gru", "--proj-size", "4"], "only an LSTM has a projection"),
    (["--proj-size", "16"], "proj_size < hidden_size=16"),
    (["--proj-size", "-1"], "--proj-size: expected an integer >= 0"),
    (["--learn-initial-state", "--engine", "torch"], "numpy engine"),
])
def test_lstm_options_that_cannot_apply_are_refused_in_one_line(tmp_path, capsys, names_file, argv, needle):
    if "torch" in argv:
        require("torch")
    code, _, err = cli(capsys, "train", names_file, "--steps", 2, "--out", tmp_path / "run", *TINY, *argv)
    assert code == 1 and needle in one_error_line(err), err
