"""Tests of rnnkit.sample: next-token distributions (temperature, top-k, top-p), drawing,
greedy decoding, beam search and log-probabilities, and ``rnnkit sample`` on the command line.

References are independent of the code under test: a loop-based NumPy implementation of the
filters, the inverse CDF computed here, greedy decoding and sequence log-probabilities from
one full forward pass per prefix (no step function, no carried state), exhaustive search over
all short continuations, and ONNX Runtime for ``--onnx``.
"""

import itertools
import math
import re

import numpy as np
import pytest

from rnnkit import datasets, nn
from rnnkit._mode import no_grad
from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import main
from rnnkit.data import BOUNDARY, LinesDataset, LinesSource, Vocab
from rnnkit.errors import DataError, ShapeError
from rnnkit.nn import model_from_config
from rnnkit.sample import (
    beam_search,
    greedy_with_logprob,
    pick,
    probabilities,
    sample_lines,
    sample_stream,
    sequence_logprob,
)
from rnnkit.train import TrainConfig, Trainer

from needs import require

NAMES = datasets.names()[:400]
STREAM_TEXT = ("the quick brown fox jumps over the lazy dog; pack my box with five dozen "
               "liquor jugs. how vexingly quick daft zebras jump!\n") * 30


pytestmark = pytest.mark.usefixtures("fast_io")


# ============================================================================== references
def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def ref_probs(row, temperature=1.0, top_k=None, top_p=None):
    """One row, written out with loops: temperature, then top-k, softmax, then nucleus."""
    z = [float(v) for v in row]
    V = len(z)
    if temperature == 0:
        out = [0.0] * V
        out[int(np.argmax(z))] = 1.0
        return np.array(out)
    z = [v / temperature for v in z]
    allowed = set(range(V))
    if top_k:
        allowed = set(sorted(range(V), key=lambda i: -z[i])[:top_k])
    m = max(z[i] for i in allowed)
    e = [math.exp(z[i] - m) if i in allowed else 0.0 for i in range(V)]
    s = sum(e)
    p = [v / s for v in e]
    if top_p is not None and top_p < 1:
        keep, mass = [], 0.0
        for i in sorted(range(V), key=lambda i: -p[i]):
            keep.append(i)
            mass += p[i]
            if mass >= top_p:
                break
        s = sum(p[i] for i in keep)
        p = [p[i] / s if i in keep else 0.0 for i in range(V)]
    return np.array(p)


def forward_logits(model, ids):
    """Logits (len(ids), V) of one full forward pass over ``ids`` (N = 1)."""
    with no_grad():
        logits, _ = model(np.asarray(ids, np.int64)[:, None])
    return np.asarray(logits[:, 0], np.float64)


def ref_logprob(model, start_ids, cont_ids):
    """log P(cont_ids | start_ids) from one forward pass over start + cont."""
    seq = list(start_ids) + list(cont_ids)
    lp = np_log_softmax(forward_logits(model, seq[:-1]))
    n0 = len(start_ids)
    return float(sum(lp[n0 - 1 + i, v] for i, v in enumerate(cont_ids)))


def ref_greedy(model, start_ids, max_len, stop_id=None):
    """Greedy ids by re-running the whole prefix at every step; (ids, finished)."""
    seq = list(start_ids)
    out = []
    for _ in range(max_len):
        v = int(forward_logits(model, seq)[-1].argmax())
        if v == stop_id:
            return out, True
        out.append(v)
        seq.append(v)
    return out, False


# ============================================================================== models
@pytest.fixture(scope="module")
def lines_lm():
    """A CharLM (float64) trained a little on names, so that greedy lines end."""
    vocab = Vocab.build(NAMES, specials=(BOUNDARY,))
    model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=16, num_layers=1,
                                      embedding_size=8, dtype="float64"), seed=0)
    src = LinesSource(LinesDataset(NAMES, vocab), 32, seed=0)
    Trainer(model, src, None, TrainConfig(steps=150, lr=1e-2, eval_every=1000, progress=False)).fit()
    model.eval()
    return model, vocab


