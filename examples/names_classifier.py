"""Names -> sex: a many-to-one character-level classifier on the US census first names.

Data: :func:`rnnkit.datasets.names_sex_dataset` - the 1990 census female and male first-name
lists with the names found in both lists dropped (3944 female, 888 male: 81.6% female).
Split, stratified by class: 70% train, 15% validation, 15% test.

Model: :class:`rnnkit.nn.SequenceClassifier` - character embedding -> LSTM -> last valid
state -> linear -> 2 logits; token ids (T, N) time-major, right padded, with ``lengths``;
float32. The classes are imbalanced, so

* training uses **balanced sampling**: the male training names are repeated (randomly, with
  the seed) until both classes are equally frequent;
* the validation loss used for early stopping / best weights is the class-balanced one (the
  validation set is balanced the same way);
* the prediction is the argmax of the logits (P(male) >= 0.5): with balanced training this
  is the decision for balanced accuracy, so no threshold is tuned.

Reported on the test split: accuracy and balanced accuracy (mean of the per-class recalls)
against the majority-class baseline (always "female": balanced accuracy 0.5) and a
last-letter baseline (the class-balanced majority sex of each final letter in the training set).

    python examples/names_classifier.py
    python examples/names_classifier.py --seed 1 --cell gru

The last line printed is ``balanced_accuracy: <value>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import fmt_best, limit_blas_threads

from rnnkit import datasets, nn, no_grad
from rnnkit.data import ArraySource, Vocab
from rnnkit.train import TrainConfig, Trainer

PAD = "<pad>"
CLASSES = ("female", "male")


def encode(names, vocab):
    """Right-padded ids (T, N) with the pad id 0 and lengths (N,)."""
    lengths = np.array([len(s) for s in names], dtype=np.int64)
    ids = np.zeros((int(lengths.max()), len(names)), dtype=np.int64)         # (T, N)
    for n, s in enumerate(names):
        ids[:len(s), n] = vocab.encode(s)
    return ids, lengths


def stratified_split(labels, fracs, rng):
    """Index arrays, one per fraction, each keeping the class proportions of ``labels``."""
    parts = [[] for _ in fracs]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fracs)[:-1] * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def oversample(idx, labels, rng):
    """``idx`` with the minority-class items repeated (at random) up to the majority count."""
    groups = [idx[labels[idx] == c] for c in np.unique(labels[idx])]
    m = max(len(g) for g in groups)
    out = [np.concatenate([g, rng.choice(g, m - len(g), replace=True)]) for g in groups]
    return rng.permutation(np.concatenate(out))


def scores(y_true, y_pred):
    """(accuracy, balanced accuracy = mean per-class recall)."""
    acc = float(np.mean(y_true == y_pred))
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)]
    return acc, float(np.mean(recalls))


def last_letter_baseline(train_names, train_labels, test_names):
    """Predict, for each final letter, the class with the larger class-normalised frequency
    in the training names (unseen letters -> majority class)."""
    prior = np.bincount(train_labels, minlength=2).astype(float)
    counts: dict = {}
    for s, y in zip(train_names, train_labels):
        counts.setdefault(s[-1], np.zeros(2))[y] += 1
    majority = int(np.argmax(prior))
    rule = {ch: int(np.argmax(c / prior)) for ch, c in counts.items()}
    return np.array([rule.get(s[-1], majority) for s in test_names])


def log_eval(trainer, record):
    print(f"step {record['step']:5d}: train_ce {record['train_loss']:.4f}  "
          f"val_ce (balanced) {record['val_loss']:.4f}", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--embedding", type=int, default=16)
    p.add_argument("--bidirectional", action="store_true", help="read names in both directions")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--patience", type=int, default=6, help="evaluations without improvement before stopping")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (0 = library default)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    _blas = limit_blas_threads(args.blas_threads)  # noqa: F841 (kept for the whole run)
    t0 = time.perf_counter()
    rng = np.random.default_rng([args.seed, 7])
    names, labels = datasets.names_sex_dataset(drop_ambiguous=True)
    vocab = Vocab.build(names, specials=(PAD,))
    ids, lengths = encode(names, vocab)                                     # (T, M), (M,)
    tr, va, te = stratified_split(labels, (0.70, 0.15, 0.15), rng)
    tr_bal, va_bal = oversample(tr, labels, rng), oversample(va, labels, rng)
    print(f"names -> sex: {len(names)} names ({np.sum(labels == 0)} female, {np.sum(labels == 1)} male, "
          f"names in both lists dropped); vocab {len(vocab)}; longest {ids.shape[0]} chars")
    print(f"split: train {len(tr)} (balanced by oversampling to {len(tr_bal)}), val {len(va)}, test {len(te)}; float32")

    def source(idx, batch_size, seed):
        return ArraySource(ids[:, idx], labels[idx], batch_size, lengths=lengths[idx], seed=seed)

    model = nn.SequenceClassifier(nn.SequenceClassifierConfig(
        num_classes=2, vocab_size=len(vocab), embedding_size=args.embedding, cell=args.cell,
        hidden_size=args.hidden, bidirectional=args.bidirectional, pooling="last", dtype="float32"),
        seed=args.seed)
    cfg = TrainConfig(steps=args.steps, lr=args.lr, clip=5.0, weight_decay=args.weight_decay,
                      optimizer="adamw" if args.weight_decay else "adam", eval_every=args.eval_every,
                      patience=args.patience, schedule="cosine", restore_best=True,
                      seed=args.seed, progress=False)
    result = Trainer(model, source(tr_bal, args.batch_size, args.seed), source(va_bal, 512, 0), cfg,
                     on_eval=log_eval).fit()
    print(f"training: {result.stopped} after {result.steps} steps; best balanced val_ce "
          f"{fmt_best(result)}")

    model.eval()

    def p_male(idx):
        """P(male) for the names ``idx``, in batches of similar length (short padding)."""
        order = np.argsort(lengths[idx], kind="stable")
        out = np.empty(len(idx))
        for s in range(0, len(idx), 512):
            sel = idx[order[s:s + 512]]
            L = lengths[sel]
            with no_grad():
                logits = model.forward(ids[:int(L.max()), sel], L).astype(np.float64)   # (n, 2)
            out[order[s:s + 512]] = 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
        return out

    pt = p_male(te)
    y_te = labels[te]
    acc, bal_acc = scores(y_te, (pt >= 0.5).astype(int))
    maj = int(np.argmax(np.bincount(labels[tr])))
    acc_maj, bal_maj = scores(y_te, np.full(len(te), maj))
    ll = last_letter_baseline([names[i] for i in tr], labels[tr], [names[i] for i in te])
    acc_ll, bal_ll = scores(y_te, ll)
    wall = time.perf_counter() - t0
    print(f"test split: {len(te)} names ({np.sum(y_te == 0)} female, {np.sum(y_te == 1)} male)")
    print(f"  {'majority class (' + CLASSES[maj] + '):':<32s} accuracy {acc_maj:.4f}  balanced accuracy {bal_maj:.4f}")
    print(f"  {'last-letter rule:':<32s} accuracy {acc_ll:.4f}  balanced accuracy {bal_ll:.4f}")
    name = f"{'bi' if args.bidirectional else ''}{args.cell} (hidden {args.hidden}):"
    print(f"  {name:<32s} accuracy {acc:.4f}  balanced accuracy {bal_acc:.4f}")
    print(f"wall time: {wall:.1f} s")
    print(f"balanced_accuracy: {bal_acc:.4f}")
    return bal_acc


if __name__ == "__main__":
    main()
