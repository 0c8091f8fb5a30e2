"""CPU threads: the user's setting, the one-thread rule for small products, and the choice
``rnnkit train`` makes on a busy machine.

**The setting.** :func:`set_num_threads` / :func:`get_num_threads` (PyTorch's names, exported
as ``rnnkit.set_num_threads``) set the threads of NumPy's own BLAS (threadpoolctl) and of
torch's intra-op pool when torch is loaded (``torch.set_num_threads``; torch loaded later gets
it from :func:`apply`, which the trainer calls when it starts).

**Small products.** A recurrent layer at a small batch multiplies small matrices thousands of
times; on two or more BLAS threads each of those products pays for waking and synchronising
the threads, which costs more than the product itself (several times more on a busy machine).
The time loops of :mod:`rnnkit.sequence` therefore run with NumPy's BLAS limited to one thread
when the per-step product is small (:data:`SMALL_PRODUCT` multiply-adds or fewer). The limit
is scoped to the call and restored afterwards.

**A busy machine.** BLAS and OpenMP threads spin while they wait; when another program holds
a core, the thread that shares it stalls every product and a training step can take several
times longer on all threads than on one. :class:`ThreadChoice` is ``rnnkit train``'s default
(``--threads auto``): it times alternate training steps on one thread and on all of them,
keeps the faster, says which, and measures again every :data:`RECHECK_STEPS` steps (the load
changes while a run goes on).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time

from ._validate import check_int
from .errors import ConfigError

#: Per-step recurrent product (N * H * G*H multiply-adds) up to which a time loop runs on one
#: BLAS thread: e.g. N = 1 at H = 64 for an LSTM. On a quiet 2-core machine the loop on all
#: threads was faster at every product from 262,144 multiply-adds (N = 1, H = 256) up
#: (benchmarks/speed.py's threads section); a busy machine is the thread choice's job.
SMALL_PRODUCT = 2 ** 16

#: Steps of each setting timed by :class:`ThreadChoice` (alternating), after
#: :data:`WARMUP_STEPS` untimed ones; the choice is measured again every RECHECK_STEPS steps.
TRIAL_STEPS = 3
WARMUP_STEPS = 2
RECHECK_STEPS = 200
#: The second trial comes this many steps after the first (a choice made while the machine was
#: settling, e.g. numba loading or another program starting, is checked again soon).
FIRST_RECHECK = 40
#: All threads are kept only when their median time per token is below this fraction of one
#: thread's: one thread loses little where all would win a little, and much less than all
#: threads lose where a core is taken (a 3-step trial on a busy machine is noisy).
ALL_THREADS_MARGIN = 0.95

_blas = None
_setting: int | None = None          # the threads set by set_num_threads, None: never set


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


def _numpy_threads() -> int | None:
    blas = numpy_blas()
    if blas is None:
        return None
    return max((i["num_threads"] for i in blas.info()), default=None)


def _apply(n: int) -> None:
    blas = numpy_blas()
    if blas is not None:
        blas.limit(limits=n)                     # not as a context: stays until changed
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads") and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def set_num_threads(n: int) -> None:
    """Use ``n`` CPU threads for rnnkit's products: NumPy's BLAS and, when torch is loaded
    (the torch engine), ``torch.set_num_threads(n)``. The same name and meaning as
    ``torch.set_num_threads``; stays until changed. Time loops with small per-step products
    still run on one thread (that is faster for them).

    >>> import rnnkit
    >>> before = rnnkit.get_num_threads()
    >>> rnnkit.set_num_threads(1)
    >>> rnnkit.get_num_threads()
    1
    >>> rnnkit.set_num_threads(before)
    """
    global _setting
    n = check_int("set_num_threads", "n", n, minimum=1)
    _setting = n
    _apply(n)


def get_num_threads() -> int:
    """The CPU threads rnnkit's products use: the last :func:`set_num_threads`, else the
    threads of NumPy's BLAS (its default: one per core), else the number of cores."""
    if _setting is not None:
        return _setting
    import os
    return _numpy_threads() or os.cpu_count() or 1


