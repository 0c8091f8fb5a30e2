"""Running a learner's file in a child process, with a time limit and a memory limit.

The parent (:func:`run_file`) reads the file (a ``.py`` file: each top-level statement; a
notebook: its code cells in order, markdown and outputs ignored) and starts
``python -m rnnkit.check.sandbox`` with the job as JSON on its standard input. The child caps
its address space (``resource.setrlimit(RLIMIT_AS)``), points its own standard output and
input at ``/dev/null`` (so nothing the learner prints can get in the way), runs every unit
(a statement or cell that raises is reported with the learner's line, and the others still
run), then runs :func:`rnnkit.check.runner.run_function` for each function, and writes one
JSON line per event on a private copy of the original standard output. Only JSON crosses.

The parent judges what arrives (:class:`rnnkit.check.judge.Judge`: no learner code runs in
the parent). It allows ``timeout`` seconds for each unit and each function: one that takes
longer (an infinite loop) or ends the process (``os._exit``, a crash) is reported, the child is
killed with its process group, and a fresh child goes on with the rest, skipping what hung.
"""

from __future__ import annotations

import ast
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError
from .judge import Judge
from .report import Report

_STARTUP_S = 30.0          # importing numpy in a fresh child on a busy machine


# ----------------------------------------------------------------------------------------
# Reading the file (parent)
# ----------------------------------------------------------------------------------------

_MAGIC = re.compile(r"^(\s*)([%!].*)$")
_PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%prun")


def _strip_magics(source):
    """IPython's ``%line`` magics and ``!shell`` lines become comments (plain Python runs here)."""
    return "\n".join(_MAGIC.sub(r"\1pass  # not run by rnnkit check: \2", line)
                     for line in source.splitlines())


def load_units(path):
    """The file's units of code: ``[{"label", "source", "filename"}]``, and a note on a
    problem that stops the whole file (a syntax error in a ``.py``), or None."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"rnnkit check: expected a .py file or a Jupyter notebook, got {path!r}, "
                          f"which does not exist.")
    if not p.is_file():
        raise ConfigError(f"rnnkit check: expected a .py file or a Jupyter notebook, got {path!r}, "
                          f"which is not a regular file.")
    suffix = p.suffix.lower()
    if suffix not in (".py", ".ipynb"):
        raise ConfigError(f"rnnkit check: expected a .py file or a Jupyter notebook (.ipynb), got "
                          f"{p.name!r}. Save the notebook's code as .py, or pass the .ipynb itself.")
    if p.stat().st_size > 50 * 2 ** 20:
        raise ConfigError(f"rnnkit check: expected a file of at most 50 MiB, got {p.name!r} of "
                          f"{p.stat().st_size / 2 ** 20:.0f} MiB.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"rnnkit check: cannot read {p.name!r} as UTF-8 text ({e}).") from None
    if suffix == ".py":
        try:
            tree = ast.parse(text, filename=str(p))
        except SyntaxError as e:
            return [], f"line {e.lineno} has a syntax error ({e.msg}); nothing in the file could run"
        lines = text.splitlines(True)
        units = []
        for node in tree.body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            last = node.end_lineno
            if units and first <= units[-1]["last_line"]:        # a; b on one line
                units[-1]["last_line"] = max(last, units[-1]["last_line"])
            else:
                units.append({"label": f"line {first}", "filename": str(p), "first_line": first,
                              "last_line": last})
        for u in units:
            u["source"] = "".join(lines[u["first_line"] - 1:u["last_line"]])
        return units, None
    try:
        nb = json.loads(text)
        cells = nb["cells"]
        assert isinstance(cells, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise ConfigError(f"rnnkit check: expected a Jupyter notebook (JSON with a list of "
                          f"'cells'), got {p.name!r}, which is not one.") from None
    units = []
    for n, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        count = cell.get("execution_count")
        label = f"cell {n}" + (f" (In [{count}])" if isinstance(count, int) else "")
        if src.lstrip().startswith("%%"):
            magic, _, body = src.lstrip().partition("\n")
            if magic.split()[0] not in _PYTHON_CELL_MAGICS:      # %%bash, %%html, %%writefile ...
                units.append({"label": label, "filename": f"<cell {n}>", "source": "",
                              "skipped": f"a {magic.split()[0]} cell"})
                continue
            src = "\n" + body                     # %%time and the like: the body is Python

        units.append({"label": label, "filename": f"<cell {n}>", "source": _strip_magics(src),
                      "first_line": 1})
    return units, None


# ----------------------------------------------------------------------------------------
# The parent
# ----------------------------------------------------------------------------------------

def _describe_exit(rc):
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"crashed the checker's child process ({name})"
    return f"ended the checker's child process (exit code {rc}: os._exit, or a crash)"


class _Child:
    def __init__(self, job):
        env = dict(os.environ)
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = "1"                           # one thread: small products, less memory
        # the child runs in the learner's folder and must still import this rnnkit
        home = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([home] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.stderr = tempfile.TemporaryFile()
        # started beside the rnnkit package (so a learner's file named numpy.py or rnnkit.py
        # cannot stand in for them); the child then moves to the learner's folder
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnkit.check.sandbox", "--child"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=home, env=env, start_new_session=True)
        try:
            self.proc.stdin.write(json.dumps(job).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def next_event(self, deadline):
        """The next JSON event, "timeout", "garbled" (not JSON), or None at the end of the output."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return "timeout"
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:                         # learner code wrote into the channel
            return "garbled"

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.close()

    def close(self):
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        self.sel.close()
        self.proc.stdout.close()
        self.stderr.close()
        return rc


