"""ONE unroll, ONE backpropagation through time and ONE inference step for every cell.

Layout is time-major: ``x`` (T, N, D), states (N, H). One direction of one layer. The weights
are first :func:`prepare`-d for the time loop (sigmoid rows prescaled, the biases folded,
``W_hh`` transposed); the same :class:`Prepared` weights drive the whole-sequence unroll and
the single inference step, so both compute exactly the same thing.

Forward (:func:`unroll_forward`)::

    XP = x.reshape(T*N, D) @ W_ih^T + b_x            # all input projections, one product
    for t in 0..T-1:
        hp = h_{t-1} @ W_hh^T                         # (N, G*H) the only per-step product
        cell.forward_step(step t)                     # gates[t], h_t, c_t - elementwise, in place

Backward (:func:`unroll_backward`; ``dG`` overwrites the gate cache in place)::

    for t in T-1..0:
        dh_direct, dc = cell.backward_step(step t, dh + dout[t], dc)    # gates[t] -> dG[t]
        dh = dG_rec[t] @ W_hh + dh_direct
    dW_ih = dG^T X ; dW_hh = dG_rec^T H_prev ; db = sum dG     # one product over all steps
    dx = dG @ W_ih

One step (:func:`step_forward`), for generation: the same two products and the same
``cell.forward_step`` for T = 1, with no cache and no allocation beyond a :class:`StepBuffers`.

``mask`` (T, N, 1), 1 where a step is inside its sequence, implements ``lengths`` for
right-padded batches: padded steps keep the state unchanged and pass gradients straight
through, so each sequence's final state is the state at its own last step.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import numpy as np

from . import _jit
from ._threads import for_step_product, one_blas_thread
from .cells import CELLS, Cell, Step

# The compiled N=1 loop is loaded (numba: about a second, once per process) when this process
# has run this many N=1 float32 inference layer-steps (one layer over one step), this call's
# included, so short inputs never pay for it; once loaded it serves every such call, short
# pieces of a longer run included.
JIT_MIN_STEPS = 1024
_n1_steps = 0


def _compiled_n1(cell, T: int):
    """The compiled N=1 loop of ``cell`` for a call of ``T`` steps (loaded on first need, see
    :data:`JIT_MIN_STEPS`), or None: the cell has none, numba is missing or switched off, or
    the process has not run enough steps yet to pay for loading it."""
    global _n1_steps
    if not cell.jit_n1:
        return None
    _n1_steps += T
    return _jit.kernel(cell.jit_n1, load=_n1_steps >= JIT_MIN_STEPS)


_fused_steps = 0
_fused_mode: bool | None = None          # None: by JIT_MIN_STEPS; True: load at once

@contextlib.contextmanager
def training_run():
    """Within a training run every step uses the fused kernels (loaded at the first step that
    can use them, ~1.5 s of CPU once a process), not only those after ``JIT_MIN_STEPS``:
    one path for all steps, so a run resumed at any step computes exactly what the straight run
    did."""
    global _fused_mode
    before = _fused_mode
    _fused_mode = True
    try:
        yield
    finally:
        _fused_mode = before


#: The steps each fused kernel pair replaces: the registry's cell classes that name a
#: ``jit_step``, with their methods as defined (a class whose steps were replaced since, e.g. by
#: a test breaking one on purpose, runs them, not the kernels).
_FUSED_FOR = {cls: (cls.forward_step, cls.backward_step)
              for cls in {spec.cell_class for spec in CELLS.values()} if cls.__dict__.get("jit_step")}


def _fused(cell, dtype, T: int):
    """The fused step kernels (:class:`rnnkit._jit.StepKernels`) of ``cell`` in ``dtype`` for a
    call of ``T`` steps, or None: NumPy's step. Loaded like the N=1 loop, once the process has
    run :data:`JIT_MIN_STEPS` layer-steps that could use them (within :func:`training_run`: at
    once). Only a class that names its own ``jit_step`` gets
    them (a subclass with other gate math keeps its own NumPy step)."""
    global _fused_steps
    cls = type(cell)
    name = cls.__dict__.get("jit_step")
    if not name or _FUSED_FOR.get(cls) != (cls.forward_step, cls.backward_step):
        return None
    _fused_steps += T
    kernels = _jit.kernel(name, load=_fused_mode or _fused_steps >= JIT_MIN_STEPS)
    return kernels.get(np.dtype(dtype)) if kernels is not None else None

#: The mask argument of a fused kernel called without a mask (never read).
_NO_MASK = {np.dtype(d): np.ones(1, d) for d in (np.float32, np.float64)}

#: Without a cache, the input projection is computed for chunks of steps (bounded-memory
#: inference): at least this many steps, more while the chunk's gates hold at most
#: ``STREAM_GATES`` numbers (a few MB).
STREAM_CHUNK = 256
STREAM_GATES = 2 ** 20


class Prepared:
    """One direction's weights laid out for the time loop (see :func:`prepare`).

    ``W_ihT`` (D, G*H) input weights, transposed; ``W_rows`` (G*H, S) the recurrent weights,
    one gate row each (S = H, or P with a projection); ``W_hhT`` (S, G*H) the same transposed
    (C order, made on first use); all with the gate rows scaled. ``b_x`` (G*H,) the bias folded
    into the input projection, scaled; ``b_hh`` (G*H,) the raw recurrent bias (GRU keeps b_hn
    apart); ``const`` the cell's size-only constants (LSTM's gate affine). ``W_hrT`` (H, P)
    the transposed projection of an LSTM with ``proj_size`` (``h_t = m_t W_hr^T``), else None.
    ``extra``: the weights of a cell with parameters beyond PyTorch's four (the layer-normalised
    cells' gains, :meth:`rnnkit.cells.Cell.prepared_extra`), else None.
    """

    __slots__ = ("W_ihT", "W_rows", "b_x", "b_hh", "const", "_W_hhT", "W_hrT", "extra")

    def __init__(self, W_ihT, W_rows, b_x, b_hh, const, W_hrT=None, extra=None):
        self.W_ihT, self.W_rows, self.b_x, self.b_hh, self.const = W_ihT, W_rows, b_x, b_hh, const
        self._W_hhT = None
        self.W_hrT = W_hrT
        self.extra = extra

    @property
    def W_hhT(self) -> np.ndarray:
        if self._W_hhT is None:
            self._W_hhT = np.ascontiguousarray(self.W_rows.T)
        return self._W_hhT

    def project(self, x, out=None) -> np.ndarray:
        """The input projection ``x W_ih^T + b_x`` (M, G*H) of inputs ``x`` (M, D), into
        ``out`` when given."""
        xp = np.matmul(x, self.W_ihT, out=out)
        if self.b_x is not None:
            xp += self.b_x
        return xp


def prepare(cell: Cell, W_ih, W_hh, b_ih=None, b_hh=None, W_hr=None, extra=None) -> Prepared:
    """Weights of one direction for :func:`unroll_forward` / :func:`step_forward`.

    The gate rows are multiplied by ``cell.gate_scale`` (0.5 on sigmoid rows, so a single
    ``tanh`` activates every gate) and the biases folded by ``cell.input_bias``. ``W_hr``
    (P, H) is an LSTM's projection (``proj_size``); ``extra`` the cell's extra parameters
    (name -> array). The result is a snapshot: prepare again after the weights change.
    """
    H = W_hh.shape[0] // cell.spec.num_gates                               # the cell's width
    dtype = W_hh.dtype
    b_x = cell.input_bias(b_ih, b_hh)
    s = cell.gate_scale(H, dtype)
    if s is None:
        W_ihT, W_rows = W_ih.T, W_hh                                       # views
    else:
        W_ihT = np.multiply(W_ih.T, s)                                     # (D, G*H)
        W_rows = W_hh * s[:, None]                                         # (G*H, H)
        if b_x is not None:
            b_x = b_x * s
    W_hrT = np.ascontiguousarray(W_hr.T) if W_hr is not None else None
    return Prepared(W_ihT, np.ascontiguousarray(W_rows), b_x, b_hh, cell.constants(H, dtype), W_hrT,
                    None if extra is None else cell.prepared_extra(extra, b_ih, b_hh))


class UnrollCache(NamedTuple):
    """Everything backward needs for one direction of one layer (arrays for all steps)."""

    x: np.ndarray                    # (T, N, D) the input as this direction saw it
    G: np.ndarray                    # (T, N, G*H) activated gates (dG after backward)
    Hs: np.ndarray                   # (T+1, N, S) hidden states, Hs[0] = h0 (S = H, or P)
    Cs: np.ndarray | None         # (T+1, N, H) LSTM cell states, Cs[0] = c0
    keep: np.ndarray | None       # (T, N, H) the cell's own per-step cache, or None
    mask: np.ndarray | None       # (T, N, 1) or None
    M: np.ndarray | None = None   # (T, N, H) o * tanh(c) before the projection (proj_size)
    extra: dict | None = None     # the Prepared.extra weights the forward used


def _loop(cell, w, G, Hs, Cs, keep, mask, hp, fused=None):
    """Run the time loop over one chunk; Hs/Cs have one more slab than G (the initial one).
    ``fused``: the cell's fused forward kernel (gate math and mask in one compiled pass)."""
    if fused is not None:
        W_hhT = w.W_hhT
        no_mask = _NO_MASK[G.dtype]
        if Cs is None:                             # GRU: keep = W_hn h + b_hn
            H = Hs.shape[2]
            b_hn = w.b_hh[2 * H:] if w.b_hh is not None else no_mask
            for t in range(G.shape[0]):
                np.matmul(Hs[t], W_hhT, out=hp)                            # (N, 3H)
                fused(G[t], hp, b_hn, w.b_hh is not None, Hs[t], Hs[t + 1], keep[t],
                      mask[t, :, 0] if mask is not None else no_mask, mask is not None)
            return
        a, b = w.const["a"], w.const["b"]
        for t in range(G.shape[0]):
            np.matmul(Hs[t], W_hhT, out=hp)                                # (N, G*H)
            fused(G[t], hp, a, b, Hs[t], Cs[t], Hs[t + 1], Cs[t + 1], keep[t],
                  mask[t, :, 0] if mask is not None else no_mask, mask is not None)
        return
    s = Step()
    s.hp = hp
    for t in range(G.shape[0]):
        s.g, s.h_prev, s.h = G[t], Hs[t], Hs[t + 1]
        if Cs is not None:
            s.c_prev, s.c = Cs[t], Cs[t + 1]
        if keep is not None:
            s.keep = keep[t]
        np.matmul(s.h_prev, w.W_hhT, out=hp)                               # (N, G*H)
        cell.forward_step(s, w)
        if mask is not None:                       # frozen state after a sequence's end
            m = mask[t]                                                    # (N, 1)
            for new, old in ((s.h, s.h_prev), (s.c, s.c_prev)):
                if new is not None:
                    new -= old
                    new *= m
                    new += old


