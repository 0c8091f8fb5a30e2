"""What the tutorial claims and does: opened where Jupyter starts (docs/) it works in a
scratch directory, so running it never rewrites tracked pictures or adds files to the
repository; it calls the notebook's step functions it describes (lstm_cell, rnn_cell_backward,
lstm_cell_backward); what it prints as rnn_backward is rnn_backward; the uniform-guess figure
is computed from the vocabulary."""

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
MD = (DOCS / "tutorial.md").read_text(encoding="utf-8")
CODE = re.findall(r"```python\n(.*?)```", MD, re.S)


def test_first_cell_run_in_docs_moves_to_a_scratch_directory(tmp_path):
    docs = tmp_path / "docs"
    (docs / "img").mkdir(parents=True)
    for name in ("tutorial.md", "run_tutorial.py"):
        (docs / name).write_text("x")
    before = sorted(p.relative_to(docs) for p in docs.rglob("*"))
    prog = CODE[0] + "\nprint(os.getcwd())\nopen('img/probe.png', 'w').write('x')\n"
    out = subprocess.run([sys.executable, "-c", prog], cwd=docs, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, MPLBACKEND="Agg"))
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip().splitlines()[-1]).resolve() != docs.resolve()
    assert sorted(p.relative_to(docs) for p in docs.rglob("*")) == before


def test_first_cell_elsewhere_stays_put(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE[0] + "\nprint(os.getcwd())"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and Path(out.stdout.split()[-1]).resolve() == tmp_path.resolve()
    assert (tmp_path / "img").is_dir()


def test_the_step_functions_it_describes_are_called():
    code = "\n".join(CODE)
    for fn in ("scratch.lstm_cell(", "scratch.rnn_cell_backward(", "scratch.lstm_cell_backward(",
               "scratch.rnn_cell(", "scratch.rnn_backward(", "scratch.lstm_backward("):
        assert fn in code, fn


def test_what_it_prints_as_rnn_backward_is_rnn_backward():
    assert "line for line" not in MD
    assert "inspect.getsource(scratch.rnn_backward)" in "\n".join(CODE)


def test_the_uniform_guess_is_computed_from_the_vocabulary():
    assert "log(28)" not in MD
    assert "np.log(len(vocab))" in "\n".join(CODE)
