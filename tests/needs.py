"""Optional test requirements: skipped on a developer's machine that lacks them, a failure in
CI (``CI`` set in the environment), where ``.ci/run`` installs every one of them."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


_PIP = "pip install -e '.[test]'"
_APT = "apt-get install -y chromium chromium-driver"


def require(*modules: str, programs: tuple = ()) -> None:
    """Skip the calling module (fail it under CI) unless every module and program is there."""
    missing = [f"module {m} ({_PIP})" for m in modules if importlib.util.find_spec(m) is None]
    missing += [f"program {p} ({_APT})" for p in programs if shutil.which(p) is None]
    if not missing:
        return
    message = "not installed: " + ", ".join(missing) + "; .ci/run installs them"
    if os.environ.get("CI"):
        pytest.fail(f"CI must install the test requirements: {message}", pytrace=False)
    pytest.skip(message, allow_module_level=True)
