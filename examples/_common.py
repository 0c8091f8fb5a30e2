"""Helpers shared by the example scripts (imported as `_common` from their own folder)."""


def limit_blas_threads(n: int):
    """Cap BLAS threads (via threadpoolctl when installed). The matrices here are small
    (hidden <= 128), so one thread is about as fast as two on an idle machine and far faster
    on a busy one, where threads of the BLAS pool wait on each other."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(n) if n > 0 else None


def fmt_best(result) -> str:
    if result.best_val_loss is None:
        return "none (no validation ran)"
    return f"{result.best_val_loss:.5f} at step {result.best_step}"
