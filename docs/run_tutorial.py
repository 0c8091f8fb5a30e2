"""Execute docs/tutorial.md: every ```python block, in order, in one namespace.

Usage::

    python docs/run_tutorial.py              # run in a temporary directory, then copy the
                                             # pictures into docs/img/ (redraws the figures)
    python docs/run_tutorial.py --check      # run in a temporary directory, change nothing

A block whose first line is ``# requires: mod1, mod2`` runs only when those modules can be
imported (optional dependencies such as torch or onnxruntime); otherwise it is reported as
skipped. ``tests/test_tutorial.py`` runs the tutorial through :func:`run_tutorial` in CI, so
the tutorial cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
TUTORIAL = DOCS / "tutorial.md"

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_REQUIRES = re.compile(r"^#\s*requires:\s*(.+)$")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def extract_blocks(markdown: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block, in order."""
    return [(markdown.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(markdown)]


def requirements(code: str) -> list[str]:
    """Modules named on a first line ``# requires: a, b`` (empty list when there is none)."""
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    m = _REQUIRES.match(first)
    return [s.strip() for s in m.group(1).split(",") if s.strip()] if m else []


def images(markdown: str) -> list[str]:
    """Relative paths of the PNG pictures the markdown shows, e.g. ``img/loss.png``."""
    return _IMAGE.findall(markdown)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _cwd(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_tutorial(workdir, markdown_path=TUTORIAL, verbose: bool = True) -> dict:
    """Run every python block of ``markdown_path`` inside ``workdir``; return a report dict.

    The report has ``namespace`` (the globals after the last block), ``ran`` and
    ``skipped`` (lists of block line numbers; skipped ones with the missing modules) and
    ``seconds``. A failing block raises ``RuntimeError`` naming its line in the markdown.
    """
    markdown = Path(markdown_path).read_text(encoding="utf-8")
    ns: dict = {"__name__": "__tutorial__"}
    ran, skipped = [], []
    t0 = time.perf_counter()
    with _cwd(workdir):
        for line, code in extract_blocks(markdown):
            missing = [r for r in requirements(code) if not _importable(r)]
            if missing:
                skipped.append((line, missing))
                if verbose:
                    print(f"--- block at line {line}: skipped (missing {', '.join(missing)})")
                continue
            if verbose:
                print(f"--- block at line {line}")
            try:
                exec(compile(code, f"{Path(markdown_path).name}:{line}", "exec"), ns)
            except Exception as e:
                raise RuntimeError(f"tutorial block at line {line} of {markdown_path} failed: "
                                   f"{type(e).__name__}: {e}") from e
            ran.append(line)
    return {"namespace": ns, "ran": ran, "skipped": skipped,
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="do not copy the pictures into docs/img")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rnnkit-tutorial-") as tmp:
        report = run_tutorial(tmp)
        shown = images(TUTORIAL.read_text(encoding="utf-8"))
        missing = [p for p in shown if not (Path(tmp) / p).is_file()]
        if missing:
            print(f"the tutorial shows pictures its code did not draw: {missing}", file=sys.stderr)
            return 1
        if not args.check:
            for p in shown:
                dst = DOCS / p
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / p, dst)
    print(f"tutorial ran {len(report['ran'])} blocks in {report['seconds']:.1f} s"
          + (f"; skipped {report['skipped']}" if report["skipped"] else "")
          + ("" if args.check else f"; pictures copied to {DOCS / 'img'}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