def _loop_proj(cell, w, G, Hs, Cs, keep, mask, hp, M, fused=None):
    """:func:`_loop` for an LSTM with a projection: the cell writes ``m_t`` (N, H) into ``M``
    and the state is ``h_t = m_t W_hr^T`` (N, P)."""
    s = Step()
    s.hp = hp
    W_hrT = w.W_hrT
    no_mask = _NO_MASK[G.dtype]
    for t in range(G.shape[0]):
        s.g, s.h_prev, s.h, s.c_prev, s.c, s.keep = G[t], Hs[t], M[t], Cs[t], Cs[t + 1], keep[t]
        np.matmul(s.h_prev, w.W_hhT, out=hp)                               # (N, G*H)
        if fused is not None:                      # the mask applies to h below, not to m
            fused(s.g, hp, w.const["a"], w.const["b"], M[t], s.c_prev, M[t], s.c, s.keep,
                  no_mask, False)
        else:
            cell.forward_step(s, w)
        np.matmul(M[t], W_hrT, out=Hs[t + 1])                              # (N, P)
        if mask is not None:                       # frozen state after a sequence's end
            m = mask[t]
            for new, old in ((Hs[t + 1], Hs[t]), (s.c, s.c_prev)):
                new -= old
                new *= m
                new += old


