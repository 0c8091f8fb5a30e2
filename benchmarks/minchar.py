"""A min-char-rnn-style character-level RNN trainer: the per-example loop baseline.

The classic from-scratch recipe: batch size 1, a vanilla tanh RNN with H hidden units, one-hot
column-vector inputs, ``seq_length`` steps of truncated BPTT with Python dicts of per-step
arrays, gradient clipping to [-5, 5] and Adagrad. Features-first column vectors, float64.
Used by ``rnnkit bench`` as the throughput baseline (characters per second).
"""

import numpy as np


def init_model(vocab_size, hidden_size=100, seed=0):
    rng = np.random.default_rng(seed)
    m = {
        'Wxh': rng.standard_normal((hidden_size, vocab_size)) * 0.01,
        'Whh': rng.standard_normal((hidden_size, hidden_size)) * 0.01,
        'Why': rng.standard_normal((vocab_size, hidden_size)) * 0.01,
        'bh': np.zeros((hidden_size, 1)),
        'by': np.zeros((vocab_size, 1)),
    }
    mem = {k: np.zeros_like(v) for k, v in m.items()}
    return m, mem


def loss_fun(m, inputs, targets, hprev):
    """Forward and backward over one chunk. inputs, targets: lists of ints; hprev (H, 1)."""
    V = m['Wxh'].shape[1]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((V, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(m['Wxh'], xs[t]) + np.dot(m['Whh'], hs[t - 1]) + m['bh'])
        ys[t] = np.dot(m['Why'], hs[t]) + m['by']
        ps[t] = np.exp(ys[t] - np.max(ys[t])) / np.sum(np.exp(ys[t] - np.max(ys[t])))
        loss += -np.log(ps[t][targets[t], 0])
    d = {k: np.zeros_like(v) for k, v in m.items()}
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        d['Why'] += np.dot(dy, hs[t].T)
        d['by'] += dy
        dh = np.dot(m['Why'].T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        d['bh'] += dhraw
        d['Wxh'] += np.dot(dhraw, xs[t].T)
        d['Whh'] += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(m['Whh'].T, dhraw)
    for k in d:
        np.clip(d[k], -5, 5, out=d[k])
    return loss, d, hs[len(inputs) - 1]


def train_chunks(m, mem, data, seq_length=25, n_chunks=10, lr=0.1, hprev=None):
    """Run ``n_chunks`` Adagrad updates over consecutive chunks of ``data`` (ints)."""
    H = m['Whh'].shape[0]
    if hprev is None:
        hprev = np.zeros((H, 1))
    p = 0
    loss = 0.0
    for _ in range(n_chunks):
        if p + seq_length + 1 >= len(data):
            p = 0
            hprev = np.zeros((H, 1))
        inputs = data[p:p + seq_length]
        targets = data[p + 1:p + seq_length + 1]
        loss, d, hprev = loss_fun(m, inputs, targets, hprev)
        for k in m:
            mem[k] += d[k] * d[k]
            m[k] += -lr * d[k] / np.sqrt(mem[k] + 1e-8)
        p += seq_length
    return loss, hprev
