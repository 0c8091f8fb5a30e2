"""The torch engine against the NumPy engine, torchrun against one process, resume across
engines, dropout streams, errors in one process of many, and the engine without PyTorch.

References: the NumPy engine (rnnkit's own layers and optimizers, itself tested against
torch.nn / torch.optim and the notebook equations) and straight runs. Everything runs through
the real command line (`rnnkit train`, in-process, or `torchrun ... -m rnnkit train` in a
subprocess) and is compared through the checkpoints it writes. Tiny models: the whole file
runs in about half a minute on 2 cores. CUDA variants run when a GPU is present.
"""

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.checkpoint import load_checkpoint, read_metrics

from needs import optional
from test_cli import cli as run_cli  # noqa: E402  (tests/ is on sys.path, as for conftest)

REPO = Path(__file__).resolve().parents[1]
NAMES = datasets.names()[:400]
PROSE = ("the quick brown fox jumps over the lazy dog; pack my box with five dozen "
         "liquor jugs. how vexingly quick daft zebras jump!\n") * 12
MODEL = ["--hidden-size", "16", "--num-layers", "2", "--embedding-size", "8", "--batch-size", "8",
         "--seq-len", "16", "--lr", "0.01", "--quiet", "--num-samples", "0"]
EXACT = [*MODEL, "--dtype", "float64", "--dropout", "0"]

torch = optional("torch")      # the engine-less tests below run without it (not under CI)

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install -e '.[torch]')")
_NO_GPU = "no CUDA device here: the torch engine's CUDA variants run on a machine with a GPU"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    torch is None or not torch.cuda.is_available(), reason=_NO_GPU))]
DDP_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    torch is None or torch.cuda.device_count() < 2,
    reason="fewer than 2 CUDA devices: torchrun with nccl needs one GPU per process"))]

pytestmark = pytest.mark.usefixtures("fast_io")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: torch's intra-op threads only spin."""
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("texts")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    (root / "prose.txt").write_text(PROSE, encoding="utf-8")
    return {"lines": root / "names.txt", "stream": root / "prose.txt"}


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (code, stdout, stderr)``: `rnnkit` in-process (test_cli's helper)."""
    return functools.partial(run_cli, capsys)


def train(cli, *argv):
    code, out, err = cli("train", *argv)
    assert code == 0, err
    return err


def engine_args(engine, device):
    return ["--engine", engine] + (["--device", device] if engine == "torch" else [])


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max())
               for k in a)


def val_losses(run, steps=None):
    return [r["val_loss"] for r in read_metrics(run) if steps is None or r["step"] in steps]


def torchrun(nproc, args, env_extra=None, cwd=None, timeout=180):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "rnnkit", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


# ============================================================================== engines agree
@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_numpy_and_torch_engines_agree_in_float64(tmp_path, cli, files, mode, device):
    """30 steps, float64, no dropout: the same weights within 1e-8 and the same validation
    losses, optimizer state and step count."""
    a, b = tmp_path / "numpy", tmp_path / "torch"
    common = [files[mode], "--steps", 30, "--eval-every", 10, *EXACT]
    err_a = train(cli, *common, "--out", a)
    err_b = train(cli, *common, "--out", b, *engine_args("torch", device))
    assert err_a.splitlines()[0].startswith("rnnkit train: engine numpy")
    assert re.match(rf"rnnkit train: engine torch \S+ on {device}", err_b.splitlines()[0]), err_b
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.trainer_state["step"] == cb.trainer_state["step"] == 30
    weights = max_diff(ca.model_state, cb.model_state)
    assert weights < 1e-8
    assert ca.optimizer_meta == cb.optimizer_meta
    assert max_diff(ca.optimizer_state, cb.optimizer_state) < 1e-8
    va, vb = val_losses(a), val_losses(b)
    assert len(va) == len(vb) == 3
    assert max(abs(x - y) for x, y in zip(va, vb)) < 1e-10
    assert cb.trainer_state["engine"]["name"] == "torch"
    # the checkpoint is the same kind of directory: the other commands work unchanged on it
    for command in (["info", b], ["sample", b, "--num", 3], ["eval", b, files[mode]]):
        code, out, err = cli(*command)
        assert code == 0 and out, (command, err)
    print(f"\n[{mode}/{device}] numpy vs torch after 30 steps: max |dw| = {weights:.2e}, "
          f"max |d val_loss| = {max(abs(x - y) for x, y in zip(va, vb)):.2e}")


