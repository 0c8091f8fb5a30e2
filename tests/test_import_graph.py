"""The import graph of the package has no cycle: every import of one rnnkit module by another
(at module level or inside a function, which only hides a cycle until it runs) is an edge,
except the imports under ``if TYPE_CHECKING:``, which never run (names for annotations), and
the layers of docs/design.md must form a DAG over them. The data layer never imports the
built-in data sets (``rnnkit.datasets`` builds on ``rnnkit.data``, not the other way round).
"""

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnnkit"


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict:
    """module -> {(imported rnnkit module, line)} for every .py file under ``root``."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        edges = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[:len(base) - node.level + 1]
                    mod = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for t in targets:
                while t and t not in modules:          # a name inside a module: the module
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith(root.name):
                    edges.add((t, node.lineno))
        graph[name] = edges
    return graph


def _is_type_checking(node) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:`` (a block only type checkers read)."""
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


@functools.lru_cache(maxsize=1)
def package_graph() -> dict:
    """The graph of the installed tree, walked once per test run."""
    return import_graph(PACKAGE)


def find_cycle(graph: dict):
    """One cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t, _ in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_data_layer_does_not_import_the_built_in_data_sets():
    graph = package_graph()
    bad = [f"{m}:{line} imports {t}" for m, edges in graph.items() if m.startswith("rnnkit.data")
           and not m.startswith("rnnkit.datasets") for t, line in edges if t.startswith("rnnkit.datasets")]
    assert not bad, bad


def test_the_walk_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "rnnkit"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from .x import f\n")
    (pkg / "a" / "x.py").write_text("def f():\n    from ..b import g\n    return g\n")
    (pkg / "b.py").write_text("from .a import f\n\ndef g():\n    return 1\n")
    cycle = find_cycle(import_graph(pkg))
    assert cycle is not None and set(cycle) == {"rnnkit.a", "rnnkit.a.x", "rnnkit.b"}
    (pkg / "a" / "x.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph(pkg)) is None
    # a name imported for annotations only (never imported at run time) is no edge
    (pkg / "a" / "x.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                    "    from ..b import g\n\ndef f() -> g:\n    return 1\n")
    assert find_cycle(import_graph(pkg)) is None


def test_every_built_in_corpus_reaches_the_pipeline_from_above_in_its_own_mode():
    """The built-in corpora live in rnnkit.datasets (CORPORA); the data pipeline takes one as
    an object and trains it in its own mode, and refuses a bare name with a hint."""
    import pytest

    from rnnkit.data import load_text_data
    from rnnkit.datasets import CORPORA, corpus
    from rnnkit.errors import ConfigError
    assert set(CORPORA) == {"names", "pydoc", "dates", "numbers"}
    for c in CORPORA.values():
        data = load_text_data(None, c, seq_len=20, batch_size=4)
        assert data.mode == c.mode and data.name == c.name, c.name
    with pytest.raises(ConfigError, match=r"rnnkit.datasets.corpus\('names'\)"):
        load_text_data(None, "names")
    with pytest.raises(ConfigError, match="expected one of names, pydoc, dates, numbers"):
        corpus("pydoc_topics")
