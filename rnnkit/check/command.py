"""``rnnkit check FILE``: the command's options and what it prints (cli.py only dispatches)."""

from __future__ import annotations

import sys

from ..errors import ConfigError
from .cases import ALIASES, FUNCTION_NAMES

USAGE_EXIT = 2


def add_arguments(parser):
    """The options of ``rnnkit check`` on an argparse (sub)parser."""
    parser.add_argument("file", help="a .py file or a Jupyter notebook (.ipynb) with the learner's functions")
    parser.add_argument("--function", action="append", metavar="NAME",
                        choices=[a for n in FUNCTION_NAMES for a in (n,) + ALIASES.get(n, ())],
                        help="check only this function (repeatable; default: all ten: "
                        + ", ".join(FUNCTION_NAMES) + ")")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds allowed for each notebook cell / statement and each function")
    parser.add_argument("--memory", type=int, default=2048, metavar="MB",
                        help="memory limit of the process that runs the learner's code, in MiB")


def main(args) -> int:
    """Run the check; print the report; 0 when nothing fails, 1 otherwise, 2 for usage errors."""
    from . import check_file
    if not args.timeout > 0 or args.memory < 256:
        print("rnnkit: error: rnnkit check: expected --timeout > 0 and --memory >= 256 (MiB), got "
              f"--timeout {args.timeout:g} --memory {args.memory}.", file=sys.stderr)
        return USAGE_EXIT
    try:
        report = check_file(args.file, args.function, timeout=args.timeout, memory_mb=args.memory)
    except ConfigError as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    print(report.json() if args.json else report.text())
    return report.exit_code()
