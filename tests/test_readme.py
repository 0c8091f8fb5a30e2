"""The README, followed to the letter on a fresh machine.

Every ``bash`` and ``python`` block of README.md runs in order, in a fresh virtual
environment (no packages but pip's own) created for this test, in a fresh copy of the
repository: the install commands the README names are the only installs. A block that cannot
run here says so right above itself with ``<!-- readme-test: skip (why) -->`` (the test
command itself - it is what CI runs - and commands for GPUs). Blocks without a language tag
are output, not commands.

PyTorch comes from ``pip install torch==2.13.0`` as the README says (a CPU build from this
machine's disk); the other packages from the package index. pip does not byte-compile what it
installs (``PIP_NO_COMPILE``: Python compiles a module when it is first imported), the one
difference from a user's session, and it only saves time.
"""

import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b")


def readme_blocks(text: str):
    """``(language, code, skipped)`` for every fenced block with a language tag, in order."""
    out = []
    for m in re.finditer(r"^```(\w+)\n(.*?)^```", text, re.M | re.S):
        before = text[:m.start()].rstrip().splitlines()
        skipped = bool(before) and bool(SKIP.search(before[-1]))
        out.append((m.group(1), m.group(2), skipped))
    return out


def test_blocks_are_found_and_every_skip_says_why():
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert sum(lang == "bash" for lang, _, _ in blocks) >= 3
    assert sum(lang == "python" for lang, _, _ in blocks) >= 2
    for m in re.finditer(r"<!--\s*readme-test:\s*skip(.*?)-->", (ROOT / "README.md").read_text()):
        assert m.group(1).strip(" ()"), "a skipped block must say why"


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


@pytest.mark.slow
def test_readme_runs_top_to_bottom_in_a_fresh_environment(tmp_path):
    if shutil.which("git") is None:
        pytest.fail("git is needed to copy the tracked files")
    repo = tmp_path / "rnnkit"
    repo.mkdir()
    _copy_repo(repo)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bindir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(env_dir)
    # pip's byte-compilation of every installed module (torch's alone is ~30 s here) is an
    # install-time cache Python rebuilds on import; the commands and their outcome are the same
    env["PIP_NO_COMPILE"] = "1"
    log = []
    for i, (lang, code, skipped) in enumerate(readme_blocks((repo / "README.md").read_text())):
        if skipped or lang not in ("bash", "python"):
            continue
        argv = (["bash", "-e", "-o", "pipefail", "-c", code] if lang == "bash"
                else [str(bindir / "python"), "-c", code])
        proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=1200)
        log.append(f"--- block {i} ({lang}) exit {proc.returncode}\n{code}\n{proc.stdout[-2000:]}"
                   f"\n{proc.stderr[-3000:]}")
        assert proc.returncode == 0, "\n".join(log)


def test_ci_runs_exactly_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [ln for lang, code, _ in readme_blocks(readme) if lang == "bash"
                for ln in code.splitlines() if "python -m pytest" in ln]
    assert len(commands) == 1, commands
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[0].strip() == ci[-1].strip()