@pytest.fixture(scope="module")
def small_stream_lm():
    """A random CharLM (float64) over 5 characters with peaked distributions."""
    vocab = Vocab.build("abcde")
    model = nn.CharLM(nn.CharLMConfig(vocab_size=5, hidden_size=8, num_layers=1, embedding_size=4,
                                      cell="gru", dtype="float64"), seed=7)
    model.parameters()["head.weight"][...] *= 6.0
    model.eval()
    return model, vocab


# ============================================================================== distributions
RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((6, 11)) * 2.0


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, None, None), (0.5, None, None), (2.0, None, None), (1.0, 3, None), (0.7, 5, None),
    (1.0, None, 0.5), (1.3, None, 0.9), (0.8, 4, 0.6), (1.0, 1, None), (1.0, None, 0.0),
    (0.0, None, None), (1.0, 11, None), (1.0, 50, None), (1.0, None, 1.0),
])
def test_probabilities_match_reference(temperature, top_k, top_p):
    p = probabilities(LOGITS, temperature, top_k, top_p)
    ref = np.stack([ref_probs(r, temperature, top_k, top_p) for r in LOGITS])
    assert p.shape == LOGITS.shape
    np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("top_p,kept", [(0.5, 1), (0.75, 2), (0.875, 3), (0.76, 3), (0.49, 1), (1.0, 4)])
def test_top_p_keeps_the_smallest_set_reaching_top_p(top_p, kept):
    logits = np.log(np.array([0.5, 0.25, 0.125, 0.125]))       # exact dyadic probabilities
    p = probabilities(logits, 1.0, None, top_p)[0]
    assert np.count_nonzero(p) == kept
    np.testing.assert_allclose(p, ref_probs(logits, 1.0, None, top_p), rtol=1e-15)


def test_probabilities_of_one_row():
    np.testing.assert_allclose(probabilities(LOGITS[0]), ref_probs(LOGITS[0])[None], rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(greedy=True), dict(temperature=1e-6),
                                dict(top_k=1), dict(top_p=0.0), dict(temperature=3.0, top_k=1)])
def test_degenerate_settings_pick_the_argmax(kw):
    x = np.random.default_rng(1).standard_normal((200, 13))
    rng = np.random.default_rng(2)
    for _ in range(3):
        assert np.array_equal(pick(x, rng, **kw), x.argmax(axis=-1))


@pytest.mark.parametrize("a,b", [
    (dict(top_k=13), dict()), (dict(top_k=100), dict()), (dict(top_k=0), dict()),
    (dict(top_p=1.0), dict()), (dict(top_k=13, top_p=1.0, temperature=1.0), dict()),
])
def test_no_op_filters_change_nothing(a, b):
    x = np.random.default_rng(3).standard_normal((300, 13))
    np.testing.assert_array_equal(probabilities(x, **{"temperature": 1.0, **a}),
                                  probabilities(x, **{"temperature": 1.0, **b}))
    assert np.array_equal(pick(x, np.random.default_rng(4), **a), pick(x, np.random.default_rng(4), **b))


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, None, None), (0.6, 4, None),
                                                     (1.2, None, 0.8)])
def test_pick_is_the_inverse_cdf_of_one_uniform_per_row(temperature, top_k, top_p):
    x = np.random.default_rng(5).standard_normal((500, 9))
    got = pick(x, np.random.default_rng(6), temperature, top_k, top_p)
    u = np.random.default_rng(6).random(len(x))
    for i, row in enumerate(x):
        c = np.cumsum(ref_probs(row, temperature, top_k, top_p))
        want = min(int(np.argmax(c >= u[i] * c[-1])), len(row) - 1)
        assert got[i] == want, i