def unroll_forward(cell, x, h0, c0, w: Prepared, mask=None, keep_cache=True):
    """Run ``cell`` over ``x`` (T, N, D) from ``h0`` (N, H) (and ``c0`` for LSTM).

    Returns ``(Hs, h_T, c_T, cache)`` where ``Hs`` (T+1, N, H) holds h0 and every hidden state
    (``Hs[1:]`` is the output sequence), and ``cache`` is an :class:`UnrollCache` or None when
    ``keep_cache`` is False. Without a cache the input projection is computed in chunks of
    :data:`STREAM_CHUNK` steps, so memory beyond the output is bounded. The time loop runs on
    one BLAS thread when its per-step product is small (``rnnkit._threads``); the products
    over all steps keep the caller's threads.
    """
    T, N, D = x.shape
    GH, S = w.W_rows.shape                           # S: the state's width (H, or P)
    H = GH // cell.spec.num_gates                    # the cell's width
    dtype = x.dtype
    if mask is not None and mask.dtype != dtype:
        mask = mask.astype(dtype)
    hp = np.empty((N, GH), dtype)
    Hs = np.empty((T + 1, N, S), dtype)
    Hs[0] = h0
    chunk = T if keep_cache else min(T, max(STREAM_CHUNK, STREAM_GATES // (N * GH)))
    Cs = None
    if c0 is not None:
        Cs = np.empty(((T if keep_cache else chunk) + 1, N, H), dtype)
        Cs[0] = c0
    keep = np.empty((chunk, N, cell.keep_width(H)), dtype) if cell.keeps else None
    M = np.empty((chunk, N, H), dtype) if w.W_hrT is not None else None
    G = None
    Gbuf = np.empty((chunk * N, GH), dtype)                                # (k*N, G*H)
    compiled = fused = None
    if not keep_cache and mask is None and N == 1 and dtype == np.float32 and M is None:
        compiled = _compiled_n1(cell, T)             # None: the NumPy loop below
    if compiled is None:
        kernels = _fused(cell, dtype, T)
        fused = kernels.forward if kernels is not None else None
        if (keep_cache and N == 1 and mask is None and M is None and kernels is not None
                and kernels.n1_forward is not None):   # N = 1 training: one compiled call
            G = w.project(x.reshape(T, D), out=Gbuf).reshape(T, 1, GH)
            kernels.n1_forward(G, w.W_rows, w.const["a"], w.const["b"], Hs, Cs, keep)
            return Hs, Hs[T], Cs[T], UnrollCache(x, G, Hs, Cs, keep, mask, M, w.extra)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        k = t1 - t0
        G = w.project(x[t0:t1].reshape(k * N, D), out=Gbuf[: k * N]).reshape(k, N, GH)
        if compiled is not None:                     # the whole chunk in one compiled call
            compiled(G[:, 0], w.W_rows, Hs[t0, 0], Cs[0, 0], Hs[t0 + 1: t1 + 1, 0])
            continue
        with for_step_product(N * w.W_rows.size):
            if M is not None:                        # an LSTM with a projection
                m = mask if keep_cache or mask is None else mask[t0:t1]
                _loop_proj(cell, w, G, Hs if keep_cache else Hs[t0: t1 + 1], Cs if keep_cache
                           else Cs[: k + 1], keep, m, hp, M, fused)
            elif keep_cache:
                _loop(cell, w, G, Hs, Cs, keep, mask, hp, fused)
            else:
                m = mask[t0:t1] if mask is not None else None
                _loop(cell, w, G, Hs[t0: t1 + 1], Cs[: k + 1] if Cs is not None else None,
                      keep, m, hp, fused)
        if Cs is not None and not keep_cache:
            Cs[0] = Cs[k]
    if keep_cache:
        cT = Cs[T] if Cs is not None else None
        return Hs, Hs[T], cT, UnrollCache(x, G, Hs, Cs, keep, mask, M, w.extra)
    cT = Cs[0].copy() if Cs is not None else None
    return Hs, Hs[T], cT, None


class StepBuffers(NamedTuple):
    """Scratch of :func:`step_forward` for one batch size (reused every step)."""

    g: np.ndarray                    # (N, G*H)
    hp: np.ndarray                   # (N, G*H)
    keep: np.ndarray | None       # (N, H)
    step: Step


def step_buffers(cell, N: int, H: int, GH: int, dtype) -> StepBuffers:
    """Fresh :class:`StepBuffers` for stepping ``cell`` one step at a time: gate and
    recurrent-projection rows (N, GH), the cell's own per-step buffer (N, H) when it keeps
    one, and a :class:`Step` of views."""
    return StepBuffers(np.empty((N, GH), dtype), np.empty((N, GH), dtype),
                       np.empty((N, cell.keep_width(H)), dtype) if cell.keeps else None, Step())


def step_forward(cell, w: Prepared, buf: StepBuffers, h_prev, c_prev, h, c):
    """One time step: ``h`` (and ``c``) <- the cell applied to ``buf.g`` and ``h_prev``.

    ``buf.g`` (N, G*H) must hold the input projection ``x_t W_ih^T + b_x`` of
    :class:`Prepared` weights (the caller writes it there: a product, or rows of a precomputed
    table). It is overwritten with the activated gates (valid until the next call), which are
    returned.
    """
    s = buf.step
    g = buf.g
    np.matmul(h_prev, w.W_hhT, out=buf.hp)                                 # (N, G*H)
    s.g, s.hp, s.h_prev, s.c_prev, s.h, s.c, s.keep = g, buf.hp, h_prev, c_prev, h, c, buf.keep
    cell.forward_step(s, w)
    return g


def _backward_loop(cell, G, Hs, Cs, keep, mask, dout, dh, dc, parts, W_parts, ws, dh_part,
                   fused=None):
    """The time loop of :func:`unroll_backward`: returns the gradients on h0 and c0.
    ``fused``: the cell's fused backward kernel (``dout``, gate math and mask in one pass)."""
    T = G.shape[0]
    if fused is not None and Cs is None:           # GRU: two recurrent parts, dh z direct
        no_mask = _NO_MASK[G.dtype]
        no_dout = no_mask[:, None]
        (G_rz, _), (Keep, _) = parts
        W_rz, W_n = W_parts
        dh_direct = ws["dh_direct"]
        for t in range(T - 1, -1, -1):
            fused(G[t], keep[t], Hs[t], dh, dout[t] if dout is not None else no_dout,
                  dout is not None, mask[t, :, 0] if mask is not None else no_mask,
                  mask is not None, dh_direct)
            np.matmul(G_rz[t], W_rz, out=dh)                               # (N, H)
            dh += np.matmul(Keep[t], W_n, out=dh_part)
            dh += dh_direct                        # dh z, or the carry of padded rows
        return dh, None
    if fused is not None:
        W = W_parts[0]
        no_mask = _NO_MASK[G.dtype]
        no_dout = no_mask[:, None]
        for t in range(T - 1, -1, -1):
            if mask is None:
                fused(G[t], keep[t], Cs[t], dh, dout[t] if dout is not None else no_dout,
                      dout is not None, no_mask, False, dc)
                np.matmul(G[t], W, out=dh)                                 # (N, H)
            else:                                  # dh keeps the carry of padded rows
                fused(G[t], keep[t], Cs[t], dh, dout[t] if dout is not None else no_dout,
                      dout is not None, mask[t, :, 0], True, dc)
                dh += np.matmul(G[t], W, out=dh_part)
        return dh, dc
    s = Step()
    for t in range(T - 1, -1, -1):
        s.g, s.h_prev = G[t], Hs[t]
        if Cs is not None:
            s.c_prev = Cs[t]
        if keep is not None:
            s.keep = keep[t]
        if mask is None:
            # fast path: dh and dc are our own buffers, consumed in place by the cell
            if dout is not None:
                dh += dout[t]                                              # (N, H)
            dh_direct, dc = cell.backward_step(s, dh, dc, ws)
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
        dh_direct, dc_prev = cell.backward_step(s, dh_eff, dc_eff, ws)
        dh = parts[0][0][t] @ W_parts[0]                                  # (N, H)
        for (P, _), W in zip(parts[1:], W_parts[1:]):
            dh += P[t] @ W
        if dh_direct is not None:
            dh += dh_direct
        # padded steps (output fixed at 0) pass the carry through
        keep_m = 1 - m
        dh += dh_carry * keep_m
        if dc is not None:
            dc_prev += dc * keep_m
        dc = dc_prev
    return dh, dc


def _backward_loop_proj(cell, G, Hs, Cs, keep, mask, dout, dh, dc, W_hh, W_hr, ws, M, DH,
                        fused=None):
    """:func:`_backward_loop` for an LSTM with a projection: the gradient on ``h_t`` (N, P)
    is kept in ``DH`` (for ``W_hr``'s gradient) and reaches the cell as ``dm = dh W_hr``."""
    s = Step()
    no_mask = _NO_MASK[G.dtype]

    def step(dm, dc_in):                           # the cell's backward step, fused or not
        if fused is None:
            return cell.backward_step(s, dm, dc_in, ws)[1]
        fused(s.g, s.keep, s.c_prev, dm, no_mask[:, None], False, no_mask, False, dc_in)
        return dc_in

    for t in range(G.shape[0] - 1, -1, -1):
        s.g, s.h_prev, s.c_prev, s.keep = G[t], Hs[t], Cs[t], keep[t]
        dh_tot = dh if dout is None else dh + dout[t]                      # (N, P)
        if mask is not None:
            m = mask[t]
            DH[t] = dh_tot * m
            dc_prev = step(DH[t] @ W_hr, dc * m)
            dh_new = G[t] @ W_hh                                           # (N, P)
            dh_new += dh * (1 - m)                 # padded steps pass the carry through
            dc_prev += dc * (1 - m)
        else:
            DH[t] = dh_tot
            dc_prev = step(DH[t] @ W_hr, dc)
            dh_new = G[t] @ W_hh
        dh, dc = dh_new, dc_prev
    return dh, dc


#: Steps per piece of the layer pipeline (:func:`pipeline_forward`).
PIPELINE_CHUNK = 128


def pipeline_applies(cell, x, num_layers: int) -> bool:
    """True when :func:`pipeline_forward` can run a stack over ``x`` (T, N, D): several layers,
    N = 1 in float32 with the compiled loop available (it releases the GIL), and more than one
    CPU to run on."""
    return (num_layers > 1 and x.shape[1] == 1 and x.dtype == np.float32 and bool(cell.jit_n1)
            and x.shape[0] >= 2 * PIPELINE_CHUNK and (os.cpu_count() or 1) > 1
            and _jit.kernel(cell.jit_n1, load=_n1_steps + num_layers * x.shape[0] >= JIT_MIN_STEPS)
            is not None)


def pipeline_forward(cell, x, h0s, c0s, weights):
    """A unidirectional stack without cache, mask or dropout, its layers run in a pipeline:
    layer ``l`` reads pieces of :data:`PIPELINE_CHUNK` steps of layer ``l-1``'s output as soon as
    they are done, each layer in its own thread (the compiled loop and the products release the
    GIL), so two layers use two cores. The numbers are those of running the layers one after
    the other. ``h0s``/``c0s`` (L, N, H) (``c0s`` None without a cell state); returns
    ``(out (T, N, H), h_n, c_n)``."""
    import threading
    T = x.shape[0]
    L = len(weights)
    pieces = [(t0, min(T, t0 + PIPELINE_CHUNK)) for t0 in range(0, T, PIPELINE_CHUNK)]
    outs = [np.empty((T,) + h0s.shape[1:], x.dtype) for _ in range(L)]
    h_n, c_n = np.empty_like(h0s), (np.empty_like(c0s) if c0s is not None else None)
    ready = [[threading.Event() for _ in pieces] for _ in range(L)]
    failed = []

    def run(layer):
        try:
            h, c = h0s[layer], (c0s[layer] if c0s is not None else None)
            inp = x if layer == 0 else outs[layer - 1]
            for k, (t0, t1) in enumerate(pieces):
                if layer:
                    ready[layer - 1][k].wait()
                    if failed:
                        return
                Hs, h, c, _ = unroll_forward(cell, inp[t0:t1], h, c, weights[layer],
                                             keep_cache=False)
                outs[layer][t0:t1] = Hs[1:]
                ready[layer][k].set()
            h_n[layer] = h
            if c_n is not None:
                c_n[layer] = c
        except BaseException as e:               # stop the layers above, report in the caller
            failed.append(e)
            for events in ready[layer:]:
                for ev in events:
                    ev.set()

    with one_blas_thread():                      # the layers' threads are the parallelism
        threads = [threading.Thread(target=run, args=(layer,), daemon=True) for layer in range(1, L)]
        for th in threads:
            th.start()
        run(0)
        for th in threads:
            th.join()
    if failed:
        raise failed[0]
    return outs[-1], h_n, c_n


def unroll_backward(cell, cache: UnrollCache, dout, dhT, dcT, W_ih, W_hh, has_bias=True,
                    need_dx=True, W_hr=None):
    """Backpropagation through time for :func:`unroll_forward`.

    ``dout`` (T, N, S) or None: gradient on the output sequence ``Hs[1:]``; ``dhT`` (N, S) /
    ``dcT`` (N, H) or None: gradients on the final states. ``W_ih``/``W_hh`` (and an LSTM's
    projection ``W_hr`` (P, H), with S = P) are the layer's own (unscaled) weights. Consumes
    the cache (the gate array becomes the pre-activation gradient). Returns
    ``(dx, dh0, dc0, grads)`` with ``grads = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}``
    (and ``"weight_hr"``) for this direction.
    """
    x, G, Hs, Cs, keep, mask, M, _ = cache
    T, N, D = x.shape
    S = W_hh.shape[1]                                  # the state's width (H, or P)
    dtype = x.dtype
    H, dh, dc, parts, ws = backward_setup(cell, cache, dhT, dcT, S)
    kernels = _fused(cell, dtype, T)
    fused = kernels.backward if kernels is not None else None
    DH = None
    if M is not None:                                  # an LSTM with a projection
        DH = np.empty((T, N, S), dtype)
        with for_step_product(N * W_hh.size):
            dh, dc = _backward_loop_proj(cell, G, Hs, Cs, keep, mask, dout, dh, dc, W_hh, W_hr,
                                         ws, M, DH, fused)
    else:
        W_parts = [W_hh[rows] for _, rows in parts]
        dh_part = np.empty((N, H), dtype) if len(parts) > 1 or fused is not None else None
        if fused is not None and mask is not None and mask.dtype != dtype:
            mask = mask.astype(dtype)
        if (N == 1 and mask is None and kernels is not None and kernels.n1_backward is not None
                and len(parts) == 1):                  # N = 1 training: one compiled call
            W = np.ascontiguousarray(W_parts[0])
            d_out = dout if dout is not None else _NO_MASK[dtype][:, None, None]
            kernels.n1_backward(G, keep, Cs, d_out, dout is not None, W, dh, dc)
        else:
            with for_step_product(N * W_hh.size):
                dh, dc = _backward_loop(cell, G, Hs, Cs, keep, mask, dout, dh, dc, parts, W_parts,
                                        ws, dh_part, fused)
    grads = weight_gradients(G, parts, x, Hs[:-1], has_bias)
    cell.finish_gradients(grads, ws)
    if DH is not None:
        grads["weight_hr"] = DH.reshape(T * N, S).T @ M.reshape(T * N, H)            # (P, H)
    dx = (G.reshape(T * N, -1) @ W_ih).reshape(T, N, D) if need_dx else None
    return dx, dh, dc, grads


def backward_setup(cell, cache: UnrollCache, dhT, dcT, S: int):
    """What a backward time loop starts from: ``(H, dh, dc, parts, workspace)``, the
    gradients on the final states as fresh arrays (zeros for None; dc None without a cell
    state) and the cell's recurrent parts of the cache's gates."""
    x, G, _, Cs, keep = cache[:5]
    N, dtype = x.shape[1], x.dtype
    H = G.shape[2] // cell.spec.num_gates
    dh = np.zeros((N, S), dtype) if dhT is None else np.array(dhT, dtype=dtype, copy=True)
    dc = None
    if Cs is not None:
        dc = np.zeros((N, H), dtype) if dcT is None else np.array(dcT, dtype=dtype, copy=True)
    ws = cell.new_workspace(N, H, dtype)
    if cache.extra is not None:
        ws["w"] = cache.extra                        # the extra weights, for the cell's step
    return H, dh, dc, cell.recurrent_parts(G, keep, H), ws


def weight_gradients(G, parts, x, Hprev, has_bias=True) -> dict:
    """A direction's weight gradients from the pre-activation gradients ``G`` (T, N, G*H) and
    the cell's ``parts`` (:meth:`rnnkit.cells.Cell.recurrent_parts`), the inputs ``x``
    (T, N, D) and the states ``Hprev`` (T, N, S) that entered the recurrent product: one
    product over all steps each."""
    T, N, D = x.shape
    G2 = G.reshape(T * N, G.shape[2])
    Hprev = Hprev.reshape(T * N, -1)
    grads = {"weight_ih": G2.T @ x.reshape(T * N, D)}
    grads["weight_hh"] = (parts[0][0].reshape(T * N, -1).T @ Hprev if len(parts) == 1 else
                          np.concatenate([P.reshape(T * N, -1).T @ Hprev for P, _ in parts], axis=0))
    if has_bias:
        grads["bias_ih"] = G2.sum(axis=0)
        if len(parts) == 1:       # RNN / LSTM: both biases enter the same pre-activation
            grads["bias_hh"] = grads["bias_ih"].copy()
        else:
            grads["bias_hh"] = np.concatenate([P.reshape(T * N, -1).sum(axis=0) for P, _ in parts])
    return grads