def run_file(path, names, *, timeout=5.0, memory_mb=2048) -> Report:
    """Check the functions ``names`` defined by the file ``path`` (see the module docstring)."""
    from . import runner
    start = time.monotonic()
    units, fatal = load_units(path)
    notes, remaining, records, skip = {}, list(names), {}, set()
    if fatal is not None:
        judge = Judge()
        results = []
        for n in names:
            res = judge.judge({"name": n, "found_as": n, "fatal": {"type": "SyntaxError", "message": fatal}})
            res.message = f"The file could not run: {fatal}."
            results.append(res)
        return Report(str(path), results, notes=[fatal], seconds=time.monotonic() - start)
    for i, u in enumerate(units):
        if u.get("skipped"):
            notes[u["label"]] = f"{u['label']} was not run ({u['skipped']})"
            skip.add(i)
    cwd = str(Path(path).resolve().parent)
    while True:
        job = {"units": units, "skip": sorted(skip), "functions": remaining, "memory_mb": memory_mb,
               "argv0": str(path), "cwd": cwd}
        child = _Child(job)
        current, deadline = None, time.monotonic() + _STARTUP_S + timeout
        finished = False
        while True:
            ev = child.next_event(deadline)
            if ev in ("timeout", "garbled") or ev is None:
                rc = child.kill()
                what = {"timeout": f"did not finish within {timeout:g} s",
                        "garbled": "wrote into the checker's private channel, so its results could not be read"
                        }.get(ev) or _describe_exit(rc)
                if current is None:
                    for n in remaining:
                        records[n] = {"name": n, "found_as": n, "fatal": {"type": "Crash", "message": (
                            "could not be checked: the checker's child process " + what)}}
                    remaining = []
                elif current[0] == "unit":
                    label = units[current[1]]["label"]
                    notes[label] = f"{label} {what}; the checker skipped it" + (
                        " (an infinite loop?)" if ev == "timeout" else "")
                    skip.add(current[1])
                else:
                    n = current[1]
                    records[n] = {"name": n, "found_as": current[2], "fatal": {
                        "type": "Timeout" if ev == "timeout" else "Crash", "message": what}}
                    remaining.remove(n)
                break
            kind = ev.get("e") if isinstance(ev, dict) else None
            if kind == "note":
                notes.setdefault("memory", ev["text"])
            elif kind == "unit":
                current = ("unit", ev["i"])
            elif kind == "unit_done":
                if ev.get("error"):
                    err, label = ev["error"], units[ev["i"]]["label"]
                    where = err.get("where")
                    line = f" (line {where['line']}: {where['code']})" if where else ""
                    rest = "cells" if label.startswith("cell") else "statements"
                    notes.setdefault(label, f"{label} raised {err['type']}: {err['message']}{line}; "
                                            f"the other {rest} still ran")
                current = None
            elif kind == "fn":
                current = ("fn", ev["name"], ev.get("found_as"))
            elif kind == "record":
                rec = runner.decode(ev["record"])
                records[rec["name"]] = rec
                remaining.remove(rec["name"])
                current = None
            elif kind == "done":
                child.kill()                       # and whatever the learner's code started
                finished = True
                break
            deadline = time.monotonic() + timeout
        if finished or not remaining:
            break
    judge = Judge()
    results = [judge.judge(records.get(n, {"name": n, "found_as": None})) for n in names]
    return Report(str(path), results, notes=list(notes.values()), seconds=time.monotonic() - start)


