"""Boundary checks shared by every public function (internal).

All messages have the form ``"<who>: expected <what>, got <received>. <how to fix>"``.
Checks run once at public boundaries; inner code trusts its inputs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, DTypeError, NonFiniteError, ParameterKeyError, ShapeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_float_array(who: str, name: str, x, dtype=None, allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``x`` as a float ndarray.

    Integer and boolean inputs are converted (to ``dtype`` or float64); complex, object and
    string arrays are refused with :class:`DTypeError`. NaN/inf raise :class:`NonFiniteError`
    unless ``allow_nonfinite``. If ``dtype`` is given the result has that dtype.
    """
    if isinstance(x, np.ndarray):
        arr = x
    elif hasattr(x, "detach"):                  # a torch tensor (requires_grad, bfloat16, GPU)
        arr = to_numpy(who, name, x)
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # ragged lists etc.
            raise DTypeError(f"{who}: expected {name} as a numeric array, got {type(x).__name__} "
                             f"that NumPy cannot convert ({e}).") from None
    kind = arr.dtype.kind
    if kind in "fiub":
        pass
    else:
        what = {"c": "complex", "O": "object", "U": "string", "S": "bytes", "M": "datetime",
                "m": "timedelta", "V": "void"}.get(kind, str(arr.dtype))
        raise DTypeError(f"{who}: expected {name} with a real float dtype (float32 or float64), "
                         f"got a {what} array (dtype {arr.dtype}). Convert it with "
                         f"np.asarray({name}, dtype=np.float32) if its values are real numbers.")
    target = np.dtype(dtype) if dtype is not None else (
        arr.dtype if arr.dtype in FLOAT_DTYPES else np.dtype(np.float64))
    if arr.dtype != target:
        arr = arr.astype(target)
    # One SIMD reduction instead of an isfinite pass + bool temporary: a finite sum proves
    # every entry finite; otherwise (NaN/inf, or a finite overflow) check exactly.
    if (not allow_nonfinite and arr.size and arr.dtype.kind == "f"
            and not np.isfinite(np.add.reduce(arr, axis=None)) and not np.isfinite(arr).all()):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteError(f"{who}: {name} contains {bad} NaN or infinite value(s); expected "
                             f"finite numbers. Clean the data (e.g. np.nan_to_num) before passing it.")
    return arr


def to_numpy(who: str, name: str, value) -> np.ndarray:
    """``value`` as a NumPy array: an ndarray, an array-like, or a torch tensor (recognised by
    its ``detach`` method, without importing torch; bfloat16 is widened to float32 exactly).
    Anything NumPy cannot turn into an array raises :class:`DTypeError`."""
    try:
        if hasattr(value, "detach"):
            value = value.detach().cpu()
            if str(getattr(value, "dtype", "")) == "torch.bfloat16":
                value = value.float()
            value = value.numpy()
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as e:
        raise DTypeError(f"{who}: expected {name} as a numeric array or tensor, got "
                         f"{type(value).__name__} that NumPy cannot convert ({e}).") from None


def check_shape(who: str, name: str, arr: np.ndarray, expected: tuple, hint: str = "") -> None:
    """Check ``arr.shape`` against ``expected``: a tuple of ``(symbol, size_or_None)`` pairs.

    ``size None`` accepts any positive size. Raises :class:`ShapeError` showing the expected
    shape with symbols, e.g. ``(T, N, input_size=5)``, and the received one.
    """
    def spec():
        return "(" + ", ".join(f"{s}={v}" if v is not None else s for s, v in expected) + ")"

    if arr.ndim != len(expected):
        raise ShapeError(f"{who}: expected {name} of shape {spec()} ({len(expected)}-D), got shape "
                         f"{fmt_shape(arr.shape)} ({arr.ndim}-D).{(' ' + hint) if hint else ''}")
    for (sym, size), got in zip(expected, arr.shape):
        if size is not None and got != size:
            raise ShapeError(f"{who}: expected {name} of shape {spec()}, got shape "
                             f"{fmt_shape(arr.shape)}: {sym} should be {size}, not {got}."
                             f"{(' ' + hint) if hint else ''}")
        if size is None and got == 0:
            raise ShapeError(f"{who}: expected {name} of shape {spec()} with {sym} >= 1, got shape "
                             f"{fmt_shape(arr.shape)} ({sym} = 0). Empty sequences and batches "
                             f"cannot be processed; drop them before calling.")


def short_list(names, limit: int = 8) -> str:
    """At most ``limit`` names, then a count, so that an error message stays one readable line."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def key_mismatch(expected, got) -> str | None:
    """``"missing a, b and unexpected c"`` for two collections of names (lists capped by
    :func:`short_list`), or None when they hold the same names."""
    expected, got = list(expected), list(got)
    got_set, expected_set = set(got), set(expected)
    missing = [k for k in expected if k not in got_set]
    unexpected = [k for k in got if k not in expected_set]
    parts = []
    if missing:
        parts.append(f"missing {short_list(missing)}")
    if unexpected:
        parts.append(f"unexpected {short_list(unexpected)}")
    return " and ".join(parts) or None


def require_keys(who: str, name: str, mapping, keys, hint: str = ""):
    """Check that ``mapping`` is a dict-like holding every key of ``keys``; a clear
    :class:`ConfigError` / :class:`ParameterKeyError` names what is missing otherwise."""
    from collections.abc import Mapping
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{who}: expected {name} to be a dict of arrays, got "
                          f"{type(mapping).__name__}.{(' ' + hint) if hint else ''}")
    for k in keys:
        if k not in mapping:
            raise ParameterKeyError(f"{who}: expected {name} to contain the key '{k}', got keys "
                                    f"{short_list(sorted(map(str, mapping)))}. Needed keys: "
                                    f"{', '.join(keys)}.{(' ' + hint) if hint else ''}")


def check_bool(who: str, name: str, value) -> bool:
    """``value`` as a bool; anything but True/False (or a NumPy bool) is a ConfigError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{who}: expected {name} to be True or False, got {value!r} "
                          f"({type(value).__name__}).")
    return bool(value)


