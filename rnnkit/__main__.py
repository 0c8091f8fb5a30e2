"""``python -m rnnkit`` and the ``rnnkit`` command (``run`` is the console-script entry point:
it imports the command line itself, so a Ctrl-C while NumPy loads is one line, not a
traceback)."""

import sys


def run() -> int:
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("rnnkit: error: interrupted\n")
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
