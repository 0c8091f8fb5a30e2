"""Lint as a test: ``ruff check`` with the rule set written in pyproject.toml ([tool.ruff])
passes on the whole repository, so CI (which runs pytest) fails on a lint error without a
step of its own."""

import subprocess
import sys
from pathlib import Path

from needs import require

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes_on_the_repository():
    require("ruff")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format",
                           "concise", str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, ("ruff check found problems (fix them, or `ruff check --fix`):\n"
                                  + proc.stdout + proc.stderr)


def test_the_rule_set_is_written_in_pyproject():
    tomllib = require("tomllib")                     # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lint = config["tool"]["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B", "UP"} <= set(lint["select"])
    assert "ruff" in " ".join(config["project"]["optional-dependencies"]["test"])
