"""Draw docs/img/explore.png: the `rnnkit explore` page of a real default names run, in
headless chromium.

Usage (from the repository root; needs ``pip install -e '.[test]'`` and Debian's
``apt-get install -y chromium chromium-driver``)::

    python docs/make_explore_screenshot.py               # trains `rnnkit train` with its
                                                         # defaults (~20 s), then the picture
    python docs/make_explore_screenshot.py --run runs/names   # an existing run instead

:func:`chromium` is also what ``tests/test_explore_browser.py`` drives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--hide-scrollbars")


def chromium(user_data_dir, width: int = 1280, height: int = 800):
    """A Selenium driver of Debian's headless chromium (``/usr/bin/chromium`` and
    ``/usr/bin/chromedriver``, or the ones on PATH) with a fresh profile in
    ``user_data_dir``; the browser's console is kept (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=opts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="an existing run directory (default: train one with the defaults)")
    ap.add_argument("--out", default=str(DOCS / "img" / "explore.png"), help="the PNG to write")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(DOCS.parent))                  # this checkout's rnnkit
    from selenium.webdriver.common.action_chains import ActionChains

    from rnnkit.cli import main as rnnkit
    out = Path(args.out).resolve()
    run = None if args.run is None else Path(args.run).resolve()
    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="rnnkit-explore-") as tmp:
        os.chdir(tmp)                             # the page names the run as `names/best`
        try:
            if run is None:
                run = "names"
                if rnnkit(["train", "--quiet", "--num-samples", "0", "--out", run]) != 0:
                    return 1
            page = os.path.join(tmp, "explore.html")
            if rnnkit(["explore", str(run), "--num", "110", "--seed", "1", "--out", page]) != 0:
                return 1
        finally:
            os.chdir(home)
        driver = chromium(os.path.join(tmp, "profile"), 1280, 720)
        try:
            driver.get(Path(page).resolve().as_uri())
            chars = driver.find_elements("css selector", "span.ch")
            ActionChains(driver).move_to_element(chars[min(40, len(chars) - 1)]).perform()
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if errors:
                print(f"the page logged errors: {errors}", file=sys.stderr)
                return 1
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
