"""rnnkit.sample.sample_request: the checks and length rules of `rnnkit sample`, in the library."""

import pytest

from rnnkit.errors import ConfigError
from rnnkit.sample import BEAM_LINE_LENGTH, DEFAULT_LENGTH, MAX_BEAM, MAX_LINE_LENGTH, sample_request


def test_lengths_default_and_bounds():
    r = sample_request()
    assert (r.max_len(lines=False), r.max_len(lines=True)) == (DEFAULT_LENGTH, min(DEFAULT_LENGTH, MAX_LINE_LENGTH))
    assert sample_request(beam=3).max_len(lines=True) == BEAM_LINE_LENGTH        # no length given
    assert sample_request(beam=3, length=500).max_len(lines=True) == 500          # asked for: kept
    assert sample_request(length=5000).max_len(lines=True) == MAX_LINE_LENGTH
    assert sample_request(length=5000).max_len(lines=False) == 5000


def test_pick_arguments_are_normalised():
    r = sample_request(top_k=0, temperature=0.5, greedy=1)
    assert r.pick_kw() == {"temperature": 0.5, "top_k": None, "top_p": 1.0, "greedy": True}


@pytest.mark.parametrize("kw, needle", [
    ({"num": 0}, "--num"), ({"length": 0}, "--length"), ({"beam": -1}, "--beam"),
    ({"beam": MAX_BEAM + 1}, "--beam"), ({"seed": -1}, "--seed"), ({"temperature": -1.0}, "temperature"),
])
def test_each_bad_option_is_one_error_naming_it(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        sample_request(flag=lambda name: "--" + name.replace("_", "-"), **kw)