def test_pick_frequencies_follow_the_distribution():
    x = np.tile(np.array([[1.0, 0.0, -0.5, 2.0, 0.3]]), (40000, 1))
    got = pick(x, np.random.default_rng(8), temperature=0.9, top_p=0.95)
    freq = np.bincount(got, minlength=5) / len(got)
    np.testing.assert_allclose(freq, ref_probs(x[0], 0.9, None, 0.95), atol=0.01)


# ============================================================================== decoding
def test_sample_lines_at_temperature_zero_is_greedy(lines_lm):
    model, vocab = lines_lm
    step = model.stepper().step
    ids, finished = ref_greedy(model, [vocab.bos_id], 40, stop_id=vocab.bos_id)
    assert finished
    want = vocab.decode(ids)
    for kw in (dict(temperature=0.0), dict(greedy=True)):
        assert sample_lines(step, vocab, 3, np.random.default_rng(0), max_len=40, **kw) == [want] * 3
    pre, _ = ref_greedy(model, [vocab.bos_id] + list(vocab.encode("ma")), 40, stop_id=vocab.bos_id)
    got = sample_lines(step, vocab, 2, np.random.default_rng(0), max_len=40, prime="ma", greedy=True)
    assert got == ["ma" + vocab.decode(pre)] * 2


def test_sample_lines_drops_ended_lines_and_samples_what_the_whole_batch_would(lines_lm):
    """Finished lines leave the batch, yet each line is the one the full batch gives: a
    reference that steps all rows to the end with the whole forward pass, drawing one uniform
    per row and step by the inverse CDF of the model's distribution."""
    model, vocab = lines_lm
    num, max_len, bos = 40, 30, vocab.bos_id
    rng = np.random.default_rng(7)
    toks = np.full((num, 1), bos)
    ended = np.full(num, -1)
    for t in range(max_len):
        with no_grad():
            logits, _ = model(toks.T)                                  # (t+1, num, V)
        p = np.exp(np_log_softmax(logits[-1]))
        c = np.cumsum(p, axis=-1)
        u = rng.random(num)
        nxt = np.minimum((c < (u * c[:, -1])[:, None]).sum(axis=-1), c.shape[1] - 1)
        ended[(nxt == bos) & (ended < 0)] = t
        toks = np.concatenate([toks, nxt[:, None]], axis=1)
        if (ended >= 0).all():
            break
    want = [vocab.decode(toks[i, 1:1 + (ended[i] if ended[i] >= 0 else max_len)]) for i in range(num)]
    sizes = []
    step = model.stepper().step

    def counting(tokens, state):
        sizes.append(len(tokens))
        return step(tokens, state)

    got = sample_lines(counting, vocab, num, np.random.default_rng(7), max_len=max_len)
    assert got == want
    assert sizes[0] == num and sizes[-1] < num and sizes == sorted(sizes, reverse=True)


def test_decode_rows_equals_decode_row_by_row():
    vocab = Vocab.build("abcdef", specials=(BOUNDARY,))
    ids = np.random.default_rng(0).integers(0, len(vocab), size=(5, 9))
    lengths = [0, 3, 9, 1, 7]
    assert vocab.decode_rows(ids, lengths) == [vocab.decode(r[:n]) for r, n in zip(ids, lengths)]
    assert (vocab.decode_rows(ids, lengths, skip_specials=True)
            == [vocab.decode(r[:n], skip_specials=True) for r, n in zip(ids, lengths)])
    padded = ids.copy()
    padded[1, 3:] = -1                                   # past the row's length: never read
    assert vocab.decode_rows(padded, lengths)[1] == vocab.decode(ids[1, :3])
    with pytest.raises(DataError, match="expected ids in"):
        vocab.decode_rows(ids + len(vocab), lengths)
    for bad in ([3], [1] * 6, [-1, 3, 9, 1, 7], [0, 3, 10, 1, 7]):
        with pytest.raises((ShapeError, DataError), match="lengths"):
            vocab.decode_rows(ids, bad)
    with pytest.raises(ShapeError, match=r"\(N, T\)"):
        vocab.decode_rows(ids[0], [3])


