"""Running the learner's functions: the only part of the checker that calls learner code.

:func:`run_function` calls one function on every case (:func:`rnnkit.check.cases.cases_for`)
and returns a *record*: for each case and variant, what the function returned (or the
exception it raised, with the learner's own line), which inputs it changed in place, and the
warnings NumPy gave. Variants:

* ``plain``: the function on the case's inputs;
* ``layout:NAME`` (backward functions): on a correct cache in layout ``NAME``
  (:data:`rnnkit.check.model.LAYOUTS`);
* ``own`` (backward functions): on the cache the learner's own forward function returns;
* ``composed`` / ``composed:NAME``: the model's correct code around the learner's own helper
  (their sigmoid/softmax in a cell, their cell in a loop), to test "the helper is wrong".

Records are plain Python objects; :func:`encode` / :func:`decode` turn them into JSON and back
(arrays as lists; never pickle), for the way from the child process to the parent.
"""

from __future__ import annotations

import contextlib
import io
import linecache
import math
import os
import traceback
import warnings

import numpy as np

from . import model
from .cases import ALIASES, INFO, cases_for, forward_cache, reference_forward

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))
_STDLIB = os.path.dirname(os.path.abspath(contextlib.__file__))


def find(ns, name):
    """``(object, name it was found under)`` for ``name`` or one of its aliases in ``ns``."""
    for n in (name,) + ALIASES.get(name, ()):
        if n in ns:
            return ns[n], n
    return None, None


# ----------------------------------------------------------------------------------------
# Calling learner code
# ----------------------------------------------------------------------------------------

def _copy(v):
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return type(v)(*(_copy(x) for x in v))
    if isinstance(v, (tuple, list)):
        return type(v)(_copy(x) for x in v)
    return v


def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))
    return True


def _learner_frame(filename):
    f = os.path.abspath(filename) if not filename.startswith("<") else filename
    return not (f.startswith((_PACKAGE_DIR, _NUMPY_DIR, _STDLIB)) or "site-packages" in f)


def error_info(exc):
    """The exception as a small dict: type, message, and the learner's innermost line."""
    if isinstance(exc, SystemExit):
        message = f"sys.exit({exc.code!r}) was called"
    else:
        message = " ".join(str(exc).split())[:400]
    info = {"type": type(exc).__name__, "message": message}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _learner_frame(f.filename)]
    if frames:
        f = frames[-1]
        line = f.line or linecache.getline(f.filename, f.lineno).strip()
        info["where"] = {"file": f.filename, "line": f.lineno, "function": f.name,
                         "code": (line or "")[:200]}
    return info


def call(fn, args, names):
    """Call ``fn`` on copies of ``args``: ``(entry)`` with ``ok``, ``value`` or ``error``,
    ``mutated`` (names of inputs it changed) and ``warnings`` (NumPy's, each once)."""
    given = _copy(args)
    entry = {"ok": False, "mutated": [], "warnings": []}
    with warnings.catch_warnings(record=True) as caught, np.errstate(
            over="warn", invalid="warn", divide="warn", under="ignore"), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            entry["value"] = fn(*given)
            entry["ok"] = True
        except KeyboardInterrupt:
            raise
        except BaseException as exc:          # noqa: BLE001 - learner code may raise anything
            entry["error"] = error_info(exc)
    entry["mutated"] = [n for n, a, b in zip(names, args, given) if not _same(a, b)]
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    entry["warnings"] = seen[:5]
    return entry


# ----------------------------------------------------------------------------------------
# One function on every case
# ----------------------------------------------------------------------------------------

_ARG_NAMES = {"sigmoid": ("x",), "softmax": ("x",), "rnn_cell": ("xt", "a_prev", "parameters"),
              "rnn_forward": ("x", "a0", "parameters"),
              "lstm_cell": ("xt", "a_prev", "c_prev", "parameters"),
              "lstm_forward": ("x", "a0", "parameters")}


def _composed(info, ns):
    """The model's correct code around the learner's own helper, or None."""
    if info.kind == "cell":
        sig = find(ns, "sigmoid")[0] if info.cell == "lstm" else None
        smax = find(ns, "softmax")[0]
        sig, smax = (f if callable(f) else None for f in (sig, smax))
        if sig is None and smax is None:
            return None
        step = model.rnn_cell if info.cell == "rnn" else model.lstm_cell
        return lambda *args: step(*args, sig=sig, smax=smax)
    if info.kind == "seq":
        cell = find(ns, info.calls[0])[0]
        if not callable(cell):
            return None
        loop = model.rnn_forward if info.cell == "rnn" else model.lstm_forward
        return lambda *args: loop(*args, cell=cell)
    return None


def _in_layout(info, cache, layout):
    if info.kind == "cellb":
        return model.in_layout(info.cell, cache, layout)
    steps, x = cache
    return ([model.in_layout(info.cell, c, layout) for c in steps], x)


