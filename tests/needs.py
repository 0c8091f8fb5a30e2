"""Optional test requirements: skipped on a developer's machine that lacks them, a failure in
CI (``CI`` set in the environment), where ``.ci/run`` installs every one of them."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


def _missing(what: str) -> str:
    hint = ("pip install -e '.[test]'" if not what.startswith("/")
            else "apt-get install -y chromium chromium-driver")
    return f"{what} is not installed ({hint}; .ci/run installs it)"


def require(*modules: str, programs: tuple = ()) -> None:
    """Skip the calling module (fail it under CI) unless every module and program is there."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    missing += [p for p in programs if not (os.path.isfile(p) and os.access(p, os.X_OK))
                and shutil.which(p) is None]
    if not missing:
        return
    message = "; ".join(_missing(m) for m in missing)
    if os.environ.get("CI"):
        pytest.fail(f"CI must install the test requirements: {message}", pytrace=False)
    pytest.skip(message, allow_module_level=True)
