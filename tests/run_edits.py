"""Edits of a saved run directory for the tests that damage one on purpose."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def rehash_manifest(version: Path) -> None:
    """Rewrite the manifest (``checkpoint.json``) of the checkpoint version ``version`` so that
    it matches the files as they are now: a test's edit then reaches the loader's own checks
    instead of being caught as disk damage."""
    m = json.loads((version / "checkpoint.json").read_text())
    for name in m["files"]:
        data = (version / name).read_bytes()
        m["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (version / "checkpoint.json").write_text(json.dumps(m))