def test_sample_lines_runs_the_full_batch_for_a_state_it_cannot_cut(lines_lm):
    """A step function with its own state layout (here batch-first arrays in a list, and a
    counter) gets the full batch at every step, and samples what rnnkit's own state gives."""
    model, vocab = lines_lm
    step = model.stepper().step

    def own_layout(tokens, state):
        inner = None if state is None else tuple(np.swapaxes(a, 0, 1) for a in state[0])
        logits, (h, c) = step(tokens, inner)
        sizes.append(len(tokens))
        return logits, ([np.swapaxes(h, 0, 1), np.swapaxes(c, 0, 1)], len(sizes))

    sizes = []
    want = sample_lines(step, vocab, 30, np.random.default_rng(3), max_len=25)
    got = sample_lines(own_layout, vocab, 30, np.random.default_rng(3), max_len=25)
    assert set(sizes) == {30} and len(sizes) > 1
    assert got == want


def test_sample_stream_greedy_and_length(small_stream_lm):
    model, vocab = small_stream_lm
    step = model.stepper().step
    ids, _ = ref_greedy(model, vocab.encode("ab"), 12)
    assert sample_stream(step, vocab, 12, np.random.default_rng(0), prime="ab", temperature=0) == \
        "ab" + vocab.decode(ids)
    s = sample_stream(step, vocab, 30, np.random.default_rng(1), prime="c")
    assert len(s) == 31 and s[0] == "c" and set(s) <= set("abcde")


def test_sequence_logprob_matches_full_forward(lines_lm):
    model, vocab = lines_lm
    step = model.stepper().step
    start = [vocab.bos_id] + list(vocab.encode("jo"))
    for cont, end in [("hn", True), ("sephine", True), ("x", False), ("anna", False)]:
        ids = list(vocab.encode(cont)) + ([vocab.bos_id] if end else [])
        assert sequence_logprob(step, vocab, start, cont, end) == \
            pytest.approx(ref_logprob(model, start, ids), abs=1e-9)


@pytest.mark.parametrize("prime", ["", "ma", "z"])
def test_beam_search_lines(lines_lm, prime):
    model, vocab = lines_lm
    step = model.stepper().step
    start = [vocab.bos_id] + list(vocab.encode(prime))
    beams = beam_search(step, vocab, 5, max_len=24, prime=prime, lines=True)
    assert len(beams) == 5 and len({b.text for b in beams}) == 5
    assert all(b.finished for b in beams)
    lps = [b.logprob for b in beams]
    assert lps == sorted(lps, reverse=True)
    for b in beams:
        assert b.text.startswith(prime)
        cont = b.text[len(prime):]
        ids = list(vocab.encode(cont)) + [vocab.bos_id]
        assert b.logprob == pytest.approx(ref_logprob(model, start, ids), abs=1e-9)
        assert b.logprob == pytest.approx(sequence_logprob(step, vocab, start, cont, True), abs=1e-9)
    g_ids, g_fin = ref_greedy(model, start, 24, stop_id=vocab.bos_id)
    assert g_fin
    g_lp = ref_logprob(model, start, g_ids + [vocab.bos_id])
    assert beams[0].logprob >= g_lp - 1e-12
    # beam 1 is greedy decoding when the greedy line ends
    one = beam_search(step, vocab, 1, max_len=24, prime=prime, lines=True)
    assert len(one) == 1 and one[0].finished
    assert one[0].text == prime + vocab.decode(g_ids)
    assert one[0].logprob == pytest.approx(g_lp, abs=1e-9)
    text, lp, fin = greedy_with_logprob(step, vocab, 24, start, lines=True)
    assert (text, fin) == (vocab.decode(g_ids), True) and lp == pytest.approx(g_lp, abs=1e-9)


