"""Peak memory of `rnnkit train` on a large generated text (stream mode), both engines.

Usage::

    python benchmarks/corpus_memory.py                    # 200 MB text, a few steps each
    python benchmarks/corpus_memory.py --mb 50 --steps 3 --keep /tmp/corpus

A text of ``--mb`` MB (random words over ~60 characters, lines of prose-like length) is
generated into a temporary directory (never into the repository), then each run is a real
``python -m rnnkit train FILE --mode stream ...`` subprocess with the default model and a
small validation share; its peak resident memory is read from the kernel (``os.wait4``'s
``ru_maxrss``, the figure ``/usr/bin/time -v`` prints as "Maximum resident set size"), and
split into anonymous memory (the process's own arrays) and file-backed pages (the memory-mapped
id file: page cache, which the kernel reclaims under pressure) by sampling ``/proc``.

Runs: the first on a fresh run directory (the text is encoded into ``DIR/data/ids.uint8``),
the second resumes it (the id file is reused), for ``--engine numpy`` and ``--engine torch``
(CPU); and, for scale, the old in-memory path (the whole text read, ids as int64) on a tenth
of the text.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def generate(path: Path, mb: float, seed: int = 0) -> int:
    """Write about ``mb`` MB of word salad to ``path`` (block by block); returns its size."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    words = ["".join(rng.choice(letters, rng.integers(1, 10))) for _ in range(5000)]
    target = int(mb * 1e6)
    size = 0
    with open(path, "w", encoding="ascii") as f:
        while size < target:
            idx = rng.integers(0, len(words), 20000)
            ends = np.where(rng.random(20000) < 0.08, ".\n", " ")
            block = "".join(w + e for w, e in zip(np.array(words, dtype=object)[idx], ends))
            f.write(block)
            size += len(block)
    return size


def _rss_parts(pid: int):
    """(anonymous, file-backed) resident MiB of a running process, from /proc."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    kb = {k: v.split()[0] for k, _, v in (line.partition(":") for line in lines) if v.strip()}
    if "RssAnon" not in kb or "RssFile" not in kb:
        return None
    return int(kb["RssAnon"]) / 1024, int(kb["RssFile"]) / 1024


def measure(cmd: list, env: dict) -> dict:
    """Run ``cmd``: wall time, peak RSS (MiB, the kernel's ru_maxrss), and the peaks of its
    anonymous and file-backed parts sampled every 20 ms from /proc (Linux)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak_anon = peak_file = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        parts = _rss_parts(proc.pid)
        if parts:
            peak_anon, peak_file = max(peak_anon, parts[0]), max(peak_file, parts[1])
        time.sleep(0.02)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({code}):\n{err}")
    return {"seconds": time.perf_counter() - t0, "max_rss_mib": usage.ru_maxrss / 1024,
            "anon_mib": peak_anon, "file_mib": peak_file}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=200.0, help="size of the generated text (MB)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--keep", help="generate into this directory and keep it (default: a temporary one)")
    p.add_argument("--engines", default="numpy,torch")
    args = p.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="rnnkit-corpus-"))
    root.mkdir(parents=True, exist_ok=True)
    text = root / "big.txt"
    if not text.exists() or text.stat().st_size < args.mb * 1e6 * 0.99:
        size = generate(text, args.mb)
    else:
        size = text.stat().st_size
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [q for q in [os.environ.get("PYTHONPATH")] if q]))
    base = [sys.executable, "-m", "rnnkit", "train", str(text), "--mode", "stream", "--val-frac",
            "0.0005", "--eval-every", "100000", "--quiet", "--num-samples", "0"]
    rows = []
    for engine in args.engines.split(","):
        run = root / f"run-{engine}"
        shutil.rmtree(run, ignore_errors=True)                 # the first run encodes the text
        extra = ["--engine", engine] + (["--device", "cpu"] if engine == "torch" else [])
        first = measure([*base, "--out", str(run), "--steps", str(args.steps), *extra], env)
        again = measure([sys.executable, "-m", "rnnkit", "train", "--resume", str(run), "--steps",
                         str(2 * args.steps), *extra], env)
        rows.append((f"{engine}: encode + {args.steps} steps", first))
        rows.append((f"{engine}: resume (id file reused) + {args.steps} steps", again))
    tiny = root / "tiny.txt"
    with open(text, "rb") as src, open(tiny, "wb") as dst:
        dst.write(src.read(1_000_000))
    for engine in args.engines.split(","):
        extra = ["--engine", engine] + (["--device", "cpu"] if engine == "torch" else [])
        floor = [sys.executable, "-m", "rnnkit", "train", str(tiny), *base[5:], "--out",
                 str(root / f"run-tiny-{engine}"), "--overwrite", "--steps", str(args.steps), *extra]
        rows.append((f"{engine}: 1 MB text (the floor: interpreter, libraries, model)", measure(floor, env)))
    small = root / "small.txt"
    with open(text, "rb") as src, open(small, "wb") as dst:
        dst.write(src.read(size // 10))
    old = [sys.executable, "-c", "import sys; from rnnkit.data import encode; "
           "encode.STREAM_MIN_BYTES = float('inf'); from rnnkit.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "train", str(small), "--mode", "stream", "--val-frac",
           "0.0005", "--eval-every", "100000", "--quiet", "--num-samples", "0", "--steps",
           str(args.steps), "--out", str(root / "run-old"), "--overwrite"]
    rows.append((f"numpy, text read whole (the old path), {size / 10 / 1e6:.0f} MB", measure(old, env)))
    print(f"text: {text} ({size / 1e6:.0f} MB); default model (LSTM 2x128, batch 64, seq 100)")
    print(f"{'run':58s} {'max RSS':>10s} {'anonymous':>10s} {'file-backed':>12s} {'time':>8s}")
    for name, r in rows:
        print(f"{name:58s} {r['max_rss_mib']:6.0f} MiB {r['anon_mib']:6.0f} MiB {r['file_mib']:8.0f} MiB "
              f"{r['seconds']:6.1f} s")
    print("max RSS: the kernel's peak resident set (ru_maxrss, as /usr/bin/time -v reports it); "
          "anonymous / file-backed: peaks sampled every 20 ms. File-backed pages are the page "
          "cache of the mapped id file (shared, clean, reclaimed by the kernel under pressure).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
