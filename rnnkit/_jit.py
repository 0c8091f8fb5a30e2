"""Optional compiled kernels (numba), for the loops where NumPy's per-call overhead dominates.

When ``numba`` is installed (``pip install 'rnnkit[fast]'``) two kinds of kernel replace NumPy
code of :mod:`rnnkit.sequence`; NumPy stays the fallback (numba missing, or
``RNNKIT_NO_JIT=1``), with the same numbers to round-off (tests/test_fast_paths.py).

* **The fused LSTM step** (``"lstm_step"``, :class:`StepKernels`): one compiled pass per time
  step instead of NumPy's ~10 (forward) and ~20 (backward) separate calls over the gate slab,
  for batches of any size, in training and inference; float32 forward and backward, float64
  backward (float64's forward keeps NumPy's tanh, see :class:`StepKernels`). The recurrent
  product stays one BLAS call per step. The ``lengths`` mask and the backward's ``dout``
  addition are fused in too.
* **The N = 1 inference loop** (``"lstm_n1"``): at batch size 1 without a cache the whole time
  loop of one LSTM direction is one compiled call, the recurrent product as one dot product per
  gate row (``rnnkit eval``, ``no_grad`` forward passes, the layer pipeline).

Both read the same :class:`~rnnkit.sequence.Prepared` weights as the NumPy step (sigmoid rows
prescaled by 0.5, so every gate is ``a * tanh(z) + b``). In float32 ``tanh`` is a vectorisable
rational approximation (:func:`_tanh32`: maximum absolute error 2.6e-7 against float64 tanh,
within float32 round-off of NumPy's). Compiled code is cached on disk by numba after the
first build (several seconds once); a process loads it only once it has run
``sequence.JIT_MIN_STEPS`` layer-steps that can use it, so short runs never pay for numba.

How the kernels stay equal to the NumPy gate math: the NumPy step in :mod:`rnnkit.cells`
is the definition; each kernel here is its one compiled copy, takes the gate block positions
from the registry (``CellSpec.gate_names``; the builder refuses a registry whose sigmoid gates
differ from what the kernel's derivatives assume) and the activation affine from the prepared
weights (``Cell.constants``), and is compared with the NumPy step on every configuration in
the tests. A change to one without the other fails those tests.
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


def _tanh32():
    """The compiled float32 ``tanh``: Eigen's rational approximation ``x P(x^2) / Q(x^2)`` on
    [-7.9053, 7.9053], then a line to exactly +-1 at |x| = 9 (a saturated gate is exactly 1, as
    in float32 tanh: a forget gate held at 1 keeps c over any number of steps instead of
    shrinking it by a few ulp per step). Maximum absolute error 2.6e-7 against float64 tanh.
    Clamped with conditional expressions, which vectorise (``min``/``max`` do not)."""
    from numba import njit

    f32 = np.float32
    clamp = f32(7.90531110763549805)
    a1, a3, a5 = f32(4.89352455891786e-03), f32(6.37261928875436e-04), f32(1.48572235717979e-05)
    a7, a9 = f32(5.12229709037114e-08), f32(-8.60467152213735e-11)
    a11, a13 = f32(2.00018790482477e-13), f32(-2.76076847742355e-16)
    b0, b2 = f32(4.89352518554385e-03), f32(2.26843463243900e-03)
    b4, b6 = f32(1.18534705686654e-04), f32(1.19825839466702e-06)
    one = f32(1.0)
    tail = f32((1.0 - 0.99999972948) / (9.0 - 7.90531110763549805))

    @njit(inline="always", **_OPTS)
    def tanh32(x):
        y = x if x < clamp else clamp
        y = y if y > -clamp else -clamp
        y2 = y * y
        p = y2 * (y2 * (y2 * (y2 * (y2 * (y2 * a13 + a11) + a9) + a7) + a5) + a3) + a1
        q = y2 * (y2 * (y2 * b6 + b4) + b2) + b0
        r = y * p / q + (x - y) * tail
        r = r if r < one else one
        return r if r > -one else -one

    return tanh32


_OPTS = dict(fastmath=True, error_model="numpy")


def _build_lstm_n1():
    from numba import njit

    f32 = np.float32
    half = f32(0.5)
    tanh32 = _tanh32()

    # One explicit signature (contiguous float32 arrays), compiled once and cached on disk.
    @njit("void(float32[:, ::1], float32[:, ::1], float32[::1], float32[::1], float32[:, ::1])",
          cache=True, nogil=True, **_OPTS)         # nogil: layers can run in parallel threads
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


class StepKernels:
    """The fused per-step kernels of one cell kind and dtype (see :func:`step_kernels`).

    ``forward(g, hp, a, b, h_prev, c_prev, h, c, tc, m, masked)`` is ``LSTMCell.forward_step``
    and the unroll's ``lengths`` mask in one pass: ``g`` (N, 4H) holds the prescaled input
    projection and becomes the activated gates ``a * tanh(g + hp) + b``; ``c``, ``tc`` =
    tanh(c) and ``h`` are written, except on rows with ``m[n] == 0`` (when ``masked``), which
    keep ``h_prev`` and ``c_prev`` (``tc`` 0: backward gives such rows no gradient).
    ``forward`` is None where the NumPy step is faster (float64: numba has no vectorised exact
    tanh here, and the NumPy step's is faster than a scalar one).

    ``backward(g, tc, c_prev, dh, dout, has_dout, m, masked, dc)`` is
    ``LSTMCell.backward_step`` with the unroll's ``dout`` addition and mask: ``g`` becomes the
    pre-activation gradient, ``dc`` becomes ``dc_prev``; ``dh`` is consumed, and with
    ``masked`` it is left holding the carry (``dh`` on padded rows, 0 on the others).
    """

    __slots__ = ("forward", "backward")

    def __init__(self, forward, backward):
        self.forward, self.backward = forward, backward


def _build_lstm_step():
    """The fused LSTM step kernels, float32 and float64, with the gate blocks where the
    registry puts them (``CellSpec.gate_names``) and the activation affine ``a * tanh + b``
    taken from the prepared weights (``Cell.constants``, from ``CellSpec.sigmoid_gates``)."""
    from numba import njit

    from .cells import cell_spec

    spec = cell_spec("lstm")
    bi, bf, bc, bo = (spec.gate_names.index(n) for n in ("input", "forget", "candidate", "output"))
    if set(spec.sigmoid_gates) != {spec.gate_names[k] for k in (bi, bf, bo)}:
        raise AssertionError("the fused LSTM kernel assumes sigmoid input, forget, output gates")
    tanh32 = _tanh32()

    def make_forward(tanh):
        def forward(g, hp, a, b, h_prev, c_prev, h, c, tc, m, masked):
            N, GH = g.shape
            H = GH // 4
            i0, f0, c0, o0 = bi * H, bf * H, bc * H, bo * H
            for n in range(N):
                gn = g[n]
                hpn = hp[n]
                for j in range(GH):                 # every gate: a * tanh(xp + hp) + b
                    gn[j] = a[j] * tanh(gn[j] + hpn[j]) + b[j]
                if masked and m[n] == 0:            # past the sequence's end: state frozen
                    for j in range(H):
                        h[n, j] = h_prev[n, j]
                        c[n, j] = c_prev[n, j]
                        tc[n, j] = 0
                    continue
                cn, tcn, hn, cpn = c[n], tc[n], h[n], c_prev[n]
                for j in range(H):                  # c' = f c + i g ;  h' = o tanh(c')
                    cj = gn[f0 + j] * cpn[j] + gn[i0 + j] * gn[c0 + j]
                    cn[j] = cj
                    t = tanh(cj)
                    tcn[j] = t
                    hn[j] = gn[o0 + j] * t
        return forward

    def backward(g, tc, c_prev, dh, dout, has_dout, m, masked, dc):
        N, GH = g.shape
        H = GH // 4
        i0, f0, c0, o0 = bi * H, bf * H, bc * H, bo * H
        for n in range(N):
            gn = g[n]
            dhn, dcn, tcn, cpn = dh[n], dc[n], tc[n], c_prev[n]
            if masked and m[n] == 0:                # padded step: no gradient, carry passes
                for j in range(GH):
                    gn[j] = 0
                continue
            for j in range(H):
                i, f, gg, o = gn[i0 + j], gn[f0 + j], gn[c0 + j], gn[o0 + j]
                t = tcn[j]
                d = dhn[j] + dout[n, j] if has_dout else dhn[j]
                dho = d * o
                dct = dcn[j] + dho * (1 - t * t)    # dc_tot = dc + dh o (1 - tanh^2 c')
                gn[o0 + j] = dho * t * (1 - o)      # do = dh tanh(c') o (1 - o)
                dcn[j] = dct * f                    # dc_prev
                gn[f0 + j] = dct * cpn[j] * f * (1 - f)
                dci = dct * i
                gn[i0 + j] = dci * gg * (1 - i)
                gn[c0 + j] = dci * (1 - gg * gg)
            if masked:
                for j in range(H):
                    dhn[j] = 0

    kernels = {}
    for dt in ("float32", "float64"):
        a2, a1 = f"{dt}[:, ::1]", f"{dt}[::1]"
        bwd = njit(f"void({a2}, {a2}, {a2}, {a2}, {dt}[:, :], boolean, {dt}[:], boolean, {a2})",
                   cache=True, nogil=True, **_OPTS)(backward)
        fwd = None
        if dt == "float32":
            fwd = njit(f"void({a2}, {a2}, {a1}, {a1}, {a2}, {a2}, {a2}, {a2}, {a2}, {dt}[:], "
                       "boolean)",
                       cache=True, nogil=True, **_OPTS)(make_forward(tanh32))
        kernels[np.dtype(dt)] = StepKernels(fwd, bwd)
    return kernels


_BUILDERS = {"lstm_n1": _build_lstm_n1, "lstm_step": _build_lstm_step}
