"""rnnkit.gradcheck must reject wrong backward passes, not only accept right ones."""

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit.gradcheck import gradcheck


class _Doubled(nn.Linear):
    """A Linear whose input gradient is twice the true one."""

    def backward(self, dy):
        return 2.0 * super().backward(dy)


class _NoInputGrad(nn.Linear):
    """A Linear that forgets to return the input gradient (returns None)."""

    def backward(self, dy):
        super().backward(dy)
        return None


class _NoBiasGrad(nn.Linear):
    """A Linear whose bias gradient never accumulates."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.gradients()["bias"][...] = 0
        return dx


def _x():
    return np.random.default_rng(0).standard_normal((4, 3))


def test_correct_backward_passes():
    gradcheck(nn.Linear(3, 2, dtype=np.float64, seed=0), _x()).assert_ok()


@pytest.mark.parametrize("cls, name", [(_Doubled, "input[0]"), (_NoInputGrad, "input[0]"),
                                       (_NoBiasGrad, "bias")])
def test_wrong_backward_is_rejected(cls, name):
    report = gradcheck(cls(3, 2, dtype=np.float64, seed=0), _x())
    assert report.errors[name] > 0.4                  # 0.5 for the doubled one, 1.0 for missing
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_ok()


def test_wrong_recurrent_gradient_is_rejected(monkeypatch):
    """Break one line of the LSTM cell's backward: the check must see it."""
    from rnnkit.cells import LSTMCell
    right = LSTMCell.backward_step

    def wrong(self, s, dh, dc, ws):
        dh_direct, dc_prev = right(self, s, dh, dc, ws)
        dc_prev *= 1.01                               # 1% off along the cell-state path
        return dh_direct, dc_prev

    lstm = nn.LSTM(3, 4, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    gradcheck(lstm, x).assert_ok()
    monkeypatch.setattr(LSTMCell, "backward_step", wrong)
    with pytest.raises(AssertionError, match="gradient check failed"):
        gradcheck(lstm, x).assert_ok()
