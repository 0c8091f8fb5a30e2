"""Sphinx extension of rnnkit's documentation site: the API reference and the CLI reference,
both generated from the package at build time, so neither can drift from the code.

**API reference.** :func:`public_api` enumerates the public modules of rnnkit (every module
whose dotted name has no part starting with ``_``; ``rnnkit.cli`` is the CLI reference
instead) and each module's public names: its ``__all__``, or, without one, the classes and
functions it defines whose names do not start with ``_``. A module that adds a name to its
``__all__`` gets it in the reference with no edit here. Each object is documented once, at
its *canonical* name: the shallowest module below the top-level package that lists it in its
``__all__`` (``rnnkit.nn.LSTM``, ``rnnkit.optim.Adam``, ``rnnkit.errors.ConfigError``), or
where it is defined; every other module that lists it links there. At ``builder-inited``
the pages are written to ``docs/api/`` (generated, not tracked): one page per module (its
docstring and a table of its names; the sidebar lists these) and one per canonical name
(autodoc; reached from its module's table and from cross-references).

A public name without a docstring (for a constant: a ``#:`` comment above its assignment, as
autodoc reads them) is a warning, so the build (``-W``) fails.

Cross-references in docstrings may name an object where it is defined
(``rnnkit.nn.rnn.LSTM``) or by its last component in the module it is written in
(``:class:`Vocab```); ``missing-reference`` resolves both to the canonical entry when that is
unambiguous, and anything else stays a broken reference (a warning).

**CLI reference.** The ``rnnkit-cli`` directive prints the help of ``rnnkit`` and of every
subcommand exactly as ``rnnkit COMMAND --help`` prints it (``rnnkit.cli.build_parser``, at
a fixed width of 100 columns), and warns about any option that has no help text.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "rnnkit"
#: Public modules documented elsewhere (the command line has its own reference page).
NOT_IN_API = {"rnnkit.cli", "rnnkit.__main__"}
#: The width the CLI reference formats help at (argparse reads COLUMNS).
CLI_COLUMNS = 100


# ============================================================================ public names
@dataclass
class Entry:
    """One public name: where it is listed, what it is, where it is documented."""
    module: str                  # the module that lists it (its __all__ or its own definitions)
    name: str
    obj: object = field(repr=False)
    kind: str = ""               # class | exception | function | data
    canonical: str = ""          # the dotted name of its reference entry

    @property
    def fullname(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def is_canonical(self) -> bool:
        return self.canonical == self.fullname


@functools.cache
def public_modules(package: str = PACKAGE) -> tuple:
    """Dotted names of the public modules of ``package`` (itself included), sorted."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        parts = info.name.split(".")[1:]
        if any(p.startswith("_") for p in parts) or info.name in NOT_IN_API:
            continue
        names.append(info.name)
    return tuple(sorted(names))


@functools.cache
def _all_modules(package: str = PACKAGE) -> tuple:
    """Every module of the package, private ones included (where constants are defined)."""
    pkg = importlib.import_module(package)
    return tuple(i.name for i in pkgutil.walk_packages(pkg.__path__, package + ".")
                 if not i.name.endswith("__main__"))


def module_names(modname: str) -> list:
    """The public names of one module: ``__all__``, else the classes and functions it
    defines and the constants it documents with a ``#:`` comment, whose names do not start
    with ``_``."""
    mod = importlib.import_module(modname)
    if hasattr(mod, "__all__"):
        return [n for n in mod.__all__ if n != "__version__"] + (
            ["__version__"] if "__version__" in mod.__all__ else [])
    return [n for n, v in vars(mod).items()
            if not n.startswith("_") and (
                ((inspect.isclass(v) or _is_function(v))
                 and getattr(v, "__module__", None) == modname)
                or (not inspect.ismodule(v) and not callable(v) and attribute_doc(modname, n)))]


