"""Tests for rnnkit.data (vocab, reading, batching) and rnnkit.datasets (built-in data).

References are independent: hand-written per-line / per-track loops, literal values, the raw
files of the `names` package, and statsmodels when installed.
"""

import collections
import math
import os
import sys

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.data import (
    BOUNDARY,
    IGNORE_INDEX,
    LinesDataset,
    LinesSource,
    StreamDataset,
    StreamSource,
    Vocab,
    detect_mode,
    read_text,
    split_lines,
    split_stream,
    train_val_split,
    unigram_entropy,
)
from rnnkit.errors import CheckpointError, ConfigError, DataError

from needs import require

# ------------------------------------------------------------------------------------ Vocab


@pytest.mark.parametrize("specials", [(), (BOUNDARY,), ("<pad>", BOUNDARY)])
def test_vocab_ids_round_trip_and_json(specials):
    text = "hello, wörld!\n\tzébra 日本"
    v = Vocab.build(text, specials=specials)
    chars = sorted(set(text))                                # independent reference order
    assert v.itos == list(specials) + chars
    assert len(v) == len(specials) + len(chars)
    ids = v.encode(text)
    assert ids.dtype == np.int64
    assert ids.tolist() == [len(specials) + chars.index(c) for c in text]
    assert v.decode(ids) == text
    v2 = Vocab.from_json(v.to_json())
    assert v2 == v and v2.encode(text).tolist() == ids.tolist()
    if BOUNDARY in specials:
        assert v.bos_id == v.eos_id == specials.index(BOUNDARY)
        assert v.decode([v.bos_id] + ids[:5].tolist() + [v.eos_id]) == BOUNDARY + text[:5] + BOUNDARY
        assert v.decode([v.bos_id] + ids[:5].tolist(), skip_specials=True) == text[:5]
    else:
        assert v.bos_id is None


def test_vocab_build_from_lines_is_deterministic():
    a = Vocab.build(["zoe", "adam"], specials=(BOUNDARY,))
    b = Vocab.build(["adam", "zoe"], specials=(BOUNDARY,))
    assert a.itos == b.itos == [BOUNDARY, "a", "d", "e", "m", "o", "z"]


def test_vocab_from_json_keeps_stored_order():
    d = {"format": "rnnkit.vocab", "version": 1, "specials": ["<eos>"], "chars": ["z", "a", "m"]}
    v = Vocab.from_json(d)
    assert v.encode("amz").tolist() == [2, 3, 1]
    assert v.decode([1, 2, 3]) == "zam"


def test_encode_unknown_characters_error():
    v = Vocab.build("abc")
    with pytest.raises(DataError) as e:
        v.encode("abXcY\x00")
    msg = str(e.value)
    assert "'X'" in msg and "'Y'" in msg and "'\\x00'" in msg
    assert "3 unknown" in msg and "position 2" in msg and "Vocab.build" in msg
    with pytest.raises(DataError):
        v.decode([0, 3])


_GOOD = {"format": "rnnkit.vocab", "version": 1, "specials": ["<eos>"], "chars": ["a", "b"]}


@pytest.mark.parametrize("bad, words", [
    ([1, 2], "dict"),
    ("abc", "dict"),
    ({**_GOOD, "format": "other"}, "format"),
    ({**_GOOD, "version": 2}, "version"),
    ({**_GOOD, "version": True}, "version"),
    ({**_GOOD, "chars": "ab"}, "list of strings"),
    ({**_GOOD, "chars": ["a", 7]}, "chars[1]"),
    ({**_GOOD, "chars": ["a", None]}, "chars[1]"),
    ({**_GOOD, "chars": ["a", "bc"]}, "exactly one character"),
    ({**_GOOD, "chars": ["a", ""]}, "exactly one character"),
    ({**_GOOD, "chars": ["a", "b", "a"]}, "duplicate"),
    ({**_GOOD, "chars": []}, "at least one"),
    ({**_GOOD, "specials": ["<eos>", "<eos>"]}, "duplicate"),
    ({**_GOOD, "specials": ["x"]}, "2 or more"),
    ({**_GOOD, "specials": [{"a": 1}]}, "specials[0]"),
    ({k: v for k, v in _GOOD.items() if k != "chars"}, "'chars'"),
    ({**_GOOD, "extra": 1}, "unexpected"),
])
def test_vocab_from_json_hostile(bad, words):
    Vocab.from_json(_GOOD)  # the unmodified dict is accepted
    with pytest.raises(CheckpointError) as e:
        Vocab.from_json(bad)
    assert words in str(e.value)


