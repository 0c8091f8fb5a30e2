"""Optional test requirements, the one way a test asks for them.

On a developer's machine that lacks one, the test (or the whole module, when called at module
level) is skipped with the command that installs it. In CI (``CI`` set in the environment),
where ``.ci/run`` installs every one of them, a missing requirement is a failure: a reference
test (PyTorch parity, ONNX Runtime, the browser) can never vanish from CI silently.
pytest's own skip-on-import helper is not used anywhere in the tests
(``test_optional_requirements.py`` checks that).
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any

import pytest

_PIP = "pip install -e '.[all,test]'"
_APT = "apt-get install -y chromium chromium-driver"


def _missing(modules, programs):
    """(imported modules, descriptions of what is missing)."""
    imported, missing = [], []
    for name in modules:
        try:
            imported.append(importlib.import_module(name))
        except ImportError as e:
            missing.append(f"module {name} ({_PIP}; {type(e).__name__}: {e})")
    missing += [f"program {p} ({_APT})" for p in programs if shutil.which(p) is None]
    message = "not installed: " + ", ".join(missing) + "; .ci/run installs them"
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI must install the test requirements: {message}", pytrace=False)
    return imported, (message if missing else None)


def require(*modules: str, programs: tuple[str, ...] = ()) -> Any:
    """Import every module and find every program, or skip the caller (fail it under CI).

    Returns the imported module when one is named, a tuple of them when several are, and
    None when only programs are asked for, so ``torch = require("torch")`` replaces
    ``import torch``. Called at module level it skips the whole module. A module that is
    installed but fails to import counts as missing (its error is in the message).
    """
    imported, missing = _missing(modules, programs)
    if missing:
        pytest.skip(missing, allow_module_level=True)
    if not imported:
        return None
    return imported[0] if len(imported) == 1 else tuple(imported)


def optional(module: str) -> Any:
    """The imported module, or None where it is not installed (a failure under CI), for the
    few tests that run partly without it or choose parametrisations by it. A test that
    cannot run without the module calls :func:`require` instead."""
    imported, _ = _missing((module,), ())
    return imported[0] if imported else None
