"""BLAS threads for small products (internal).

A recurrent layer at a small batch multiplies small matrices thousands of times; on two or
more BLAS threads each of those products pays for waking and synchronising the threads, which
costs more than the product itself (several times more on a busy machine). The time loops of
:mod:`rnnkit.sequence` therefore run with NumPy's BLAS limited to one thread when the per-step
product is small (:data:`SMALL_PRODUCT` multiply-adds or fewer). The limit is scoped to the
call with threadpoolctl and restored afterwards: the user's own setting never changes, and
large products keep every thread the user gave them.
"""

from __future__ import annotations

import contextlib

#: Per-step recurrent product (N * H * G*H multiply-adds) up to which a time loop runs on one
#: BLAS thread: e.g. N <= 8 at H = 256 for an LSTM.
SMALL_PRODUCT = 2 ** 21

_blas = None


def numpy_blas():
    """threadpoolctl's controller of the BLAS NumPy itself links (not torch's or others'), or
    None without threadpoolctl or when NumPy's BLAS is not one threadpoolctl knows."""
    global _blas
    if _blas is None:
        _blas = False
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        controller = ThreadpoolController()
        mine = [i["filepath"] for i in controller.info()
                if i["user_api"] == "blas" and "numpy" in i["filepath"]]
        if mine:
            _blas = controller.select(filepath=mine)
    return _blas or None


def one_blas_thread():
    """Context manager: NumPy's BLAS on one thread inside, as before outside."""
    blas = numpy_blas()
    return blas.limit(limits=1) if blas is not None else contextlib.nullcontext()


def for_step_product(macs: int):
    """One BLAS thread for a time loop whose per-step product has ``macs`` multiply-adds when
    that is small, else the caller's threads."""
    return one_blas_thread() if macs <= SMALL_PRODUCT else contextlib.nullcontext()
