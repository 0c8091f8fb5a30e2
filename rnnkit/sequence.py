"""ONE generic unroll and backpropagation through time for any cell in :mod:`rnnkit.cells`.

Layout is time-major: ``x`` (T, N, D), states (N, H). One direction of one layer.

Forward::

    XP = x.reshape(T*N, D) @ W_ih^T + b_x            # all input projections, one product
    for t in 0..T-1:
        hp = h_{t-1} @ W_hh^T                         # (N, G*H) the only per-step product
        gates[t], h_t, c_t = cell.step(XP[t], hp)     # elementwise, in place

Backward (``dG`` overwrites the gate cache in place)::

    for t in T-1..0:
        dG[t], dh_direct, dc = cell.step_back(dh + dout[t], dc)
        dh = dG_rec[t] @ W_hh + dh_direct
    dW_ih = dG^T X ; dW_hh = dG_rec^T H_prev ; db = sum dG     # one product over all steps
    dx = dG @ W_ih

``mask`` (T, N, 1), 1 where a step is inside its sequence, implements ``lengths`` for
right-padded batches: padded steps keep the state unchanged and pass gradients straight
through, so each sequence's final state is the state at its own last step.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

# Steps per chunk of the input projection when no cache is kept (bounded-memory inference).
STREAM_CHUNK = 256


class UnrollCache(NamedTuple):
    """Everything backward needs for one direction of one layer (arrays for all steps)."""

    x: np.ndarray                    # (T, N, D) the input as this direction saw it
    G: np.ndarray                    # (T, N, G*H) activated gates (dG after backward)
    Hs: np.ndarray                   # (T+1, N, H) hidden states, Hs[0] = h0
    Cs: Optional[np.ndarray]         # (T+1, N, H) LSTM cell states, Cs[0] = c0
    aux: dict                        # cell-specific caches, e.g. tanh(c) (T, N, H)
    mask: Optional[np.ndarray]       # (T, N, 1) or None


def _steps(cell, G, Hs, Cs, aux, W_hhT, b_hh, mask, hp):
    """Run the time loop over one chunk; Hs/Cs have one more slab than G (the initial one)."""
    for t in range(G.shape[0]):
        h_prev = Hs[t]
        c_prev = Cs[t] if Cs is not None else None
        np.matmul(h_prev, W_hhT, out=hp)                                   # (N, G*H)
        cell.forward_step(G[t], hp, h_prev, c_prev, Hs[t + 1],
                          Cs[t + 1] if Cs is not None else None, aux, t, b_hh)
        if mask is not None:                       # frozen state after a sequence's end
            m = mask[t]                                                    # (N, 1)
            h = Hs[t + 1]
            h -= h_prev
            h *= m
            h += h_prev
            if Cs is not None:
                c = Cs[t + 1]
                c -= c_prev
                c *= m
                c += c_prev


def unroll_forward(cell, x, h0, c0, W_ih, W_hh, b_ih, b_hh, mask=None, keep_cache=True):
    """Run ``cell`` over ``x`` (T, N, D) from ``h0`` (N, H) (and ``c0`` for LSTM).

    Returns ``(Hs, h_T, c_T, cache)`` where ``Hs`` (T+1, N, H) holds h0 and every hidden state
    (``Hs[1:]`` is the output sequence), and ``cache`` is an :class:`UnrollCache` or None when
    ``keep_cache`` is False. Without a cache the input projection is computed in chunks of
    :data:`STREAM_CHUNK` steps, so memory beyond the output is bounded.
    """
    T, N, D = x.shape
    GH = W_ih.shape[0]
    H = W_hh.shape[1]
    dtype = x.dtype
    b_x = cell.input_bias(b_ih, b_hh)
    s = cell.gate_scale(H, dtype)                 # 0.5 on sigmoid rows: one tanh per step
    if s is not None:
        W_ih = W_ih * s[:, None]                                           # (G*H, D)
        W_hhT = np.multiply(W_hh.T, s, order="C")                          # (H, G*H)
        if b_x is not None:
            b_x = b_x * s
    else:
        W_hhT = np.ascontiguousarray(W_hh.T)                               # (H, G*H)
    hp = np.empty((N, GH), dtype)
    Hs = np.empty((T + 1, N, H), dtype)
    Hs[0] = h0
    chunk = T if keep_cache else min(T, STREAM_CHUNK)
    Cs = None
    if cell.has_cell_state:
        Cs = np.empty((chunk + 1, N, H) if not keep_cache else (T + 1, N, H), dtype)
        Cs[0] = c0
    aux = cell.new_aux(chunk, N, H, dtype)
    G = None
    W_ihT = W_ih.T                                                         # (D, G*H) view
    Gbuf = np.empty((chunk * N, GH), dtype)                                # (k*N, G*H)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        k = t1 - t0
        G = np.matmul(x[t0:t1].reshape(k * N, D), W_ihT, out=Gbuf[: k * N]).reshape(k, N, GH)
        if b_x is not None:
            G += b_x
        if keep_cache:
            _steps(cell, G, Hs, Cs, aux, W_hhT, b_hh, mask, hp)
        else:
            m = mask[t0:t1] if mask is not None else None
            C_chunk = Cs[: k + 1] if Cs is not None else None
            _steps(cell, G, Hs[t0: t1 + 1], C_chunk, aux, W_hhT, b_hh, m, hp)
            if Cs is not None:
                Cs[0] = Cs[k]
    if keep_cache:
        cT = Cs[T] if Cs is not None else None
        return Hs, Hs[T], cT, UnrollCache(x, G, Hs, Cs, aux, mask)
    cT = Cs[0].copy() if Cs is not None else None
    return Hs, Hs[T], cT, None


def unroll_backward(cell, cache: UnrollCache, dout, dhT, dcT, W_ih, W_hh, has_bias=True,
                    need_dx=True):
    """Backpropagation through time for :func:`unroll_forward`.

    ``dout`` (T, N, H) or None: gradient on the output sequence ``Hs[1:]``; ``dhT``/``dcT``
    (N, H) or None: gradients on the final states. Consumes the cache (the gate array becomes
    the pre-activation gradient). Returns ``(dx, dh0, dc0, grads)`` with
    ``grads = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}`` for this direction.
    """
    x, G, Hs, Cs, aux, mask = cache
    T, N, D = x.shape
    H = W_hh.shape[1]
    dtype = x.dtype
    dh = np.zeros((N, H), dtype) if dhT is None else np.array(dhT, dtype=dtype, copy=True)
    dc = None
    if cell.has_cell_state:
        dc = np.zeros((N, H), dtype) if dcT is None else np.array(dcT, dtype=dtype, copy=True)
    parts = cell.recurrent_parts(G, aux, H)
    W_parts = [W_hh[rows] for _, rows in parts]
    ws = cell.new_workspace(N, H, dtype)
    dh_part = np.empty((N, H), dtype) if len(parts) > 1 else None
    for t in range(T - 1, -1, -1):
        if mask is None:
            # fast path: dh and dc are our own buffers, consumed in place by the cell
            if dout is not None:
                dh += dout[t]                                              # (N, H)
            dh_direct, dc = cell.backward_step(dh, dc, G[t], Hs[t],
                                               Cs[t] if Cs is not None else None,
                                               Cs[t + 1] if Cs is not None else None, aux, t, ws)
            np.matmul(parts[0][0][t], W_parts[0], out=dh)                  # (N, H)
            for (P, _), W in zip(parts[1:], W_parts[1:]):
                dh += np.matmul(P[t], W, out=dh_part)
            if dh_direct is not None:
                dh += dh_direct
            continue
        dh_carry = dh
        dh_tot = dh if dout is None else dh + dout[t]                    # (N, H)
        m = mask[t]
        dh_eff = dh_tot * m
        dc_eff = dc * m if dc is not None else None
        dh_direct, dc_prev = cell.backward_step(dh_eff, dc_eff, G[t], Hs[t],
                                                Cs[t] if Cs is not None else None,
                                                Cs[t + 1] if Cs is not None else None, aux, t, ws)
        dh = parts[0][0][t] @ W_parts[0]                                  # (N, H)
        for (P, _), W in zip(parts[1:], W_parts[1:]):
            dh += P[t] @ W
        if dh_direct is not None:
            dh += dh_direct
        # padded steps (output fixed at 0) pass the carry through
        keep = 1 - m
        dh += dh_carry * keep
        if dc is not None:
            dc_prev += dc * keep
        dc = dc_prev
    GH = G.shape[2]
    G2 = G.reshape(T * N, GH)
    Hprev = Hs[:-1].reshape(T * N, H)
    grads = {"weight_ih": G2.T @ x.reshape(T * N, D)}
    grads["weight_hh"] = np.concatenate(
        [P.reshape(T * N, -1).T @ Hprev for P, _ in parts], axis=0) if len(parts) > 1 else G2.T @ Hprev
    if has_bias:
        grads["bias_ih"] = G2.sum(axis=0)
        if len(parts) == 1:       # RNN / LSTM: both biases enter the same pre-activation
            grads["bias_hh"] = grads["bias_ih"].copy()
        else:
            grads["bias_hh"] = np.concatenate([P.reshape(T * N, -1).sum(axis=0) for P, _ in parts])
    dx = (G2 @ W_ih).reshape(T, N, D) if need_dx else None
    return dx, dh, dc, grads
