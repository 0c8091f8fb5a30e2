"""rnnkit's exceptions: one small hierarchy that users can catch.

Every error rnnkit raises on purpose is an :class:`RnnkitError`. The subclasses also derive
from the built-in exception a Python user would expect (``ValueError`` for bad values and
shapes, ``KeyError`` for missing dictionary keys, ``TypeError`` for wrong types), so
``except ValueError`` keeps working.

Messages follow one form: *who* complained, *what was expected*, *what was received*, and
*how to fix it*.
"""


class RnnkitError(Exception):
    """Base class of every error raised by rnnkit on purpose."""


class ShapeError(RnnkitError, ValueError):
    """An array has the wrong rank or shape (or an empty / zero-size dimension)."""


class DTypeError(RnnkitError, TypeError):
    """An array has a dtype rnnkit refuses (complex, object, strings, ...)."""


class NonFiniteError(RnnkitError, ValueError):
    """An input, initial state, loss or gradient contains NaN or infinity."""


class ParameterKeyError(RnnkitError, KeyError):
    """A parameter dict / state_dict misses a key, or has one that is not expected."""

    def __str__(self):  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ConfigError(RnnkitError, ValueError):
    """A configuration value is invalid (wrong type, out of range, unknown choice)."""


class DataError(RnnkitError, ValueError):
    """Training or evaluation data cannot be used (empty, undecodable, unknown characters)."""


class CheckpointError(RnnkitError, ValueError):
    """A checkpoint directory or file is missing, damaged, inconsistent or hostile."""


class RunLockedError(CheckpointError):
    """A run directory is being written by another process (``rnnkit train`` holds
    :class:`rnnkit.runlock.RunLock` on it); the message names that process."""


class DistributedError(RnnkitError, RuntimeError):
    """Another process of a multi-process (torchrun) training job failed or went away, or the
    job is set up in a way one engine cannot run."""


class NoForwardError(RnnkitError, RuntimeError):
    """``backward()`` was called without a forward pass to differentiate (or twice, or after a
    forward under ``rnnkit.no_grad()``)."""


class TrainingDivergedError(RnnkitError, RuntimeError):
    """Training stopped because the loss or gradients became NaN/inf or exploded."""


__all__ = [
    "RnnkitError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "ParameterKeyError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "RunLockedError",
    "TrainingDivergedError",
    "DistributedError",
    "NoForwardError",
]
