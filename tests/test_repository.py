"""Repository hygiene: no file of the project points into the workspace's shared folder.

That folder (next to a checkout, on the machines the project was started on) is not part of
the repository, so a user of rnnkit does not have it: a path into it in the docs, the code or
the tests is a dead link. The checked files are ``git ls-files`` when git is available, else
every file under the repository root (``.git``, other dot-directories and ``__pycache__``
skipped); binary files are skipped.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Built from pieces so that this file does not match itself.
_NAME = "sha" + "red"
FORBIDDEN = re.compile(r"(?<![\w.-])" + _NAME + "/" + "|" + r"\.\./" + _NAME + r"\b")


def _git_files(root):
    """Tracked files (relative paths), or None when git or the repository is unavailable."""
    if shutil.which("git") is None:
        return None
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z"],
                              capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return names or None


def _walk_files(root):
    """Every file under root, skipping .git (and other dot-directories) and __pycache__."""
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts[:-1]):
            continue
        if path.is_file() and not path.is_symlink():
            out.append(rel.as_posix())
    return out


def _text(path):
    """The file's text, or None for a binary (NUL byte or not UTF-8) or unreadable file."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def offending_lines(root, files=None):
    """``path:line: text`` for every line of a text file that refers to the shared folder."""
    if files is None:
        files = _git_files(root)
    if files is None:
        files = _walk_files(root)
    hits = []
    for name in files:
        text = _text(root / name)
        if text is None:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{name}:{i}: {line.strip()}")
    return hits


def test_no_tracked_file_refers_to_the_shared_folder():
    hits = offending_lines(ROOT)
    assert not hits, ("these lines point at a folder users do not have; describe it in words "
                      "instead:\n" + "\n".join(hits))


@pytest.mark.parametrize("line, bad", [
    ("see " + _NAME + "/seed/notebook.txt", True),
    ("(`" + _NAME + "/DESIGN.md`)", True),
    ("open ../" + _NAME + " first", True),
    ("path = '../" + _NAME + "/x'", True),
    ("helpers " + _NAME + " by the examples", False),
    ("un" + _NAME + "/thing and data_" + _NAME + "/x", False),
])
def test_pattern(line, bad):
    assert bool(FORBIDDEN.search(line)) is bad


def test_walk_fallback_skips_git_and_binary_files(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("url = ../" + _NAME + "\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("fine\nsee " + _NAME + "/notes.txt\n")
    (tmp_path / "img.png").write_bytes(b"\x89PNG\0\0" + (_NAME + "/").encode())
    (tmp_path / "ok.py").write_text("x = 1\n")
    assert _walk_files(tmp_path) == ["docs/a.md", "img.png", "ok.py"]
    assert offending_lines(tmp_path, _walk_files(tmp_path)) == [
        "docs/a.md:2: see " + _NAME + "/notes.txt"]
