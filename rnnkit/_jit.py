"""Optional compiled kernels (numba), for the loops where NumPy's per-call overhead dominates.

At batch size 1 a time step of an LSTM is a few hundred multiply-adds and a handful of
elementwise passes over vectors of 4H numbers; NumPy spends more time entering its ~10 calls
per step than computing them. When ``numba`` is installed (``pip install 'rnnkit[fast]'``)
the whole time loop of one LSTM direction at N = 1 runs as one compiled call instead: the
same :class:`~rnnkit.sequence.Prepared` weights (sigmoid rows prescaled by 0.5, so every gate
is ``a * tanh(z) + b``), the recurrent product as one dot product per gate row, and ``tanh``
as a vectorisable rational approximation (Eigen's float32 one on [-7.9053, 7.9053], then a
line to exactly +-1 at |x| = 9, so saturated gates are exactly 1 as in float32 tanh: maximum
absolute error 2.6e-7 against float64 tanh, within float32 round-off of the NumPy path).

Used by :func:`rnnkit.sequence.unroll_forward` for float32, N = 1, no ``lengths``, no
backward cache (inference: ``rnnkit eval``, ``no_grad`` forward passes). Everything else -
float64, batches, training - runs the NumPy code, which is also the fallback when numba is
missing or ``RNNKIT_NO_JIT=1`` is set. The two agree to float32 round-off (tested). Compiled
code is cached on disk by numba after the first call (a few seconds once).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

_KERNELS: dict = {}


def enabled() -> bool:
    """True when numba is importable and ``RNNKIT_NO_JIT`` is not set to 1."""
    return os.environ.get("RNNKIT_NO_JIT") != "1" and importlib.util.find_spec("numba") is not None


def kernel(name, load: bool = True):
    """The compiled kernel ``name`` (e.g. ``"lstm_n1"``), or None when numba is unavailable or
    disabled. It is built (or read from numba's disk cache) on the first call with ``load``
    true; before that, a call with ``load`` false returns None."""
    if name not in _KERNELS:
        if not load:
            return None
        _KERNELS[name] = _BUILDERS[name]() if enabled() else None
    return _KERNELS[name]


def _build_lstm_n1():
    from numba import njit

    f32 = np.float32
    # Eigen's generic_fast_tanh_float: tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9053, 7.9053]
    clamp = f32(7.90531110763549805)
    a1, a3, a5 = f32(4.89352455891786e-03), f32(6.37261928875436e-04), f32(1.48572235717979e-05)
    a7, a9 = f32(5.12229709037114e-08), f32(-8.60467152213735e-11)
    a11, a13 = f32(2.00018790482477e-13), f32(-2.76076847742355e-16)
    b0, b2 = f32(4.89352518554385e-03), f32(2.26843463243900e-03)
    b4, b6 = f32(1.18534705686654e-04), f32(1.19825839466702e-06)
    half, one = f32(0.5), f32(1.0)
    tail = f32((1.0 - 0.99999972948) / (9.0 - 7.90531110763549805))
    opts = dict(fastmath=True, error_model="numpy")

    @njit(inline="always", **opts)
    def tanh32(x):
        y = min(max(x, -clamp), clamp)
        y2 = y * y
        p = y2 * (y2 * (y2 * (y2 * (y2 * (y2 * a13 + a11) + a9) + a7) + a5) + a3) + a1
        q = y2 * (y2 * (y2 * b6 + b4) + b2) + b0
        # Past the clamp the value climbs on a line to exactly +-1 at |x| = 9, where float32
        # tanh is 1: a saturated gate is 1, not 1 - 3e-7 (a forget gate held at 1 keeps c
        # over any number of steps instead of shrinking it by a few ulp per step).
        return min(max(y * p / q + (x - y) * tail, -one), one)

    # One explicit signature (contiguous float32 arrays), compiled once and cached on disk.
    @njit("void(float32[:, ::1], float32[:, ::1], float32[::1], float32[::1], float32[:, ::1])",
          cache=True, nogil=True, **opts)          # nogil: layers can run in parallel threads
    def lstm_n1_loop(XP, W_rows, h0, c, Y):
        """XP (T, 4H): prescaled input projections; W_rows (4H, H): the prescaled recurrent
        weights, one gate row each; h0 (H,); c (H,): c0 in, c_T out; Y (T, H): every h_t."""
        T, G = XP.shape
        H = G // 4
        z = np.empty(G, XP.dtype)
        h = h0
        for t in range(T):
            for j in range(G):                      # z = xp_t + W_hh h_{t-1}, row by row
                s = XP[t, j]
                w = W_rows[j]
                for k in range(H):
                    s += w[k] * h[k]
                z[j] = s
            y = Y[t]
            for j in range(H):                      # i, f, o: sigmoid; g: tanh
                i = half * tanh32(z[j]) + half
                f = half * tanh32(z[H + j]) + half
                g = tanh32(z[2 * H + j])
                o = half * tanh32(z[3 * H + j]) + half
                cj = f * c[j] + i * g
                c[j] = cj
                y[j] = o * tanh32(cj)
            h = y

    return lstm_n1_loop


_BUILDERS = {"lstm_n1": _build_lstm_n1}
