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


def one_blas_thread():
    """Context manager: NumPy's BLAS on one thread inside, as before outside."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:                  # an older environment: leave the threads alone
            _blas = False
        else:
            _blas = ThreadpoolController().select(user_api="blas")
    return _blas.limit(limits=1) if _blas else contextlib.nullcontext()


def for_step_product(macs: int):
    """One BLAS thread for a time loop whose per-step product has ``macs`` multiply-adds when
    that is small, else the caller's threads."""
    return one_blas_thread() if macs <= SMALL_PRODUCT else contextlib.nullcontext()
