"""rnnkit.nn.utils.pad_sequence / unpad_sequence: PyTorch's numbers for the same inputs, and
lengths that rnnkit's layers take (checked against running each sequence on its own)."""

import itertools

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit.errors import RnnkitError
from rnnkit.nn.utils import pad_sequence, unpad_sequence
from tests.needs import require


def _seqs(dtype, trailing, rng):
    return [(rng.standard_normal((L,) + trailing) * 10).astype(dtype) for L in (4, 1, 6, 3)]


@pytest.mark.parametrize("batch_first,side,value,dtype,trailing", list(itertools.product(
    [False, True], ["right", "left"], [0.0, -1.5], [np.float64, np.float32, np.int64], [(), (3,), (2, 2)])))
def test_pad_sequence_matches_torch(batch_first, side, value, dtype, trailing):
    require("torch")
    import torch
    from torch.nn.utils.rnn import pad_sequence as torch_pad
    seqs = _seqs(dtype, trailing, np.random.default_rng(0))
    padded, lengths = pad_sequence(seqs, batch_first=batch_first, padding_value=value, padding_side=side)
    want = torch_pad([torch.from_numpy(s) for s in seqs], batch_first=batch_first,
                     padding_value=value, padding_side=side).numpy()
    assert padded.dtype == want.dtype and padded.shape == want.shape
    assert np.array_equal(padded, want)
    assert lengths.tolist() == [4, 1, 6, 3] and lengths.dtype == np.int64
    back = unpad_sequence(padded, lengths, batch_first=batch_first, padding_side=side)
    assert all(np.array_equal(a, b) for a, b in zip(back, seqs))
    if side == "right":
        from torch.nn.utils.rnn import unpad_sequence as torch_unpad
        ref = torch_unpad(torch.from_numpy(want), torch.from_numpy(lengths), batch_first=batch_first)
        assert all(np.array_equal(a, b.numpy()) for a, b in zip(back, ref))


def test_pad_sequence_accepts_tensors_and_an_array_of_sequences():
    require("torch")
    import torch
    padded, lengths = pad_sequence([torch.ones(2, 3), torch.zeros(1, 3)])
    assert padded.shape == (2, 2, 3) and padded.dtype == np.float32 and lengths.tolist() == [2, 1]
    same, lens = pad_sequence(np.ones((3, 5, 2)), batch_first=True)
    assert same.shape == (3, 5, 2) and lens.tolist() == [5, 5, 5]


@pytest.mark.parametrize("cell,bi", list(itertools.product(["RNN", "LSTM", "GRU"], [False, True])))
def test_lengths_from_pad_sequence_give_each_sequence_its_own_result(cell, bi):
    """A padded batch with the returned lengths == each sequence run alone (unbatched)."""
    rng = np.random.default_rng(1)
    layer = getattr(nn, cell)(3, 4, num_layers=2, bidirectional=bi, dtype=np.float64, seed=0)
    seqs = _seqs(np.float64, (3,), rng)
    x, lengths = pad_sequence([s / 10 for s in seqs])
    out, state = layer(x, lengths=lengths)
    outs = unpad_sequence(out, lengths)
    h = state[0] if cell == "LSTM" else state
    for n, s in enumerate(seqs):
        o, st = layer(s / 10)
        assert np.abs(outs[n] - o).max() < 1e-12
        assert np.abs(h[:, n] - (st[0] if cell == "LSTM" else st)).max() < 1e-12
    assert np.all(out[lengths[1]:, 1] == 0)


@pytest.mark.parametrize("call,match", [
    (lambda: pad_sequence([]), "at least one sequence"),
    (lambda: pad_sequence([np.ones((2, 3)), np.ones((2, 4))]), r"trailing shape \(3,\)"),
    (lambda: pad_sequence([np.ones(2), 1.0]), "at least 1-D"),
    (lambda: pad_sequence([np.ones(2)], padding_side="middle"), "padding_side"),
    (lambda: pad_sequence([np.ones(2, int)], padding_value=float("nan")), "finite for integer"),
    (lambda: pad_sequence([np.array(["a"])]), "dtype"),
    (lambda: unpad_sequence(np.ones((3, 2)), [1, 4]), r"\[0, T=3\]"),
    (lambda: unpad_sequence(np.ones((3, 2)), [1]), r"shape \(N=2,\)"),
    (lambda: unpad_sequence(np.ones((3, 2)), [1.5, 2]), "integers"),
])
def test_bad_inputs_raise_one_clear_error(call, match):
    with pytest.raises(RnnkitError, match=match):
        call()
