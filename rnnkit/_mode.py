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


def init_enabled() -> bool:
    return getattr(_state, "init", True)


@contextlib.contextmanager
def no_init():
    """Context manager: layers built inside it get zero parameters instead of random ones."""
    prev = init_enabled()
    _state.init = False
    try:
        yield
    finally:
        _state.init = prev