def _is_function(obj) -> bool:
    """A function, also behind a decorator such as ``functools.lru_cache``."""
    return inspect.isfunction(inspect.unwrap(obj)) if callable(obj) else False


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if _is_function(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return "function"
    return "data"


def public_api(package: str = PACKAGE) -> list:
    """Every public name of every public module (:class:`Entry`), with its canonical name."""
    entries = []
    for modname in public_modules(package):
        mod = importlib.import_module(modname)
        for name in module_names(modname):
            if not hasattr(mod, name):
                raise AttributeError(f"{modname}.__all__ lists {name!r}, which the module lacks")
            obj = getattr(mod, name)
            entries.append(Entry(modname, name, obj, _kind(obj)))
    # canonical: the shallowest module below the package that lists the object in __all__
    listed = {}
    for e in entries:
        if e.kind == "data":
            continue                   # constants: documented where each module lists them
        mod = importlib.import_module(e.module)
        if e.module != package and hasattr(mod, "__all__"):
            listed.setdefault(id(e.obj), []).append(e)
    for e in entries:
        if e.kind == "data":
            e.canonical = e.fullname
            continue
        cands = sorted(listed.get(id(e.obj), []), key=lambda c: (c.module.count("."), c.module))
        if cands:
            e.canonical = cands[0].fullname
        else:
            home = getattr(e.obj, "__module__", e.module)
            e.canonical = f"{home}.{e.obj.__qualname__}" if home in public_modules(package) \
                and hasattr(e.obj, "__qualname__") else e.fullname
    return entries


def attribute_doc(modname: str, name: str) -> str:
    """The ``#:`` doc comment of a module-level constant, as autodoc reads it ('' if none)."""
    from sphinx.pycode import ModuleAnalyzer
    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source
        return ""
    return "\n".join(docs.get(("", name), [])).strip()


def docstring(entry: Entry) -> str:
    """What the reference shows as the entry's description ('' when there is none)."""
    if entry.kind == "data":
        own = attribute_doc(entry.module, entry.name)
        if own or entry.name == "__version__":
            return own or "The version of rnnkit."
        # re-exported constant: the doc comment where it is defined
        for modname in _all_modules():
            if modname != entry.module:
                mod = importlib.import_module(modname)
                if getattr(mod, entry.name, None) is entry.obj:
                    own = attribute_doc(modname, entry.name)
                    if own:
                        return own
        return ""
    return inspect.getdoc(entry.obj) or ""


def summary_line(text: str) -> str:
    """The first sentence of a docstring's first paragraph, for the tables (a period inside
    ````literal```` text does not end it)."""
    para = " ".join(text.strip().split("\n\n")[0].split())
    # roles become literals: a relative reference would not resolve on another page
    def literal(m):
        name = m.group(1)
        return f"``{name.split('.')[-1] if '~' in m.group(0) else name}``"
    para = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", literal, para)
    for m in re.finditer(r"[.:;](\s|$)", para):
        if para[:m.start()].count("``") % 2 == 0:
            para = para[:m.start() + 1]
            break
    return para[:-1] if para.endswith("::") else para     # "::" would announce a literal block


# ============================================================================ page writing
def _title(text: str, ch: str = "=") -> str:
    return f"{text}\n{ch * len(text)}\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def write_api(outdir: Path, warn) -> list:
    """Write the reference's .rst pages into ``outdir``; returns the entries. ``warn(msg)``
    reports a public name without a docstring."""
    entries = public_api()
    outdir.mkdir(parents=True, exist_ok=True)
    by_module = {}
    for e in entries:
        by_module.setdefault(e.module, []).append(e)
    canon = {e.canonical: e for e in entries if e.is_canonical}
    pages = {}
    modules = public_modules()
    index = [_title("API reference"), "",
             "Generated from the package: every public module and every name it lists in its "
             "``__all__`` (or, without one, the classes and functions it defines). Each object "
             "has one entry, under the module users import it from; the other modules that "
             "list it link there.", "", ".. list-table::", "   :header-rows: 1", "   :widths: 30 70", "",
             "   * - module", "     - contents"]
    for modname in modules:
        mod = importlib.import_module(modname)
        index += [f"   * - :mod:`{modname}`", f"     - {_escape(summary_line(inspect.getdoc(mod) or ''))}"]
    index += ["", ".. toctree::", "   :hidden:", ""] + [f"   {m}" for m in modules]
    pages["index"] = "\n".join(index) + "\n"
    for modname in modules:
        mod = importlib.import_module(modname)
        lines = [_title(f"``{modname}``"), "", f".. automodule:: {modname}", "   :no-members:", ""]
        ents = by_module.get(modname, [])
        if ents:
            lines += [".. list-table::", "   :widths: 30 70", ""]
            for e in ents:
                text = docstring(e)
                if not text:
                    warn(f"{e.fullname}: a public name without a docstring (give it one; for a "
                         f"constant, a '#:' comment above its assignment)")
                role = {"class": "class", "exception": "exc", "function": "func", "data": "data"}[e.kind]
                where = "" if e.is_canonical else f" (from :mod:`{e.canonical.rsplit('.', 1)[0]}`)"
                lines += [f"   * - :{role}:`~{e.canonical}`",
                          f"     - {_escape(summary_line(text))}{where}"]
            lines.append("")
        pages[modname] = "\n".join(lines)
    for full, e in canon.items():
        # An entry's page is reached from its module's table (and every cross-reference), not
        # from the sidebar: in a toctree, each of the ~430 entries would be in the navigation
        # tree that the theme renders into every page (most of the build's time went there).
        lines = [":orphan:", "", _title(f"``{full}``"), "", f".. currentmodule:: {e.module}", ""]
        if e.kind in ("class", "exception"):
            directive = "autoexception" if e.kind == "exception" else "autoclass"
            lines += [f".. {directive}:: {e.name}", "   :members:", "   :undoc-members:",
                      "   :show-inheritance:"]
            if e.kind == "class":          # members inherited from rnnkit's own classes only
                others = sorted({c.__name__ for c in e.obj.__mro__[1:]
                                 if not c.__module__.startswith(PACKAGE)} | {"object"})
                lines.append(f"   :inherited-members: {','.join(others)}")
            lines.append("")
        elif e.kind == "function":
            lines += [f".. autofunction:: {e.name}", ""]
        else:                    # a constant: its '#:' comment, and its value
            lines += [f".. py:data:: {e.name}", f"   :value: {_short_repr(e.obj)}", ""]
            lines += ["   " + ln if ln else "" for ln in docstring(e).splitlines()] + [""]
        pages[full] = "\n".join(lines)
    for old in outdir.glob("*.rst"):
        if old.stem not in pages:
            old.unlink()
    for stem, text in pages.items():
        path = outdir / f"{stem}.rst"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return entries


def _short_repr(value) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


# ============================================================================ CLI reference
def cli_helps() -> list:
    """``[(command, help text)]``: ``rnnkit --help`` and ``rnnkit COMMAND --help`` for every
    subcommand, as printed at :data:`CLI_COLUMNS` columns."""
    import argparse
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(CLI_COLUMNS)
    try:
        from rnnkit.cli import build_parser
        parser = build_parser()
        out = [("rnnkit", parser.format_help())]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            out.append((f"rnnkit {name}", p.format_help()))
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return out


def options_without_help() -> list:
    """``["rnnkit train --foo", ...]``: options and arguments that have no help text."""
    import argparse

    from rnnkit.cli import build_parser
    parser = build_parser()
    bad = []
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for prog, p in [("rnnkit", parser)] + [(f"rnnkit {n}", q) for n, q in sub.choices.items()]:
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (a.help or "").strip() or a.help == argparse.SUPPRESS:
                bad.append(f"{prog} {a.option_strings[0] if a.option_strings else a.dest}")
    return bad


def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from sphinx.util import logging

    logger = logging.getLogger("rnnkit_docs")

    class CliDirective(Directive):
        """``.. rnnkit-cli::`` - every command's help, with a section each."""
        has_content = False

        def run(self):
            import rnnkit.cli
            env = self.state.document.settings.env
            env.note_dependency(rnnkit.cli.__file__)    # rebuilt when the parser changes
            for opt in options_without_help():
                logger.warning(f"CLI reference: {opt} has no help text (give it help=...)",
                               location=(self.state.document.current_source, self.lineno))
            out = []
            for cmd, text in cli_helps():
                sec = nodes.section(ids=[nodes.make_id(cmd)], names=[nodes.fully_normalize_name(cmd)])
                sec += nodes.title(text=f"{cmd}")
                sec += nodes.literal_block(text, text, language="text")
                out.append(sec)
            return out

    app.add_directive("rnnkit-cli", CliDirective)

    state = {}

    def generate(app_):
        state["entries"] = write_api(Path(app_.srcdir) / "api",
                                     lambda msg: logger.warning(msg, type="rnnkit", subtype="api"))
        state["canonical"] = {e.fullname: e.canonical for e in state["entries"]}
        state["documented"] = {e.canonical for e in state["entries"]}
        state["by_last"] = {}
        for e in state["entries"]:
            if e.is_canonical:
                state["by_last"].setdefault(e.name, set()).add(e.canonical)

    def _member(owner, member):
        owner = state["canonical"].get(owner, owner)
        return f"{owner}.{member}" if owner in state["documented"] else None

    def resolve(app_, env, node, contnode):
        """A reference to a public object by another of its names, or by its last component."""
        if node.get("refdomain") != "py":
            return None
        target = node.get("reftarget", "")
        found = state["canonical"].get(target)
        if found is None:
            # rnnkit.nn.rnn.LSTM (where it is defined) -> its canonical entry
            for e in state["entries"]:
                home = getattr(e.obj, "__module__", None)
                if e.is_canonical and home and f"{home}.{getattr(e.obj, '__qualname__', '')}" == target:
                    found = e.canonical
                    break
        if found is None and "." not in target:
            # a bare name: a public object of that name (unique), or a member of the class
            # the reference is written in
            cands = state["by_last"].get(target, set())
            if len(cands) == 1:
                found = next(iter(cands))
            elif node.get("py:class"):
                found = _member(f"{node.get('py:module')}.{node.get('py:class')}", target)
        elif found is None and target.count(".") == 1 and target[:1].isupper():
            # Class.member, with Class named by its last component
            cls, member = target.split(".")
            cands = state["by_last"].get(cls, set())
            if len(cands) == 1:
                found = f"{next(iter(cands))}.{member}"
        if found is None or found == target:
            return None
        found = state["canonical"].get(found, found)
        domain = env.get_domain("py")
        return domain.resolve_xref(env, node["refdoc"], app_.builder, node.get("reftype", "obj"),
                                   found, node, contnode)

    app.connect("builder-inited", generate)
    app.connect("missing-reference", resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