def run_function(name, ns):
    """Run the learner's ``name`` (looked up in the namespace ``ns``) on every case."""
    info = INFO[name]
    fn, found_as = find(ns, name)
    record = {"name": name, "found_as": found_as, "runs": []}
    if fn is None:
        return record
    if not callable(fn):
        record["not_callable"] = type(fn).__name__
        return record
    for i, case in enumerate(cases_for(name)):
        if info.kind in ("act", "cell", "seq"):
            names = _ARG_NAMES[name]
            record["runs"].append({"case": i, "variant": "plain", **call(fn, case.args, names)})
            composed = _composed(info, ns)
            if composed is not None:
                record["runs"].append({"case": i, "variant": "composed",
                                       **call(composed, case.args, names)})
            continue
        grad_names = ("da_next", "dc_next")[:len(case.grads)] if info.kind == "cellb" else ("da",)
        names = grad_names + ("cache" if info.kind == "cellb" else "caches",)
        ref_cache = forward_cache(info, reference_forward(info, case.args))
        cell_b = find(ns, "rnn_cell_backward" if info.cell == "rnn" else "lstm_cell_backward")[0]
        for layout in model.BACKWARD_LAYOUTS[info.cell]:
            cache = _in_layout(info, ref_cache, layout)
            record["runs"].append({"case": i, "variant": "layout:" + layout,
                                   **call(fn, case.grads + (cache,), names)})
            if info.kind == "seqb" and callable(cell_b):
                loop = model.rnn_backward if info.cell == "rnn" else model.lstm_backward
                record["runs"].append({"case": i, "variant": "composed:" + layout,
                                       **call(lambda d, c, loop=loop, cb=cell_b: loop(d, c, cell_backward=cb),
                                              case.grads + (cache,), names)})
        fwd = find(ns, info.forward)[0]
        if callable(fwd):
            out = call(fwd, case.args, _ARG_NAMES[info.forward])
            own = {"case": i, "variant": "own", "forward_ok": out["ok"], "layout": None}
            cache = _own_cache(info, out.get("value"))
            if cache is not None:
                sizes = case.sizes
                step = cache if info.kind == "cellb" else (cache[0][0] if _steps_ok(cache) else None)
                own["layout"] = model.cache_layout(info.cell, step, sizes["n_a"], sizes["n_y"])
                own.update(call(fn, case.grads + (cache,), names))
            else:
                own["ok"] = False
            record["runs"].append(own)
    return record


def _own_cache(info, out):
    index = 2 if info.cell == "rnn" else 3
    if isinstance(out, tuple) and len(out) > index:
        return out[index]
    return None


def _steps_ok(caches):
    return (isinstance(caches, tuple) and len(caches) == 2 and isinstance(caches[0], (list, tuple))
            and len(caches[0]) > 0)


# ----------------------------------------------------------------------------------------
# JSON for the way between the processes
# ----------------------------------------------------------------------------------------

_MAX_ELEMENTS = 200_000


def _float(v):
    v = float(v)
    return v if math.isfinite(v) else {"__float__": repr(v)}


def encode(obj, depth=0):
    """A JSON-able version of ``obj`` (arrays as nested lists with their dtype, tuples and
    dicts marked, non-finite floats as strings, anything else by its type name)."""
    if depth > 12:
        return {"__obj__": "nested too deeply"}
    if obj is None or isinstance(obj, (bool, str)):
        return obj if not isinstance(obj, str) else obj[:1000]
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _float(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf" or obj.size > _MAX_ELEMENTS:
            return {"__obj__": f"ndarray of dtype {obj.dtype} and shape {obj.shape}"}
        flat = obj.astype(np.float64).ravel()
        ok = np.isfinite(flat)
        data = flat.tolist() if ok.all() else [v if f else {"__float__": repr(v)}
                                               for v, f in zip(flat.tolist(), ok)]
        return {"__nd__": obj.dtype.str, "shape": list(obj.shape), "data": data}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(o, depth + 1) for o in obj]}
    if isinstance(obj, list):
        return [encode(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[k if isinstance(k, str) else repr(k), encode(v, depth + 1)]
                             for k, v in obj.items()]}
    return {"__obj__": type(obj).__name__}


class Opaque:
    """Something the learner returned that is not an array, number, tuple, list or dict."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return f"<{self.what}>"


def decode(obj):
    """The inverse of :func:`encode` (opaque objects become :class:`Opaque`)."""
    if isinstance(obj, list):
        return [decode(o) for o in obj]
    if not isinstance(obj, dict):
        return obj
    if "__nd__" in obj:
        data = [float(v["__float__"]) if isinstance(v, dict) else v for v in obj["data"]]
        return np.array(data, dtype=np.float64).reshape(obj["shape"]).astype(np.dtype(obj["__nd__"]))
    if "__tuple__" in obj:
        return tuple(decode(o) for o in obj["__tuple__"])
    if "__dict__" in obj:
        return {k: decode(v) for k, v in obj["__dict__"]}
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__obj__" in obj:
        return Opaque(obj["__obj__"])
    return obj
