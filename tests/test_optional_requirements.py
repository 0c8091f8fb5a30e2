"""The tests' optional requirements go through one helper (tests/needs.py), which fails
under CI instead of skipping, so no reference test can drop out of CI silently."""

import ast
import re
import sys
from pathlib import Path

import pytest

import needs

TESTS = Path(__file__).resolve().parent
# built from pieces so that this file does not match itself
_SKIP_IMPORT = "import" + "orskip"


def _sources():
    return sorted(TESTS.glob("*.py"))


def test_no_test_skips_on_a_missing_import_by_itself():
    offenders = [f"{p.name}:{i}" for p in _sources()
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if _SKIP_IMPORT in line]
    assert not offenders, f"use needs.require(...) instead of pytest.{_SKIP_IMPORT}: {offenders}"


def test_no_test_catches_an_import_error_to_skip():
    """``try: import x / except ImportError: pytest.skip(...)`` would also vanish in CI."""
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Try):
                continue
            for handler in node.handlers:
                caught = ast.unparse(handler.type) if handler.type is not None else ""
                body = "\n".join(ast.unparse(s) for s in handler.body)
                if re.search(r"\b(ImportError|ModuleNotFoundError)\b", caught) and "skip" in body:
                    offenders.append(f"{path.name}:{handler.lineno}")
    assert not offenders, f"use needs.require(...): {offenders}"


def test_a_missing_module_skips_here_and_fails_under_ci(monkeypatch):
    missing = "rnnkit_no_such_module_anywhere"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"module {missing} .*pip install"):
        needs.require("json", missing)
    with pytest.raises(pytest.skip.Exception, match="program rnnkit-no-such-program .*apt-get"):
        needs.require(programs=("rnnkit-no-such-program",))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"CI must install .*{missing}"):
        needs.require(missing)


def test_require_returns_the_modules_it_imported():
    import json
    import math
    assert needs.require("json") is json
    assert needs.require("json", "math") == (json, math)
    assert needs.require(programs=(sys.executable,)) is None
    assert needs.optional("json") is json


def test_optional_gives_none_for_a_missing_module_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert needs.optional("rnnkit_no_such_module_anywhere") is None
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install"):
        needs.optional("rnnkit_no_such_module_anywhere")
