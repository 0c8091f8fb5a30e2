"""Pictures are written like every other file rnnkit writes: atomically, replacing a link
instead of following it; an unwritable place is one clear line. A lines-mode model's pictures
show real samples, one line at a time (the state starts afresh at each line)."""

import os

import numpy as np
import pytest

from tests.needs import require

require("matplotlib")

from rnnkit.cli import main  # noqa: E402
from rnnkit.plot import plot_checkpoint  # noqa: E402
from rnnkit.plot_hook import maybe_plot as real_maybe_plot  # noqa: E402  (fast_io replaces it)

pytestmark = [pytest.mark.usefixtures("fast_io"), pytest.mark.slow]     # matplotlib renders

NAMES = "".join(f"{a}{b}\n" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal",
                                       "ida", "jon") for b in ("a", "ie", "o", "y", "elle", "ric"))


@pytest.fixture(scope="module")
def names_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    f = root / "names.txt"
    f.write_text(NAMES)
    out = root / "run"
    assert main(["train", str(f), "--out", str(out), "--steps", "30", "--eval-every", "10",
                 "--hidden-size", "16", "--num-layers", "1", "--batch-size", "16", "--lr", "0.02",
                 "--quiet", "--num-samples", "0"]) == 0
    return out


def test_plot_replaces_a_link_instead_of_writing_through_it(names_run, tmp_path, capsys):
    victim = tmp_path / "somefile"
    victim.write_text("precious")
    for name in ("loss.png", "gates.png", "units.png"):
        link = names_run / name
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(victim)
    assert main(["plot", str(names_run)]) == 0
    capsys.readouterr()
    assert victim.read_text() == "precious"
    for name in ("loss.png", "gates.png", "units.png"):
        p = names_run / name
        assert not p.is_symlink() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in names_run.iterdir() if ".tmp-" in p.name]


def test_resume_end_picture_replaces_a_link(names_run, tmp_path, capsys, monkeypatch):
    victim = tmp_path / "other"
    victim.write_text("precious")
    link = names_run / "loss.png"
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    assert real_maybe_plot(names_run) is not None
    assert victim.read_text() == "precious" and not link.is_symlink()


def _plot_without_root_overrides(run_dir):
    """`rnnkit plot RUN` as root but without the capabilities that let root write into a
    read-only directory (CI runs as root): util-linux's setpriv drops them from the bounding
    set, so the command meets the directory's mode bits as any user would."""
    import shutil
    import subprocess
    import sys
    require(programs=("setpriv",))              # util-linux; fails under CI, skips elsewhere
    proc = subprocess.run([shutil.which("setpriv"), "--bounding-set", "-dac_override,-dac_read_search", "--",
                           sys.executable, "-m", "rnnkit", "plot", str(run_dir)],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("case", ["directory named loss.png", "read-only run", "/proc"])
def test_unwritable_pictures_are_one_clear_line(names_run, tmp_path, capsys, case):
    import shutil
    d = tmp_path / "copy"
    shutil.copytree(names_run, d)
    argv = ["plot", str(d)]
    if case == "directory named loss.png":
        (d / "loss.png").unlink(missing_ok=True)
        (d / "loss.png").mkdir()
    elif case == "read-only run":
        d.chmod(0o555)
    else:
        argv += ["--out", "/proc/rnnkit-plot-test"]
    try:
        if case == "read-only run" and os.geteuid() == 0:
            code, err = _plot_without_root_overrides(d)
        else:
            code = main(argv)
            err = capsys.readouterr().err
    finally:
        d.chmod(0o755)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "unexpected" not in err, err


def test_lines_model_pictures_show_real_lines_with_a_fresh_state(names_run, tmp_path, monkeypatch):
    """The pictures of a lines model: samples as `rnnkit sample` makes them (each line starts
    at the boundary with no state), not one long sample carried across names."""
    import rnnkit.plot as plot
    from rnnkit.analysis import gate_activations
    from rnnkit.load import load_model
    drawn = {}
    real = plot.plot_gates

    def spy(labels, acts, path, **kw):
        drawn["labels"], drawn["acts"] = list(labels), acts
        return real(labels, acts, path, **kw)
    monkeypatch.setattr(plot, "plot_gates", spy)
    plot_checkpoint(names_run, out_dir=tmp_path)
    labels = drawn["labels"]
    model = load_model(names_run).model
    vocab = load_model(names_run).vocab
    # split at the boundary tokens: every piece is one line, starting at <eos>
    starts = [i for i, s in enumerate(labels) if s == vocab.itos[vocab.bos_id]]
    assert starts[0] == 0 and len(starts) >= 2
    pieces = [labels[a:b] for a, b in zip(starts, starts[1:] + [len(labels)])]
    # each line's activations equal a run of that line alone from a zero state
    for a, piece in zip(starts, pieces):
        ids = np.array([vocab.stoi[c] if c in vocab.stoi else vocab.bos_id for c in piece])
        alone = gate_activations(model, ids)
        np.testing.assert_allclose(drawn["acts"]["hidden"][a:a + len(piece)], alone["hidden"],
                                   rtol=1e-5, atol=1e-6)
    # and none of the lines is empty (a line is the boundary and at least one character)
    assert all(len(p) >= 2 for p in pieces), pieces
