"""``rnnkit check FILE`` end to end: a .py file and a Jupyter notebook run in a child process,
exit codes 0 / 1 / 2, ``--json`` alone on stdout, ``--function``, and hostile learner code
(an infinite loop, os._exit, a 20 GB allocation, endless recursion, sys.exit, printing)
reported as such, never hanging or killing the checker."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from check_programs import CORRECT, MUTANTS, mutant_source

from rnnkit.cli import main

DATA = Path(__file__).resolve().parent / "data"
SEED = (DATA / "seed_notebook.py").read_text(encoding="utf-8")


def rnnkit_check(*args, timeout=300):
    """Run ``python -m rnnkit check ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    p = subprocess.run([sys.executable, "-m", "rnnkit", "check", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def notebook(cells, path):
    """A Jupyter notebook (nbformat 4) with markdown between the code cells, and outputs."""
    nb_cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Practice\n"]}]
    for i, src in enumerate(cells):
        nb_cells.append({"cell_type": "code", "execution_count": i + 1, "metadata": {},
                         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["(5, 10)\n"]}],
                         "source": src.splitlines(True)})
        nb_cells.append({"cell_type": "markdown", "metadata": {}, "source": "text"})
    path.write_text(json.dumps({"cells": nb_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


# ----------------------------------------------------------------------------------------
# Quick ones
# ----------------------------------------------------------------------------------------

def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("def sigmoid(x): return x\n")
    assert main(["check", str(tmp_path / "notes.txt")]) == 2
    assert ".py file or a Jupyter notebook" in capsys.readouterr().err
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert main(["check", str(tmp_path / "bad.ipynb")]) == 2
    assert "not one" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["check", str(tmp_path / "x.py"), "--function", "lstm_cel"])
    assert e.value.code == 2


def test_one_function_of_the_seed_notebook_as_json(tmp_path, capsys):
    (tmp_path / "seed.py").write_text(SEED)
    assert main(["check", str(tmp_path / "seed.py"), "--function", "lstm_forward", "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in obj["functions"]] == ["lstm_forward"]
    assert obj["functions"][0]["status"] == "fail" and "returned None" in obj["functions"][0]["message"]
    assert obj["summary"] == {"pass": 0, "fail": 1, "error": 0, "missing": 0}


def test_a_syntax_error_is_an_error_for_every_function(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("def sigmoid(x):\n    return 1 / (1 + np.exp(-x)\n")
    assert main(["check", str(tmp_path / "broken.py"), "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["summary"]["error"] == 10 and "syntax error" in obj["functions"][0]["message"]


# ----------------------------------------------------------------------------------------
# Whole files in a child process
# ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_seed_notebook_file_passes_except_lstm_forward_and_exits_1(tmp_path):
    (tmp_path / "seed.py").write_text(SEED)
    rc, out, err = rnnkit_check(tmp_path / "seed.py", "--json")
    assert rc == 1, err
    obj = json.loads(out)                            # stdout is one JSON object, nothing else
    status = {f["name"]: f["status"] for f in obj["functions"]}
    assert [n for n, s in status.items() if s == "pass"] == ["sigmoid", "softmax", "rnn_cell", "rnn_forward",
                                                             "lstm_cell"]
    assert status["lstm_forward"] == "fail" and obj["summary"]["missing"] == 4


@pytest.mark.slow
def test_all_ten_functions_pass_and_exit_0(tmp_path):
    (tmp_path / "mine.py").write_text(CORRECT + "\nprint('my own output')\n")
    rc, out, err = rnnkit_check(tmp_path / "mine.py")
    assert rc == 0, out + err
    assert "10 pass, 0 fail, 0 error, 0 missing" in out and "my own output" not in out


@pytest.mark.slow
def test_notebook_cells_run_in_order_and_a_failing_cell_is_reported_with_its_number(tmp_path):
    cells = SEED.split("# %%\n")[1:]
    extra = ["%matplotlib inline\n", "%%time\nshown = 1\ndisplay(shown)\n", "%%bash\necho hi\n"]
    nb = notebook(extra + cells, tmp_path / "practice.ipynb")
    rc, out, err = rnnkit_check(nb)
    assert rc == 1, err
    assert out.count(" raised ") == 1 and "was not run (a %%bash cell)" in out   # %%time, display() ran
    # the last code cell (lstm_forward's example) raises: cell 2 * (code cells) of the notebook
    n = 2 * (len(cells) + len(extra))
    assert f"cell {n} (In [{len(cells) + len(extra)}]) raised TypeError" in out
    assert "a_tmp, y_tmp, c_tmp, caches_tmp = lstm_forward(" in out
    assert "PASS    lstm_cell" in out and "FAIL    lstm_forward" in out


@pytest.mark.slow
def test_a_mutant_file_reports_first_wrong_step_and_cause(tmp_path):
    (tmp_path / "mine.py").write_text(mutant_source(MUTANTS["lstm_forward c from zero every step"]))
    rc, out, err = rnnkit_check(tmp_path / "mine.py", "--json", "--function", "lstm_forward")
    assert rc == 1
    f = json.loads(out)["functions"][0]
    assert (f["status"], f["first_wrong"], f["time_step"]) == ("fail", "c", 1)
    assert "zero at every step" in f["message"]


HOSTILE = {
    "infinite loop": ("def sigmoid(x):\n    while True:\n        pass\n", "did not finish within"),
    "os._exit": ("import os\ndef sigmoid(x):\n    os._exit(3)\n", "exit code 3"),
    "20 GB allocation": ("import numpy as np\ndef sigmoid(x):\n    return np.ones(20 * 10**9 // 8) * 0\n",
                         "out of memory"),
    "recursion": ("def sigmoid(x):\n    return sigmoid(x)\n", "RecursionError"),
    "sys.exit": ("import sys\ndef sigmoid(x):\n    sys.exit(0)\n", "sys.exit(0)"),
    "segfault": ("import ctypes\ndef sigmoid(x):\n    ctypes.string_at(0)\n", "SIGSEGV"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_code_is_reported_and_the_rest_still_checked(tmp_path, kind):
    code, says = HOSTILE[kind]
    src = ("from rnnkit.scratch import softmax\nprint('noise')\n" + code +
           "\n")
    (tmp_path / "hostile.py").write_text(src)
    rc, out, err = rnnkit_check(tmp_path / "hostile.py", "--json", "--timeout", "3", "--function", "sigmoid",
                                "--function", "softmax", timeout=120)
    assert rc == 1, err
    obj = json.loads(out)
    sig, soft = obj["functions"]
    assert sig["status"] == "error" and says in sig["message"], sig
    assert soft["status"] == "pass"                  # the checker went on after the bad one


@pytest.mark.slow
def test_an_endless_top_level_loop_is_skipped_and_the_functions_after_it_are_checked(tmp_path):
    src = CORRECT.replace("\ndef rnn_cell(", "\nwhile True:\n    pass\n\n\ndef rnn_cell(")
    (tmp_path / "loops.py").write_text(src)
    rc, out, err = rnnkit_check(tmp_path / "loops.py", "--timeout", "3", "--function", "lstm_cell", timeout=120)
    assert rc == 0, out + err
    assert "did not finish within 3 s; the checker skipped it" in out and "PASS    lstm_cell" in out


@pytest.mark.slow
def test_the_learners_folder_is_the_working_directory_and_cannot_shadow_numpy(tmp_path):
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "numpy.py").write_text("raise SystemExit('not the real numpy')\n")
    (folder / "helpers.py").write_text("SCALE = 1.0\n")
    (folder / "mine.py").write_text("import os\nfrom helpers import SCALE\n"
                                    "assert os.path.basename(os.getcwd()) == 'course'\n" + CORRECT)
    rc, out, err = rnnkit_check(folder / "mine.py", "--function", "rnn_cell")
    assert rc == 0, out + err
    assert "PASS    rnn_cell" in out and "raised" not in out