# ----------------------------------------------------------------------------------------
# The child
# ----------------------------------------------------------------------------------------

def _child_main():
    import resource
    job = json.loads(sys.stdin.buffer.read().decode())
    limit = int(job["memory_mb"]) * 2 ** 20
    limited = True
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):                  # e.g. macOS refuses RLIMIT_AS
        limited = False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")
    sys.stdin = open(os.devnull)
    sys.argv = [job["argv0"]]

    def emit(obj):
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    import linecache

    import numpy  # noqa: F401 - import before the learner's code runs (and its limits bite)

    from .runner import encode, error_info, run_function

    if not limited:
        emit({"e": "note", "text": "this system refuses a memory limit (RLIMIT_AS): the learner's "
                                   "code ran without one"})
    os.chdir(job["cwd"])                           # the learner's folder, as in Jupyter
    sys.path.insert(0, job["cwd"])

    ns = {"__name__": "__main__", "__builtins__": __builtins__,
          "display": lambda *args, **kwargs: None}          # IPython's, for notebook cells
    skip = set(job["skip"])
    for i, unit in enumerate(job["units"]):
        if i in skip:
            continue
        emit({"e": "unit", "i": i})
        src, filename = unit["source"], unit["filename"]
        if filename.startswith("<"):               # a notebook cell: tracebacks show its lines
            ns["__name__"] = "__main__"
            linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        else:                                      # a .py file: imported, not run as a script
            ns["__name__"], ns["__file__"] = "__rnnkit_check__", filename
        err = None
        try:
            tree = ast.parse(src, filename=filename)
            ast.increment_lineno(tree, unit["first_line"] - 1)
            exec(compile(tree, filename, "exec"), ns)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:              # noqa: BLE001 - report it, run the rest
            err = error_info(exc)
            if isinstance(exc, SyntaxError):
                err["where"] = {"file": filename, "line": (exc.lineno or 1) + unit["first_line"] - 1,
                                "function": "<module>", "code": (exc.text or "").strip()}
        emit({"e": "unit_done", "i": i, "error": err})
    from .runner import find
    for name in job["functions"]:
        emit({"e": "fn", "name": name, "found_as": find(ns, name)[1]})
        try:
            record = run_function(name, ns)
        except MemoryError:
            record = {"name": name, "found_as": find(ns, name)[1],
                      "fatal": {"type": "MemoryError", "message": "out of memory"}}
        emit({"e": "record", "record": encode(record)})
    emit({"e": "done"})
    channel.flush()
    os._exit(0)                                    # learner threads must not keep it alive


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        _child_main()
    else:
        sys.exit("rnnkit.check.sandbox is started by rnnkit check, not by hand")
