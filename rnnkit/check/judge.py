"""Judging a record (:func:`rnnkit.check.runner.run_function`) against :mod:`rnnkit.scratch`.

No learner code runs here. For each case the learner's result is laid out as an ordered list
of *quantities* (the order the equations compute them: for ``lstm_cell`` ``ft, it, cct,
c_next, ot, a_next, yt_pred``, then the cache; for the ``*_forward`` functions step by step),
each compared with the reference. The first one that differs is the *first wrong quantity*.

The likely cause is found by testing hypotheses: every catalogued mistake that can affect the
function (:data:`rnnkit.check.model.CATALOGUE`) is recomputed with :mod:`rnnkit.check.model`
on the same inputs and compared, quantity by quantity, with what the learner returned. A
mistake that reproduces every quantity of every case is the likely cause; one that reproduces
the first wrong quantity (and beyond) is the likely cause of the first error. Behaviour that
needs no recomputation is tested directly: an input changed in place, a function right on the
notebook's sizes and wrong on others (a hard-coded size), a helper that is wrong (the learner's
loop around their own cell reproduces their result).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..scratch import LSTMCache, RNNCache
from . import model
from .cases import ALIASES, INFO, cases_for, forward_cache, reference, reference_forward
from .model import CATALOGUE, LAYOUTS

RTOL, ATOL = 1e-5, 1e-6


@dataclass
class FunctionResult:
    """The verdict on one function (the fields of the ``--json`` report, plus details for the
    text and HTML reports)."""
    name: str
    status: str                          # "pass" | "fail" | "error" | "missing"
    first_wrong: str | None = None
    time_step: int | None = None
    max_abs_error: float | None = None
    message: str = ""
    warnings: list = field(default_factory=list)
    cause: str | None = None             # catalogue id of the likely cause (not in the JSON)
    case: str | None = None              # the case the first error was found on
    expected: str | None = None          # compact values, for the text / HTML reports
    got: str | None = None
    where: str | None = None             # the learner's line, for errors

    def to_json(self) -> dict:
        """The function's entry in the ``--json`` report."""
        return {"name": self.name, "status": self.status, "first_wrong": self.first_wrong,
                "time_step": self.time_step, "max_abs_error": self.max_abs_error,
                "message": self.message, "warnings": list(self.warnings)}


class Bad:
    """A quantity that could not be taken from the learner's result (the reason why)."""

    def __init__(self, reason):
        self.reason = reason


# ----------------------------------------------------------------------------------------
# Laying a result out as quantities
# ----------------------------------------------------------------------------------------

def _item(obj, i, what):
    if isinstance(obj, Bad):
        return obj
    if not isinstance(obj, (tuple, list)) or len(obj) <= i:
        return Bad(f"{what} is missing")
    return obj[i]


def _entry(cache, layout, kind, i):
    """Entry ``i`` of a one-step cache in the learner's layout (by name for scratch's own
    caches, by position for the learner's tuples)."""
    fields = LAYOUTS[kind][layout]
    if isinstance(cache, Bad):
        return cache
    if isinstance(cache, (RNNCache, LSTMCache)) and layout != "rnnkit":
        return getattr(cache, fields[i])
    if not isinstance(cache, (tuple, list)):
        return Bad(f"the cache is {_what(cache)}, expected a tuple {_tuple_text(fields)}")
    if len(cache) != len(fields):
        return Bad(f"the cache has {len(cache)} entries, expected {len(fields)}: {_tuple_text(fields)}")
    return cache[i]


def _tuple_text(names):
    return "(" + ", ".join(names) + ")"


def _what(v):
    if v is None:
        return "None"
    if isinstance(v, np.ndarray):
        return f"an array of shape {tuple(v.shape)}"
    if isinstance(v, (tuple, list)):
        return f"a {type(v).__name__} of {len(v)}"
    return f"a {type(v).__name__}"


