"""The examples in rnnkit's docstrings run: every ``>>>`` example of every module of the
package is executed by the standard library's doctest (as ``pytest --doctest-modules`` would,
but here, so that `.ci/run`'s plain ``python -m pytest`` runs them), each module in a fresh
temporary working directory. The API reference (tests/test_docs.py) shows these examples, so
it never shows code that does not run."""

import doctest
import importlib
import pkgutil

import pytest

import rnnkit

#: Modules whose import loads PyTorch (seconds): in the slow tier.
NEEDS_TORCH = {"rnnkit.interop.torch", "rnnkit.engines.torch"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def all_modules():
    names = ["rnnkit"] + [m.name for m in pkgutil.walk_packages(rnnkit.__path__, "rnnkit.")]
    return sorted(n for n in names if not n.endswith("__main__"))


def examples_of(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module.__name__) if t.examples]


def _param(name):
    marks = [pytest.mark.slow] if name in NEEDS_TORCH else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("modname", [_param(n) for n in all_modules()])
def test_docstring_examples_run(modname, tmp_path, monkeypatch):
    if modname in NEEDS_TORCH:
        from needs import require
        require("torch")
    monkeypatch.chdir(tmp_path)                 # examples that write files write them here
    module = importlib.import_module(modname)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []                                 # doctest swaps sys.stdout while it runs
    for test in examples_of(module):
        runner.run(test, out=report.append)
    failed, attempted = runner.failures, runner.tries
    assert failed == 0, f"{failed} of {attempted} docstring examples of {modname} failed:\n" + "".join(report)


def test_the_key_docstrings_have_examples():
    """nn.LSTM, the trainer and its config, the samplers and the scratch functions show how
    they are called; the package as a whole has a good number of running examples."""
    from rnnkit import nn, sample, scratch, train
    for obj in (nn.LSTM, train.Trainer, train.TrainConfig, sample.sample_lines,
                sample.sample_stream, scratch.lstm_forward, scratch.lstm_backward,
                scratch.rnn_forward, scratch.gru_forward):
        tests = doctest.DocTestFinder(recurse=False).find(obj)
        assert any(t.examples for t in tests), f"{obj.__qualname__} has no >>> example"
    total = 0
    for name in all_modules():
        if name in NEEDS_TORCH:
            continue
        total += sum(len(t.examples) for t in examples_of(importlib.import_module(name)))
    assert total >= 60, total
