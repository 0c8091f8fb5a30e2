"""The documentation site (docs/conf.py, docs/_ext/rnnkit_docs.py): every public name has a
reference entry with a docstring, the site builds offline with warnings as errors, and the
built pages hold what they should: rnnkit.nn.LSTM's page lists forward, backward, stepper and
trace; the CLI page is what ``rnnkit COMMAND --help`` prints (run as a separate program); no
page loads anything from the network; the front page is not blank in a real browser."""

import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from needs import require

require("sphinx", "myst_nb", "furo")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


ext = _load("rnnkit_docs", DOCS / "_ext" / "rnnkit_docs.py")
shot = _load("make_docs_screenshot", DOCS / "make_docs_screenshot.py")


# ============================================================================ no build needed
@pytest.mark.slow         # imports every module, torch interop included
def test_public_names_are_enumerated_from_the_package():
    entries = ext.public_api()
    names = {e.fullname for e in entries}
    import rnnkit.errors
    import rnnkit.nn
    import rnnkit.optim
    for mod in (rnnkit.nn, rnnkit.optim, rnnkit.errors):        # every __all__, whole
        assert {f"{mod.__name__}.{n}" for n in mod.__all__} <= names
    for must in ("rnnkit.train.Trainer", "rnnkit.train.TrainConfig", "rnnkit.sample.sample_lines",
                 "rnnkit.scratch.lstm_forward", "rnnkit.interop.onnx_runtime.OnnxCharLM",
                 "rnnkit.tblog.TensorBoardLog", "rnnkit.engines.make_engine"):
        assert must in names, must
    assert not any(part.startswith("_") for e in entries for part in e.module.split(".")[1:])
    assert "rnnkit.cli" not in {e.module for e in entries}    # the CLI has its own page
    canon = {e.canonical for e in entries}
    assert "rnnkit.nn.LSTM" in canon and "rnnkit.errors.ConfigError" in canon
    by_name = {e.fullname: e for e in entries}
    assert by_name["rnnkit.ConfigError"].canonical == "rnnkit.errors.ConfigError"


@pytest.mark.slow
def test_every_public_name_has_a_docstring():
    missing = [e.fullname for e in ext.public_api() if not ext.docstring(e).strip()]
    assert missing == []


def test_every_cli_option_has_help():
    assert ext.options_without_help() == []


def test_readme_builds_the_site_as_the_test_does():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python -m sphinx -W --keep-going -b html docs docs/_build/html" in readme
    assert 'pip install -e ".[docs]"' in readme
    assert "(docs/img/docs_site.png)" in readme and (DOCS / "img" / "docs_site.png").is_file()


def test_summary_line_keeps_literals_whole():
    assert ext.summary_line("Ids ``0 .. n``. Then more.") == "Ids ``0 .. n``."
    assert ext.summary_line("One line\nwrapped. Second.") == "One line wrapped."


# ============================================================================ the built site
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built here with warnings as errors (RNNKIT_DOCS_HTML=DIR inspects a build made
    by the README's command instead, without rebuilding: for working on the docs)."""
    if os.environ.get("RNNKIT_DOCS_HTML") and not os.environ.get("CI"):
        return Path(os.environ["RNNKIT_DOCS_HTML"])
    out = tmp_path_factory.mktemp("site")
    # -j auto: the pages are read and written on every core (each extension declares itself
    # parallel-safe, so the site and its warnings are those of a serial build)
    proc = shot.build_site(out, extra_args=("-j", "auto", "-d", str(out / ".doctrees")))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-6000:]
    assert "WARNING" not in text and "ERROR" not in text, text[-6000:]
    return out


def page_text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def pre_blocks(path: Path) -> list:
    raw = path.read_text(encoding="utf-8")
    return [html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(r"<pre>(.*?)</pre>", raw, re.S)]


@pytest.mark.slow
def test_lstm_reference_page_lists_its_methods(site):
    page = site / "api" / "rnnkit.nn.LSTM.html"
    assert page.is_file()
    raw = page.read_text(encoding="utf-8")
    assert 'id="rnnkit.nn.LSTM"' in raw
    for method in ("forward", "backward", "stepper", "trace"):
        assert f'id="rnnkit.nn.LSTM.{method}"' in raw, method
    import rnnkit.nn
    first = inspect.getdoc(rnnkit.nn.LSTM).split("\n")[0][:40]
    assert " ".join(first.split()) in " ".join(page_text(page).split())


@pytest.mark.slow
def test_every_public_name_has_a_reference_entry(site):
    for e in ext.public_api():
        module_page = site / "api" / f"{e.module}.html"
        assert module_page.is_file(), e.module
        own = site / "api" / f"{e.canonical}.html"
        assert f'id="{e.canonical}"' in own.read_text(encoding="utf-8"), e.canonical
        assert f"{e.canonical}.html" in module_page.read_text(encoding="utf-8"), e.fullname


@pytest.mark.slow
def test_cli_reference_is_what_rnnkit_help_prints(site):
    blocks = [b.strip("\n") for b in pre_blocks(site / "reference" / "cli.html")]
    env = dict(os.environ, COLUMNS=str(ext.CLI_COLUMNS), PYTHONPATH=str(ROOT))
    import argparse

    from rnnkit.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = [[]] + [[name] for name in sub.choices]
    assert len(commands) >= 8
    for cmd in commands:
        out = subprocess.run([sys.executable, "-m", "rnnkit", *cmd, "--help"], env=env,
                             capture_output=True, text=True, check=True).stdout
        assert out.strip("\n") in blocks, f"rnnkit {' '.join(cmd)} --help"


@pytest.mark.slow
def test_the_site_holds_the_readme_guides_and_notebook(site):
    front = " ".join(page_text(site / "index.html").split())
    assert "Recurrent neural networks (RNN, LSTM, GRU) in NumPy" in front
    guides = {p.stem for p in DOCS.glob("*.md")} | {p.stem for p in DOCS.glob("*.ipynb")}
    assert {"design", "engines", "onnx", "BENCHMARKS", "tutorial"} <= guides
    for guide in guides - {"index"}:                 # every guide in docs/ is a page
        assert (site / f"{guide}.html").is_file(), guide
        assert f'href="{guide}.html"' in (site / "index.html").read_text(encoding="utf-8"), guide
    assert (site / "reference" / "cli.html").is_file() and (site / "api" / "index.html").is_file()
    tutorial = page_text(site / "tutorial.html")
    import json
    nb = json.loads((DOCS / "tutorial.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first_line = "".join(code[0]["source"]).strip().splitlines()[0]
    assert " ".join(first_line.split()) in " ".join(tutorial.split())


@pytest.mark.slow
def test_no_page_loads_anything_from_the_network(site):
    remote = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)=["'](https?:)?//""", re.I)
    for page in site.rglob("*.html"):
        bad = remote.findall(page.read_text(encoding="utf-8"))
        assert not bad, (page, bad[:3])
    for css in site.rglob("*.css"):
        assert not re.search(r"@import\s+url\(\s*['\"]?https?:", css.read_text(encoding="utf-8")), css


@pytest.mark.slow
def test_front_page_is_not_blank_in_chromium(site, tmp_path):
    require("selenium", "PIL", programs=("chromium", "chromedriver"))
    import numpy as np
    from PIL import Image
    png = shot.screenshot(site, tmp_path / "front.png")
    img = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    background = np.median(img)
    ink = np.mean(np.abs(img - background) > 40)        # text, headings, the sidebar
    assert 0.01 < ink < 0.6, ink
    assert len(np.unique(img)) > 20                     # anti-aliased text, not a flat fill
