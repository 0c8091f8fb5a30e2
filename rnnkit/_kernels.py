"""The numba kernels themselves (internal; imported by :mod:`rnnkit._jit` only when numba is
there and a kernel is needed). Module-level functions, so numba's disk cache finds them again
in the next process (a kernel built inside a function, closing over another compiled function,
is compiled anew in every process). See :mod:`rnnkit._jit` for what each is for and how they
are kept equal to the NumPy steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .cells import cell_spec

_OPTS = dict(fastmath=True, error_model="numpy")
_f32 = np.float32

# Eigen's generic_fast_tanh_float: tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9053, 7.9053]
_CLAMP = _f32(7.90531110763549805)
_A1, _A3, _A5 = _f32(4.89352455891786e-03), _f32(6.37261928875436e-04), _f32(1.48572235717979e-05)
_A7, _A9 = _f32(5.12229709037114e-08), _f32(-8.60467152213735e-11)
_A11, _A13 = _f32(2.00018790482477e-13), _f32(-2.76076847742355e-16)
_B0, _B2 = _f32(4.89352518554385e-03), _f32(2.26843463243900e-03)
_B4, _B6 = _f32(1.18534705686654e-04), _f32(1.19825839466702e-06)
_ONE, _HALF = _f32(1.0), _f32(0.5)
_TAIL = _f32((1.0 - 0.99999972948) / (9.0 - 7.90531110763549805))


@njit(inline="always", **_OPTS)
def tanh32(x):
    """float32 tanh: the rational approximation on [-7.9053, 7.9053], then a line to exactly
    +-1 at |x| = 9 (a saturated gate is exactly 1, as in float32 tanh: a forget gate held at 1
    keeps c over any number of steps instead of shrinking it by a few ulp per step). Maximum
    absolute error 2.6e-7 against float64 tanh. Clamped with conditional expressions, which
    vectorise (``min``/``max`` do not)."""
    y = x if x < _CLAMP else _CLAMP
    y = y if y > -_CLAMP else -_CLAMP
    y2 = y * y
    p = y2 * (y2 * (y2 * (y2 * (y2 * (y2 * _A13 + _A11) + _A9) + _A7) + _A5) + _A3) + _A1
    q = y2 * (y2 * (y2 * _B6 + _B4) + _B2) + _B0
    r = y * p / q + (x - y) * _TAIL
    r = r if r < _ONE else _ONE
    return r if r > -_ONE else -_ONE


# One explicit signature (contiguous float32 arrays), compiled once and cached on disk.
@njit("void(float32[:, ::1], float32[:, ::1], float32[::1], float32[::1], float32[:, ::1])",
      cache=True, nogil=True, **_OPTS)             # nogil: layers can run in parallel threads
def lstm_n1_loop(XP, W_rows, h0, c, Y):
    """The N = 1 inference loop: XP (T, 4H) prescaled input projections; W_rows (4H, H) the
    prescaled recurrent weights, one gate row each; h0 (H,); c (H,): c0 in, c_T out; Y (T, H):
    every h_t."""
    T, G = XP.shape
    H = G // 4
    z = np.empty(G, XP.dtype)
    h = h0
    for t in range(T):
        for j in range(G):                          # z = xp_t + W_hh h_{t-1}, row by row
            s = XP[t, j]
            w = W_rows[j]
            for k in range(H):
                s += w[k] * h[k]
            z[j] = s
        y = Y[t]
        for j in range(H):                          # i, f, o: sigmoid; g: tanh
            i = _HALF * tanh32(z[j]) + _HALF
            f = _HALF * tanh32(z[H + j]) + _HALF
            g = tanh32(z[2 * H + j])
            o = _HALF * tanh32(z[3 * H + j]) + _HALF
            cj = f * c[j] + i * g
            c[j] = cj
            y[j] = o * tanh32(cj)
        h = y


# The gate blocks where the registry puts them; the kernels' derivatives assume these sigmoids.
_SPEC = cell_spec("lstm")
_BI, _BF, _BC, _BO = (_SPEC.gate_names.index(n) for n in ("input", "forget", "candidate", "output"))
if set(_SPEC.sigmoid_gates) != {_SPEC.gate_names[k] for k in (_BI, _BF, _BO)}:
    raise AssertionError("the fused LSTM kernels assume sigmoid input, forget and output gates")


def _lstm_forward(g, hp, a, b, h_prev, c_prev, h, c, tc, m, masked):
    N, GH = g.shape
    H = GH // 4
    i0, f0, c0, o0 = _BI * H, _BF * H, _BC * H, _BO * H
    for n in range(N):
        gn = g[n]
        hpn = hp[n]
        for j in range(GH):                         # every gate: a * tanh(xp + hp) + b
            gn[j] = a[j] * tanh32(gn[j] + hpn[j]) + b[j]
        if masked and m[n] == 0:                    # past the sequence's end: state frozen
            for j in range(H):
                h[n, j] = h_prev[n, j]
                c[n, j] = c_prev[n, j]
                tc[n, j] = 0
            continue
        cn, tcn, hn, cpn = c[n], tc[n], h[n], c_prev[n]
        for j in range(H):                          # c' = f c + i g ;  h' = o tanh(c')
            cj = gn[f0 + j] * cpn[j] + gn[i0 + j] * gn[c0 + j]
            cn[j] = cj
            t = tanh32(cj)
            tcn[j] = t
            hn[j] = gn[o0 + j] * t


def _lstm_backward(g, tc, c_prev, dh, dout, has_dout, m, masked, dc):
    N, GH = g.shape
    H = GH // 4
    i0, f0, c0, o0 = _BI * H, _BF * H, _BC * H, _BO * H
    for n in range(N):
        gn = g[n]
        dhn, dcn, tcn, cpn = dh[n], dc[n], tc[n], c_prev[n]
        if masked and m[n] == 0:                    # padded step: no gradient, carry passes
            for j in range(GH):
                gn[j] = 0
            continue
        for j in range(H):
            i, f, gg, o = gn[i0 + j], gn[f0 + j], gn[c0 + j], gn[o0 + j]
            t = tcn[j]
            d = dhn[j] + dout[n, j] if has_dout else dhn[j]
            dho = d * o
            dct = dcn[j] + dho * (1 - t * t)        # dc_tot = dc + dh o (1 - tanh^2 c')
            gn[o0 + j] = dho * t * (1 - o)          # do = dh tanh(c') o (1 - o)
            dcn[j] = dct * f                        # dc_prev
            gn[f0 + j] = dct * cpn[j] * f * (1 - f)
            dci = dct * i
            gn[i0 + j] = dci * gg * (1 - i)
            gn[c0 + j] = dci * (1 - gg * gg)
        if masked:
            for j in range(H):
                dhn[j] = 0


def _sig(dt, kind, cell="lstm"):
    """The explicit numba signature of a fused step kernel: ``kind`` 'forward' or 'backward'
    (the same layout for both cells), ``cell`` 'lstm' or 'gru'."""
    a2, a1 = f"{dt}[:, ::1]", f"{dt}[::1]"
    if kind == "backward":
        return f"void({a2}, {a2}, {a2}, {a2}, {dt}[:, :], boolean, {dt}[:], boolean, {a2})"
    args = {"lstm": [a2, a2, a1, a1, a2, a2, a2, a2, a2], "gru": [a2, a2, a1, "boolean", a2, a2, a2]}
    return f"void({', '.join(args[cell])}, {dt}[:], boolean)"


lstm_forward_f32 = njit(_sig("float32", "forward"), cache=True, nogil=True, **_OPTS)(_lstm_forward)
lstm_backward_f32 = njit(_sig("float32", "backward"), cache=True, nogil=True, **_OPTS)(_lstm_backward)
lstm_backward_f64 = njit(_sig("float64", "backward"), cache=True, nogil=True, **_OPTS)(_lstm_backward)


# GRU: gate rows r, z, n (the registry's order, checked below); r and z prescaled sigmoids.
_GSPEC = cell_spec("gru")
if _GSPEC.gate_names[:2] != ("reset", "update") or set(_GSPEC.sigmoid_gates) != {"reset", "update"}:
    raise AssertionError("the fused GRU kernels assume gate rows reset, update (sigmoid), new")


def _gru_forward(g, hp, b_hn, has_bias, h_prev, h, hn, m, masked):
    N, GH = g.shape
    H = GH // 3
    for n in range(N):
        gn, hpn, hnn, hprev, hrow = g[n], hp[n], hn[n], h_prev[n], h[n]
        for j in range(2 * H):                      # r, z = sigmoid (prescaled: 0.5 tanh + 0.5)
            gn[j] = _HALF * tanh32(gn[j] + hpn[j]) + _HALF
        frozen = masked and m[n] == 0              # past the sequence's end: state frozen
        for j in range(H):
            v = hpn[2 * H + j] + b_hn[j] if has_bias else hpn[2 * H + j]
            hnn[j] = v                              # W_hn h + b_hn, kept for backward
            nv = tanh32(gn[2 * H + j] + gn[j] * v)  # n = tanh(x_n + r (W_hn h + b_hn))
            gn[2 * H + j] = nv
            hrow[j] = hprev[j] if frozen else (hprev[j] - nv) * gn[H + j] + nv


def _gru_backward(g, hn, h_prev, dh, dout, has_dout, m, masked, dh_direct):
    N, GH = g.shape
    H = GH // 3
    for n in range(N):
        gn, hnn, dhn, ddn, hprev = g[n], hn[n], dh[n], dh_direct[n], h_prev[n]
        if masked and m[n] == 0:                    # padded step: no gradient, carry passes
            for j in range(GH):
                gn[j] = 0
            for j in range(H):
                hnn[j] = 0
                ddn[j] = dhn[j]
            continue
        for j in range(H):
            d = dhn[j] + dout[n, j] if has_dout else dhn[j]
            r, z, nv = gn[j], gn[H + j], gn[2 * H + j]
            ddn[j] = d * z                          # dh_prev's direct part: dh z
            dn = (1 - nv * nv) * (1 - z) * d        # dn = dh (1 - z) (1 - n^2)
            gn[H + j] = (1 - z) * d * (hprev[j] - nv) * z      # dz = dh (h - n) z (1 - z)
            gn[j] = r * ((1 - r) * hnn[j] * dn)     # dr = dn (W_hn h + b_hn) r (1 - r)
            hnn[j] = dn * r                         # the recurrent side of n's gradient
            gn[2 * H + j] = dn


gru_forward_f32 = njit(_sig("float32", "forward", "gru"), cache=True, nogil=True, **_OPTS)(_gru_forward)
gru_backward_f32 = njit(_sig("float32", "backward"), cache=True, nogil=True, **_OPTS)(_gru_backward)
gru_backward_f64 = njit(_sig("float64", "backward"), cache=True, nogil=True, **_OPTS)(_gru_backward)


# N = 1 training: the whole time loop of one LSTM direction in one call, the recurrent product
# as one dot product per gate row, the step itself the fused step above (inlined), so the
# cache it writes (gates, states, tanh c) is the batched path's.
_lstm_forward_inl = njit(inline="always", **_OPTS)(_lstm_forward)
_lstm_backward_inl = njit(inline="always", **_OPTS)(_lstm_backward)


@njit("void(float32[:, :, ::1], float32[:, ::1], float32[::1], float32[::1], float32[:, :, ::1], "
      "float32[:, :, ::1], float32[:, :, ::1])", cache=True, nogil=True, **_OPTS)
def lstm_n1_train_forward(G, W_rows, a, b, Hs, Cs, TC):
    """G (T, 1, 4H): the prescaled input projections in, the activated gates out; W_rows (4H, H)
    the prescaled recurrent weights; Hs/Cs (T+1, 1, H) with h0/c0 in slab 0, every state out;
    TC (T, 1, H): tanh(c_t)."""
    T, _, GH = G.shape
    H = GH // 4
    hp = np.empty((1, GH), G.dtype)
    m = np.ones(1, G.dtype)
    for t in range(T):
        h = Hs[t, 0]
        for j in range(GH):                         # hp = W_hh h, row by row
            w = W_rows[j]
            s = _f32(0)
            for k in range(H):
                s += w[k] * h[k]
            hp[0, j] = s
        _lstm_forward_inl(G[t], hp, a, b, Hs[t], Cs[t], Hs[t + 1], Cs[t + 1], TC[t], m, False)


def _lstm_n1_train_backward(G, TC, Cs, dout, has_dout, W, dh, dc):
    T, _, GH = G.shape
    H = dh.shape[1]
    m = np.ones(1, G.dtype)
    for t in range(T - 1, -1, -1):
        _lstm_backward_inl(G[t], TC[t], Cs[t], dh, dout[t] if has_dout else dout[0], has_dout, m,
                           False, dc)
        g = G[t, 0]
        d = dh[0]
        for k in range(H):
            d[k] = 0
        for j in range(GH):                         # dh = dG W_hh, row by row (contiguous)
            gj = g[j]
            w = W[j]
            for k in range(H):
                d[k] += gj * w[k]


def _n1b_sig(dt):
    a3, a2 = f"{dt}[:, :, ::1]", f"{dt}[:, ::1]"
    return f"void({a3}, {a3}, {a3}, {dt}[:, :, :], boolean, {a2}, {a2}, {a2})"


lstm_n1_train_backward_f32 = njit(_n1b_sig("float32"), cache=True, nogil=True, **_OPTS)(
    _lstm_n1_train_backward)
lstm_n1_train_backward_f64 = njit(_n1b_sig("float64"), cache=True, nogil=True, **_OPTS)(
    _lstm_n1_train_backward)
