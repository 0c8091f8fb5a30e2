"""docs/api.md: every python block runs as it stands (in order, each in a fresh namespace)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"),
                    re.M | re.S)


def test_the_page_has_its_examples():
    assert len(BLOCKS) >= 3
    assert any("backward_step" in b for b in BLOCKS) and any("LSTMCell" in b for b in BLOCKS)


@pytest.mark.parametrize("i", [pytest.param(i, marks=pytest.mark.slow) if "opt.step" in b else i
                               for i, b in enumerate(BLOCKS)])          # training blocks: slow
def test_block_runs(i):
    exec(compile(BLOCKS[i], f"docs/api.md block {i}", "exec"), {"__name__": "__docs__"})