def test_beam_search_stream_is_exact_when_the_beam_covers_every_prefix(small_stream_lm):
    model, vocab = small_stream_lm
    step = model.stepper().step
    L, V = 3, 5
    start = list(vocab.encode("a"))
    scored = sorted(((ref_logprob(model, start, list(c)), vocab.decode(list(c)))
                     for c in itertools.product(range(V), repeat=L)), reverse=True)
    beams = beam_search(step, vocab, V ** (L - 1), max_len=L, prime="a", lines=False)
    assert len(beams) == V ** (L - 1)
    assert [b.text for b in beams] == ["a" + t for _, t in scored[:V ** (L - 1)]]
    np.testing.assert_allclose([b.logprob for b in beams], [s for s, _ in scored[:V ** (L - 1)]],
                               atol=1e-9)
    # a narrow beam still returns sorted, correctly scored continuations, at least as good as greedy
    narrow = beam_search(step, vocab, 3, max_len=6, prime="a", lines=False)
    lps = [b.logprob for b in narrow]
    assert lps == sorted(lps, reverse=True)
    for b in narrow:
        assert len(b.text) == 7
        assert b.logprob == pytest.approx(ref_logprob(model, start, list(vocab.encode(b.text[1:]))),
                                          abs=1e-9)
    g_ids, _ = ref_greedy(model, start, 6)
    assert narrow[0].logprob >= ref_logprob(model, start, g_ids) - 1e-12


def test_unknown_prime_characters_are_named(lines_lm):
    model, vocab = lines_lm
    with pytest.raises(DataError, match=r"'#'.*'€'|'€'.*'#'"):
        sample_lines(model.stepper().step, vocab, 2, np.random.default_rng(0), prime="a#€")


