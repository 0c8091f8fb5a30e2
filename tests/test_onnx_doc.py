"""docs/onnx.md: the onnxruntime-only program generates text from an exported model, without
rnnkit, and the table of inputs and outputs is the graph's."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from needs import require

pytestmark = pytest.mark.slow          # exports a trained model, runs a program in a subprocess

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "onnx.md"

# Run first in the child process: any import of rnnkit fails loudly.
_BLOCK_RNNKIT = """
import sys
class _NoRnnkit:
    def find_spec(self, name, path=None, target=None):
        if name == "rnnkit" or name.startswith("rnnkit."):
            raise ImportError("the documented program must not need rnnkit")
        return None
sys.meta_path.insert(0, _NoRnnkit())
"""


def _program() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "docs/onnx.md should hold exactly one Python program"
    return blocks[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    require("onnx", "onnxruntime")
    from rnnkit.cli import main
    d = tmp_path_factory.mktemp("onnxdoc")
    assert main(["train", "--steps", "30", "--hidden-size", "16", "--embedding-size", "8",
                 "--quiet", "--num-samples", "0", "--out", str(d / "run")]) == 0
    assert main(["export", str(d / "run"), "--onnx", str(d / "names.onnx")]) == 0
    return d


def test_documented_program_generates_names_without_rnnkit(exported):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", _BLOCK_RNNKIT + _program()], cwd=exported,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5
    from rnnkit.load import load_model
    vocab = load_model(exported / "run").vocab
    for line in lines:                                   # names of the model's alphabet
        assert set(line) <= set(vocab.chars), line


def test_documented_inputs_and_outputs_are_the_graphs(exported):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(exported / "names.onnx"), providers=["CPUExecutionProvider"])
    text = DOC.read_text(encoding="utf-8")
    rows = {m.group(1): (m.group(2), m.group(3)) for m in
            re.finditer(r"^\| `(\w+)` \| [^|]*\| (\w+) \| \(([^)]*)\) \|", text, re.M)}
    graph = {i.name: i for i in list(sess.get_inputs()) + list(sess.get_outputs())}
    assert set(rows) == set(graph)
    onnx_types = {"int64": "tensor(int64)", "float32": "tensor(float)"}
    symbols = {"T": "seq_len", "N": "batch", "L": 2, "H": 16, "V": None}
    for name, (dtype, shape) in rows.items():
        assert graph[name].type == onnx_types[dtype], name
        want = [symbols[s.strip()] for s in shape.split(",")]
        got = graph[name].shape
        assert len(got) == len(want), name
        for w, g in zip(want, got):
            assert w is None or w == g, (name, got)
    section = text.split("## Metadata", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    assert set(sess.get_modelmeta().custom_metadata_map) == documented
