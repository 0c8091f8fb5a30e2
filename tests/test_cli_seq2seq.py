"""`rnnkit train` on pairs, `rnnkit translate`, `rnnkit eval` on a seq2seq run, and their errors.

Runs in-process through ``rnnkit.cli.main``, with tiny models (a few steps): these tests check
the plumbing and the messages; learning itself is measured in docs/results.md."""

import io
import sys

import pytest

from rnnkit.checkpoint import read_metrics
from rnnkit.cli import main
from rnnkit.translate import load_translator

pytestmark = pytest.mark.usefixtures("fast_io")

TINY = ("--hidden-size", "6", "--embedding-size", "4", "--batch-size", "8", "--steps", "4",
        "--eval-every", "2", "--num-samples", "2", "--quiet")


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("pairs") / "rev.tsv"
    words = ["abc", "ba", "cab", "aab", "bca", "ccb", "acb", "bb", "cba", "abca"] * 3
    f.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    return f


@pytest.fixture(scope="module")
def run(tmp_path_factory, pairs_file):
    out = tmp_path_factory.mktemp("run") / "rev"
    assert main(["train", str(pairs_file), "--out", str(out), *TINY]) == 0
    return out


def test_pairs_file_is_detected_and_trains_a_seq2seq_run(run, pairs_file, capsys):
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == [2, 4]
    assert all(0 <= m["val_exact_match"] <= 1 for m in metrics)
    tr = load_translator(run)
    assert type(tr.model).__name__ == "Seq2Seq"
    assert tr.src_vocab.chars == ("a", "b", "c") and tr.model.config.attention == "additive"


def test_translate_prints_one_line_per_input_and_nothing_else(run, capsys, monkeypatch):
    tr = load_translator(run)
    want = [t.text for t in tr.translate(["abc", "b", "cc"])]
    code, out, err = cli(capsys, "translate", run, "abc", "b", "cc")
    assert code == 0 and out.split("\n") == want + [""]
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\nb\ncc\n"))
    code, out2, _ = cli(capsys, "translate", run)
    assert code == 0 and out2 == out
    code, out3, _ = cli(capsys, "translate", run, "abc", "b", "cc", "--beam", "3")
    assert code == 0 and len(out3.split("\n")) == 4


def test_eval_prints_exact_match_and_bits_per_char(run, pairs_file, capsys):
    code, out, _ = cli(capsys, "eval", run, pairs_file)
    lines = dict(line.split(": ", 1) for line in out.strip().split("\n"))
    assert code == 0 and 0 <= float(lines["exact_match"]) <= 1 and float(lines["bits_per_char"]) > 0
    assert lines["pairs"] == "30"


def test_resume_continues_a_pairs_run(tmp_path, pairs_file, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(pairs_file), "--out", str(a), *TINY]) == 0
    assert main(["train", str(pairs_file), "--out", str(b), *TINY[:-5], "--steps", "2",
                 "--eval-every", "2", "--num-samples", "0", "--quiet"]) == 0
    assert main(["train", "--resume", str(b), "--steps", "4", "--quiet"]) == 0
    capsys.readouterr()
    ma, mb = read_metrics(a), read_metrics(b)
    assert [m["val_loss"] for m in ma] == [m["val_loss"] for m in mb]


@pytest.mark.parametrize("text, what", [("a\tb\nc d\n", "line 2 has no tab"),
                                        ("a\tb\n\tc\n", "line 2 has an empty source")])
def test_bad_pairs_file_is_one_clear_error(tmp_path, capsys, text, what):
    f = tmp_path / "bad.tsv"
    f.write_text(text)
    code, out, err = cli(capsys, "train", f, "--mode", "pairs", "--out", tmp_path / "o", *TINY)
    assert code == 1 and what in err and "Traceback" not in err and out == ""


def test_unseen_characters_at_translate_time_are_one_clear_error(run, capsys):
    code, out, err = cli(capsys, "translate", run, "abz")
    assert code == 1 and "'z'" in err and "never seen in training" in err and out == ""


