"""The tutorial as a Jupyter notebook: ``docs/tutorial.md`` is the source, ``docs/tutorial.ipynb``
is generated from it with jupytext, and the notebook runs top to bottom in a real kernel.

Usage::

    python docs/run_tutorial.py              # regenerate docs/tutorial.ipynb, execute it in a
                                             # temporary directory with a Jupyter kernel, and
                                             # copy the pictures it drew into docs/img/
    python docs/run_tutorial.py --check      # execute only; change nothing in docs/

Every ```` ```python ```` block of the markdown is one code cell; everything else (prose, the
```` ```shell ```` examples for a terminal) is markdown. ``tests/test_tutorial.py`` checks that
the committed notebook is what this script generates and executes it with nbclient + ipykernel
in CI, so neither copy can rot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
TUTORIAL = DOCS / "tutorial.md"
NOTEBOOK = DOCS / "tutorial.ipynb"
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}

_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def images(markdown: str) -> list[str]:
    """Relative paths of the PNG pictures the markdown shows, e.g. ``img/loss.png``."""
    return _IMAGE.findall(markdown)


def notebook_from_markdown(markdown: str):
    """The notebook (an ``nbformat`` node, version 4, no outputs) that jupytext makes of
    ``markdown``, with the Python 3 kernel named in its metadata."""
    import jupytext
    nb = jupytext.reads(markdown, fmt="md")
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):            # stable ids: regenerating changes nothing
        cell.id = f"cell-{i:03d}"
    return nb


def cell_sources(nb) -> list[tuple[str, str]]:
    """``(cell type, source)`` of every cell: what must agree between the two copies."""
    return [(c.cell_type, c.source) for c in nb.cells]


def write_notebook(path=NOTEBOOK, markdown_path=TUTORIAL) -> Path:
    """Regenerate ``docs/tutorial.ipynb`` from ``docs/tutorial.md``."""
    import nbformat
    nb = notebook_from_markdown(Path(markdown_path).read_text(encoding="utf-8"))
    Path(path).write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def _pythonpath(first: Path):
    """The kernel imports this checkout's rnnkit (it inherits PYTHONPATH)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(first)] + ([old] if old else []))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def execute_notebook(nb, workdir, timeout: int = 600):
    """Run every cell of ``nb`` in order in a fresh Python 3 kernel whose working directory
    is ``workdir``; the outputs are stored in ``nb`` (returned). A cell that raises stops the
    run with nbclient's ``CellExecutionError`` (it shows the cell and the traceback)."""
    from nbclient import NotebookClient
    with _pythonpath(ROOT):
        NotebookClient(nb, timeout=timeout, kernel_name=KERNEL["name"],
                       resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="do not rewrite docs/tutorial.ipynb nor copy the pictures into docs/img")
    args = ap.parse_args(argv)
    markdown = TUTORIAL.read_text(encoding="utf-8")
    if not args.check:
        write_notebook()
    with tempfile.TemporaryDirectory(prefix="rnnkit-tutorial-") as tmp:
        t0 = time.perf_counter()
        nb = execute_notebook(notebook_from_markdown(markdown), tmp)
        seconds = time.perf_counter() - t0
        shown = images(markdown)
        missing = [p for p in shown if not (Path(tmp) / p).is_file()]
        if missing:
            print(f"the tutorial shows pictures its code did not draw: {missing}", file=sys.stderr)
            return 1
        if not args.check:
            for p in shown:
                dst = DOCS / p
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / p, dst)
    code = sum(c.cell_type == "code" for c in nb.cells)
    print(f"tutorial notebook: {code} code cells ran in a kernel in {seconds:.1f} s"
          + ("" if args.check else f"; {NOTEBOOK.name} regenerated, pictures copied to {DOCS / 'img'}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
