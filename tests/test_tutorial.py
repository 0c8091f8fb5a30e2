"""docs/tutorial.md runs top to bottom (every ```python block, in order, one namespace, in a
temporary directory), and every picture it shows is drawn by its own code."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _runner():
    spec = importlib.util.spec_from_file_location("run_tutorial", DOCS / "run_tutorial.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_block_extraction_and_requirements():
    rt = _runner()
    md = ("text\n```python\na = 1\n```\n```bash\nrm -rf /\n```\n"
          "```python\n# requires: torch, onnx\nb = a\n```\n![x](img/p.png) ![y](img/q.png)\n")
    blocks = rt.extract_blocks(md)
    assert [code for _, code in blocks] == ["a = 1\n", "# requires: torch, onnx\nb = a\n"]
    assert [line for line, _ in blocks] == [2, 8]
    assert rt.requirements(blocks[1][1]) == ["torch", "onnx"] and rt.requirements("x = 1") == []
    assert rt.images(md) == ["img/p.png", "img/q.png"]


def test_tutorial_runs_and_draws_every_picture_it_shows(tmp_path, capsys):
    rt = _runner()
    report = rt.run_tutorial(tmp_path, verbose=False)
    md = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    assert len(report["ran"]) + len(report["skipped"]) == len(rt.extract_blocks(md))
    for line, missing in report["skipped"]:          # only optional dependencies may be missing
        assert all(rt._importable(m) is False for m in missing), (line, missing)
    shown = rt.images(md)
    assert {"img/gradient_norms.png", "img/gates.png", "img/units.png"} <= set(shown)
    for p in shown:
        img = imread(tmp_path / p)                    # drawn by the tutorial's own code
        assert min(img.shape[:2]) >= 200 and img[..., :3].std() > 0.05, p
        assert (DOCS / p).is_file(), f"{p} is shown but not in docs/; run python docs/run_tutorial.py"
    ns = report["namespace"]
    # the claims the text makes are checked by asserts inside the blocks; spot-check two here
    assert ns["norms"]["rnn"][40] < 1e-3 * ns["norms"]["lstm"][40]
    assert ns["val_loss"] < 2.4 and np.isfinite(ns["val_loss"])