def _slice(arr, t):
    if isinstance(arr, Bad):
        return arr
    try:
        a = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        return Bad(f"not an array of numbers ({_what(arr)})")
    if a.ndim != 3 or a.shape[2] <= t:
        return Bad(f"shape {tuple(a.shape)}")
    return a[:, :, t]


_CELL_ORDER = {"rnn": ("a_next", "yt_pred"),
               "lstm": ("ft", "it", "cct", "c_next", "ot", "a_next", "yt_pred")}
_OUTPUTS = {"rnn_cell": ("a_next", "yt_pred", "cache"), "lstm_cell": ("a_next", "c_next", "yt_pred", "cache"),
            "rnn_forward": ("a", "y_pred", "caches"), "lstm_forward": ("a", "y", "c", "caches")}
_GRADS = {"rnn_cell_backward": ("dxt", "da_prev", "dWax", "dWaa", "dba"),
          "lstm_cell_backward": ("dWo", "dbo", "dWc", "dbc", "dWi", "dbi", "dWf", "dbf",
                                 "dc_prev", "da_prev", "dxt"),
          "rnn_backward": ("da0", "dWax", "dWaa", "dba"),
          "lstm_backward": ("da0", "dc0", "dWo", "dbo", "dWc", "dbc", "dWi", "dbi", "dWf", "dbf")}
_SEQ_NAME = {"a_next": "a", "yt_pred": "y_pred", "c_next": "c"}


def structure_problem(info, out):
    """Why the learner's result does not have the function's structure (None if it has)."""
    if info.kind == "act":
        return None
    if info.kind in ("cellb", "seqb"):
        return None if isinstance(out, dict) else f"returned {_what(out)}; expected {info.returns}"
    names = _OUTPUTS[info.name]
    if out is None:
        return f"returned None; expected {info.returns}"
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        return f"returned {_what(out)}; expected {info.returns}"
    return None


def _cell_items(info, out, layout, cache, prefix=""):
    """(name, value) of one cell step: outputs and gates in the equations' order, then the
    rest of the cache."""
    kind = info.cell
    fields = LAYOUTS[kind][layout]
    outs = _OUTPUTS["rnn_cell" if kind == "rnn" else "lstm_cell"]
    items = []
    for q in _CELL_ORDER[kind]:
        if q in ("ft", "it", "cct", "ot"):
            items.append((q, _entry(cache, layout, kind, fields.index(q))))
        else:
            items.append((q, out(outs.index(q))))
    for i, f in enumerate(fields):
        if f not in ("ft", "it", "cct", "ot"):
            items.append((f"cache[{i}] ({f})", _entry(cache, layout, kind, i)))
    return items


def quantities(info, out, case, layout, with_dc0=False):
    """The result ``out`` of ``info``'s function on ``case`` as ``[(name, t, value, mode)]``
    (mode "value", "shape" or "len"), in the order they are compared. ``with_dc0``: compare
    ``lstm_backward``'s ``dc0`` too (when the learner returns one; the course does not)."""
    if info.kind == "act":
        return [("output", None, out, "value")]
    if info.kind == "cell":
        return [(n, None, v, "value") for n, v in
                _cell_items(info, lambda i: _item(out, i, "an output"), layout, _item(out, len(out) - 1, "cache")
                            if isinstance(out, (tuple, list)) else Bad("no cache"))]
    T = case.sizes["T_x"]
    if info.kind == "seq":
        names = _OUTPUTS[info.name]
        arrays = {n: _item(out, i, n) for i, n in enumerate(names)}
        caches = arrays["caches"]
        steps, x = _item(caches, 0, "caches[0]"), _item(caches, 1, "caches[1]")
        items = [(n, None, arrays[n], "shape") for n in names[:-1]]
        for t in range(T):
            step = _item(steps, t, f"the cache of step {t}")

            def get(i, t=t):
                return _slice(arrays[names[i]], t)
            seq_out = {0: 0, 1: 1} if info.cell == "rnn" else {0: 0, 1: 2, 2: 1}   # cell -> seq index
            for n, v in _cell_items(info, lambda i: get(seq_out[i]), layout, step):
                items.append((_SEQ_NAME.get(n, n) if info.cell == "lstm" or n != "yt_pred" else "y_pred",
                              t, v, "value"))
        items.append(("caches[0]", None, steps, "len"))
        items.append(("caches[1] (x)", None, x, "value"))
        return items
    grads = out if isinstance(out, dict) else {}
    if info.kind == "cellb":
        return [(k, None, grads.get(k, Bad(f"the key '{k}' is missing")), "value") for k in _GRADS[info.name]]
    dx = grads.get("dx", Bad("the key 'dx' is missing"))
    items = [("dx", None, dx, "shape")]
    items += [("dx", t, _slice(dx, t), "value") for t in reversed(range(T))]
    for k in _GRADS[info.name]:
        if k == "dc0" and not with_dc0:
            continue                                    # the course does not return dc0
        items.append((k, None, grads.get(k, Bad(f"the key '{k}' is missing")), "value"))
    return items


