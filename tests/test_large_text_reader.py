"""One text reader for every size: a text of at least STREAM_MIN_BYTES (read block by block)
gets the same checks as a small one (non-text codecs, codec errors, lone surrogates), auto
mode looks at the whole file, and the id cache of a large text is checked before it is
trusted."""

import json

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.data import encode, load_text_data, read_text
from rnnkit.errors import ConfigError, DataError, RnnkitError

pytestmark = pytest.mark.usefixtures("fast_io")

UNEXPECTED = "unexpected"


@pytest.fixture
def small_blocks(monkeypatch):
    """Files of 2,000 bytes and more count as large, read in blocks of 512 bytes."""
    monkeypatch.setattr(encode, "STREAM_MIN_BYTES", 2000)
    monkeypatch.setattr(encode, "BLOCK_BYTES", 512)


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib", "punycode", "idna",
                                      "utf-16"])
@pytest.mark.parametrize("large", [False, True])
def test_codecs_get_one_clear_error_at_any_size(tmp_path, encoding, large, request):
    if large:
        request.getfixturevalue("small_blocks")
    f = tmp_path / "t.txt"
    f.write_bytes(b"hello world, the quick brown fox.\n" * 100)     # no UTF-16 byte-order mark
    with pytest.raises(RnnkitError) as e:
        load_text_data(f, mode="stream", encoding=encoding, seq_len=4, batch_size=2)
    assert isinstance(e.value, (ConfigError, DataError))
    assert encoding in str(e.value), str(e.value)


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib", "punycode", "idna",
                                      "utf-16"])
@pytest.mark.parametrize("large", [False, True])
def test_cli_codec_errors_are_never_the_catch_all(tmp_path, capsys, encoding, large, request):
    if large:
        request.getfixturevalue("small_blocks")
    f = tmp_path / "t.txt"
    f.write_bytes(b"hello world, the quick brown fox.\n" * 100)
    code = main(["train", str(f), "--encoding", encoding, "--mode", "stream", "--out",
                 str(tmp_path / "run"), "--steps", "1", "--quiet", "--num-samples", "0"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert UNEXPECTED not in err and encoding in err, err


def test_lone_surrogate_is_found_in_the_first_block(tmp_path, small_blocks, monkeypatch):
    """unicode_escape can decode to a lone surrogate: the large path must refuse it as
    read_text does, before anything is encoded (it used to be found after the whole file)."""
    f = tmp_path / "t.txt"
    f.write_bytes(b"ab\\ud800cd\n" + b"x" * 5000)
    with pytest.raises(DataError, match=r"surrogate.*U\+D800") as small:
        read_text(f, encoding="unicode_escape")
    calls = []
    real_encode = encode._encode
    monkeypatch.setattr(encode, "_encode", lambda *a, **k: calls.append(1) or real_encode(*a, **k))
    with pytest.raises(DataError, match=r"surrogate.*U\+D800") as big:
        load_text_data(f, mode="stream", encoding="unicode_escape", cache_dir=tmp_path / "data")
    assert calls == []
    assert "character 2" in str(small.value) and "character 2" in str(big.value), str(big.value)


def test_auto_mode_of_a_large_text_looks_at_the_whole_file(tmp_path, small_blocks):
    """Many short lines, then one line longer than MAX_LINE_CHARS far past the first block:
    auto mode used to choose lines mode from the head and then refuse the long line."""
    names = "".join(f"name{i % 97}\n" for i in range(800))
    f = tmp_path / "mixed.txt"
    f.write_text(names + "x" * 1500 + "\n" + names)
    data = load_text_data(f, seq_len=8, batch_size=4, cache_dir=tmp_path / "data")
    assert data.mode == "stream"


def test_auto_mode_of_a_large_names_file_is_lines(tmp_path, small_blocks):
    f = tmp_path / "names.txt"
    f.write_text("".join(f"name{i % 97}\n" for i in range(800)))
    assert load_text_data(f, cache_dir=tmp_path / "data").mode == "lines"


# ---------------------------------------------------------------- the id cache
def _big_run(tmp_path, capsys):
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(80))
    f = tmp_path / "big.txt"
    f.write_text(text)
    run = tmp_path / "run"
    assert main(["train", str(f), "--mode", "stream", "--out", str(run), "--steps", "2",
                 "--hidden-size", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "8",
                 "--quiet", "--num-samples", "0"]) == 0
    capsys.readouterr()
    return f, run


@pytest.mark.parametrize("where", ["below", "above"])
def test_a_damaged_id_cache_is_never_trained_on(tmp_path, capsys, small_blocks, where):
    f, run = _big_run(tmp_path, capsys)
    ids_file = run / "data" / "ids.uint8"
    vocab = json.loads((run / "data" / "ids.json").read_text())["chars"]
    good = np.fromfile(ids_file, dtype=np.uint8)
    bad = good.copy()
    bad[10] = (bad[10] + 1) % len(vocab) if where == "below" else 250      # 250 >= vocab size
    bad.tofile(ids_file)
    code = main(["train", "--resume", str(run), "--steps", "3"])
    err = capsys.readouterr().err
    # either rebuilt from the text (and says so, naming the cache) or refused naming it
    assert "data" in err and "ids" in err, err
    if code == 0:
        assert np.array_equal(np.fromfile(ids_file, dtype=np.uint8), good)
    else:
        assert UNEXPECTED not in err and len(err.strip().splitlines()) == 1, err
