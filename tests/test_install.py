"""The package works installed, without its source tree: a non-editable ``pip install .``
into a fresh virtual environment, run from another directory, trains and samples.

The environment sees the machine's site-packages (numpy and the other dependencies are
already installed there; this test is about rnnkit's own files: package data, modules that
used to reach into the checkout). ``rnnkit`` must be imported from the environment, not from
the checkout.
"""

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_trains_without_the_source_tree(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)], check=True,
                   env=env, timeout=600)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(py), "-c", "import rnnkit; print(rnnkit.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), where
    proc = subprocess.run([str(bindir / "rnnkit"), "train", "--steps", "20", "--quiet",
                           "--num-samples", "3", "--out", "run"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "new (not in the training set)" in proc.stdout
    assert (work / "run" / "best" / "model.safetensors").is_file()
    proc = subprocess.run([str(bindir / "rnnkit"), "sample", "run", "--num", "3"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3, proc.stderr
    # the explorer's page template is package data in the wheel
    proc = subprocess.run([str(bindir / "rnnkit"), "explore", "run", "--num", "5", "--out", "page.html"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    page = (work / "page.html").read_text(encoding="utf-8")
    assert '<script id="rnnkit-data" type="application/json">{' in page and "function showStep" in page
