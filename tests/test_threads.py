"""CPU threads: rnnkit.set_num_threads / get_num_threads (PyTorch's names) set NumPy's BLAS
and torch's pool; the trainer's default (threads="auto") times steps on one thread and on all
and keeps the faster, which is what keeps training usable next to a busy program; an explicit
--threads N is used as given."""

import numpy as np
import pytest

import rnnkit
from rnnkit import _threads
from rnnkit.cli import main
from rnnkit.errors import ConfigError

from needs import require

NAMES = "".join(f"{a}{b}\n" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal",
                                       "ida", "jon") for b in ("a", "ie", "o", "y", "elle", "ric"))
TINY = ["--hidden-size", "8", "--num-layers", "1", "--batch-size", "8", "--embedding-size", "4"]


@pytest.fixture(autouse=True)
def threads_restored(monkeypatch):
    """Each test starts with no setting and NumPy's BLAS on 2 threads, and leaves it so."""
    blas = _threads.numpy_blas()
    assert blas is not None
    with blas.limit(limits=2):
        monkeypatch.setattr(_threads, "_setting", None)
        yield
    monkeypatch.setattr(_threads, "_setting", None)


def _blas_threads():
    return max(i["num_threads"] for i in _threads.numpy_blas().info())


def test_set_num_threads_sets_numpy_blas_and_get_num_threads_reads_it():
    assert rnnkit.get_num_threads() == 2 == _blas_threads()
    rnnkit.set_num_threads(1)
    assert rnnkit.get_num_threads() == 1 == _blas_threads()
    x = np.ones((64, 64))
    np.testing.assert_allclose(x @ x, 64.0)          # products still run
    with _threads.for_step_product(_threads.SMALL_PRODUCT + 1):
        assert _blas_threads() == 1                  # a large product keeps the setting


def test_set_num_threads_applies_to_torch_too():
    torch = require("torch")
    before = torch.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(3)                     # loaded or changed later: apply() again
        _threads.apply()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_a_bad_thread_count_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="expected"):
        if isinstance(bad, str):
            _threads.check_threads("Trainer", bad)
        else:
            rnnkit.set_num_threads(bad)


class _Clock:
    """A fake perf_counter: each step costs what ``cost[threads]`` says (per token)."""

    def __init__(self, cost):
        self.now, self.cost = 0.0, cost

    def __call__(self):
        return self.now

    def step(self, tokens):
        self.now += self.cost[_blas_threads()] * tokens


@pytest.mark.parametrize("cost,expected", [({1: 1.0, 2: 4.0}, 1), ({1: 1.0, 2: 0.6}, 2),
                                           ({1: 1.0, 2: 0.97}, 1)])   # within the margin: 1
def test_auto_keeps_the_faster_setting_and_says_which(cost, expected, monkeypatch):
    clock = _Clock(cost)
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    said = []
    choice = _threads.ThreadChoice("auto", said.append)
    used = []
    for k in range(_threads.WARMUP_STEPS + 2 * _threads.TRIAL_STEPS + 5):
        choice.before()
        used.append(_blas_threads())
        clock.step(tokens=100 + k)
        choice.after(100 + k)
    assert choice.choice == expected
    assert used[-5:] == [expected] * 5               # kept after the trial
    assert sorted(set(used[_threads.WARMUP_STEPS:-5])) == [1, 2]      # both were timed
    assert len(said) == 1 and f"chose {expected} of 2" in said[0]
    choice.close()
    assert _blas_threads() == 2                      # all threads again after training


def test_auto_measures_again_and_follows_a_change_in_load(monkeypatch):
    clock = _Clock({1: 1.0, 2: 0.5})
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    said = []
    choice = _threads.ThreadChoice("auto", said.append)
    for k in range(_threads.WARMUP_STEPS + _threads.RECHECK_STEPS + 4 * _threads.TRIAL_STEPS + 1):
        if k == _threads.WARMUP_STEPS + 2 * _threads.TRIAL_STEPS:
            assert choice.choice == 2
            clock.cost = {1: 1.0, 2: 5.0}            # another program takes a core
        choice.before()
        clock.step(10)
        choice.after(10)
    assert choice.choice == 1
    assert "now 1 of 2" in said[-1]


def test_given_threads_are_used_and_nothing_is_timed(monkeypatch):
    monkeypatch.setattr(_threads.time, "perf_counter", lambda: pytest.fail("timed"))
    said = []
    choice = _threads.ThreadChoice(1, said.append)
    for _ in range(20):
        choice.before()
        assert _blas_threads() == 1
        choice.after(5)
    assert said == ["threads: 1 (as asked)"]


def test_train_threads_option(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_text(NAMES)
    code = main(["train", str(f), "--out", str(tmp_path / "run"), "--steps", "2", "--threads", "1",
                 "--num-samples", "0", *TINY])
    err = capsys.readouterr().err
    assert code == 0 and "threads: 1 (as asked)" in err
    with pytest.raises(SystemExit):
        main(["train", str(f), "--threads", "0", *TINY])
    err = capsys.readouterr().err
    assert "--threads" in err and "expected threads >= 1, got 0" in err and "Traceback" not in err


def test_auto_times_again_soon_after_the_first_choice_then_every_recheck(monkeypatch):
    """The second trial comes FIRST_RECHECK steps after the first (a choice made while the
    machine settled is checked soon), the later ones every RECHECK_STEPS."""
    clock = _Clock({1: 1.0, 2: 0.5})
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    choice = _threads.ThreadChoice("auto", lambda m: None)
    ones = []
    for k in range(_threads.WARMUP_STEPS + 3 * 2 * _threads.TRIAL_STEPS + _threads.FIRST_RECHECK
                   + _threads.RECHECK_STEPS):
        choice.before()
        if _blas_threads() == 1:
            ones.append(k)
        clock.step(10)
        choice.after(10)
    trial = 2 * _threads.TRIAL_STEPS
    first = _threads.WARMUP_STEPS + 1                         # [all, 1, all, 1, ...]: odd steps
    second = _threads.WARMUP_STEPS + trial + _threads.FIRST_RECHECK + 1
    third = second - 1 + trial + _threads.RECHECK_STEPS + 1
    assert ones == [first + 2 * i for i in range(_threads.TRIAL_STEPS)] + \
        [second + 2 * i for i in range(_threads.TRIAL_STEPS)] + \
        [third + 2 * i for i in range(_threads.TRIAL_STEPS)]
