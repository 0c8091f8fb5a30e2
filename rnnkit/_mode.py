"""Global switches (internal, per thread): gradient recording, weight initialisation.

``with rnnkit.no_grad(): out, h = layer(x)`` runs forward passes that keep no cache for a
backward pass, so inference over very long inputs streams in bounded memory. ``no_init()``
builds layers and models with zero weights and no random draws, for weights that are about to
be loaded from a file.
"""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()


@contextlib.contextmanager
def _switch(name: str, value: bool):
    prev = getattr(_state, name, True)
    setattr(_state, name, value)
    try:
        yield
    finally:
        setattr(_state, name, prev)


def is_grad_enabled() -> bool:
    """True unless this thread is inside :func:`no_grad` (as ``torch.is_grad_enabled``)."""
    return getattr(_state, "grad", True)


def no_grad() -> contextlib.AbstractContextManager:
    """Context manager: forward passes inside it keep no backward cache (inference only)."""
    return _switch("grad", False)


def enable_grad() -> contextlib.AbstractContextManager:
    """Context manager: forward passes inside it keep their backward cache (the default)."""
    return _switch("grad", True)


def init_enabled() -> bool:
    return getattr(_state, "init", True)


def no_init():
    """Context manager: layers built inside it get zero parameters instead of random ones."""
    return _switch("init", False)