# ----------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------

def _as_array(v):
    if isinstance(v, Bad):
        return None, v.reason
    if isinstance(v, dict):
        return v, None
    try:
        return np.asarray(v, dtype=np.float64), None
    except (TypeError, ValueError):
        return None, f"not an array of numbers ({_what(v)})"


def _shape_of(v):
    return tuple(np.shape(v)) if isinstance(v, np.ndarray) else None


def compare(ref, got, mode="value", equal_nan=False):
    """``(ok, max_abs_error or None, detail)`` for one quantity."""
    if mode == "len":
        if isinstance(ref, Bad) or isinstance(got, Bad):
            same = isinstance(ref, Bad) and isinstance(got, Bad)
            return same, None, "" if same else (got.reason if isinstance(got, Bad) else "")
        if not isinstance(got, (list, tuple)):
            return False, None, f"caches[0] is {_what(got)}; expected a list of one cache per step"
        if len(got) != len(ref):
            return False, None, f"caches[0] has {len(got)} caches; expected one per time step ({len(ref)})"
        return True, 0.0, ""
    if isinstance(ref, Bad):
        return isinstance(got, Bad), None, ""
    r, _ = _as_array(ref)
    g, why = _as_array(got)
    if g is None:
        return False, None, why
    if isinstance(r, dict):
        if not isinstance(g, dict):
            return False, None, f"{_what(got)}; expected the parameters dict"
        if set(g) != set(r):
            return False, None, "the parameters dict has other keys"
        worst = 0.0
        for k in r:
            ok, err, why = compare(r[k], g[k], "value", equal_nan)
            if not ok:
                return False, err, f"parameters['{k}'] differs" + (f" ({why})" if why else "")
            worst = max(worst, err or 0.0)
        return True, worst, ""
    if isinstance(g, dict):
        return False, None, f"{_what(got)}; expected an array"
    if g.shape != r.shape:
        return False, None, f"shape {g.shape}"
    if mode == "shape":
        return True, 0.0, ""
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(g - r)
        close = diff <= ATOL + RTOL * np.abs(r)
        if equal_nan:
            close |= (np.isnan(g) & np.isnan(r)) | ((g == r) & np.isinf(r))
    err = float(diff.max()) if diff.size else 0.0
    err = err if np.isfinite(err) else None
    return bool(close.all()), err, "" if np.isfinite(g).all() or equal_nan else "NaN or infinity where numbers belong"


@dataclass
class Wrong:
    """The first wrong quantity of one case."""
    index: int
    name: str
    t: int | None
    err: float | None
    detail: str
    ref: object
    got: object


def first_wrong(ref_items, got_items):
    """The first quantity where ``got_items`` differs from ``ref_items`` (None: all right)."""
    for i, ((name, t, r, mode), (_, _, g, _)) in enumerate(zip(ref_items, got_items)):
        ok, err, detail = compare(r, g, mode)
        if not ok:
            return Wrong(i, name, t, err, detail, r, g)
    return None


