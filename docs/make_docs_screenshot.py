"""Draw docs/img/docs_site.png: the front page of the documentation site, in headless chromium.

Usage (from the repository root; needs ``pip install -e '.[docs,test]'`` and Debian's
``apt-get install -y chromium chromium-driver``)::

    python docs/make_docs_screenshot.py                       # builds the site, then the picture
    python docs/make_docs_screenshot.py --html docs/_build/html   # an existing build instead

:func:`build_site` is also what ``tests/test_docs.py`` runs (warnings are errors).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def build_site(out, extra_args=()) -> subprocess.CompletedProcess:
    """``python -m sphinx -W --keep-going -b html docs OUT``: the site, warnings as errors."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           *extra_args, str(DOCS), str(out)]
    return subprocess.run(cmd, cwd=DOCS.parent, capture_output=True, text=True)


def screenshot(html_dir, png, width: int = 1280, height: int = 900) -> Path:
    """Open ``html_dir/index.html`` in headless chromium and save the visible window."""
    spec = importlib.util.spec_from_file_location("make_explore_screenshot",
                                                  DOCS / "make_explore_screenshot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with tempfile.TemporaryDirectory(prefix="rnnkit-docs-shot-") as profile:
        driver = mod.chromium(profile, width, height)
        try:
            driver.get((Path(html_dir).resolve() / "index.html").as_uri())
            png = Path(png)
            png.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(png))
        finally:
            driver.quit()
    return png


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", help="an existing build (default: build into docs/_build/html)")
    ap.add_argument("--out", default=str(DOCS / "img" / "docs_site.png"), help="the PNG to write")
    args = ap.parse_args(argv)
    html = Path(args.html) if args.html else DOCS / "_build" / "html"
    if not args.html:
        proc = build_site(html)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            return 1
    print(screenshot(html, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
