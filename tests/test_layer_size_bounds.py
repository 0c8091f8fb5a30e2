"""Recurrent layers refuse absurd sizes before allocating anything, with the same bound as
the model configs (MAX_PARAM_BYTES of parameters, MAX_LAYERS layers)."""

import tracemalloc

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit.errors import ConfigError
from rnnkit.nn.rnn import MAX_LAYERS, MAX_PARAM_BYTES, rnn_parameter_shapes


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("make", [lambda: nn.LSTM(3, 10**9), lambda: nn.RNN(10**9, 4),
                                  lambda: nn.GRU(3, 10, num_layers=10**6),
                                  lambda: nn.LSTM(3, 8, num_layers=MAX_LAYERS + 1)])
def test_absurd_layers_are_refused_before_allocating(make):
    with pytest.raises(ConfigError) as e:
        peak = _peak(make)
    peak = _peak(lambda: pytest.raises(ConfigError, make))
    assert peak < 1 << 20, peak
    assert "GiB" in str(e.value) or "num_layers" in str(e.value), str(e.value)


def test_the_bound_is_the_parameter_bytes_computed_from_the_sizes():
    """The count is the shapes' (computed, nothing built); the largest float32 LSTM hidden
    size under the bound and the next one fall either side of the check."""
    from rnnkit.nn.rnn import check_layer_size, rnn_num_parameters
    for cell, bidirectional, bias in (("lstm", False, True), ("gru", True, False), ("rnn_tanh", False, True)):
        shapes = rnn_parameter_shapes(cell, 7, 5, 3, bidirectional, bias)
        assert rnn_num_parameters(cell, 7, 5, 3, bidirectional, bias) == \
            sum(int(np.prod(s)) for s in shapes.values())
    H = 1
    while rnn_num_parameters("lstm", 3, H + 1) * 4 <= MAX_PARAM_BYTES:
        H = H * 2 if rnn_num_parameters("lstm", 3, 2 * H) * 4 <= MAX_PARAM_BYTES else H + 1
    check_layer_size("LSTM", "lstm", 3, H, 1, False, True, np.float32)          # accepted
    with pytest.raises(ConfigError):
        check_layer_size("LSTM", "lstm", 3, H + 1, 1, False, True, np.float32)
    with pytest.raises(ConfigError):                                            # float64: half
        check_layer_size("LSTM", "lstm", 3, H, 1, False, True, np.float64)
    assert nn.LSTM(3, 4, num_layers=MAX_LAYERS).num_layers == MAX_LAYERS


def test_models_and_layers_share_the_bound():
    from rnnkit.nn import models
    assert models.MAX_PARAM_BYTES is MAX_PARAM_BYTES
    with pytest.raises(ConfigError):
        nn.CharLMConfig(vocab_size=5, num_layers=MAX_LAYERS + 1).validate()
