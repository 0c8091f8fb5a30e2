"""Global switches (internal): gradient recording on/off.

``with rnnkit.no_grad(): out, h = layer(x)`` runs forward passes that keep no cache for a
backward pass, so inference over very long inputs streams in bounded memory.
"""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad", True)


@contextlib.contextmanager
def no_grad():
    """Context manager: forward passes inside it keep no backward cache (inference only)."""
    prev = is_grad_enabled()
    _state.grad = False
    try:
        yield
    finally:
        _state.grad = prev


@contextlib.contextmanager
def enable_grad():
    prev = is_grad_enabled()
    _state.grad = True
    try:
        yield
    finally:
        _state.grad = prev
