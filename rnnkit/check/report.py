"""The checker's report: one block per function, as text, HTML (Jupyter) or JSON."""

from __future__ import annotations

import html
import json
import textwrap
from dataclasses import dataclass, field

from .judge import FunctionResult

_MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "missing": "missing"}
_COLOUR = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#9a6700", "missing": "#57606a"}


def _wrap(text, indent=" " * 8):
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent + "  "
                         if indent.strip() == "" and text.startswith(("warning:", "note:")) else indent,
                         break_long_words=False, break_on_hyphens=False)


@dataclass
class Report:
    """What ``rnnkit check`` / :func:`rnnkit.check.check` found: one
    :class:`~rnnkit.check.judge.FunctionResult` per function, plus problems outside the
    functions (a notebook cell that raised, a file that does not load)."""
    file: str | None
    functions: list
    notes: list = field(default_factory=list)      # e.g. "cell 7 raised TypeError: ..."
    seconds: float | None = None

    @property
    def summary(self) -> dict:
        """How many functions pass, fail, raise an error, or are missing."""
        counts = {"pass": 0, "fail": 0, "error": 0, "missing": 0}
        for f in self.functions:
            counts[f.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        """True when no function fails or raises an error (missing ones are not failures)."""
        s = self.summary
        return s["fail"] == 0 and s["error"] == 0

    def exit_code(self) -> int:
        """0 when :attr:`ok`, 1 otherwise (the ``rnnkit check`` exit code)."""
        return 0 if self.ok else 1

    def __getitem__(self, name) -> FunctionResult:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict:
        """The ``--json`` object: ``{"file", "functions": [...], "summary": {...}}``."""
        return {"file": self.file, "functions": [f.to_json() for f in self.functions],
                "summary": self.summary}

    def json(self) -> str:
        """:meth:`to_json` as one line of strict JSON."""
        return json.dumps(self.to_json(), allow_nan=False)

    def text(self) -> str:
        """The human-readable report."""
        lines = []
        if self.file:
            lines.append(f"rnnkit check {self.file}")
        for note in self.notes:
            lines.append(_wrap("note: " + note, "  "))
        for f in self.functions:
            lines.append("")
            lines.append(f"{_MARK[f.status]:<7} {f.name}")
            if f.status in ("fail", "error"):
                lines.append(_wrap(f.message))
                if f.expected is not None and f.got is not None:
                    lines.append(f"        expected {f.expected}")
                    lines.append(f"        got      {f.got}")
                if f.where:
                    lines.append(f"        at {f.where}")
            elif f.status == "missing":
                lines.append(_wrap(f.message))
            for w in f.warnings:
                lines.append(_wrap("warning: " + w))
        s = self.summary
        lines.append("")
        lines.append(f"{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['missing']} missing"
                     + (f" ({self.seconds:.1f} s)" if self.seconds is not None else ""))
        return "\n".join(lines)

    def __str__(self):
        return self.text()

    def __repr__(self):
        return self.text()

    def _repr_html_(self):
        rows = []
        for f in self.functions:
            colour = _COLOUR[f.status]
            detail = ""
            if f.status != "pass":
                detail = f"<div>{html.escape(f.message)}</div>"
                if f.expected is not None and f.got is not None:
                    detail += (f"<div style='font-family:monospace'>expected {html.escape(f.expected)}"
                               f"<br>got&nbsp;&nbsp;&nbsp;&nbsp;&nbsp; {html.escape(f.got)}</div>")
                if f.where:
                    detail += f"<div style='font-family:monospace'>at {html.escape(f.where)}</div>"
            for w in f.warnings:
                detail += f"<div style='color:#9a6700'>warning: {html.escape(w)}</div>"
            rows.append(f"<tr><td style='color:{colour};font-weight:bold;vertical-align:top'>"
                        f"{_MARK[f.status]}</td><td style='vertical-align:top'><code>{html.escape(f.name)}"
                        f"</code></td><td style='text-align:left'>{detail}</td></tr>")
        notes = "".join(f"<div>note: {html.escape(n)}</div>" for n in self.notes)
        s = self.summary
        head = f"<div><b>rnnkit check</b> {html.escape(self.file or '')}</div>"
        return (f"<div>{head}{notes}<table>{''.join(rows)}</table><div>{s['pass']} pass, {s['fail']} "
                f"fail, {s['error']} error, {s['missing']} missing</div></div>")