def agreement(a_items, b_items):
    """How many leading quantities two results share (NaN equal to NaN)."""
    for i, ((_, _, a, mode), (_, _, b, _)) in enumerate(zip(a_items, b_items)):
        if not compare(a, b, mode, equal_nan=True)[0]:
            return i
    return len(a_items)


# ----------------------------------------------------------------------------------------
# Judging a record
# ----------------------------------------------------------------------------------------

def _symbolic(shape, sizes):
    names = {}
    for k in ("n_x", "n_a", "n_y", "m", "T_x"):
        if k in sizes:
            names.setdefault(sizes[k], []).append(k)
    if "n_a" in sizes and "n_x" in sizes:
        names.setdefault(sizes["n_a"] + sizes["n_x"], []).append("n_a+n_x")
    parts = [names[d][0] if len(names.get(d, [])) == 1 else str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _compact(v, limit=4):
    if isinstance(v, Bad):
        return v.reason
    if isinstance(v, dict):
        return "{" + ", ".join(sorted(map(str, v))) + "}"
    try:
        a = np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return _what(v)
    body = " ".join(f"{x:.4g}" for x in a[:limit])
    return f"[{body}{' ...' if a.size > limit else ''}]"


def _layout_text(kind, layout):
    return _tuple_text(LAYOUTS[kind][layout])


class _Case:
    """One case's runs, as the judge needs them."""

    def __init__(self, info, index, case, run, layout):
        self.index, self.case, self.run, self.layout = index, case, run, layout
        self.info = info
        self.ok = run is not None and run.get("ok", False)
        self.value = run.get("value") if self.ok else None
        self.with_dc0 = isinstance(self.value, dict) and "dc0" in self.value
        self.ref = self.items(reference(info, case))
        self.structure = structure_problem(info, self.value) if self.ok else None
        self.got = self.items(self.value) if self.ok and not self.structure else None
        self.wrong = first_wrong(self.ref, self.got) if self.got is not None else None
        self.passed = self.ok and not self.structure and self.wrong is None

    def items(self, out):
        """``out`` laid out as this case's quantities (the same layout and keys as the
        learner's result)."""
        return quantities(self.info, out, self.case, self.layout, self.with_dc0)


def _hypothesis_out(info, case, mis):
    m = model.FUNCTIONS[info.name]
    if info.kind in ("act", "cell", "seq"):
        with np.errstate(all="ignore"):
            return m(*case.args, mis=mis)
    cache = forward_cache(info, reference_forward(info, case.args))
    with np.errstate(all="ignore"):
        return m(*case.grads, cache, mis=mis)


def _rank(info, ran, failing, mistakes):
    """``(mistake, full)``: the hypothesis that reproduces the learner's results furthest.

    A candidate must reproduce the first wrong quantity of every failing case; ``full`` means
    it reproduces every quantity of every case that ran (the passing ones too)."""
    best, best_score = None, None
    for mis in mistakes:
        total, full = 0, True
        for c in ran:
            try:
                hyp = c.items(_hypothesis_out(info, c.case, mis))
            except Exception:               # noqa: BLE001 - a mistake that cannot apply here
                total = -1
                break
            n = agreement(hyp, c.got)
            if c.wrong is not None and n <= c.wrong.index:
                total = -1
                break
            full &= n == len(c.got)
            total += n
        if total < 0:
            continue
        score = (full, total)
        if best_score is None or score > best_score:
            best, best_score = mis, score
    return (best, best_score[0]) if best else (None, False)


def _where_text(where):
    if not where:
        return None
    f = where["file"]
    place = f if f.startswith("<") else f.rsplit("/", 1)[-1]
    return f"{place}, line {where['line']}, in {where['function']}: {where['code']}"


def _error_message(name, err, case_label):
    t, msg = err["type"], err["message"]
    if t == "RecursionError":
        text = f"{name} raised RecursionError ({msg}): a function calls itself without end."
    elif t == "MemoryError":
        text = (f"{name} ran out of memory (MemoryError{': ' + msg if msg else ''}): it tries to "
                f"allocate more than the checker allows.")
    elif t == "SystemExit":
        text = f"{name} ended the program: {msg}. A function should return its results, not exit."
    elif t == "Timeout":
        text = f"{name} {msg} (an infinite loop?)."
    elif t == "Crash":
        text = f"{name} {msg}."
    else:
        text = f"{name} raised {t}: {msg}"
    return f"{text} (on {case_label})" if case_label else text


class Judge:
    """Judges records in the order of :data:`rnnkit.check.cases.FUNCTION_NAMES`, keeping the
    verdicts so that a function can name the wrong helper it depends on."""

    def __init__(self):
        self.results = {}

    def judge(self, record) -> FunctionResult:
        """The verdict on one record (an unexpected result the judge cannot handle is reported
        as an error of that function, never a crash of the whole report)."""
        try:
            res = self._judge(record)
        except Exception as exc:                   # noqa: BLE001 - one function, not the report
            res = FunctionResult(record.get("name", "?"), "error", message=(
                f"rnnkit check could not judge what {record.get('name', 'the function')} returned "
                f"({type(exc).__name__}: {exc}); please report this with the function."))
        self.results[res.name] = res
        return res

    # ------------------------------------------------------------------------------------
    def _judge(self, record):
        name = record["name"]
        info = INFO[name]
        if record.get("found_as") is None:
            names = (name,) + ALIASES.get(name, ())
            return FunctionResult(name, "missing", message=f"{' or '.join(names)} is not defined.")
        if "not_callable" in record:
            return FunctionResult(name, "error", message=f"{name} is defined but is a "
                                  f"{record['not_callable']}, not a function.")
        if "fatal" in record:                  # the child process died or hung in this function
            err = record["fatal"]
            return FunctionResult(name, "error", message=_error_message(name, err, None), cause=None)
        cases = cases_for(name)
        warnings = []
        if info.kind in ("cellb", "seqb"):
            chosen, layout, own, w = self._pick_layout(info, record, cases)
            warnings += w
        else:
            layout = None
            runs = {r["case"]: r for r in record["runs"] if r["variant"] == "plain"}
            chosen = [self._case(info, i, c, runs.get(i)) for i, c in enumerate(cases)]
            own = []
        res = self._verdict(info, record, chosen, layout, warnings)
        if info.kind in ("cellb", "seqb"):
            self._own_forward_notes(info, res, chosen, own, layout)
        if record.get("found_as") not in (None, name):
            res.warnings.insert(0, f"checked {record['found_as']} (the course's name for {name}).")
        return res

    def _case(self, info, i, case, run, layout=None):
        if layout is None and info.kind in ("cell", "seq"):
            layout = self._learner_layout(info, case, run)
        return _Case(info, i, case, run, layout)

    def _learner_layout(self, info, case, run):
        if info.cell == "lstm":
            return "course"
        value = run.get("value") if run and run.get("ok") else None
        cache = None
        if isinstance(value, (tuple, list)) and len(value) == 3:
            cache = value[2]
            if info.kind == "seq":
                cache = cache[0][0] if (isinstance(cache, (tuple, list)) and len(cache) == 2
                                        and isinstance(cache[0], (list, tuple)) and cache[0]) else None
        return model.cache_layout("rnn", cache, case.sizes["n_a"], case.sizes["n_y"]) or "course"

    def _pick_layout(self, info, record, cases):
        own = [r for r in record["runs"] if r["variant"] == "own"]
        own_layout = next((r["layout"] for r in own if r.get("layout")), None)
        order = list(model.BACKWARD_LAYOUTS[info.cell])
        if own_layout in order:
            order.remove(own_layout)
            order.insert(0, own_layout)
        tried = []
        for layout in order:
            runs = {r["case"]: r for r in record["runs"] if r["variant"] == "layout:" + layout}
            chosen = [self._case(info, i, c, runs.get(i), layout) for i, c in enumerate(cases)]
            if all(c.passed for c in chosen):
                return chosen, layout, own, []
            tried.append((layout, chosen))
        # none passes: judge on the learner's own layout, else the one that gets furthest
        def progress(item):
            _, ch = item
            return (sum(c.ok for c in ch), sum(c.wrong.index if c.wrong else 0 for c in ch))
        layout, chosen = tried[0] if own_layout in order else max(tried, key=progress)
        return chosen, layout, own, []

    def _verdict(self, info, record, chosen, layout, warnings):
        name = info.name
        ordinary = [c for c in chosen if c.case.kind != "robustness"]
        robust = [c for c in chosen if c.case.kind == "robustness"]
        res = FunctionResult(name, "pass", warnings=list(warnings))
        # warnings NumPy gave on otherwise right results, and robustness cases
        for c in ordinary if all(c.passed for c in ordinary) else ():
            for w in (c.run or {}).get("warnings", []):
                text = f"NumPy warned \"{w}\" on {c.case.label}"
                if c.passed and name == "sigmoid" and "overflow" in w:
                    text += ("; the values are right, but exp(-x) overflows for very negative x "
                             "(a stable form: exp(x) / (1 + exp(x)) where x < 0)")
                if text not in res.warnings:
                    res.warnings.append(text)
        mutated = [(c, n) for c in chosen if c.run for n in c.run.get("mutated", [])]
        errors = [c for c in ordinary if c.run is not None and not c.ok]
        structure = [c for c in ordinary if c.structure]
        wrong = [c for c in ordinary if c.wrong is not None]
        for c in robust if not (mutated or errors or structure or wrong) else ():
            if c.ok and not c.passed:
                hint = ("it subtracts one maximum for the whole array, so a column far below the "
                        "others becomes exp(-1000) / exp(-1000) = 0/0 = NaN; subtract each column's "
                        "maximum (np.max(x, axis=0, keepdims=True)) to make every column exact"
                        if self._explains(info, c, "softmax.global_max") else
                        "compare with the reference on this input")
                res.warnings.append(f"not robust: wrong on {c.case.label} ({hint}).")
        if not (mutated or errors or structure or wrong):
            return res
        res.status = "error" if errors else "fail"
        example = ordinary[0]
        # 1. the first wrong quantity (the first case that is wrong, in the case order)
        first = next((c for c in ordinary if c.wrong is not None or c.structure or
                      (c.run is not None and not c.ok)), None)
        if first is not None and first.wrong is not None:
            w = first.wrong
            res.first_wrong, res.time_step, res.max_abs_error = w.name, w.t, w.err
            res.case = first.case.label
            res.expected, res.got = _compact(w.ref), _compact(w.got)
            shape = _shape_of(np.asarray(w.ref)) if not isinstance(w.ref, (Bad, dict)) else None
            if w.detail.startswith("shape") and shape is not None:
                got_shape = np.shape(w.got)
                res.expected = f"shape {shape} = {_symbolic(shape, first.case.sizes)}"
                res.got = f"shape {tuple(got_shape)} = {_symbolic(got_shape, first.case.sizes)}"
        elif first is not None and first.structure:
            res.case = first.case.label
        # 2. the likely cause
        cause, text = self._cause(info, record, ordinary, mutated, errors, structure, wrong, example)
        res.cause = cause
        res.message = self._sentence(info, res, first, cause, text, mutated)
        if first is not None and first.run is not None and not first.ok:
            res.where = _where_text(first.run["error"].get("where"))
        return res

    def _explains(self, info, c, mis):
        try:
            hyp = c.items(_hypothesis_out(info, c.case, mis))
        except Exception:                     # noqa: BLE001
            return False
        return c.got is not None and agreement(hyp, c.got) == len(c.got)

    def _dependency(self, info, record, ran):
        """The helper the learner's function calls is wrong, and reproduces their result."""
        kind = "composed" if info.kind in ("cell", "seq") else None
        if info.kind == "seqb":
            kind = "composed:" + ran[0].layout
        if kind is None:
            return None
        runs = {r["case"]: r for r in record["runs"] if r["variant"] == kind}
        wrong_somewhere = False
        for c in ran:
            r = runs.get(c.index)
            if r is None or not r.get("ok"):
                return None
            comp = c.items(r["value"]) if structure_problem(info, r["value"]) is None else None
            if comp is None or agreement(comp, c.got) != len(c.got):
                return None
            wrong_somewhere |= first_wrong(c.ref, comp) is not None
        if not wrong_somewhere:
            return None
        helpers = ("sigmoid", "softmax") if info.kind == "cell" else info.calls
        if info.kind == "cell" and info.cell == "rnn":
            helpers = ("softmax",)
        bad = [h for h in helpers if h in self.results and self.results[h].status in ("fail", "error")]
        return bad or list(helpers)

    def _cause(self, info, record, ordinary, mutated, errors, structure, wrong, example):
        name = info.name
        if mutated:
            c, arg = mutated[0]
            return "inplace", (f"{name} changes its input {arg} in place (e.g. {arg} += ... or "
                               f"{arg}[...] = ...); a function must leave its inputs unchanged: "
                               f"compute new arrays instead.")
        ran = [c for c in ordinary if c.got is not None]
        failing = [c for c in ran if c.wrong is not None]
        if failing and not errors and not structure:
            helpers = self._dependency(info, record, ran)
            if helpers:
                h = " / ".join(helpers)
                detail = "; ".join(f"{x}: {self.results[x].message}" for x in helpers
                                   if x in self.results and self.results[x].message)
                return "dependency", (f"{name} itself does the right steps, but the {h} it calls "
                                      f"is wrong: fix {h} first" + (f" ({detail})" if detail else "") + ".")
        ranked = _rank(info, ran, failing, model.mistakes_for(name)) if failing else (None, False)
        if ranked[1]:
            return ranked[0], CATALOGUE[ranked[0]].hint
        extreme_only = [c for c in ordinary if not c.passed]
        if extreme_only and all(c.case.kind == "extreme" for c in extreme_only):
            mis = "softmax.no_max" if name == "softmax" else "sigmoid.overflow"
            return mis, (f"{name} is right on ordinary inputs and wrong on {extreme_only[0].case.label}: "
                         + CATALOGUE[mis].hint)
        if example.passed and any(c.case.kind == "sizes" and not c.passed for c in ordinary):
            other = next(c for c in ordinary if c.case.kind == "sizes" and not c.passed)
            return "hardcoded", (f"{name} is right on the notebook's example but not on "
                                 f"{other.case.label}: a size is hard-coded to the example (read "
                                 f"n_x, m, T_x from the input's shape and n_a, n_y from the weights), "
                                 f"or it reads one of the notebook's variables instead of its own "
                                 f"argument.")
        if failing:
            if ranked[0] is not None:
                return ranked[0], (f"{CATALOGUE[ranked[0]].hint} That explains the first "
                                   f"wrong quantity; something later is still different, so look "
                                   f"for a second mistake too.")
            w = failing[0].wrong
            if w.detail.startswith("shape"):
                return "shape", (f"{w.name} has the wrong shape: a size is read from the wrong "
                                 f"array or dimension.")
            return None, f"No catalogued mistake reproduces this; {_equation_hint(info, w.name)}"
        if structure:
            s = structure[0].structure
            if "returned None" in s:
                return "returns_none", (f"{name} {s}: it is unfinished, or a return statement is "
                                        f"missing.")
            return None, f"{name} {s}."
        if errors:
            err = errors[0].run["error"]
            if err["type"] in ("ValueError", "IndexError") and ("shape" in err["message"] or "broadcast"
                                                               in err["message"] or "index" in err["message"]):
                return "shape", (_error_message(name, err, errors[0].case.label) +
                                 " A size is probably read from the wrong array or dimension.")
            return None, _error_message(name, err, errors[0].case.label)
        return None, ""

    def _sentence(self, info, res, first, cause, text, mutated):
        parts = []
        if res.first_wrong is not None:
            at = f" at time step {res.time_step}" if res.time_step is not None else ""
            if res.max_abs_error is not None:
                size = f"max |error| {res.max_abs_error:.3g}"
            elif res.got and res.got.startswith("shape"):
                size = f"expected {res.expected}, got {res.got}"
            else:
                size = first.wrong.detail or "not comparable"
            parts.append(f"{res.first_wrong}{at} is wrong on {res.case} ({size}).")
        elif mutated and first is None:
            arg = mutated[0][1]
            res.first_wrong = arg
            parts.append(f"The results are right, but {arg} is changed in place.")
        recomputed = cause in CATALOGUE and CATALOGUE[cause].functions
        parts.append(("Likely cause: " if recomputed else "") + text)
        return " ".join(p for p in parts if p)

    def _own_forward_notes(self, info, res, chosen, own, layout):
        fwd = info.forward
        own_layouts = {r.get("layout") for r in own if r.get("layout")}
        if info.cell == "rnn" and "notebook" in own_layouts:
            res.warnings.append(
                f"your {fwd} stores the notebook's cache {_layout_text('rnn', 'notebook')}, which has "
                f"no a_prev: {info.name} needs it (dWaa = dz @ a_prev.T); store the course's "
                f"{_layout_text('rnn', 'course')}.")
            return
        if own_layouts and layout not in own_layouts and res.status == "pass":
            res.warnings.append(f"{info.name} works on the cache layout {_layout_text(info.cell, layout)}, "
                                f"but your {fwd} stores another one: make them agree.")
            return
        cases = {c.index: c for c in chosen}
        for r in own:
            c = cases.get(r["case"])
            if c is None or c.got is None or not r.get("ok") or r.get("layout") != layout:
                continue
            value = r.get("value")
            if structure_problem(info, value) is not None:
                continue
            if agreement(c.items(value), c.got) == len(c.got):
                continue                  # the learner's own cache changes nothing
            note = (f"with the cache your own {fwd} returns, the gradients differ from those on a "
                    f"correct cache: {fwd} is wrong (see its report)")
            if res.status == "pass":
                res.warnings.append(f"{note}; {info.name} itself is right: fix {fwd} first.")
            else:
                res.warnings.append(f"{note}, and {info.name} is wrong on a correct cache too, as "
                                    f"reported above.")
            return


_EQUATIONS = {
    "sigmoid": "sigmoid(x) = 1 / (1 + exp(-x))",
    "softmax": "softmax(x) = exp(x - max) / sum(exp(x - max), axis=0), max over axis 0 (or the whole array)",
    "a_next": "a_next = tanh(Waa @ a_prev + Wax @ xt + ba) (LSTM: ot * tanh(c_next))",
    "yt_pred": "yt_pred = softmax(Wy @ a_next + by)",
    "ft": "ft = sigmoid(Wf @ concat + bf), concat = [a_prev; xt]",
    "it": "it = sigmoid(Wi @ concat + bi)",
    "cct": "cct = tanh(Wc @ concat + bc)",
    "c_next": "c_next = ft * c_prev + it * cct",
    "ot": "ot = sigmoid(Wo @ concat + bo)",
}


def _equation_hint(info, q):
    base = info.name if q == "output" else q.split(" ")[0]
    base = {"a": "a_next", "y": "yt_pred", "y_pred": "yt_pred", "c": "c_next"}.get(base, base)
    if base in _EQUATIONS:
        return f"compare {q} with its equation: {_EQUATIONS[base]}."
    if base.startswith("cache"):
        return f"{q} should hold the value of that name the step computed (or was given)."
    return f"compare {q} with the equations in rnnkit.scratch.{info.name}'s docstring."