def apply() -> None:
    """Apply the :func:`set_num_threads` setting again, to libraries loaded since (torch)."""
    if _setting is not None:
        _apply(_setting)


def check_threads(who: str, threads) -> int | str:
    """``threads`` as given to the trainer: ``"auto"`` or an integer >= 1."""
    if isinstance(threads, str) and threads.strip().lower() == "auto":
        return "auto"
    if isinstance(threads, str) and threads.strip().isdigit():
        threads = int(threads)
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise ConfigError(f"{who}: expected threads 'auto' or an integer >= 1, got {threads!r}. "
                          f"Give e.g. threads=1 on a busy machine, or 'auto' to let rnnkit time both.")
    return check_int(who, "threads", threads, minimum=1)


def threads_option(text: str) -> int | str:
    """argparse ``type`` of ``--threads``: ``"auto"`` or an integer >= 1 (a usage error else)."""
    import argparse
    try:
        return check_threads("--threads", text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class ThreadChoice:
    """The trainer's thread policy, around each training step (:meth:`before` / :meth:`after`).

    ``threads``: an integer (used throughout, nothing measured) or ``"auto"``: after
    :data:`WARMUP_STEPS` steps, :data:`TRIAL_STEPS` steps on all threads and as many on one,
    alternating, timed per token; all threads are kept when their median time per token is
    below :data:`ALL_THREADS_MARGIN` times one thread's, else one thread, and the choice is
    reported through ``log``; the trial repeats :data:`FIRST_RECHECK` steps later, then every
    :data:`RECHECK_STEPS` steps, and a change is reported. One core, one process of several (torchrun) or a user's own
    :func:`set_num_threads` leave nothing to choose: then nothing is measured.
    """

    def __init__(self, threads="auto", log=print, world_size: int = 1):
        self.threads = check_threads("Trainer", threads)
        self.log = log
        self.choice: int | None = None
        self._all = get_num_threads()
        self._trial: list = []                  # the thread counts still to try, in order
        self._times: dict = {}
        self._since = 0
        self._t0 = 0.0
        self._cur = None
        self._trials = 0
        if self.threads != "auto":
            set_num_threads(self.threads)
            self.choice = self.threads
            self.log(f"threads: {self.threads} (as asked)")
        elif _setting is not None or self._all <= 1 or world_size > 1:
            apply()
            self.choice = self._all
            self.threads = self._all             # nothing to measure
        else:
            self._since = RECHECK_STEPS - WARMUP_STEPS   # the first trial after the warm-up

    def before(self) -> None:
        """Called before a training step."""
        if self.threads != "auto":
            return
        self._since += 1
        if not self._trial and self._since > RECHECK_STEPS:
            self._trial = [self._all, 1] * TRIAL_STEPS
            self._times = {self._all: [], 1: []}
        self._cur = self._trial.pop(0) if self._trial else None
        if self._cur is not None:
            _apply(self._cur)
        self._t0 = time.perf_counter()

    def after(self, tokens: int) -> None:
        """Called after the step's update, with the tokens it trained on."""
        if self._cur is None:
            return
        self._times[self._cur].append((time.perf_counter() - self._t0) / max(1, tokens))
        self._cur = None
        if self._trial:
            return
        med = {n: statistics.median(v) for n, v in self._times.items()}
        best = self._all if med[self._all] < ALL_THREADS_MARGIN * med[1] else 1
        _apply(best)
        self._since = 0 if self._trials else RECHECK_STEPS - FIRST_RECHECK
        self._trials += 1
        if best != self.choice:
            what = "chose" if self.choice is None else "now"
            words = ", ".join(f"{n}: {med[n] * 1e6:.2f} us/token" for n in sorted(med))
            self.log(f"threads: {what} {best} of {self._all} (timed {words}; --threads N "
                     f"fixes the count)")
        self.choice = best

    def close(self) -> None:
        """After training: the threads as they were before (all, or the user's setting)."""
        if self.threads == "auto" and self.choice is not None:
            _apply(_setting if _setting is not None else self._all)
