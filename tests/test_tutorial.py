"""The tutorial: docs/tutorial.ipynb is what jupytext makes of docs/tutorial.md, and the notebook
runs top to bottom in a real Jupyter kernel (nbclient + ipykernel), every cell, without an
error, drawing every picture the tutorial shows."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from needs import require

DOCS = Path(__file__).resolve().parents[1] / "docs"

require("jupytext", "nbclient", "nbformat", "ipykernel", "matplotlib")
import nbformat  # noqa: E402
from matplotlib.image import imread  # noqa: E402


def _runner():
    spec = importlib.util.spec_from_file_location("run_tutorial", DOCS / "run_tutorial.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_image_extraction():
    rt = _runner()
    assert rt.images("text ![x](img/p.png) ![y](img/q.png) ![z](a.svg)\n") == ["img/p.png", "img/q.png"]


def test_notebook_is_generated_from_the_markdown():
    rt = _runner()
    md = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    fresh = rt.notebook_from_markdown(md)
    committed = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    nbformat.validate(committed)
    assert rt.cell_sources(committed) == rt.cell_sources(fresh), (
        "docs/tutorial.ipynb differs from docs/tutorial.md; run python docs/run_tutorial.py")
    assert committed.metadata["kernelspec"]["name"] == "python3"
    # one code cell per ```python block, and the shell examples stay prose
    blocks = md.count("```python\n")
    assert sum(c.cell_type == "code" for c in committed.cells) == blocks > 15
    assert all(not c.source.startswith("%%") for c in committed.cells)
    # it opens with the seed notebook's own cells, as the markdown does
    code = [c.source for c in committed.cells if c.cell_type == "code"]
    assert "scratch.rnn_cell(" in code[1] and "scratch.lstm_forward(" in code[3]
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


@pytest.mark.slow
def test_notebook_runs_in_a_kernel_and_draws_every_picture_it_shows(tmp_path):
    rt = _runner()
    md = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    nb = rt.notebook_from_markdown(md)
    n_cells = len(nb.cells)
    # one extra cell, added here only, reports what the tutorial computed
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, rnnkit\n"
        "print(json.dumps({'rnnkit': rnnkit.__file__, 'rnn40': float(norms['rnn'][40]),\n"
        "                  'lstm40': float(norms['lstm'][40]), 'val_loss': float(val_loss),\n"
        "                  'page': os.path.abspath(page)}))"))
    rt.execute_notebook(nb, tmp_path)                  # raises on the first cell with an error
    code = [c for c in nb.cells[:n_cells] if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))   # every cell ran
    for c in code:
        assert not [o for o in c.outputs if o.output_type == "error"]
    report = json.loads(nb.cells[-1].outputs[0]["text"])
    # the kernel ran this checkout's rnnkit, not an installed copy elsewhere
    assert Path(report["rnnkit"]).resolve() == (DOCS.parent / "rnnkit" / "__init__.py").resolve()
    # the claims the text makes are checked by asserts inside the cells; spot-check two here
    assert report["rnn40"] < 1e-3 * report["lstm40"]
    assert np.isfinite(report["val_loss"]) and report["val_loss"] < 2.4
    assert Path(report["page"]).read_text(encoding="utf-8").count('id="rnnkit-data"') == 1
    shown = rt.images(md)
    assert {"img/gradient_norms.png", "img/gates.png", "img/units.png", "img/attention.png"} <= set(shown)
    for p in shown:
        img = imread(tmp_path / p)                    # drawn by the notebook's own code
        assert min(img.shape[:2]) >= 200 and img[..., :3].std() > 0.05, p
        assert (DOCS / p).is_file(), f"{p} is shown but not in docs/; run python docs/run_tutorial.py"
