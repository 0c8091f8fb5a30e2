"""Run the rnnkit benchmark harness from a source checkout: ``python benchmarks/run.py``.

Same options as ``rnnkit bench`` (see ``python benchmarks/run.py --help``); writes
BENCHMARKS.md at the repository root by default.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rnnkit.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
