"""The paths users run, timed end to end: ``rnnkit sample`` and ``rnnkit eval`` as commands.

Each rnnkit figure is the wall time of the real command in a fresh process (``python -m
rnnkit ...``). Start-up (interpreter, imports, checkpoint load) is cancelled by running two
sizes and taking the difference: per character = (t(large) - t(small)) / (large - small);
start-up = t(small) - small * per character, reported on its own. The PyTorch reference does
the same work in this process with the same weights, the same threads and the same two sizes:

* generation: Embedding -> LSTM -> Linear -> softmax -> multinomial, one character at a time
  under ``torch.no_grad()`` (what ``rnnkit sample`` does in stream mode at temperature 1);
* scoring: the forward pass in 1024-step chunks with the state carried (``rnnkit eval``);
* lines mode: 200 names sampled as one batch of 200, stopping when every name has ended
  (``rnnkit sample DIR --num 200``).

The model is a CharLM with the sizes of the issue (LSTM 2 x 256, embedding 32, 65 characters),
initialised from a seed and saved as a checkpoint; the speed of a step does not depend on what
the weights learned. Run alone: ``python benchmarks/userpaths.py`` prints the rows.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

V_CHARS = (string.ascii_letters + string.digits + " .,\n")[:65]     # 65 characters
H, LAYERS, E = 256, 2, 32


def _save_run(directory: Path, lines: bool) -> None:
    """A checkpoint directory as `rnnkit train` writes it (random weights, seeded)."""
    from rnnkit import nn
    from rnnkit.checkpoint import save_checkpoint
    from rnnkit.data import BOUNDARY, Vocab
    chars = V_CHARS.replace("\n", "") if lines else V_CHARS
    vocab = Vocab.build(chars, specials=(BOUNDARY,) if lines else ())
    lm = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=H, num_layers=LAYERS,
                                   embedding_size=E), seed=0)
    save_checkpoint(directory, model_state=lm.state_dict(), config=lm.config.to_dict(),
                    vocab=vocab.to_json())


def _command_seconds(argv, env) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rnnkit", *map(str, argv)], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`rnnkit {' '.join(map(str, argv))}` failed: {proc.stderr.strip()}")
    return dt


def _alternating(fns: dict, repeats: int) -> dict:
    """Every timing of each function, called round by round (order rotated)."""
    names = list(fns)
    times = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            times[n].append(fns[n]())
    return times


def _median_alternating(fns: dict, repeats: int) -> dict:
    return {n: float(np.median(v)) for n, v in _alternating(fns, repeats).items()}


def _difference(t_small, t_large, n_small, n_large):
    per = (t_large - t_small) / (n_large - n_small)
    return per, t_small - n_small * per


class _TorchLM:
    """The same CharLM as a torch eager module, with its reference loops."""

    def __init__(self, run_dir: Path, torch):
        from rnnkit.interop.torch import to_torch
        from rnnkit.load import load_model
        loaded = load_model(run_dir)
        self.torch = torch
        self.vocab = loaded.vocab
        self.model = to_torch(loaded.model).eval()

    def generate(self, n: int) -> float:
        torch = self.torch
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            tok, state = torch.zeros((1, 1), dtype=torch.int64), None
            for _ in range(n):
                logits, state = self.model(tok, state)
                tok = torch.multinomial(torch.softmax(logits[-1], dim=-1), 1, generator=g)
        return time.perf_counter() - t0

    def score(self, ids: np.ndarray) -> float:
        torch = self.torch
        x = torch.from_numpy(ids.astype(np.int64))
        t0 = time.perf_counter()
        with torch.no_grad():
            state, total = None, 0.0
            for i in range(0, len(ids) - 1, 1024):
                inp = x[i:min(i + 1024, len(ids) - 1)]
                tgt = x[i + 1:i + 1 + len(inp)]
                logits, state = self.model(inp[:, None], state)
                total += float(torch.nn.functional.cross_entropy(logits[:, 0], tgt, reduction="sum"))
        return time.perf_counter() - t0

    def names(self, num: int, max_len: int, seed: int) -> float:
        """``num`` names as one batch, drawn like `rnnkit sample --seed SEED` draws them (one
        uniform per name and step from numpy's generator, inverse CDF in float64), so both
        sample the same names and run the same number of steps."""
        torch = self.torch
        rng = np.random.default_rng(seed)
        bos = self.vocab.bos_id
        first = None
        with torch.no_grad():
            tok = torch.full((1, num), bos, dtype=torch.int64)
            state, done = None, torch.zeros(num, dtype=torch.bool)
            for _ in range(max_len):
                logits, state = self.model(tok, state)
                c = torch.cumsum(torch.softmax(logits[-1].double(), dim=-1), dim=-1)
                u = torch.from_numpy(rng.random(num))
                tok = (c < (u * c[:, -1])[:, None]).sum(dim=-1).clamp(max=c.shape[1] - 1)[None]
                done |= tok[0] == bos
                if bool(done.all()):
                    break
                first = first if first is not None else time.perf_counter()
        return time.perf_counter() - first        # every step after the first, as rnnkit's


def bench_user_paths(torch, threads: int, repeats: int = 5, quick: bool = False) -> dict:
    """Rows for the user paths; ``torch`` is the imported module (None: rnnkit only), set to
    ``threads`` threads; the commands run with the same number of BLAS threads."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    n1, n2 = (20, 120) if quick else (200, 2200)             # characters generated
    c1, c2 = (300, 3000) if quick else (2_000, 60_000)       # characters scored
    out = {"model": f"CharLM, LSTM {LAYERS} x {H}, embedding {E}, {len(V_CHARS)} characters, float32"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stream, lines = tmp / "stream", tmp / "lines"
        _save_run(stream, lines=False)
        if quick:
            _save_run(lines, lines=True)
            out["lines_note"] = "Lines mode: the same sizes with random weights (quick run)."
        else:                     # the names a user samples come from the default names run
            subprocess.run([sys.executable, "-m", "rnnkit", "train", "--quiet", "--num-samples", "0",
                            "--out", str(lines)], env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            out["lines_note"] = ("Lines mode: the default names run (`rnnkit train`, LSTM 2 x 128). "
                                 "rnnkit drops each name from the batch when it ends; the torch "
                                 "loop, as a plain PyTorch loop does, steps the whole batch of "
                                 "200 until the longest name ends. Both draw the same uniforms "
                                 "and sample the same names.")
        rng = np.random.default_rng(0)
        texts = {}
        for n in (c1, c2):
            texts[n] = tmp / f"text{n}.txt"
            texts[n].write_text("".join(rng.choice(list(V_CHARS), size=n)), encoding="utf-8")

        t = _median_alternating({
            n1: lambda: _command_seconds(["sample", stream, "--length", n1, "--seed", 1], env),
            n2: lambda: _command_seconds(["sample", stream, "--length", n2, "--seed", 1], env),
        }, repeats)
        per, start = _difference(t[n1], t[n2], n1, n2)
        out["sample"] = dict(rnnkit=per, startup=start, sizes=(n1, n2), command=(
            f"rnnkit sample DIR --length {n2}  minus  rnnkit sample DIR --length {n1}"))
        t = _median_alternating({
            c1: lambda: _command_seconds(["eval", stream, texts[c1]], env),
            c2: lambda: _command_seconds(["eval", stream, texts[c2]], env),
        }, repeats)
        per, start = _difference(t[c1], t[c2], c1, c2)
        out["eval"] = dict(rnnkit=per, startup=start, sizes=(c1, c2), command=(
            f"rnnkit eval DIR text{c2}.txt  minus  rnnkit eval DIR text{c1}.txt"))
        num = 20 if quick else 200
        # The same batch, all its steps or one: start-up cancels. The difference (a few ms) is
        # small beside start-up (~0.15 s), so it is the median of the differences of each
        # round's pair, over more rounds.
        t = _alternating({
            "names": lambda: _command_seconds(["sample", lines, "--num", num, "--seed", 1], env),
            "one": lambda: _command_seconds(["sample", lines, "--num", num, "--length", 1, "--seed", 1], env),
        }, 5 * repeats)
        diff = float(np.median(np.subtract(t["names"], t["one"])))
        cfg = json.loads((lines / "config.json").read_text(encoding="utf-8"))
        out["names"] = dict(rnnkit=diff, wall=float(np.median(t["names"])),
                            startup=float(np.median(t["one"])), num=num,
                            hidden=cfg["hidden_size"], layers=cfg["num_layers"],
                            spread=float(np.subtract(t["names"], t["one"]).std()),
                            command=f"rnnkit sample DIR --num {num}  minus  the same with --length 1")
        if torch is not None:
            ref = _TorchLM(stream, torch)
            t = _median_alternating({n1: lambda: ref.generate(n1), n2: lambda: ref.generate(n2)}, repeats)
            out["sample"]["torch"] = (t[n2] - t[n1]) / (n2 - n1)
            ids = {n: ref.vocab.encode(texts[n].read_text(encoding="utf-8")) for n in (c1, c2)}
            t = _median_alternating({n: (lambda n=n: ref.score(ids[n])) for n in (c1, c2)}, repeats)
            out["eval"]["torch"] = (t[c2] - t[c1]) / (c2 - c1)
            ref_lines = _TorchLM(lines, torch)
            out["names"]["torch"] = _median_alternating(
                {"names": lambda: ref_lines.names(num, 500, seed=1)}, repeats)["names"]
    return out


if __name__ == "__main__":
    try:
        import torch as _torch
        _torch.set_num_threads(1)
    except ImportError:
        _torch = None
    for name, row in bench_user_paths(_torch, threads=1, repeats=3).items():
        print(name, row)
