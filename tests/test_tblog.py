"""TensorBoard logs (rnnkit.tblog): what TensorBoard's own reader shows equals metrics.jsonl,
after runs that were interrupted (Ctrl-C), killed between an evaluation and its checkpoint,
or trained partly without --tensorboard, and then resumed.

The reference reader is TensorBoard's ``EventAccumulator`` (the ``tensorboard`` package, which
rnnkit itself never imports); the reference numbers are the records of ``metrics.jsonl``,
rounded to float32 as TensorBoard stores them."""

import os
import signal

import numpy as np
import pytest

from needs import require

require("tensorboardX", "tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from rnnkit import datasets, nn  # noqa: E402
from rnnkit.checkpoint import read_metrics  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.data import BOUNDARY, LinesDataset, LinesSource, Vocab  # noqa: E402
from rnnkit.errors import ConfigError  # noqa: E402
from rnnkit.tblog import TensorBoardLog, read_scalars, scalars_of  # noqa: E402
from rnnkit.train import Checkpointing, TrainConfig, Trainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_io")

NAMES = datasets.names()[:300]
KEYS = ("train_loss", "val_loss", "lr", "grad_norm", "tokens", "tokens_per_s")


def tensorboard_view(logdir) -> dict:
    """``{tag: [(step, value), ...]}`` as TensorBoard's reader loads the directory."""
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def metrics_view(run) -> dict:
    """The same from metrics.jsonl: every number of every record, as float32."""
    out = {}
    for r in read_metrics(run):
        for key, value in r.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, []).append((r["step"], float(np.float32(value))))
    return out


def assert_tensorboard_equals_metrics(logdir, run, steps):
    tb, mj = tensorboard_view(logdir), metrics_view(run)
    assert set(KEYS) <= set(mj), mj.keys()
    assert tb == mj                                    # same tags, steps (once each), values
    for tag in KEYS:
        assert [s for s, _ in tb[tag]] == steps, tag
    assert {t: dict(v) for t, v in tb.items()} == read_scalars(logdir)   # rnnkit's own reader agrees


def trainer(tmp_path, steps, tensorboard="tb", on_eval=None):
    vocab = Vocab.build(NAMES, specials=(BOUNDARY,))
    model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=12, num_layers=1,
                                      embedding_size=6, dtype="float64"), seed=0)
    train = LinesSource(LinesDataset(NAMES[:250], vocab), batch_size=16, seed=0)
    val = LinesSource(LinesDataset(NAMES[250:], vocab), batch_size=50, seed=0)
    ck = Checkpointing(tmp_path / "run", vocab=vocab.to_json(),
                       tensorboard=tmp_path / tensorboard if tensorboard else None)
    return Trainer(model, train, val, TrainConfig(steps=steps, eval_every=5, progress=False),
                   checkpoint=ck, on_eval=on_eval, log=lambda m: None)


def test_ctrl_c_then_resume_continues_the_curves_once(tmp_path):
    def interrupt_at_10(tr, record):
        if record["step"] == 10:
            os.kill(os.getpid(), signal.SIGINT)          # the trainer's handler stops the loop
    first = trainer(tmp_path, 30, on_eval=interrupt_at_10).fit()
    assert first.stopped == "interrupted" and 10 <= first.steps < 15
    assert [s for s, _ in tensorboard_view(tmp_path / "tb")["train_loss"]] == [5, 10]
    res = trainer(tmp_path, 30).resume().fit()
    assert res.stopped == "completed"
    assert_tensorboard_equals_metrics(tmp_path / "tb", tmp_path / "run", [5, 10, 15, 20, 25, 30])


def _steps_in_file(path):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    return [e.step for e in EventFileLoader(str(path)).Load()
            if any(v.tag == "train_loss" for v in e.summary.value)]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the point it is raised at runs."""


def test_killed_after_the_events_before_the_checkpoint(tmp_path, monkeypatch):
    """The record of step 15 reaches metrics.jsonl and the event file, then the process dies
    before the checkpoint: the resumed run (from step 10) evaluates step 15 again, and
    TensorBoard shows the new value once, not both."""
    real_write = Trainer._write

    def dies_at_15(self, *a):
        if self.step == 15:
            raise Killed
        return real_write(self, *a)
    monkeypatch.setattr(Trainer, "_write", dies_at_15)
    with pytest.raises(Killed):
        trainer(tmp_path, 30).fit()
    assert [s for s, _ in tensorboard_view(tmp_path / "tb")["train_loss"]] == [5, 10, 15]
    monkeypatch.setattr(Trainer, "_write", real_write)
    res = trainer(tmp_path, 30).resume().fit()
    assert res.steps == 30
    assert_tensorboard_equals_metrics(tmp_path / "tb", tmp_path / "run", [5, 10, 15, 20, 25, 30])
    raw = [s for f in sorted((tmp_path / "tb").iterdir()) for s in _steps_in_file(f)]
    assert raw.count(15) == 2          # both are in the files; TensorBoard shows the new one


def test_killed_between_metrics_and_events(tmp_path, monkeypatch):
    real = TensorBoardLog.write

    def dies_at_15(self, record):
        if record["step"] == 15:
            raise Killed
        return real(self, record)
    monkeypatch.setattr(TensorBoardLog, "write", dies_at_15)
    with pytest.raises(Killed):
        trainer(tmp_path, 20).fit()
    monkeypatch.setattr(TensorBoardLog, "write", real)
    trainer(tmp_path, 20).resume().fit()
    assert_tensorboard_equals_metrics(tmp_path / "tb", tmp_path / "run", [5, 10, 15, 20])


def test_resume_with_tensorboard_writes_the_steps_trained_without_it(tmp_path):
    trainer(tmp_path, 10, tensorboard=None).fit()
    trainer(tmp_path, 20).resume().fit()
    assert_tensorboard_equals_metrics(tmp_path / "tb", tmp_path / "run", [5, 10, 15, 20])


def test_cli_train_and_resume_write_tensorboard_events(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    run, tb = tmp_path / "run", tmp_path / "tb"
    tiny = ["--hidden-size", "12", "--num-layers", "1", "--embedding-size", "6", "--batch-size",
            "16", "--quiet", "--num-samples", "0", "--eval-every", "5"]
    assert main(["train", str(names), "--out", str(run), "--steps", "10",
                 "--tensorboard", str(tb), *tiny]) == 0
    assert main(["train", "--resume", str(run), "--steps", "20", "--tensorboard", str(tb),
                 "--quiet", "--num-samples", "0"]) == 0
    capsys.readouterr()
    assert_tensorboard_equals_metrics(tb, run, [5, 10, 15, 20])
    assert "val_bpc" in tensorboard_view(tb)                     # added by the CLI's on_eval
    vb = dict(tensorboard_view(tb)["val_bpc"])
    vl = dict(tensorboard_view(tb)["val_loss"])
    assert vb[20] == pytest.approx(vl[20] / np.log(2), rel=1e-6)


def test_tensorboard_option_refuses_a_file_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["train", "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "file"),
                 "--steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "--tensorboard" in err and "expected a directory" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError):
        TensorBoardLog(tmp_path / "file")


def test_scalars_are_the_finite_numbers_of_a_record():
    assert scalars_of({"step": 3, "a": 1, "b": 2.5, "c": True, "d": "x", "e": float("nan")}) == \
        {"a": 1.0, "b": 2.5}
