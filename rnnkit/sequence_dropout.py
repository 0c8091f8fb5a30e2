"""The time loops with recurrent dropout (Keras's ``recurrent_dropout``), beside the plain ones.

With a recurrent mask ``m`` (N, S), one per sequence and the same at every step (Gal &
Ghahramani's variational dropout), the state entering the recurrent product is dropped::

    hp = (h_{t-1} * m) @ W_hh^T           # the cell then uses hp as in sequence.py

while the cell's own use of ``h_{t-1}`` (GRU's ``z * h``) and the carried state are not. The
backward is :func:`rnnkit.sequence.unroll_backward`'s with the mask on the recurrent path::

    dh_{t-1} = (dG_rec[t] @ W_hh) * m + dh_direct          dW_hh = dG_rec^T (H_prev * m)

These loops are chosen once per call by :class:`rnnkit.nn.RNNBase` when ``recurrent_dropout``
is on in training; the plain loops of :mod:`rnnkit.sequence` (the default path) do no extra work.
Same cells, same :class:`~rnnkit.sequence.Prepared` weights, same ``mask`` (lengths) handling.
"""

from __future__ import annotations

import numpy as np

from ._threads import for_step_product
from .cells import Step
from .sequence import Prepared, UnrollCache, backward_setup, weight_gradients


def unroll_forward_rdrop(cell, x, h0, c0, w: Prepared, rmask, mask=None):
    """:func:`rnnkit.sequence.unroll_forward` (with a cache, no projection) where ``h_{t-1}``
    enters the recurrent product multiplied by ``rmask`` (N, H). Returns ``(Hs, h_T, c_T,
    cache)``."""
    T, N, D = x.shape
    GH, S = w.W_rows.shape
    H = GH // cell.spec.num_gates
    dtype = x.dtype
    Hs = np.empty((T + 1, N, S), dtype)
    Hs[0] = h0
    Cs = None
    if c0 is not None:
        Cs = np.empty((T + 1, N, H), dtype)
        Cs[0] = c0
    keep = np.empty((T, N, cell.keep_width(H)), dtype) if cell.keeps else None
    G = w.project(x.reshape(T * N, D)).reshape(T, N, GH)
    hp = np.empty((N, GH), dtype)
    hd = np.empty((N, S), dtype)
    s = Step()
    s.hp = hp
    with for_step_product(N * w.W_rows.size):
        for t in range(T):
            s.g, s.h_prev, s.h = G[t], Hs[t], Hs[t + 1]
            if Cs is not None:
                s.c_prev, s.c = Cs[t], Cs[t + 1]
            if keep is not None:
                s.keep = keep[t]
            np.multiply(Hs[t], rmask, out=hd)
            np.matmul(hd, w.W_hhT, out=hp)                                 # (N, G*H)
            cell.forward_step(s, w)
            if mask is not None:                   # frozen state after a sequence's end
                m = mask[t]
                for new, old in ((s.h, s.h_prev), (s.c, s.c_prev)):
                    if new is not None:
                        new -= old
                        new *= m
                        new += old
    cT = Cs[T] if Cs is not None else None
    return Hs, Hs[T], cT, UnrollCache(x, G, Hs, Cs, keep, mask, None, w.extra)


def unroll_backward_rdrop(cell, cache: UnrollCache, dout, dhT, dcT, W_ih, W_hh, rmask,
                          has_bias=True, need_dx=True):
    """Backpropagation through time for :func:`unroll_forward_rdrop`; arguments and result as
    :func:`rnnkit.sequence.unroll_backward` (``W_hh`` the weights the forward used), plus the
    same ``rmask``."""
    x, G, Hs, Cs, keep, mask = cache[:6]
    T, N, D = x.shape
    _, dh, dc, parts, ws = backward_setup(cell, cache, dhT, dcT, W_hh.shape[1])
    W_parts = [W_hh[rows] for _, rows in parts]
    s = Step()
    with for_step_product(N * W_hh.size):
        for t in range(T - 1, -1, -1):
            s.g, s.h_prev = G[t], Hs[t]
            if Cs is not None:
                s.c_prev = Cs[t]
            if keep is not None:
                s.keep = keep[t]
            dh_eff = dh + dout[t] if dout is not None else dh.copy()      # (N, S), consumed
            dc_eff = dc.copy() if dc is not None else None
            if mask is not None:
                m = mask[t]
                dh_eff *= m
                if dc_eff is not None:
                    dc_eff *= m
            dh_direct, dc_prev = cell.backward_step(s, dh_eff, dc_eff, ws)
            dh_new = parts[0][0][t] @ W_parts[0]
            for (P, _), W in zip(parts[1:], W_parts[1:]):
                dh_new += P[t] @ W
            dh_new *= rmask                                                # the dropped path
            if dh_direct is not None:
                dh_new += dh_direct
            if mask is not None:                   # padded steps pass the carry through
                dh_new += dh * (1 - m)
                if dc is not None:
                    dc_prev += dc * (1 - m)
            dh, dc = dh_new, dc_prev
    grads = weight_gradients(G, parts, x, Hs[:-1] * rmask, has_bias)
    cell.finish_gradients(grads, ws)
    dx = (G.reshape(T * N, -1) @ W_ih).reshape(T, N, D) if need_dx else None
    return dx, dh, dc, grads