# ============================================================================== torchrun
@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("device", DDP_DEVICES)
@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_torchrun_two_processes_equal_one(tmp_path, cli, files, mode, device):
    """torchrun --nproc_per_node=2 (gloo on CPU): each process takes half of the columns of
    the same global batch; after 30 steps the weights equal the one-process run's."""
    one, two = tmp_path / "one", tmp_path / "two"
    common = [files[mode], "--steps", 30, "--eval-every", 10, *EXACT, *engine_args("torch", device)]
    train(cli, *common, "--out", one)
    r = torchrun(2, [*common, "--out", two], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [s for s in (r.stdout + r.stderr).splitlines() if s.startswith("rnnkit")]
    assert lines[0].startswith("rnnkit train: engine torch") and "2 processes (torchrun" in lines[0]
    assert sum("completed at step 30" in s for s in lines) == 1          # rank 1 is silent
    assert "Traceback" not in r.stderr
    c1, c2 = load_checkpoint(one), load_checkpoint(two)
    weights = max_diff(c1.model_state, c2.model_state)
    print(f"\n[{mode}/{device}] torchrun 2 processes vs 1 after 30 steps: max |dw| = {weights:.2e}")
    assert weights < 1e-6
    assert max(abs(x - y) for x, y in zip(val_losses(one), val_losses(two))) < 1e-6
    assert c2.trainer_state["engine"]["world_size"] == 2
    assert [r_["step"] for r_ in read_metrics(two)] == [10, 20, 30]       # written once
    if mode == "stream":           # the carried state of both halves, whole in the checkpoint
        assert c2.trainer_arrays["carry.h"].shape == c1.trainer_arrays["carry.h"].shape == (2, 8, 16)
        assert max_diff(c1.trainer_arrays, {k: c2.trainer_arrays[k] for k in c1.trainer_arrays}) < 1e-6


@needs_torch
@pytest.mark.slow
def test_error_in_one_process_stops_all_with_one_message(tmp_path, files):
    """Bad data in process 1 only (a test hook patches its batch source at step 3): every
    process stops, rank 0 reports the error once, and the job fails."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    from rnnkit.data import sources\n"
        "    from rnnkit.errors import DataError\n"
        "    real = sources.LinesSource.batch\n"
        "    def batch(self, step):\n"
        "        if step == 3:\n"
        "            raise DataError('line 7 of the data is damaged (process 1 only)')\n"
        "        return real(self, step)\n"
        "    sources.LinesSource.batch = batch\n")
    r = torchrun(2, [files["lines"], "--out", tmp_path / "run", "--steps", 30, *MODEL,
                     "--engine", "torch", "--device", "cpu"],
                 env_extra={"PYTHONPATH": os.pathsep.join([str(hook), str(REPO)])}, cwd=tmp_path)
    assert r.returncode != 0
    errors = [s for s in (r.stdout + r.stderr).splitlines() if s.startswith("rnnkit: error:")]
    assert errors == ["rnnkit: error: process 1 of 2 (rank 1) failed: line 7 of the data is "
                      "damaged (process 1 only)"], r.stderr
    assert sum(s.startswith("rnnkit train: engine") for s in r.stderr.splitlines()) == 1
    assert "exitcode  : 1" in r.stderr                    # rank 0's status fails the job


# ============================================================================== resume across engines
@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["lines", "stream"])
@pytest.mark.parametrize("first,second", [("numpy", "torch"), ("torch", "numpy")])
def test_resume_across_engines(tmp_path, cli, files, mode, first, second, device):
    """15 steps on one engine, then 15 on the other (--resume DIR --engine OTHER) equal 30 on
    the first within 1e-8 (float64, no dropout; the carried state crosses in stream mode)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = [files[mode], "--eval-every", 5, *EXACT]
    train(cli, *common, "--steps", 30, "--out", straight, *engine_args(first, device))
    train(cli, *common, "--steps", 15, "--out", split, *engine_args(first, device))
    err = train(cli, "--resume", split, "--steps", 30, *engine_args(second, device))
    assert err.splitlines()[0].startswith(f"rnnkit train: engine {second}")
    assert f"resumed from {split} at step 15" in err
    assert "dropout random stream" not in err              # no dropout: nothing to say
    a, b = load_checkpoint(straight), load_checkpoint(split)
    if mode == "stream":
        assert "carry.h" in b.trainer_arrays
    weights = max_diff(a.model_state, b.model_state)
    print(f"\n[{mode}/{device}] {first} 30 vs {first} 15 + {second} 15: max |dw| = {weights:.2e}")
    assert weights < 1e-8
    assert max_diff(a.optimizer_state, b.optimizer_state) < 1e-8
    assert b.trainer_state["engine"]["name"] == second
    assert max(abs(x - y) for x, y in zip(val_losses(straight), val_losses(split))) < 1e-8


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_optimizer_state_crosses_engines(tmp_path, cli, files, optimizer):
    """Every optimizer's state (moments, momentum buffers, accumulators, step count) goes
    through optimizer.safetensors in rnnkit's format: numpy 6 + torch 6 + numpy 6 steps equal
    18 numpy steps."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = [files["lines"], "--eval-every", 3, *EXACT, "--optimizer", optimizer, "--weight-decay", "0.01"]
    train(cli, *common, "--steps", 18, "--out", straight)
    train(cli, *common, "--steps", 6, "--out", split)
    train(cli, "--resume", split, "--steps", 12, "--engine", "torch", "--device", "cpu")
    assert load_checkpoint(split).optimizer_meta["step"] == 12
    train(cli, "--resume", split, "--steps", 18, "--engine", "numpy")
    a, b = load_checkpoint(straight), load_checkpoint(split)
    assert a.optimizer_meta == b.optimizer_meta
    assert max_diff(a.model_state, b.model_state) < 1e-8
    assert max_diff(a.optimizer_state, b.optimizer_state) < 1e-8


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("engine,device", [("numpy", None), ("torch", "cpu"),
                                           pytest.param("torch", "cuda", marks=DEVICES[1].marks)])
def test_dropout_each_engine_is_exact_with_itself_across_resume(tmp_path, cli, monkeypatch, files,
                                                                engine, device):
    """With dropout the two engines draw different masks; each one resumes bit-exactly (its
    generators are in the checkpoint: trainer.json for NumPy, trainer.safetensors for torch)."""
    straight, split, control = tmp_path / "straight", tmp_path / "split", tmp_path / "control"
    common = [files["stream"], "--eval-every", 4, *MODEL, "--dropout", "0.3", "--dtype", "float64",
              *engine_args(engine, device)]
    train(cli, *common, "--steps", 20, "--out", straight)
    train(cli, *common, "--steps", 10, "--out", split)
    shutil.copytree(split, control)
    err = train(cli, "--resume", split, "--steps", 20)
    assert "dropout random stream" not in err
    a, b = load_checkpoint(straight), load_checkpoint(split)
    for k in a.model_state:
        assert np.array_equal(a.model_state[k], b.model_state[k]), k
    for k in a.optimizer_state:
        assert np.array_equal(a.optimizer_state[k], b.optimizer_state[k]), k
    assert val_losses(straight) == val_losses(split, steps=(4, 8, 12, 16, 20))
    if engine == "torch":
        assert a.trainer_arrays["torch_rng.cpu.0"].dtype == np.uint8
        assert ("torch_rng.cuda.0" in a.trainer_arrays) == (device == "cuda")
        # control: without its saved generator state the resumed run differs (masks matter)
        from rnnkit.engines.torch import TorchEngine
        monkeypatch.setattr(TorchEngine, "load_rng_state",
                            lambda self, json, arrays, saved, step: self._seed_generators(step))
        train(cli, "--resume", control, "--steps", 20)
        assert max_diff(a.model_state, load_checkpoint(control).model_state) > 1e-6


@pytest.mark.slow
@needs_torch
def test_changing_engine_with_dropout_says_the_stream_restarts(tmp_path, cli, files):
    run = tmp_path / "run"
    train(cli, files["lines"], "--steps", 4, "--eval-every", 2, *MODEL, "--dropout", "0.2",
          "--out", run)
    err = train(cli, "--resume", run, "--steps", 8, "--engine", "torch", "--device", "cpu")
    notes = [s for s in err.splitlines() if "dropout random stream restarts" in s]
    assert len(notes) == 1 and "numpy engine" in notes[0] and "torch engine" in notes[0]
    err = train(cli, "--resume", run, "--steps", 12)        # continues on torch: nothing to say
    assert "dropout random stream" not in err and "engine torch" in err.splitlines()[0]


# ============================================================================== options and errors
@needs_torch
def test_torch_engine_trains_charlm_only():
    from rnnkit import nn
    from rnnkit.data import ArraySource
    from rnnkit.errors import ConfigError
    from rnnkit.train import TrainConfig, Trainer
    model = nn.SequenceRegressor(nn.SequenceRegressorConfig(input_size=1, output_size=1, hidden_size=4))
    src = ArraySource(np.zeros((3, 8, 1), np.float32), np.zeros((8, 1), np.float32), batch_size=4)
    with pytest.raises(ConfigError, match="CharLM"):
        Trainer(model, src, config=TrainConfig(steps=1, progress=False), engine="torch", device="cpu")


def test_device_with_numpy_engine_is_a_usage_error(tmp_path, cli, files):
    code, _, err = cli("train", files["lines"], "--out", tmp_path / "r", "--device", "cpu", *MODEL)
    assert code == 2
    assert "--device cpu applies to --engine torch" in err and len(err.strip().splitlines()) == 1


@needs_torch
def test_bad_device_is_one_clear_error(tmp_path, cli, files):
    code, _, err = cli("train", files["lines"], "--out", tmp_path / "r", "--engine", "torch",
                       "--device", "tpu", *MODEL)
    assert code == 1 and "expected cpu, cuda or cuda:N" in err
    if not torch.cuda.is_available():
        code, _, err = cli("train", files["lines"], "--out", tmp_path / "r", "--engine",
                           "torch", "--device", "cuda", *MODEL)
        assert code == 1 and "no CUDA device" in err and "--device cpu" in err


@pytest.mark.slow
def test_engine_torch_without_torch_is_one_clear_error(tmp_path, files):
    """PyTorch hidden by a meta-path blocker: `--engine torch` is one error line naming the
    install command, and the numpy engine (the core never imports torch) still trains."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name=name)\n"
        "sys.meta_path.insert(0, _NoTorch())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), str(REPO)]))
    run = [sys.executable, "-m", "rnnkit", "train", str(files["lines"]), "--steps", "2", *MODEL]
    r = subprocess.run([*run, "--out", str(tmp_path / "t"), "--engine", "torch"], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "rnnkit: error: --engine torch needs PyTorch, which is not installed here (No module named "
        "'torch'). Install it with: pip install -e \".[torch]\" (or train with --engine numpy)"], r.stderr
    r = subprocess.run([*run, "--out", str(tmp_path / "n"), "--engine", "numpy"], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0].startswith("rnnkit train: engine numpy")


def test_engines_benchmark_renders_its_table():
    """benchmarks/engines.py (run by hand and by bench.py): its markdown, without timing."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import engines
    rows = [{"model": "m", "engine": "numpy", "steps_per_s": 2.0, "chars_per_s": 1000.0, "repeats": 2},
            {"model": "m", "engine": "torch CPU, 1 process x 2 threads", "steps_per_s": 3.0,
             "chars_per_s": 1500.0, "repeats": 2}]
    text = engines.render(rows)
    assert text.startswith("## Engines") and "| m | torch CPU, 1 process x 2 threads | 3.00 | 1,500 | 1.50x |" in text
    assert [label for label, *_ in engines.engines(None)] == ["numpy"]