def check_int(who: str, name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{who}: expected {name} to be an integer, got {value!r} "
                          f"({type(value).__name__}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{who}: expected {name} >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{who}: expected {name} <= {maximum}, got {value}.")
    return value


def check_float(who: str, name: str, value, minimum: float | None = None, maximum: float | None = None,
                min_inclusive: bool = True, max_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{who}: expected {name} to be a number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value):
        raise ConfigError(f"{who}: expected {name} to be a finite number, got {value}.")
    if minimum is not None and (value < minimum or (not min_inclusive and value == minimum)):
        raise ConfigError(f"{who}: expected {name} {'>=' if min_inclusive else '>'} {minimum}, got {value}.")
    if maximum is not None and (value > maximum or (not max_inclusive and value == maximum)):
        raise ConfigError(f"{who}: expected {name} {'<=' if max_inclusive else '<'} {maximum}, got {value}.")
    return value


@dataclass(frozen=True)
class Range:
    """The values one numeric setting may take: an integer (``kind="int"``) or a finite number
    (``kind="number"``) from ``lo`` to ``hi`` (None: unbounded), each end included unless
    ``lo_open`` / ``hi_open``. The one definition of a setting's range: a config validates with
    :meth:`check` (its messages are ``check_int`` / ``check_float``'s), the command line
    refuses an option or a saved option with :meth:`problem`."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("int", "number") or (self.kind == "int" and (self.lo_open or self.hi_open)):
            raise ValueError(f"Range: expected kind 'int' (closed ends) or 'number', got {self!r}.")

    def check(self, who: str, name: str, value: object) -> int | float:
        """``value`` as an int or float within the range; :class:`ConfigError` otherwise."""
        if self.kind == "int":
            return check_int(who, name, value, self.lo, self.hi)
        return check_float(who, name, value, self.lo, self.hi, not self.lo_open, not self.hi_open)

    def describe(self) -> str:
        """``"an integer >= 1"``, ``"a finite number in [0, 1)"``, ...: what the range admits."""
        def num(v):
            return f"{v}" if self.kind == "int" else f"{v:g}"
        lo, hi = self.lo, self.hi
        want = "an integer" if self.kind == "int" else "a finite number"
        if lo is not None and hi is not None:
            return (f"{want} in {'(' if self.lo_open else '['}{num(lo)}, {num(hi)}"
                    f"{')' if self.hi_open else ']'}")
        if lo is not None:
            return f"{want} {'>' if self.lo_open else '>='} {num(lo)}"
        if hi is not None:
            return f"{want} {'<' if self.hi_open else '<='} {num(hi)}"
        return want

    def problem(self, v: object) -> str | None:
        """Why ``v`` is not in the range (``"expected an integer >= 1, got 0"``), or None."""
        want = self.describe()
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (
                self.kind == "int" and not isinstance(v, int)):
            return f"expected {want}, got {v!r:.60}"
        lo, hi = self.lo, self.hi
        if not math.isfinite(v) or (lo is not None and (v < lo or (v == lo and self.lo_open))) or (
                hi is not None and (v > hi or (v == hi and self.hi_open))):
            return f"expected {want}, got {v:.6g}" if self.kind == "number" else f"expected {want}, got {v}"
        return None


def check_choice(who: str, name: str, value, choices) -> str:
    if value not in choices:
        raise ConfigError(f"{who}: expected {name} to be one of {', '.join(repr(c) for c in choices)}, "
                          f"got {value!r}.")
    return value


def make_rng(who: str, seed) -> np.random.Generator:
    """``np.random.default_rng(seed)`` for a public ``seed`` argument: None, an integer >= 0, a
    sequence of them, a SeedSequence, BitGenerator or Generator. Anything else (a negative or
    fractional number, a string ...) raises :class:`ConfigError` instead of NumPy's error."""
    if not isinstance(seed, (bool, np.bool_, float, np.floating, str, bytes)):
        try:
            return np.random.default_rng(seed)
        except (TypeError, ValueError, OverflowError):
            pass
    raise ConfigError(f"{who}: expected seed to be None or an integer >= 0, got {seed!r:.60} "
                      f"({type(seed).__name__}).")


def check_dtype_arg(who: str, dtype) -> np.dtype:
    dt = None
    if dtype is not None and not isinstance(dtype, (bool, numbers.Number)):
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            dt = None
    # `dt not in FLOAT_DTYPES` alone is not enough: np.dtype("float64") == None is True.
    if dt is None or dt not in FLOAT_DTYPES:
        raise ConfigError(f"{who}: expected dtype float32 or float64, got {dtype!r}.")
    return dt