# ------------------------------------------------------------------------------ read_text


def test_read_text_encodings(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("héllo\r\nworld\rend".encode())
    assert read_text(p) == "héllo\nworld\nend"
    raw = b"caf\xe9 \xff\x00\r\n"
    p.write_bytes(raw)
    assert read_text(p, encoding="latin-1") == "café ÿ\x00\n"
    b = read_text(p, encoding="bytes")
    assert [ord(c) for c in b] == list(raw)                  # exact, one char per byte
    assert read_text(p, errors="replace").startswith("caf\ufffd")


def test_read_text_non_utf8_names_offset(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes(b"abc\ndef caf\xe9!")
    with pytest.raises(DataError) as e:
        read_text(p)
    msg = str(e.value)
    assert "offset 11" in msg and "0xe9" in msg
    assert "--encoding latin-1" in msg and "bytes" in msg


@pytest.mark.parametrize("kind, words", [("missing", "does not exist"), ("dir", "directory"),
                                         ("empty", "empty")])
def test_read_text_bad_paths(tmp_path, kind, words):
    p = tmp_path / "x.txt"
    if kind == "dir":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    with pytest.raises(DataError, match=words):
        read_text(p)
    with pytest.raises(DataError, match=words):
        datasets.load("text_file", path=str(p))


def test_read_text_unknown_encoding(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("x")
    with pytest.raises(ConfigError, match="encoding"):
        read_text(p, encoding="no-such-codec")


# ------------------------------------------------------------------------------ lines mode


def _reference_batch(lines, vocab, pad):
    """Per-line loop, straight from the definition."""
    T = max(len(s) for s in lines) + 1
    x = np.full((T, len(lines)), pad)
    y = np.full((T, len(lines)), IGNORE_INDEX)
    for n, s in enumerate(lines):
        ids = [vocab.stoi[c] for c in s]
        x[: len(s) + 1, n] = [0] + ids
        y[: len(s) + 1, n] = ids + [0]
    return x, y, [len(s) + 1 for s in lines]


@pytest.mark.parametrize("pad_id", [None, 3])
def test_lines_batch_layout(pad_id):
    lines = ["emma", "", "olivia", "ava", "x"]
    vocab = Vocab.build(lines, specials=(BOUNDARY,))
    assert vocab.stoi[BOUNDARY] == 0
    ds = LinesDataset(lines, vocab, pad_id=pad_id)
    order = [2, 0, 1, 4, 3]
    b = ds.get_batch(order)
    rx, ry, rl = _reference_batch([lines[i] for i in order], vocab, 0 if pad_id is None else pad_id)
    assert b.x.dtype == b.y.dtype == b.lengths.dtype == np.int64
    assert b.x.shape == (7, 5)
    np.testing.assert_array_equal(b.x, rx)
    np.testing.assert_array_equal(b.y, ry)
    assert b.lengths.tolist() == rl
    # targets are the inputs shifted by one inside each sequence
    for n, L in enumerate(b.lengths):
        np.testing.assert_array_equal(b.y[: L - 1, n], b.x[1:L, n])
        assert (b.y[L:, n] == IGNORE_INDEX).all()
    assert vocab.decode(b.x[:, 0], skip_specials=True) == "olivia"


def test_lines_source_epochs_are_seeded_permutations_and_pure_in_step():
    lines = [f"w{i:02d}" for i in range(23)]
    vocab = Vocab.build(lines, specials=(BOUNDARY,))
    src = LinesSource(LinesDataset(lines, vocab), batch_size=5, seed=7)
    assert src.per_epoch == 4                                 # the partial 5th batch is dropped
    firsts = []
    for e in range(2):
        seen = []
        for k in range(4 * e, 4 * e + 4):
            b, reset = src.batch(k)
            assert reset
            seen += [vocab.decode(b.x[1:L, n]) for n, L in enumerate(b.lengths)]
        assert len(set(seen)) == 20 and set(seen) <= set(lines)   # no repeats within an epoch
        firsts.append(seen)
    assert firsts[0] != firsts[1]                             # shuffled, differently
    perm = np.random.default_rng([7, 0]).permutation(23)      # epoch 0's order, from (seed, epoch)
    assert firsts[0] == [lines[i] for i in perm[:20]]
    # a pure function of (seed, step): a fresh source, asked out of order, gives the same batches
    other = LinesSource(LinesDataset(lines, vocab), batch_size=5, seed=7)
    for k in (6, 1, 13, 6):
        np.testing.assert_array_equal(other.batch(k)[0].x, src.batch(k)[0].x)


def test_lines_dataset_needs_boundary_token():
    with pytest.raises(DataError, match="specials=\\(BOUNDARY,\\)"):
        LinesDataset(["ab"], Vocab.build(["ab"]))
    with pytest.raises(DataError, match="unknown"):
        LinesDataset(["ab", "q"], Vocab.build(["ab"], specials=(BOUNDARY,)))


# ----------------------------------------------------------------------------- stream mode


def test_stream_chunks_match_tracks_and_are_contiguous():
    ids = np.arange(1000) * 7 % 31                            # any stream of ids
    T, N = 9, 4
    ds = StreamDataset(ids, seq_len=T, batch_size=N)
    L = (len(ids) - 1) // N
    assert ds.num_chunks == L // T == 27
    for k in range(ds.num_chunks):
        x, y = ds.chunk(k)
        assert x.shape == y.shape == (T, N) and x.dtype == np.int64
        for n in range(N):
            start = n * L + k * T
            assert x[:, n].tolist() == ids[start:start + T].tolist()
            assert y[:, n].tolist() == ids[start + 1:start + T + 1].tolist()
    # across chunks, every track continues where it stopped: y's last = next x's first
    chunks = [ds.chunk(k) for k in range(ds.num_chunks)]
    for a, b in zip(chunks, chunks[1:]):
        np.testing.assert_array_equal(a.y[-1], b.x[0])
    # concatenating the chunks of one epoch gives back each track, in order
    xs = np.concatenate([c.x for c in chunks])             # (C*T, N)
    for n in range(N):
        assert xs[:, n].tolist() == ids[n * L:n * L + ds.num_chunks * T].tolist()


def test_stream_source_wraps_around_and_is_pure_in_step():
    ds = StreamDataset(np.arange(203) % 13, seq_len=5, batch_size=3)
    C = ds.num_chunks
    src = StreamSource(ds)
    full = [src.batch(k) for k in range(2 * C + 4)]
    assert [reset for _, reset in full] == [k % C == 0 for k in range(2 * C + 4)]
    for k in (0, 1, C - 1, C + 2):                            # a fresh source from step k
        b, reset = StreamSource(ds).batch(k)
        np.testing.assert_array_equal(b.x, full[k][0].x)
        np.testing.assert_array_equal(b.y, full[k][0].y)
    np.testing.assert_array_equal(full[C][0].x, full[0][0].x)      # epoch 2 restarts the tracks
    np.testing.assert_array_equal(full[C + 1][0].y, full[1][0].y)


def test_stream_dataset_keeps_compact_ids():
    ids = (np.arange(500) % 200).astype(np.uint8)
    ds = StreamDataset(ids, seq_len=7, batch_size=3)
    assert ds.ids.dtype == np.uint8                           # not widened to int64 in memory
    ref = StreamDataset(ids.astype(np.int64), seq_len=7, batch_size=3)
    for k in range(ds.num_chunks):
        np.testing.assert_array_equal(ds.chunk(k).x, ref.chunk(k).x)
        assert ds.chunk(k).x.dtype == np.int64


def test_stream_too_short():
    with pytest.raises(DataError, match="at least batch_size \\* seq_len \\+ 1 = 21"):
        StreamDataset(np.arange(20), seq_len=5, batch_size=4)
    StreamDataset(np.arange(21), seq_len=5, batch_size=4)


# -------------------------------------------------------------------------------- helpers


def test_detect_mode():
    assert detect_mode("\n".join(datasets.names()[:200])) == "lines"
    assert detect_mode(datasets.pydoc_topics()) == "stream"
    assert detect_mode("\n".join(["ab"] * 49)) == "stream"     # too few lines
    assert detect_mode("\n".join(["ab"] * 50)) == "lines"
    assert detect_mode("\n".join(["y" * 41] * 100)) == "stream"
    assert split_lines("  a \n\n\r\nb\n") == ["a", "b"]


def test_train_val_split():
    items = [f"i{k}" for k in range(100)]
    tr, va = train_val_split(items, 0.1, np.random.default_rng(1))
    assert len(va) == 10 and len(tr) == 90
    assert sorted(tr + va) == sorted(items)
    assert tr == [i for i in items if i in set(tr)]         # original order kept
    tr2, va2 = train_val_split(items, 0.1, np.random.default_rng(2))
    assert va2 != va
    assert train_val_split(["a", "b"], 0.01, np.random.default_rng(0))[1] != []
    s_tr, s_va = split_stream("abcdefghij", 0.3)
    assert (s_tr, s_va) == ("abcdefg", "hij")
    a_tr, a_va = split_stream(np.arange(10), 0.2)
    assert a_va.tolist() == [8, 9]


def test_unigram_entropy():
    text = "aaabbc" * 5 + "d"
    counts = collections.Counter(text)
    ref = -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())
    v = Vocab.build(text, specials=(BOUNDARY,))
    assert unigram_entropy(v.encode(text), len(v)) == pytest.approx(ref, rel=1e-12)
    assert unigram_entropy(np.arange(8), 8) == pytest.approx(math.log(8), rel=1e-12)


# ------------------------------------------------------------------------------ datasets


def _census_file(name):
    import names as pkg
    return os.path.join(os.path.dirname(pkg.__file__), name)


@pytest.mark.slow
def test_names_sizes_and_ambiguity():
    require("names")
    with open(_census_file("dist.female.first")) as f:
        raw_f = [ln.split()[0].lower() for ln in f if ln.strip()]
    with open(_census_file("dist.male.first")) as f:
        raw_m = [ln.split()[0].lower() for ln in f if ln.strip()]
    assert (len(raw_f), len(raw_m)) == (4275, 1219)
    female, male = datasets.names_by_sex()
    assert female == raw_f and male == raw_m
    assert female[:3] == ["mary", "patricia", "linda"] and male[:2] == ["james", "john"]
    both = set(raw_f) & set(raw_m)
    assert len(both) == 331 and "james" in both
    xs, labels = datasets.names_sex_dataset(drop_ambiguous=True)
    assert len(xs) == len(labels) == 4275 + 1219 - 2 * 331
    assert labels.dtype == np.int64 and int((labels == 1).sum()) == 1219 - 331
    assert not (set(xs) & both) and len(set(xs)) == len(xs)
    assert all(labels[i] == (0 if xs[i] in set(raw_f) else 1) for i in range(len(xs)))
    xs2, labels2 = datasets.names_sex_dataset(drop_ambiguous=False)
    assert len(xs2) == 5494 and xs2.count("james") == 2
    allnames = datasets.load("names")
    assert len(allnames) == len(set(raw_f) | set(raw_m)) == 5163
    assert all(n.isalpha() and n.islower() for n in allnames)


def test_names_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "names", None)          # makes `import names` fail
    with pytest.raises(DataError, match="pip install names"):
        datasets.names()


def test_pydoc_topics():
    from pydoc_data.topics import topics
    text = datasets.load("pydoc_topics")
    assert len(text) >= sum(len(v) for v in topics.values())
    assert "The \"assert\" statement" in text
    assert text.index(topics["assert"][:40]) < text.index(topics["while"][:40])


def test_adding_problem_invariants():
    X, y = datasets.adding_problem(500, 30, np.random.default_rng(5))
    assert X.shape == (30, 500, 2) and y.shape == (500, 1)
    m = X[:, :, 1]
    assert set(np.unique(m).tolist()) == {0.0, 1.0}
    assert (m[:15].sum(0) == 1).all() and (m[15:].sum(0) == 1).all()
    for n in range(500):
        (i, j) = np.flatnonzero(m[:, n])
        assert i < 15 <= j and y[n, 0] == pytest.approx(X[i, n, 0] + X[j, n, 0], abs=1e-15)
    assert ((X[:, :, 0] >= 0) & (X[:, :, 0] < 1)).all()
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.03)   # the known baseline
    X2, _ = datasets.load("adding", n=500, seq_len=30, rng=5)
    np.testing.assert_array_equal(X2, X)                    # int seed == Generator(seed)
    X3, y3 = datasets.adding_problem(4, 7, 0, dtype=np.float32)
    assert X3.dtype == y3.dtype == np.float32 and (X3[:3, :, 1].sum(0) == 1).all()


