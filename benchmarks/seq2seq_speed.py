"""Training speed on the dates task: rnnkit's Seq2Seq against PyTorch on the same model and recipe.

Both sides train the model of ``rnnkit train --dataset dates`` (its defaults: biLSTM 64
encoder, LSTM 128 decoder, additive attention, input feeding; Adam at 3e-3, gradient norm
clipped at 5, batches of 64) on the same batches, in this process, alternating rounds so that
both see the same machine load, with the same number of threads (BLAS for rnnkit via
threadpoolctl, ``torch.set_num_threads`` for PyTorch). PyTorch runs
:class:`rnnkit.interop.torch.TorchSeq2Seq` (packed-sequence encoder, ``nn.LSTMCell`` decoder
loop, autograd) started from the same weights::

    python benchmarks/seq2seq_speed.py --steps 30 --threads 1

Prints one markdown row: steps/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per side and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    from rnnkit import pairs_run
    from rnnkit.data import load_pairs_data
    from rnnkit.datasets import corpus
    from rnnkit.interop.torch import to_torch
    from rnnkit.optim import clip_grad_norm
    from rnnkit.train import TrainConfig
    from rnnkit.train_setup import TRAIN_DEFAULTS

    o = pairs_run.apply_defaults(dict(TRAIN_DEFAULTS), set())
    data = load_pairs_data(dataset="dates", pairs=corpus("dates").load(), batch_size=o["batch_size"], seed=0)
    model = pairs_run.build_model(o, data)
    tcfg = TrainConfig(lr=o["lr"], clip=o["clip"])
    opt = tcfg.make_optimizer(model.parameters())
    tm = to_torch(model)
    topt = torch.optim.Adam(tm.parameters(), lr=o["lr"])
    torch.set_num_threads(args.threads)
    batches = [data.train.batch(k)[0] for k in range(args.steps)]

    def rnnkit_round():
        for b in batches:
            model.loss(b)
            model.backward_loss()
            grads = model.gradients()
            clip_grad_norm(grads, tcfg.clip)
            opt.step(grads, lr=tcfg.lr)
            model.zero_grad()

    def torch_round():
        for b in batches:
            logits, _ = tm(b.src, b.x, b.src_lengths)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     torch.as_tensor(b.y).reshape(-1), ignore_index=-100)
            topt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tm.parameters(), tcfg.clip)
            topt.step()

    times = {"rnnkit": [], "torch": []}
    with threadpool_limits(args.threads):
        rnnkit_round()                                   # warm-up
        torch_round()
        for _ in range(args.rounds):
            for name, fn in (("rnnkit", rnnkit_round), ("torch", torch_round)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    rate = {k: args.steps / float(np.median(v)) for k, v in times.items()}
    print("| task | threads | rnnkit steps/s | PyTorch steps/s | rnnkit / PyTorch |")
    print("|---|---|---|---|---|")
    print(f"| dates, `rnnkit train` defaults, batch {o['batch_size']} | {args.threads} | "
          f"{rate['rnnkit']:.2f} | {rate['torch']:.2f} | {rate['rnnkit'] / rate['torch']:.2f} |")


if __name__ == "__main__":
    main()