# ============================================================================== rnnkit sample (CLI)
def cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Float32 checkpoints written by `rnnkit train`: {'lines': dir, 'stream': dir}."""
    root = tmp_path_factory.mktemp("sample-ckpts")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    (root / "prose.txt").write_text(STREAM_TEXT, encoding="utf-8")
    dirs = {}
    for kind, fname in (("lines", "names.txt"), ("stream", "prose.txt")):
        d = root / kind
        assert main(["train", str(root / fname), "--out", str(d), "--steps", "60", "--lr", "0.01",
                     "--hidden-size", "16", "--num-layers", "1", "--embedding-size", "8",
                     "--batch-size", "16", "--seq-len", "16", "--quiet", "--num-samples", "0"]) == 0
        dirs[kind] = d
    return dirs


def load_model(directory):
    ck = load_checkpoint(directory, load_optimizer=False)
    model = model_from_config(ck.config)
    model.load_state_dict(ck.model_state)
    model.eval()
    return model, Vocab.from_json(ck.vocab)


def test_cli_sample_unknown_prime_exits_1_naming_the_characters(capsys, ckpts):
    code, out, err = cli(capsys, "sample", ckpts["lines"], "--prime", "a#€")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "'#'" in lines[0] and "'€'" in lines[0]


@pytest.mark.parametrize("args,needle", [(["--top-p", "1.5"], "top_p"), (["--temperature", "-1"], "temperature"),
                                         (["--num", "0"], "--num")])
def test_cli_sample_bad_values_exit_1(capsys, ckpts, args, needle):
    code, _, err = cli(capsys, "sample", ckpts["lines"], *args)
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1


def test_cli_sample_temperature_zero_is_greedy(capsys, ckpts):
    model, vocab = load_model(ckpts["lines"] / "best")
    ids, finished = ref_greedy(model, [vocab.bos_id], 1000, stop_id=vocab.bos_id)
    for flag in (["--temperature", "0"], ["--greedy"]):
        code, out, err = cli(capsys, "sample", ckpts["lines"], "--num", 3, *flag)
        assert code == 0, err
        assert out.splitlines() == [vocab.decode(ids)] * 3


def test_cli_sample_beam_prints_scored_lines(capsys, ckpts):
    model, vocab = load_model(ckpts["lines"] / "best")
    code, out, err = cli(capsys, "sample", ckpts["lines"], "--beam", 3, "--prime", "a")
    assert code == 0, err
    rows = [re.fullmatch(r"\s*(-?\d+\.\d+)  (.*?)(  \(unfinished\))?", line) for line in out.splitlines()]
    assert len(rows) == 3 and all(rows)
    start = [vocab.bos_id, *vocab.encode("a")]
    for m in rows:
        assert m.group(2).startswith("a")
        ids = list(vocab.encode(m.group(2)[1:])) + ([] if m.group(3) else [vocab.bos_id])
        assert float(m.group(1)) == pytest.approx(ref_logprob(model, start, ids), abs=2e-4)


@pytest.mark.parametrize("kind,args", [("lines", ["--num", "12"]), ("lines", ["--num", "5", "--prime", "ka"]),
                                       ("stream", ["--length", "200", "--top-k", "5"])])
def test_cli_sample_onnx_gives_the_same_text(tmp_path, capsys, monkeypatch, ckpts, kind, args):
    require("onnx")
    require("onnxruntime")
    from rnnkit.interop.onnx_runtime import OnnxCharLM
    calls = []
    real_step = OnnxCharLM.step

    def counting_step(self, tokens, state=None):
        calls.append(1)
        return real_step(self, tokens, state)

    monkeypatch.setattr(OnnxCharLM, "step", counting_step)
    f = tmp_path / "lm.onnx"
    code, out, err = cli(capsys, "export", ckpts[kind], "--onnx", f)
    assert code == 0, err
    code, plain, err = cli(capsys, "sample", ckpts[kind], "--seed", 11, *args)
    assert code == 0, err
    code, via_onnx, err = cli(capsys, "sample", ckpts[kind], "--seed", 11, "--onnx", f, *args)
    assert code == 0, err
    assert via_onnx == plain and len(plain) > 20
    assert len(calls) >= 3                                     # ONNX Runtime did the work


# ------------------------------------------------------------------------ the inference path
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("E,dtype", [(5, "float64"), (0, "float64"), (5, "float32")])
def test_stepper_equals_the_whole_sequence_forward(cell, E, dtype):
    """CharLM.stepper() - the path of the sampler, beam search and `rnnkit sample` - gives the
    logits and final state of one forward call over the same tokens (N = 3 sequences)."""
    V, T, N = 7, 9, 3
    m = nn.CharLM(nn.CharLMConfig(vocab_size=V, cell=cell, hidden_size=6, num_layers=2,
                                  embedding_size=E, dropout=0.3, dtype=dtype), seed=4)
    m.eval()
    tokens = np.random.default_rng(1).integers(0, V, size=(T, N))
    with no_grad():
        want, want_state = m(tokens)
    step = m.stepper().step
    state, got = None, []
    for t in range(T):
        logits, state = step(tokens[t], state)
        got.append(logits)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(got), want, **tol)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    want_state if isinstance(want_state, tuple) else (want_state,)):
        np.testing.assert_allclose(a, b, **tol)


def test_stepper_is_a_snapshot_of_the_weights():
    m = nn.CharLM(nn.CharLMConfig(vocab_size=5, hidden_size=4, num_layers=1), seed=0)
    step = m.stepper().step
    before, _ = step(np.array([1]), None)
    m.parameters()["head.bias"][...] += 1.0                 # train a little ...
    again, _ = step(np.array([1]), None)
    np.testing.assert_array_equal(before, again)            # ... the old stepper does not see it
    fresh, _ = m.stepper().step(np.array([1]), None)
    np.testing.assert_allclose(fresh, before + 1.0, rtol=1e-6)
