"""Lint as a test: ``ruff check`` with the rule set written in pyproject.toml ([tool.ruff])
passes on the whole repository, so CI (which runs pytest) fails on a lint error without a
step of its own."""

import subprocess
import sys
from pathlib import Path

from needs import require

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes_on_the_repository():
    require("ruff")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format",
                           "concise", str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, ("ruff check found problems (fix them, or `ruff check --fix`):\n"
                                  + proc.stdout + proc.stderr)


def test_the_rule_set_is_written_in_pyproject():
    tomllib = require("tomllib")                     # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lint = config["tool"]["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B", "UP"} <= set(lint["select"])
    assert "ruff" in " ".join(config["project"]["optional-dependencies"]["test"])


#: Modules whose public signatures are annotated in full (every parameter and the return of
#: every public function and method); a module joins this list once it is.
ANNOTATED = ["rnnkit.io", "rnnkit.checkpoint", "rnnkit.load", "rnnkit.nn.registry",
             "rnnkit.train_setup", "rnnkit.data.corpus", "rnnkit.evaluate"]


def test_the_public_signatures_of_the_annotated_modules_are_complete():
    import importlib
    import inspect
    missing = []
    for name in ANNOTATED:
        mod = importlib.import_module(name)
        public = getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")])
        for attr in public:
            obj = getattr(mod, attr)
            if getattr(obj, "__module__", None) != name:
                continue                                  # re-exported: checked where defined
            funcs = [obj] if inspect.isfunction(obj) else [
                f for n, f in vars(obj).items() if inspect.isfunction(f) and (not n.startswith("_") or n == "__init__")
            ] if inspect.isclass(obj) else []
            for f in funcs:
                sig = inspect.signature(f)
                for p in sig.parameters.values():
                    if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) \
                            and p.annotation is inspect.Parameter.empty:
                        missing.append(f"{name}.{f.__qualname__}({p.name})")
                if f.__name__ != "__init__" and sig.return_annotation is inspect.Signature.empty:
                    missing.append(f"{name}.{f.__qualname__} -> ?")
    assert not missing, missing
