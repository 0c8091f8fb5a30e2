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
* **The N = 1 training loops** (:attr:`StepKernels.n1_forward` / ``n1_backward``): at batch
  size 1 with a cache (training) the whole time loop of one LSTM direction is one compiled
  call each way, the fused step inlined and the recurrent product as dot products.
* **The fused GRU step** (``"gru_step"``): the same for the GRU (float32 forward and backward,
  float64 backward), the two recurrent products of its backward kept as BLAS calls.
* **The N = 1 inference loop** (``"lstm_n1"``): at batch size 1 without a cache the whole time
  loop of one LSTM direction is one compiled call, the recurrent product as one dot product per
  gate row (``rnnkit eval``, ``no_grad`` forward passes, the layer pipeline).

Both read the same :class:`~rnnkit.sequence.Prepared` weights as the NumPy step (sigmoid rows
prescaled by 0.5, so every gate is ``a * tanh(z) + b``). In float32 ``tanh`` is a vectorisable
rational approximation (``rnnkit._kernels.tanh32``: maximum absolute error 2.6e-7 against float64 tanh,
within float32 round-off of NumPy's). Compiled code is cached on disk by numba after the
first build (several seconds once); a process loads it only once it has run
``sequence.JIT_MIN_STEPS`` layer-steps that can use it, so short runs never pay for numba.

How the kernels stay equal to the NumPy gate math: the NumPy step in :mod:`rnnkit.cells`
is the definition; each kernel (in :mod:`rnnkit._kernels`) is its one compiled copy, takes the gate block positions
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

    ``n1_forward(G, W_rows, a, b, Hs, Cs, TC)`` and ``n1_backward(G, TC, Cs, dout, has_dout,
    W_hh, dh, dc)`` (LSTM only, else None) run a whole N = 1 training sequence of one direction
    in one call each, with these steps inside and the recurrent products as dot products (no
    mask: a batch of one has no padding).
    """

    __slots__ = ("forward", "backward", "n1_forward", "n1_backward")

    def __init__(self, forward, backward, n1_forward=None, n1_backward=None):
        self.forward, self.backward = forward, backward
        self.n1_forward, self.n1_backward = n1_forward, n1_backward


def _build_lstm_n1():
    from . import _kernels
    return _kernels.lstm_n1_loop


def _build_lstm_step():
    """The fused LSTM step kernels by dtype (:mod:`rnnkit._kernels`)."""
    from . import _kernels
    return {np.dtype(np.float32): StepKernels(_kernels.lstm_forward_f32, _kernels.lstm_backward_f32,
                                              _kernels.lstm_n1_train_forward,
                                              _kernels.lstm_n1_train_backward_f32),
            np.dtype(np.float64): StepKernels(None, _kernels.lstm_backward_f64, None,
                                              _kernels.lstm_n1_train_backward_f64)}


def _build_gru_step():
    """The fused GRU step kernels by dtype (:mod:`rnnkit._kernels`)."""
    from . import _kernels
    return {np.dtype(np.float32): StepKernels(_kernels.gru_forward_f32, _kernels.gru_backward_f32),
            np.dtype(np.float64): StepKernels(None, _kernels.gru_backward_f64)}


_BUILDERS = {"lstm_n1": _build_lstm_n1, "lstm_step": _build_lstm_step, "gru_step": _build_gru_step}
