"""Figures that tests count for docs/reliability.md (how many hostile inputs, examples, error
cases were tried), printed once in pytest's summary at the end of the run - not by a test, so
that no test exists only to print and a ``-k`` selection prints what it ran."""

from __future__ import annotations

from collections.abc import Callable

_REPORTS: dict[str, Callable[[], str | None]] = {}


def report(title: str, line: Callable[[], str | None]) -> None:
    """Register ``line()`` (called after the last test; None prints nothing) under ``title``."""
    _REPORTS[title] = line


def lines() -> list[str]:
    """``title: line`` for every registered report that has something to say."""
    out = []
    for title, line in _REPORTS.items():
        text = line()
        if text:
            out.append(f"{title}: {text}")
    return out
