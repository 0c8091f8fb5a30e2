"""``rnnkit check``: find the first wrong quantity, and its likely cause, in a learner's own
notebook functions (``sigmoid``, ``softmax``, ``rnn_cell``, ``rnn_forward``, ``lstm_cell``,
``lstm_forward`` and the course's ``rnn_cell_backward``, ``rnn_backward``,
``lstm_cell_backward``, ``lstm_backward``).

In a notebook::

    >>> from rnnkit.check import check
    >>> from rnnkit import scratch
    >>> check(scratch.lstm_cell).ok
    True

``check(fn)`` checks one function, ``check(globals())`` every function defined (in-process:
it is already the learner's process); ``check("file.py")`` / ``check("notebook.ipynb")`` runs
the file in a child process with time and memory limits, as ``rnnkit check FILE`` does. The
result is a :class:`Report`: text in a terminal, HTML in Jupyter, ``.json()`` for tools.

How it works: :mod:`.cases` (the inputs), :mod:`.runner` (the only code that calls the
learner's functions), :mod:`.judge` (comparison with :mod:`rnnkit.scratch`, hypotheses from
:mod:`.model`'s catalogue of mistakes), :mod:`.sandbox` (the child process), :mod:`.report`.
See docs/check.md for the catalogue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from ..errors import ConfigError
from .cases import ALIASES, FUNCTION_NAMES
from .judge import FunctionResult, Judge
from .model import CATALOGUE
from .report import Report
from .runner import run_function

__all__ = ["check", "check_namespace", "check_file", "Report", "FunctionResult", "CATALOGUE",
           "FUNCTION_NAMES"]


def _names(functions):
    if functions is None:
        return list(FUNCTION_NAMES)
    names = [functions] if isinstance(functions, str) else list(functions)
    known = {a: n for n in FUNCTION_NAMES for a in (n,) + ALIASES.get(n, ())}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"check: expected function names among {', '.join(FUNCTION_NAMES)}, got "
                          f"{', '.join(map(repr, bad))}. Pass the notebook's names.")
    wanted = {known[n] for n in names}
    return [n for n in FUNCTION_NAMES if n in wanted]


def check_namespace(ns: Mapping, functions: str | Sequence[str] | None = None,
                    file: str | None = None) -> Report:
    """Check the functions defined in the namespace ``ns`` (e.g. ``globals()``), in this
    process. ``functions``: names to check (default: all ten)."""
    start = time.perf_counter()
    judge = Judge()
    results = [judge.judge(run_function(n, ns)) for n in _names(functions)]
    return Report(file, results, seconds=time.perf_counter() - start)


def check(obj: object, functions: str | Sequence[str] | None = None, *, timeout: float = 5.0,
          memory_mb: int = 2048) -> Report:
    """Check a learner's functions and return the :class:`Report` (shown as HTML in Jupyter).

    ``obj`` is one function (``check(lstm_cell)``: checked under its own name, or under the
    single name given as ``functions``; the helpers it calls are looked up in its globals), a
    namespace such as ``globals()`` or a module, or the path of a ``.py`` / ``.ipynb`` file
    (run in a child process with ``timeout`` seconds per cell and per function and
    ``memory_mb`` of memory; see :func:`check_file`).
    """
    if isinstance(obj, (str, os.PathLike)):
        return check_file(obj, functions, timeout=timeout, memory_mb=memory_mb)
    if isinstance(obj, Mapping):
        return check_namespace(obj, functions)
    if callable(obj) and hasattr(obj, "__name__"):
        names = _names(functions) if functions is not None else None
        own = obj.__name__
        known = {a: n for n in FUNCTION_NAMES for a in (n,) + ALIASES.get(n, ())}
        if names is None:
            if own not in known:
                raise ConfigError(
                    f"check: expected one of the notebook's functions ({', '.join(FUNCTION_NAMES)}), "
                    f"got a function named {own!r}. Name the function it implements: "
                    f"check({own}, 'lstm_cell'), or check(globals()) for all of them.")
            names = [known[own]]
        if len(names) != 1:
            raise ConfigError("check: expected one function name with a single function, got "
                              f"{len(names)}. Pass check(globals()) to check several.")
        ns = dict(getattr(obj, "__globals__", {}))
        for alias in (names[0],) + ALIASES.get(names[0], ()):
            ns.pop(alias, None)
        ns[names[0]] = obj
        return check_namespace(ns, names)
    if hasattr(obj, "__dict__"):                          # a module
        return check_namespace(vars(obj), functions)
    raise ConfigError(f"check: expected a function, a namespace such as globals(), a module or a "
                      f"file path, got {type(obj).__name__}.")


def check_file(path: str | os.PathLike, functions: str | Sequence[str] | None = None, *,
               timeout: float = 5.0, memory_mb: int = 2048) -> Report:
    """Check the functions a ``.py`` file or a Jupyter notebook defines, running it in a child
    process (see :mod:`rnnkit.check.sandbox`). Raises :class:`~rnnkit.errors.ConfigError` for
    a path that is not a readable ``.py`` / ``.ipynb`` file."""
    from .sandbox import run_file
    return run_file(path, _names(functions), timeout=timeout, memory_mb=memory_mb)
