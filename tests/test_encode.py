"""Large texts in stream mode (rnnkit.data.encode): block-by-block decoding equals read_text,
the encoded ids equal Vocab.build + encode of the whole text in a compact dtype, the id file
is reused while the source is unchanged and rebuilt when it changes, and `rnnkit train` on a
"large" file (threshold lowered) trains exactly as on the same text read whole."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import main
from rnnkit.data import Vocab, encode, load_text_data, read_text
from rnnkit.errors import DataError

pytestmark = pytest.mark.usefixtures("fast_io")

ALPHABET = "ab\r\n é€😀"           # 1-, 2-, 3- and 4-byte UTF-8, and both line-ending bytes


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=ALPHABET, min_size=1, max_size=60), block=st.integers(1, 7),
       enc=st.sampled_from(["utf-8", "utf-16", "bytes"]))
def test_pieces_join_to_read_text(tmp_path_factory, text, block, enc):
    """Blocks cut anywhere (inside a multi-byte character, between \\r and \\n) decode to
    exactly what read_text returns."""
    path = tmp_path_factory.mktemp("t") / "x.txt"
    path.write_bytes(text.encode("utf-8" if enc == "bytes" else enc))
    pieces = list(encode.iter_text(path, enc, block_bytes=block))
    assert "".join(pieces) == read_text(path, encoding=enc)


@pytest.mark.parametrize("chars,dtype", [("abc\n", np.uint8), ("".join(map(chr, range(300, 700))), np.uint16)])
@pytest.mark.parametrize("cached", [False, True])
def test_ids_equal_the_whole_text_encoding(tmp_path, chars, dtype, cached):
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list(chars), 5000))
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    vocab, ids = encode.load_encoded(path, cache_dir=tmp_path / "data" if cached else None,
                                     block_bytes=97)
    assert vocab == Vocab.build(text)
    assert ids.dtype == dtype and ids.shape == (len(text),)
    assert np.array_equal(ids, Vocab.build(text).encode(text))
    assert isinstance(ids, np.memmap) == cached


def test_cache_is_reused_and_rebuilt_when_the_source_changes(tmp_path):
    path, cache = tmp_path / "big.txt", tmp_path / "data"
    path.write_text("hello world\n" * 500, encoding="utf-8")
    _, ids = encode.load_encoded(path, cache_dir=cache)
    stamp = (cache / "ids.uint8").stat().st_mtime_ns
    del ids
    os.utime(cache / "ids.uint8", ns=(stamp - 10**9, stamp - 10**9))      # mark the file
    _, ids = encode.load_encoded(path, cache_dir=cache)                    # unchanged: reused
    assert (cache / "ids.uint8").stat().st_mtime_ns == stamp - 10**9
    path.write_text("hello world?\n" * 500, encoding="utf-8")               # changed: rebuilt
    vocab, ids = encode.load_encoded(path, cache_dir=cache)
    assert "?" in vocab.chars and ids.shape == (6500,)
    assert np.array_equal(ids, vocab.encode("hello world?\n" * 500))
    (cache / "ids.json").write_text("{damaged")                             # damaged: rebuilt
    vocab2, ids2 = encode.load_encoded(path, cache_dir=cache)
    assert vocab2 == vocab and np.array_equal(ids2, ids)


def test_errors_name_the_file_and_the_byte(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc" * 100 + b"\xff" + b"abc")
    with pytest.raises(DataError, match=r"byte offset 300 .*--encoding latin-1"):
        encode.load_encoded(bad, block_bytes=7)
    with pytest.raises(DataError, match="does not exist"):
        encode.load_encoded(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="directory"):
        encode.load_encoded(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        encode.load_encoded(tmp_path / "empty.txt")


def test_large_file_data_equal_the_in_memory_path(tmp_path, monkeypatch):
    text = ("It was the best of times, it was the worst of times.\r\n" * 300)
    path = tmp_path / "novel.txt"
    path.write_bytes(text.encode("utf-8"))
    kw = dict(mode="auto", val_frac=0.1, seq_len=16, batch_size=8)
    small = load_text_data(path, **kw)
    monkeypatch.setattr(encode, "STREAM_MIN_BYTES", 1000)
    big = load_text_data(path, cache_dir=tmp_path / "data", **kw)
    assert big.mode == small.mode == "stream" and big.vocab == small.vocab
    assert big.summary == small.summary
    for a, b in ((small.train, big.train), (small.val, big.val)):
        assert a.dataset.ids.dtype == b.dataset.ids.dtype == np.uint8
        assert np.array_equal(a.dataset.ids, b.dataset.ids)
        for k in (0, 3, a.per_epoch + 1):
            assert np.array_equal(a.batch(k)[0].x, b.batch(k)[0].x)


def test_cli_trains_a_large_file_through_the_id_file(tmp_path, capsys, monkeypatch):
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(400))
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    opts = ["--mode", "stream", "--hidden-size", "16", "--num-layers", "1", "--batch-size", "8",
            "--seq-len", "16", "--eval-every", "5", "--dtype", "float64", "--quiet", "--num-samples", "0"]
    assert main(["train", str(path), "--steps", "10", "--out", str(tmp_path / "ref"), *opts]) == 0
    monkeypatch.setattr(encode, "STREAM_MIN_BYTES", 1000)
    run = tmp_path / "run"
    assert main(["train", str(path), "--steps", "5", "--out", str(run), *opts]) == 0
    assert (run / "data" / "ids.uint8").stat().st_size == len(text)
    calls = []
    monkeypatch.setattr(encode, "_scan", lambda *a: calls.append(a))         # must not re-encode
    assert main(["train", "--resume", str(run), "--steps", "10"]) == 0
    assert calls == []
    capsys.readouterr()
    a, b = load_checkpoint(tmp_path / "ref"), load_checkpoint(run)
    for k in a.model_state:
        assert np.array_equal(a.model_state[k], b.model_state[k]), k