def test_wrong_kind_of_run_is_one_clear_error(run, tmp_path, capsys):
    lm = tmp_path / "lm"
    (tmp_path / "names.txt").write_text("anna\nbob\ncarl\n" * 20)
    assert main(["train", str(tmp_path / "names.txt"), "--out", str(lm), *TINY]) == 0
    capsys.readouterr()
    code, out, err = cli(capsys, "translate", lm, "abc")
    assert code == 1 and "CharLM" in err and "rnnkit sample" in err and out == ""
    code, out, err = cli(capsys, "sample", run)
    assert code == 1 and "Seq2Seq" in err and "rnnkit translate" in err and out == ""


@pytest.mark.slow
def test_plot_draws_attention_heatmaps_and_info_describes_the_run(run, tmp_path, capsys):
    from needs import require
    require("matplotlib")
    code, out, _ = cli(capsys, "plot", run, "--out", tmp_path / "pics")
    assert code == 0 and (tmp_path / "pics" / "attention.png").stat().st_size > 1000
    code, out, _ = cli(capsys, "info", run, "--json")
    import json
    info = json.loads(out)
    assert code == 0 and info["config"]["model"] == "Seq2Seq" and info["vocab_size"] == [4, 4]
    assert info["mode"] == "pairs"


def test_attention_figure_refuses_an_alignment_of_the_wrong_shape():
    import numpy as np

    from needs import require
    require("matplotlib")
    from rnnkit.errors import ShapeError
    from rnnkit.plot import attention_figure
    with pytest.raises(ShapeError, match=r"shape \(3, 2\)"):
        attention_figure([("ab", "xy", np.zeros((3, 5)))])


def test_text_mode_options_do_not_apply_to_a_pair_task(tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--dataset", "dates", "--mode", "lines", "--out", tmp_path / "o")
    assert code == 1 and "pair task" in err


def _engine_run(pairs_file, engine, steps, out=None, resume=False):
    from rnnkit.data import load_pairs_data
    from rnnkit.nn import Seq2Seq, Seq2SeqConfig
    from rnnkit.train import Checkpointing, TrainConfig, Trainer
    data = load_pairs_data(pairs_file, batch_size=8)
    m = Seq2Seq(Seq2SeqConfig(src_vocab_size=len(data.src_vocab), tgt_vocab_size=len(data.tgt_vocab),
                              hidden_size=5, embedding_size=3, dtype="float64"), seed=0)
    ck = Checkpointing(out, vocab=data.vocab.to_json()) if out is not None else None
    tr = Trainer(m, data.train, data.val, TrainConfig(steps=steps, eval_every=2, progress=False,
                                                     restore_best=False),
                 checkpoint=ck, engine=engine, log=lambda s: None)
    if resume:
        tr.resume()
    res = tr.fit()
    return {k: v.copy() for k, v in m.parameters().items()}, res


@pytest.mark.slow
def test_torch_engine_trains_the_same_seq2seq_in_float64(pairs_file, tmp_path):
    from needs import require
    require("torch")
    import numpy as np
    w_np, r_np = _engine_run(pairs_file, "numpy", 4)
    w_t, r_t = _engine_run(pairs_file, "torch", 4)
    for k in w_np:
        np.testing.assert_allclose(w_t[k], w_np[k], rtol=0, atol=1e-10, err_msg=k)
    assert [h["val_loss"] for h in r_t.history] == pytest.approx([h["val_loss"] for h in r_np.history],
                                                                 abs=1e-12)
    _engine_run(pairs_file, "numpy", 2, out=tmp_path / "x")           # resume across engines
    w_r, _ = _engine_run(pairs_file, "torch", 4, out=tmp_path / "x", resume=True)
    for k in w_np:
        np.testing.assert_allclose(w_r[k], w_np[k], rtol=0, atol=1e-10, err_msg=k)