def test_copy_memory_layout():
    X, Y = datasets.copy_memory(6, delay=20, rng=1, n_symbols=8, copy_len=10)
    assert X.shape == Y.shape == (40, 6) and X.dtype == np.int64
    seq = X[:10]
    assert ((seq >= 1) & (seq <= 8)).all()
    assert (X[29] == 9).all() and (X[10:29] == 0).all() and (X[30:] == 0).all()
    assert (Y[:30] == 0).all()
    np.testing.assert_array_equal(Y[30:], seq)


def test_noisy_sine():
    X, Y = datasets.noisy_sine(8, 50, rng=2, noise=0.1)
    assert X.shape == Y.shape == (50, 8, 1)
    np.testing.assert_array_equal(Y[:-1], X[1:])
    Xc, _ = datasets.noisy_sine(8, 50, rng=2, noise=0.0)
    assert np.std(X - Xc) == pytest.approx(0.1, rel=0.15)
    # noise-free series are sinusoids: s[t+1] + s[t-1] = 2 cos(w) s[t] with |2cos(w)| < 2
    s = Xc[:, :, 0]
    for n in range(8):
        ratio = (s[2:, n] + s[:-2, n])[np.abs(s[1:-1, n]) > 0.3] / s[1:-1, n][np.abs(s[1:-1, n]) > 0.3]
        assert np.ptp(ratio) < 1e-9


def test_sunspots():
    years, values = datasets.load("sunspots")
    assert years.dtype == np.int64 and values.dtype == np.float64
    assert len(years) == len(values) == 309
    assert years.tolist() == list(range(1700, 2009))
    known = {1700: 5.0, 1778: 154.4, 1810: 0.0, 1957: 190.2, 2008: 2.9}
    for yr, val in known.items():
        assert values[yr - 1700] == val


@pytest.mark.slow
def test_sunspots_against_statsmodels():
    sm = require("statsmodels.datasets.sunspots")
    df = sm.load_pandas().data
    years, values = datasets.sunspots()
    np.testing.assert_array_equal(years, df["YEAR"].to_numpy().astype(np.int64))
    np.testing.assert_array_equal(values, df["SUNACTIVITY"].to_numpy())


def test_load_unknown_name():
    assert "sunspots" in datasets.available()
    with pytest.raises(ConfigError, match="'adding'"):
        datasets.load("nope")
