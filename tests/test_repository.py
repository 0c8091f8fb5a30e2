"""Repository hygiene: what the project's files point at is part of the project.

* Every relative link in the Markdown files (``[text](target)``, ``![alt](target)``) names a
  file or folder of the repository: a link that leaves the checkout, or names a file that is
  not there, is dead for a user of rnnkit.
* No file names a path of the machine it was written on: the folder that holds the checkout
  (whatever it is called) never appears as an absolute path.

The checked files are ``git ls-files`` when git is available, else every file under the
repository root (``.git``, other dot-directories and ``__pycache__`` skipped); binary files are
skipped.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


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


def _files(root):
    return _git_files(root) or _walk_files(root)


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


def dead_links(root, files):
    """``path:line: target`` for every relative Markdown link that does not name a file or
    folder inside ``root`` (URLs, ``mailto:`` and in-page ``#anchors`` are not checked)."""
    root = root.resolve()
    hits = []
    for name in files:
        if not name.endswith(".md"):
            continue
        text = _text(root / name)
        if text is None:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue
                path = target.split("#", 1)[0]
                resolved = ((root / name).parent / path).resolve()
                if not resolved.is_relative_to(root) or not resolved.exists():
                    hits.append(f"{name}:{i}: {target}")
    return hits


def machine_paths(root, files):
    """``path:line: text`` for every line that names the folder holding the checkout by its
    absolute path (a path of the machine the file was written on)."""
    parent = root.resolve().parent.as_posix().rstrip("/") + "/"
    if parent == "/":
        return []
    hits = []
    for name in files:
        text = _text(root / name)
        if text is None:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if parent in line:
                hits.append(f"{name}:{i}: {line.strip()}")
    return hits


def test_markdown_links_stay_inside_the_repository():
    hits = dead_links(ROOT, _files(ROOT))
    assert not hits, "these links lead outside the repository or to nothing:\n" + "\n".join(hits)


def test_no_file_names_a_path_of_the_machine_it_was_written_on():
    hits = machine_paths(ROOT, _files(ROOT))
    assert not hits, ("these lines name a folder that only exists on one machine; describe it "
                      "in words instead:\n" + "\n".join(hits))


@pytest.mark.parametrize("target, dead", [
    ("docs/design.md", False),
    ("docs/design.md#the-layers", False),
    ("docs/", False),
    ("#the-layers", False),
    ("https://example.org/x.md", False),
    ("docs/no-such-file.md", True),
    ("../outside/notes.txt", True),
])
def test_link_check_on_examples(tmp_path, target, dead):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "design.md").write_text("# design\n")
    (tmp_path / "README.md").write_text(f"see [this]({target}) and ![img]({target})\n")
    hits = dead_links(tmp_path, ["README.md", "docs/design.md"])
    assert bool(hits) is dead, hits


def test_machine_path_check_on_examples(tmp_path):
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "a.md").write_text(f"fine\nsee {tmp_path.as_posix()}/other/notes.txt\n")
    (repo / "b.py").write_text("path = 'docs/x'\n")
    assert machine_paths(repo, ["a.md", "b.py"]) == [
        f"a.md:2: see {tmp_path.as_posix()}/other/notes.txt"]


def test_walk_fallback_skips_git_and_binary_files(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("see [x](missing.md)\n")
    (tmp_path / "img.png").write_bytes(b"\x89PNG\0\0[x](missing.md)")
    (tmp_path / "ok.py").write_text("x = 1\n")
    assert _walk_files(tmp_path) == ["docs/a.md", "img.png", "ok.py"]
    assert dead_links(tmp_path, _walk_files(tmp_path)) == ["docs/a.md:1: missing.md"]
