"""Property-based attacks (hypothesis) on every public layer and function that takes arrays.

Each property draws random shapes, dtypes, lengths, states and injected defects, and asserts
one of two outcomes only:

* the input is valid -> the result is correct: compared with an independent reference (the
  notebook-style :mod:`rnnkit.scratch` through its PyTorch-layout converters, or a direct
  NumPy formula written here) and with invariants (shapes, zero padding, final state);
* the input is invalid -> an :class:`rnnkit.RnnkitError` (the specific subclass when there is
  exactly one defect, whose message names the argument) and never a NumPy exception from
  deep inside, a wrong shape, or a silent success.

Every example tried is counted (each property must try at least one); pytest's summary prints
the totals (and writes them to
``$RNNKIT_REPORT_DIR/property_counts.json`` when that variable is set) for
``docs/reliability.md``. ``RNNKIT_PROPERTY_SCALE=10`` multiplies the number of examples for a
longer local run.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit
import rnnkit.sequence as sequence_mod
from rnnkit import nn
from rnnkit.data import BOUNDARY, Vocab
from rnnkit.errors import ConfigError, DataError, DTypeError, NonFiniteError, ParameterKeyError, RnnkitError, ShapeError
from rnnkit.interop.notebook import from_torch_state_dict
from rnnkit.optim import SGD, Adam, clip_grad_norm, global_norm
from rnnkit.sample import check_sampling_args, pick, probabilities
from rnnkit.scratch import gru_forward, lstm_forward, rnn_forward

import counts

SCALE = float(os.environ.get("RNNKIT_PROPERTY_SCALE", "1"))
COUNTS: Counter = Counter()          # property name -> examples tried
OUTCOMES: Counter = Counter()        # "valid" / "refused" over all properties
VALID: Counter = Counter()           # property name -> examples with a valid input


def _settings(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def _count(name, valid):
    COUNTS[name] += 1
    VALID[name] += bool(valid)
    OUTCOMES["valid" if valid else "refused"] += 1


def _expect_error(fn, defects, names=()):
    """Run ``fn`` on an input with ``defects`` (list of (error class, argument name)).

    One defect: that exact class, and the message names the argument. Several: any
    RnnkitError. Anything else (a NumPy error, success) fails the test.
    """
    try:
        fn()
    except RnnkitError as e:
        if len(defects) == 1:
            cls, name = defects[0]
            assert isinstance(e, cls), f"expected {cls.__name__}, got {type(e).__name__}: {e}"
            if name:   # "lengths" may be spelt "every length ..."
                assert name.rstrip("s") in str(e), f"message does not name {name!r}: {e}"
        return e
    except Exception as e:  # noqa: BLE001 - this is exactly what the property forbids
        raise AssertionError(f"defects {defects}: a {type(e).__name__} escaped instead of an "
                             f"RnnkitError: {e}") from e
    raise AssertionError(f"defects {defects}: no error was raised")


# ============================================================================ references

_SCRATCH = {"RNN_TANH": ("rnn", rnn_forward), "LSTM": ("lstm", lstm_forward),
            "GRU": ("gru", gru_forward)}


def _reference(layer, x, h0, c0, lengths):
    """Independent float64 reference of a whole (multi-layer, bidirectional) layer.

    Every direction of every layer is run sequence by sequence with the notebook-style
    scratch forward (weights converted by ``from_torch_state_dict``) on the sequence's valid
    steps only (reversed for the backward direction). x (T, N, D) time-major.
    """
    kind, fwd = _SCRATCH[layer.mode]
    T, N, _ = x.shape
    H, Dn = layer.hidden_size, layer.num_directions
    P = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    lens = np.full(N, T) if lengths is None else np.asarray(lengths, dtype=np.int64)
    hN = np.zeros((layer.num_layers * Dn, N, H))
    cN = np.zeros_like(hN)
    inp = x.astype(np.float64)
    for l in range(layer.num_layers):
        out = np.zeros((T, N, Dn * H))
        for d in range(Dn):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            sd = {}
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                G = P["weight_hh" + sfx].shape[0]
                sd[k + "_l0"] = P[k + sfx] if (k + sfx) in P else np.zeros(G)
            p = from_torch_state_dict(kind, sd)
            key_y = "Wya" if kind == "rnn" else "Wy"
            p[key_y], p["by"] = np.zeros((1, H)), np.zeros((1, 1))
            row = l * Dn + d
            for n in range(N):
                L = int(lens[n])
                seq = inp[:L, n, :]
                if d:
                    seq = seq[::-1]
                xs = np.ascontiguousarray(seq.T[:, None, :])                    # (in, 1, L)
                a0 = h0[row, n][:, None].astype(np.float64)
                if kind == "lstm":
                    a, _, c, _ = fwd(xs, a0, p, c0[row, n][:, None].astype(np.float64))
                    cN[row, n] = c[:, 0, -1]
                else:
                    a, _, _ = fwd(xs, a0, p)
                hs = a[:, 0, :].T                                                # (L, H)
                out[:L, n, d * H:(d + 1) * H] = hs[::-1] if d else hs
                hN[row, n] = a[:, 0, -1]
        inp = out
    return inp, hN, cN


# ============================================================================ RNN / LSTM / GRU

OK_DTYPES = ["float32", "float64", "float16", "int32", "int64", "uint8", "bool"]
BAD_DTYPES = ["complex128", "object", "str"]
KINDS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def _cast(a, dtype):
    if dtype == "object":
        return a.astype(object)
    if dtype == "str":
        return a.astype(str)
    if dtype == "bool":
        return a > 0
    if dtype in ("int32", "int64", "uint8"):
        return np.clip(np.round(a * 2), 0 if dtype == "uint8" else -3, 3).astype(dtype)
    if dtype == "complex128":
        return a.astype(np.complex128)
    return a.astype(dtype)


@st.composite
def layer_case(draw, defects_allowed=True):
    if not defects_allowed:     # only valid inputs: every draw of a defect picks its valid twin
        sampled = st.sampled_from

        def valid_only(options):
            good = [o for o in options if o in ("ok", "none", "valid", "valid floats", None)
                    or o in OK_DTYPES]
            return sampled(good)
    else:
        def valid_only(options):
            return st.sampled_from(options)
    kind = draw(st.sampled_from(list(KINDS)))
    c = dict(kind=kind, T=draw(st.integers(1, 6)), N=draw(st.integers(1, 4)),
             D=draw(st.integers(1, 4)), H=draw(st.integers(1, 4)),
             layers=draw(st.integers(1, 2)), bidir=draw(st.booleans()),
             batch_first=draw(st.booleans()), bias=draw(st.booleans()),
             dtype=draw(st.sampled_from(["float32", "float64"])),
             seed=draw(st.integers(0, 2 ** 16)))
    defects = []
    # x: dtype, rank, sizes, non-finite values
    c["x_dtype"] = draw(valid_only(OK_DTYPES * 3 + BAD_DTYPES))
    if c["x_dtype"] in BAD_DTYPES:
        defects.append((DTypeError, "x"))
    c["x_shape"] = draw(valid_only(["ok"] * 12 + ["rank1", "rank4", "wrong D", "T=0", "N=0"]))
    if c["x_shape"] != "ok":
        defects.append((ShapeError, "x"))
    c["x_nonfinite"] = (c["x_dtype"] in ("float32", "float64", "float16")
                        and draw(valid_only([None] * 10 + ["nan", "inf", "-inf"])))
    if c["x_nonfinite"] and c["x_shape"] not in ("T=0", "N=0"):
        defects.append((NonFiniteError, "x"))
    else:
        c["x_nonfinite"] = None
    # lengths
    c["lengths"] = draw(valid_only(["none"] * 4 + ["valid"] * 6 + [
        "valid floats", "zero", "too long", "negative", "wrong count", "2-D", "fractional",
        "strings", "nan"]))
    bad_len = {"zero": ShapeError, "too long": ShapeError, "negative": ShapeError,
               "wrong count": ShapeError, "2-D": ShapeError, "fractional": DTypeError,
               "strings": DTypeError, "nan": DTypeError}
    if c["lengths"] in bad_len:
        defects.append((bad_len[c["lengths"]], "lengths"))
    c["len_values"] = draw(st.lists(st.integers(1, 6), min_size=4, max_size=4))
    # initial state
    c["state"] = draw(valid_only(["none"] * 4 + ["ok"] * 5 + [
        "wrong layers", "wrong N", "wrong H", "nan", "complex", "wrong container", "rank2"]))
    bad_state = {"wrong layers": ShapeError, "wrong N": ShapeError, "wrong H": ShapeError,
                 "nan": NonFiniteError, "complex": DTypeError, "wrong container": ShapeError,
                 "rank2": ShapeError}
    if c["state"] in bad_state:
        defects.append((bad_state[c["state"]], "h0" if c["state"] not in ("wrong container",)
                        else "state"))
    c["defects"] = defects
    c["x_seed"] = draw(st.integers(0, 2 ** 16))
    return c


def _build_inputs(c, layer):
    rng = np.random.default_rng(c["x_seed"])
    T, N, D, H = c["T"], c["N"], c["D"], c["H"]
    shape = {"ok": (T, N, D), "rank1": (T,), "rank4": (T, N, D, 1), "wrong D": (T, N, D + 1),
             "T=0": (0, N, D), "N=0": (T, 0, D)}[c["x_shape"]]
    if c["batch_first"] and len(shape) >= 2:
        shape = (shape[1], shape[0]) + shape[2:]
    x = rng.standard_normal(shape)
    if c["x_nonfinite"] and x.size:
        x.flat[rng.integers(x.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[c["x_nonfinite"]]
    x = _cast(x, c["x_dtype"])

    lv = np.array((c["len_values"] * 2)[:N])
    lv = np.minimum(lv, T)
    lv[rng.integers(N)] = T if T >= 1 else 1
    lengths = {
        "none": None, "valid": lv, "valid floats": lv.astype(np.float64),
        "zero": np.where(np.arange(N) == 0, 0, lv), "too long": np.where(np.arange(N) == 0, T + 1, lv),
        "negative": -lv, "wrong count": np.concatenate([lv, [1]]), "2-D": lv[None, :],
        "fractional": lv - 0.5, "strings": lv.astype(str), "nan": np.full(N, np.nan),
    }[c["lengths"]]
    if c["lengths"] == "valid floats":
        pass

    Ld = layer.num_layers * layer.num_directions
    sshape = {"ok": (Ld, N, H), "nan": (Ld, N, H), "complex": (Ld, N, H), "wrong container": (Ld, N, H),
              "wrong layers": (Ld + 1, N, H), "wrong N": (Ld, N + 1, H), "wrong H": (Ld, N, H + 1),
              "rank2": (N, H), "none": None}[c["state"]]
    state = None
    h0 = c0 = np.zeros((Ld, max(N, 1), H))
    if sshape is not None:
        h0 = rng.standard_normal(sshape) * 0.5
        c0 = rng.standard_normal(sshape) * 0.5
        if c["state"] == "nan":
            h0.flat[0] = np.nan
        if c["state"] == "complex":
            h0 = h0.astype(np.complex128)
        lstm = c["kind"] == "LSTM"
        if c["state"] == "wrong container":
            state = h0 if lstm else (h0, c0)
        else:
            state = (h0, c0) if lstm else h0
    return x, lengths, state, h0, c0


@pytest.mark.slow
@_settings(600)
@given(layer_case())
def test_recurrent_layers_correct_or_refused(c):
    layer = KINDS[c["kind"]](c["D"], c["H"], num_layers=c["layers"], bidirectional=c["bidir"],
                             batch_first=c["batch_first"], bias=c["bias"], dtype=c["dtype"],
                             seed=c["seed"])
    x, lengths, state, h0, c0 = _build_inputs(c, layer)
    defects = c["defects"]
    _count("RNN/LSTM/GRU forward", not defects)
    if defects:
        _expect_error(lambda: layer(x, state, lengths), defects)
        return
    out, st_n = layer(x, state, lengths)
    T, N, H, Dn = c["T"], c["N"], c["H"], layer.num_directions
    xt = x.transpose(1, 0, 2) if c["batch_first"] else x
    ot = out.transpose(1, 0, 2) if c["batch_first"] else out
    # invariants: shapes and dtypes
    assert ot.shape == (T, N, Dn * H) and ot.dtype == layer.dtype
    hN, cN = st_n if c["kind"] == "LSTM" else (st_n, None)
    assert hN.shape == (c["layers"] * Dn, N, H) and hN.dtype == layer.dtype
    lens = None if lengths is None else np.asarray(lengths).astype(np.int64)
    # padded positions are exactly zero; unidirectional final state = output at last valid step
    if lens is not None:
        pad = np.arange(T)[:, None] >= lens[None, :]
        assert np.all(ot[pad] == 0)
    last = (np.full(N, T) if lens is None else lens) - 1
    np.testing.assert_array_equal(hN[-Dn], ot[last, np.arange(N), :H])
    # values: the scratch reference
    if state is None:
        h0 = np.zeros_like(hN)
        c0 = np.zeros_like(hN)
    ref_out, ref_h, ref_c = _reference(layer, np.asarray(xt, np.float64), np.asarray(h0),
                                       np.asarray(c0), lens)
    tol = 1e-9 if c["dtype"] == "float64" else 3e-4
    if c["x_dtype"] == "float16" or c["dtype"] == "float32":
        # the layer computes in its own dtype: feed the reference the same rounded input
        ref_out, ref_h, ref_c = _reference(layer, np.asarray(xt).astype(layer.dtype).astype(np.float64),
                                           np.asarray(h0, layer.dtype).astype(np.float64),
                                           np.asarray(c0, layer.dtype).astype(np.float64), lens)
    np.testing.assert_allclose(ot, ref_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(hN, ref_h, rtol=tol, atol=tol)
    if cN is not None:
        np.testing.assert_allclose(cN, ref_c, rtol=tol, atol=tol)


@pytest.mark.slow
@_settings(150)
@given(layer_case(defects_allowed=False), st.integers(1, 3))
def test_no_grad_streaming_equals_cached_forward(c, chunk):
    """no_grad() computes the input projection in chunks and keeps no cache; the numbers must
    be those of the cached forward for any chunk size (STREAM_CHUNK patched to 1..3, and
    STREAM_GATES to 0 so that the chunk is exactly that)."""
    assert not c["defects"]
    _count("no_grad chunked forward", True)
    layer = KINDS[c["kind"]](c["D"], c["H"], num_layers=c["layers"], bidirectional=c["bidir"],
                             batch_first=c["batch_first"], bias=c["bias"], dtype=c["dtype"],
                             seed=c["seed"])
    x, lengths, state, _, _ = _build_inputs(c, layer)
    out, st_n = layer(x, state, lengths)
    old = sequence_mod.STREAM_CHUNK, sequence_mod.STREAM_GATES
    sequence_mod.STREAM_CHUNK, sequence_mod.STREAM_GATES = chunk, 0
    try:
        with rnnkit.no_grad():
            out2, st2 = layer(x, state, lengths)
    finally:
        sequence_mod.STREAM_CHUNK, sequence_mod.STREAM_GATES = old
    assert layer._cache is None
    np.testing.assert_allclose(out2, out, rtol=1e-6, atol=1e-6)
    for a, b in zip(st2 if isinstance(st2, tuple) else (st2,), st_n if isinstance(st_n, tuple) else (st_n,)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@_settings(120)
@given(kind=st.sampled_from(list(KINDS)), T=st.integers(1, 5), N=st.integers(1, 3),
       D=st.integers(1, 4), H=st.integers(1, 4), layers=st.integers(1, 2),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 999),
       defect=st.sampled_from([None] * 4 + ["rank", "D", "dtype", "nan", "bidirectional"]))
def test_step_matches_forward_or_refuses(kind, T, N, D, H, layers, dtype, seed, defect):
    """layer.step over t = 0..T-1 equals one forward call; bad x_t is refused."""
    layer = KINDS[kind](D, H, num_layers=layers, dtype=dtype, seed=seed,
                        bidirectional=defect == "bidirectional")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, D)).astype(dtype)
    _count("layer.step", defect is None)
    if defect is not None:
        xt = {"rank": x[0, 0], "D": np.zeros((N, D + 1)), "dtype": x[0].astype(complex),
              # a list takes the validating path; an ndarray of the layer's own dtype takes
              # step()'s fast path, which checks shape and dtype only (see docs/reliability.md)
              "nan": np.where(np.eye(N, D) > 0, np.nan, x[0]).tolist(), "bidirectional": x[0]}[defect]
        cls = {"rank": ShapeError, "D": ShapeError, "dtype": DTypeError, "nan": NonFiniteError,
               "bidirectional": ConfigError}[defect]
        _expect_error(lambda: layer.step(xt), [(cls, "bidirectional" if defect == "bidirectional" else "x_t")])
        return
    with rnnkit.no_grad():
        out, st_n = layer(x)
    state = None
    for t in range(T):
        h, state = layer.step(x[t], state)
        np.testing.assert_allclose(h, out[t], rtol=1e-5, atol=1e-6)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    st_n if isinstance(st_n, tuple) else (st_n,)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@_settings(100)
@given(kind=st.sampled_from(list(KINDS)), T=st.integers(1, 4), N=st.integers(1, 3),
       bidir=st.booleans(), seed=st.integers(0, 999),
       defect=st.sampled_from([None] * 3 + ["dout shape", "dout rank", "dout complex",
                                            "dstate shape", "no forward"]))
def test_backward_shapes_or_refuses(kind, T, N, bidir, seed, defect):
    """backward returns dx shaped like x and dstate like the state (a gradient check of the
    values lives in test_nn_rnn.py); wrong gradient shapes or a missing forward are refused."""
    D, H = 3, 2
    layer = KINDS[kind](D, H, bidirectional=bidir, dtype="float64", seed=seed)
    x = np.random.default_rng(seed).standard_normal((T, N, D))
    out, st_n = layer(x)
    _count("layer.backward", defect is None)
    dout = np.ones_like(out)
    dstate = None
    if defect == "dout shape":
        dout = np.ones((T + 1, N, out.shape[2]))
    elif defect == "dout rank":
        dout = np.ones((T, N))
    elif defect == "dout complex":
        dout = dout.astype(complex)
    elif defect == "dstate shape":
        bad = np.ones((9, N, H))
        dstate = (bad, None) if kind == "LSTM" else bad
    elif defect == "no forward":
        layer.backward(dout)
    if defect is not None:
        if defect == "no forward":   # a call-order mistake: RuntimeError saying what to do
            with pytest.raises(RuntimeError, match="forward"):
                layer.backward(dout, dstate)
            return
        cls = {"dout complex": DTypeError}.get(defect, ShapeError)
        name = {"dstate shape": "dh_n"}.get(defect, "dout")
        _expect_error(lambda: layer.backward(dout, dstate), [(cls, name)])
        return
    dx, ds = layer.backward(dout)
    assert dx.shape == x.shape and np.isfinite(dx).all()
    for a in (ds if isinstance(ds, tuple) else (ds,)):
        assert a.shape == st_n[0].shape if isinstance(st_n, tuple) else a.shape == st_n.shape


@_settings(80)
@given(arg=st.sampled_from(["input_size", "hidden_size", "num_layers", "dropout", "dtype",
                            "nonlinearity"]),
       value=st.sampled_from([0, -1, 2.5, True, "4", None, float("nan"), 1.0, "float16",
                              np.float16, "sigmoid"]))
def test_layer_constructor_refuses_bad_arguments(arg, value):
    kw = dict(input_size=3, hidden_size=2)
    ok = {"input_size": lambda v: type(v) is int and v >= 1,
          "hidden_size": lambda v: type(v) is int and v >= 1,
          "num_layers": lambda v: type(v) is int and v >= 1,
          "dropout": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
          "dtype": lambda v: False,
          "nonlinearity": lambda v: False}[arg](value)
    kw[arg] = value
    _count("layer constructor", ok)
    if ok:
        layer = nn.RNN(**kw)
        assert getattr(layer, arg) == value
    else:
        _expect_error(lambda: nn.RNN(**kw), [(ConfigError, arg)])


# ============================================================================ Linear / Embedding

@pytest.mark.slow
@_settings(150)
@given(lead=st.lists(st.integers(0, 3), min_size=0, max_size=3), fin=st.integers(1, 4),
       fout=st.integers(1, 4), dtype=st.sampled_from(OK_DTYPES + BAD_DTYPES),
       defect=st.sampled_from([None] * 5 + ["last dim", "nan", "scalar"]),
       seed=st.integers(0, 999))
def test_linear_correct_or_refused(lead, fin, fout, dtype, defect, seed):
    lin = nn.Linear(fin, fout, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    shape = tuple(lead) + (fin + (defect == "last dim"),)
    x = rng.standard_normal(shape if defect != "scalar" else ())
    if defect == "nan" and dtype in ("float32", "float64", "float16") and x.size:
        x.flat[0] = np.nan
    elif defect == "nan":
        defect = None
    x = _cast(x, dtype)
    defects = []
    if dtype in BAD_DTYPES:
        defects.append((DTypeError, "x"))
    if defect in ("last dim", "scalar"):
        defects.append((ShapeError, "x"))
    if defect == "nan":
        defects.append((NonFiniteError, "x"))
    _count("Linear", not defects)
    if defects:
        _expect_error(lambda: lin(x), defects)
        return
    y = lin(x)
    W, b = lin.parameters()["weight"], lin.parameters()["bias"]
    ref = np.einsum("...i,oi->...o", x.astype(np.float64), W) + b
    assert y.shape == shape[:-1] + (fout,)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    dx = lin.backward(np.ones_like(y))
    assert dx.shape == x.shape


@pytest.mark.slow
@_settings(150)
@given(V=st.integers(1, 6), E=st.integers(1, 3), shape=st.lists(st.integers(0, 3), min_size=0, max_size=3),
       kind=st.sampled_from(["int64", "int32", "uint8", "float", "bool", "object", "str",
                             "out of range", "negative"]),
       seed=st.integers(0, 999))
def test_embedding_correct_or_refused(V, E, shape, kind, seed):
    emb = nn.Embedding(V, E, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=tuple(shape))
    size = ids.size
    defects = []
    if kind in ("int64", "int32", "uint8"):
        ids = ids.astype(kind)
    elif kind in ("float", "bool", "object", "str"):
        ids = ids.astype({"float": float, "bool": bool, "object": object, "str": str}[kind])
        defects.append((DTypeError, "ids"))
    elif kind == "out of range" and size:
        ids.flat[0] = V
        defects.append((DataError, "ids"))
    elif kind == "negative" and size:
        ids.flat[0] = -1
        defects.append((DataError, "ids"))
    if size == 0:
        defects.append((ShapeError, "ids"))
    _count("Embedding", not defects)
    if defects:
        _expect_error(lambda: emb(ids), defects)
        return
    y = emb(ids)
    np.testing.assert_array_equal(y, emb.parameters()["weight"][ids.astype(np.int64)])


# ============================================================================ losses

def _ce_reference(logits, target, ignore=-100):
    z = logits.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=-1)) + m[..., 0]
    valid = target != ignore
    t = np.where(valid, target, 0)
    picked = np.take_along_axis(z, t[..., None], axis=-1)[..., 0]
    nll = (lse - picked)[valid]
    return nll.sum() / max(valid.sum(), 1)


@pytest.mark.slow
@_settings(200)
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=3), C=st.integers(1, 5),
       seed=st.integers(0, 999),
       defect=st.sampled_from([None] * 6 + ["target shape", "target float", "target range",
                                            "logits nan", "logits complex", "logits scalar",
                                            "mask shape", "reduction"]),
       ignore_some=st.booleans())
def test_cross_entropy_correct_or_refused(lead, C, seed, defect, ignore_some):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(tuple(lead) + (C,)) * 3
    target = rng.integers(0, C, size=tuple(lead))
    if ignore_some:
        target.flat[0] = -100
    mask = None
    kw = {}
    if defect == "target shape":
        target = target[..., None]
    elif defect == "target float":
        target = target.astype(float)
    elif defect == "target range":
        target.flat[-1] = C
    elif defect == "logits nan":
        logits.flat[0] = np.nan
    elif defect == "logits complex":
        logits = logits.astype(complex)
    elif defect == "logits scalar":
        logits = np.float64(1.0)
    elif defect == "mask shape":
        mask = np.ones(tuple(lead) + (2,))
    elif defect == "reduction":
        kw["reduction"] = "avg"
    _count("CrossEntropyLoss", defect is None)
    if defect is not None:
        cls = {"target shape": ShapeError, "target float": DTypeError, "target range": DataError,
               "logits nan": NonFiniteError, "logits complex": DTypeError, "logits scalar": ShapeError,
               "mask shape": ShapeError, "reduction": ConfigError}[defect]
        name = {"reduction": "reduction", "mask shape": "mask"}.get(
            defect, "target" if "target" in defect else "logits")

        def run():
            crit = nn.CrossEntropyLoss(**kw)
            crit(logits, target, mask)
        _expect_error(run, [(cls, name)])
        return
    crit = nn.CrossEntropyLoss()
    loss = crit(logits, target)
    np.testing.assert_allclose(loss, _ce_reference(logits, target), rtol=1e-10, atol=1e-12)
    d = crit.backward()
    assert d.shape == logits.shape
    # the gradient sums to zero over classes at valid positions, and is 0 at ignored ones
    np.testing.assert_allclose(d.sum(axis=-1), 0, atol=1e-12)
    assert np.all(d[target == -100] == 0)


@pytest.mark.slow
@_settings(150)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 999),
       defect=st.sampled_from([None] * 5 + ["shape", "nan target", "complex", "mask shape"]),
       use_mask=st.booleans())
def test_mse_correct_or_refused(shape, seed, defect, use_mask):
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal(shape)
    target = rng.standard_normal(shape)
    mask = (rng.random(shape) < 0.5).astype(float) if use_mask else None
    if defect == "shape":
        target = target[..., None]
    elif defect == "nan target":
        target.flat[0] = np.inf
    elif defect == "complex":
        pred = pred.astype(complex)
    elif defect == "mask shape":
        mask = np.ones(tuple(shape) + (2,))
    _count("MSELoss", defect is None)
    if defect is not None:
        cls = {"shape": ShapeError, "nan target": NonFiniteError, "complex": DTypeError,
               "mask shape": ShapeError}[defect]
        name = {"shape": "target", "nan target": "target", "complex": "pred", "mask shape": "mask"}[defect]
        _expect_error(lambda: nn.MSELoss()(pred, target, mask), [(cls, name)])
        return
    crit = nn.MSELoss()
    loss = crit(pred, target, mask)
    m = np.ones(shape) if mask is None else mask
    ref = ((pred - target) ** 2 * m).sum() / max(m.sum(), 1)
    np.testing.assert_allclose(loss, ref, rtol=1e-12, atol=1e-14)


# ============================================================================ optimizers

@_settings(120)
@given(opt=st.sampled_from(["sgd", "adam"]), seed=st.integers(0, 999),
       defect=st.sampled_from([None] * 3 + ["missing key", "extra key", "shape", "complex",
                                            "not a dict", "strings"]))
def test_optimizer_step_correct_or_refused(opt, seed, defect):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    start = {k: v.copy() for k, v in params.items()}
    o = SGD(params, lr=0.1) if opt == "sgd" else Adam(params, lr=0.1)
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    if defect == "missing key":
        grads.pop("b")
    elif defect == "extra key":
        grads["c"] = np.zeros(1)
    elif defect == "shape":
        grads["w"] = grads["w"].T
    elif defect == "complex":
        grads["w"] = grads["w"].astype(complex)
    elif defect == "not a dict":
        grads = list(grads.values())
    elif defect == "strings":
        grads["b"] = np.array(["a", "b"])
    _count("optimizer.step", defect is None)
    if defect is not None:
        cls = {"missing key": ParameterKeyError, "extra key": ParameterKeyError, "shape": ShapeError,
               "complex": DTypeError, "not a dict": ConfigError, "strings": DTypeError}[defect]
        _expect_error(lambda: o.step(grads), [(cls, "grads")])
        for k in params:   # nothing changed by a refused step
            np.testing.assert_array_equal(params[k], start[k])
        return
    o.step(grads)
    for k in params:
        if opt == "sgd":   # SGD with momentum 0: p - lr * g
            np.testing.assert_allclose(params[k], start[k] - 0.1 * grads[k], rtol=1e-12,
                                       atol=1e-15)
        else:              # Adam's first step: m_hat = g, v_hat = g^2, so lr * g / (|g| + eps)
            np.testing.assert_allclose(params[k], start[k] - 0.1 * grads[k] / (np.abs(grads[k]) + 1e-8),
                                       rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(global_norm(grads),
                               np.sqrt(sum((g ** 2).sum() for g in grads.values())), rtol=1e-12)
    total = global_norm(grads)
    clip_grad_norm(grads, 1e-3)                 # PyTorch's formula: coef = max / (total + 1e-6)
    np.testing.assert_allclose(global_norm(grads), 1e-3 * total / (total + 1e-6), rtol=1e-12)


# ============================================================================ Vocab

@pytest.mark.slow
@_settings(200)
@given(text=st.text(min_size=1, max_size=30), probe=st.text(max_size=20), lines=st.booleans(),
       bad_ids=st.sampled_from([None, "float", "negative", "too big", "ragged", "string",
                                "nested ok"]))
def test_vocab_round_trip_or_refused(text, probe, lines, bad_ids):
    vocab = Vocab.build(text, specials=(BOUNDARY,) if lines else ())
    # encode: every character of the vocabulary round-trips; unknown ones are named
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    unknown = set(probe) - set(text)
    _count("Vocab.encode", not unknown)
    if unknown:
        e = _expect_error(lambda: vocab.encode(probe), [(DataError, "")])
        assert repr(sorted(unknown)[0]) in str(e)
    else:
        assert vocab.decode(vocab.encode(probe)) == probe
    # decode: ids of the wrong type or range are refused
    n = len(vocab)
    bad = {"float": np.array([0.0, 1.0]), "negative": [-1], "too big": [n], "ragged": [[0], [0, 0]],
           "string": "abc", "nested ok": [[0], [min(1, n - 1)]]}.get(bad_ids)
    _count("Vocab.decode", bad_ids in (None, "nested ok"))
    if bad_ids == "nested ok":
        assert vocab.decode(bad) == vocab.itos[0] + vocab.itos[min(1, n - 1)]
    elif bad_ids is not None:
        cls = {"float": DTypeError, "negative": DataError, "too big": DataError,
               "ragged": DTypeError, "string": DTypeError}[bad_ids]
        _expect_error(lambda: vocab.decode(bad), [(cls, "")])
    _expect_error(lambda: vocab.encode(list(text)), [(DataError, "")])


# ============================================================================ sampling

@pytest.mark.slow
@_settings(250)
@given(V=st.integers(1, 8), N=st.integers(1, 3), seed=st.integers(0, 999),
       temperature=st.sampled_from([0.0, 1e-300, 1e-12, 1e-3, 0.5, 1.0, 2.0, 1e6]),
       top_k=st.sampled_from([None, 0, 1, 2, 5, 100]),
       top_p=st.sampled_from([None, 0.0, 1e-9, 0.3, 0.9, 1.0]),
       big=st.sampled_from([1.0, 1e4, 1e300]))
def test_sampling_distribution_defined_everywhere(V, N, seed, temperature, top_k, top_p, big):
    """probabilities() is a distribution (finite, >= 0, sums to 1) for every allowed setting,
    including temperature 0 / near 0, top-k larger than V and top-p of 0 or 1; at
    temperature 0 and top-p 0 it puts all mass on the most probable token; pick() returns
    valid ids and agrees with argmax where the distribution is one-hot."""
    _count("sampling", True)
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, V)) * big
    p = probabilities(logits, temperature, top_k, top_p)
    assert p.shape == (N, V) and np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    best = logits.argmax(axis=-1)
    assert np.all(p[np.arange(N), best] == p.max(axis=-1))          # best token is never dropped
    if temperature == 0 or top_p == 0 or top_k == 1:
        np.testing.assert_array_equal(p, np.eye(V)[best])
    if top_k and top_k < V:
        assert np.all((p > 0).sum(axis=-1) <= top_k + 0)  # ties of continuous draws: none
    if temperature == 1.0 and not top_k and top_p in (None, 1.0):
        z = logits - logits.max(axis=-1, keepdims=True)
        ref = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-300)
    tok = pick(logits, np.random.default_rng(seed), temperature, top_k, top_p)
    assert tok.shape == (N,) and tok.dtype == np.int64
    assert np.all(p[np.arange(N), tok] > 0)                          # only allowed tokens drawn


@_settings(120)
@given(temperature=st.sampled_from([-1.0, float("nan"), float("inf"), "1", None, True, 0.5]),
       top_k=st.sampled_from([-1, 2.5, "3", 3, None]),
       top_p=st.sampled_from([-0.1, 1.5, float("nan"), "0.9", 0.9, None]),
       logits_defect=st.sampled_from([None, None, "nan", "complex", "scalar"]))
def test_sampling_arguments_refused(temperature, top_k, top_p, logits_defect):
    t_ok = isinstance(temperature, float) and np.isfinite(temperature) and temperature >= 0
    k_ok = top_k is None or (type(top_k) is int and top_k >= 0)
    p_ok = top_p is None or (isinstance(top_p, float) and 0 <= top_p <= 1)
    logits = np.random.default_rng(0).standard_normal((2, 4))
    if logits_defect == "nan":
        logits[0, 1] = np.nan
    elif logits_defect == "complex":
        logits = logits.astype(complex)
    elif logits_defect == "scalar":
        logits = np.float64(1.0)
    defects = []
    if not t_ok:
        defects.append((ConfigError, "temperature"))
    if not k_ok:
        defects.append((ConfigError, "top_k"))
    if not p_ok:
        defects.append((ConfigError, "top_p"))
    args_defects = list(defects)
    if logits_defect:
        defects.append(({"nan": NonFiniteError, "complex": DTypeError, "scalar": ShapeError}[logits_defect],
                        "logits"))
    _count("sampling arguments", not defects)
    if args_defects:
        _expect_error(lambda: check_sampling_args(temperature, top_k, top_p), args_defects)
    else:
        assert check_sampling_args(temperature, top_k, top_p) == (temperature, top_k, top_p)
    for fn in (lambda: probabilities(logits, temperature, top_k, top_p),
               lambda: pick(logits, np.random.default_rng(0), temperature, top_k, top_p)):
        if defects:
            _expect_error(fn, defects)
        else:
            fn()


# ============================================================================ text files, batches
# (the text-file boundary, lines-mode batching by length, seeds, output paths)

_ENCODINGS = ["utf-8", "latin-1", "utf-16", "ascii", "cp1252", "bytes", "unicode_escape", "rot13",
              "base64", "no-such-codec", "punycode", "idna"]


@pytest.mark.slow
@_settings(300)
@given(raw=st.binary(max_size=64) | st.text(max_size=30).map(lambda t: t.encode("utf-8")),
       encoding=st.sampled_from(_ENCODINGS), errors=st.sampled_from(["strict", "replace", "ignore",
                                                                     "surrogateescape", "bogus"]),
       limit=st.sampled_from([None, 8]))
def test_read_text_decodes_or_refuses(tmp_path_factory, raw, encoding, errors, limit):
    """read_text returns exactly what an independent decode gives (newlines normalised), or
    raises DataError / ConfigError; never another exception, never a lone surrogate."""
    import codecs
    import re as _re

    from rnnkit.data import read_text
    path = tmp_path_factory.mktemp("text") / "t.txt"
    path.write_bytes(raw)
    kw = {"max_bytes": limit} if limit else {}
    expected, defect = None, None
    if encoding == "bytes":
        expected = raw.decode("latin-1")
    else:
        try:
            codecs.lookup(encoding)
            b"a".decode(encoding)
        except UnicodeDecodeError:
            pass
        except LookupError:
            defect = (ConfigError, "encoding")
        if encoding in ("punycode", "idna"):            # label codecs, not file encodings
            defect = (ConfigError, "encoding")
        if defect is None:
            try:
                codecs.lookup_error(errors)
            except LookupError:
                defect = (ConfigError, "errors")
        if defect is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    expected = raw.decode(encoding, errors)
                expected = expected.replace("\r\n", "\n").replace("\r", "\n")
            except UnicodeDecodeError:
                defect = (DataError, "")
        if defect is None and encoding == "utf-16" and len(raw) >= 2 and \
                raw[:2] not in (codecs.BOM_LE, codecs.BOM_BE):
            defect = (DataError, "")                    # no byte order mark: which order?
    if defect is None and (not raw or (limit and len(raw) > limit)):
        defect = (DataError, "")
    if defect is None and _re.search("[\ud800-\udfff]", expected):
        defect = (DataError, "surrogate")
    _count("read_text", defect is None)
    with warnings.catch_warnings():     # unicode_escape warns about "\q"-style escapes
        warnings.simplefilter("ignore", DeprecationWarning)
        if defect is None:
            assert read_text(path, encoding=encoding, errors=errors, **kw) == expected
        else:
            e = _expect_error(lambda: read_text(path, encoding=encoding, errors=errors, **kw), [defect])
            if defect[0] is DataError:
                assert str(path) in str(e)


@_settings(150)
@given(text=st.text(min_size=1, max_size=200), chunk=st.integers(1, 17))
def test_vocab_encode_in_slices_equals_lookup(text, chunk):
    """Vocab.encode works on slices of ENCODE_CHUNK characters: any slice size gives the ids
    of a plain dictionary lookup, and an unknown character is reported at its true position."""
    import rnnkit.data.vocab as vocab_mod
    saved, vocab_mod.ENCODE_CHUNK = vocab_mod.ENCODE_CHUNK, chunk
    try:
        vocab = Vocab.build(text[: max(1, len(text) // 2)])
        known = all(c in vocab.stoi for c in text)
        _count("Vocab.encode in slices", known)
        if known:
            assert vocab.encode(text).tolist() == [vocab.stoi[c] for c in text]
        else:
            first = next(i for i, c in enumerate(text) if c not in vocab.stoi)
            e = _expect_error(lambda: vocab.encode(text), [(DataError, "")])
            assert f"first at position {first})" in str(e)
    finally:
        vocab_mod.ENCODE_CHUNK = saved


@pytest.mark.slow
@_settings(200)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=40),
       max_tokens=st.integers(1, 200), max_lines=st.integers(1, 12), shuffle=st.booleans())
def test_lines_index_batches_partition_within_budget(lengths, max_tokens, max_lines, shuffle):
    """LinesDataset.index_batches: the batches are the given order cut into consecutive runs,
    each within max_lines and within max_tokens padded steps (or a single line), and
    LinesSource.eval_batches covers every line once in order."""
    from rnnkit.data import LinesDataset, LinesSource
    lines = ["a" * n for n in lengths]
    vocab = Vocab.build(["a"], specials=(BOUNDARY,))
    ds = LinesDataset(lines, vocab)
    order = np.random.default_rng(len(lengths)).permutation(len(lines)) if shuffle else None
    batches = list(ds.index_batches(order, max_tokens=max_tokens, max_lines=max_lines))
    _count("lines batches by length", True)
    want = np.arange(len(lines)) if order is None else order
    assert np.concatenate(batches).tolist() == list(want)
    for b in batches:
        padded = len(b) * (max(lengths[i] for i in b) + 1)
        assert len(b) <= max_lines and (padded <= max_tokens or len(b) == 1)
    seen = []
    for batch in LinesSource(ds, batch_size=4).eval_batches(batch_size=max_lines):
        assert batch.x.shape[1] <= max_lines
        seen += [int(n) - 1 for n in batch.lengths]
    assert seen == lengths


@pytest.mark.slow
@_settings(150)
@given(seed=st.one_of(st.none(), st.integers(-5, 2 ** 70), st.floats(allow_nan=True),
                      st.text(max_size=3), st.booleans(), st.lists(st.integers(-2, 5), max_size=3)))
def test_seed_arguments_accepted_or_refused(seed):
    """Every ``seed`` argument: what NumPy's default_rng takes (None, integers >= 0 and lists
    of them) seeds the layer reproducibly; anything else is a ConfigError naming seed."""
    valid = seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0) or (
        isinstance(seed, list) and all(v >= 0 for v in seed))
    _count("seed", valid)
    makers = (lambda: nn.LSTM(2, 3, seed=seed), lambda: nn.Linear(2, 3, seed=seed),
              lambda: nn.Dropout(0.5, seed=seed))
    for make in makers:
        if not valid:
            _expect_error(make, [(ConfigError, "seed")])
    if valid and seed is not None:
        a, b = makers[0](), makers[0]()
        for k, v in a.state_dict().items():
            np.testing.assert_array_equal(v, b.state_dict()[k])
        assert makers[2]().rng.random() == np.random.default_rng(seed).random()


@pytest.mark.slow
@_settings(200)
@given(parts=st.lists(st.sampled_from(["dir", "file", "missing", "fifo"]), min_size=1, max_size=4),
       as_file=st.booleans())
def test_output_paths_checked_before_work(tmp_path_factory, parts, as_file):
    """check_output_dir / check_output_file over paths whose components are directories,
    files, FIFOs or missing: accepted exactly when the path can then really be created
    (os.makedirs / open for writing, the independent oracle), refused with a ConfigError
    naming the option otherwise. Nothing is created by the check itself."""
    from rnnkit.io import check_output_dir, check_output_file
    root = tmp_path_factory.mktemp("out")
    p = root
    for i, kind in enumerate(parts):
        p = p / f"{kind}{i}"
        if kind == "dir":
            p.mkdir()
        elif kind == "file":
            p.write_text("x")
        elif kind == "fifo":
            os.mkfifo(p)
        if kind != "dir":
            break                      # nothing can exist below a file, FIFO or missing entry
    target = p / "out" if parts[-1] == "dir" and len(parts) < 4 and not as_file else p
    before = sorted(str(q) for q in root.rglob("*"))
    check = check_output_file if as_file else check_output_dir
    try:
        check(target, "--out")
        ok = True
    except ConfigError as e:
        assert "--out" in str(e)
        ok = False
    assert sorted(str(q) for q in root.rglob("*")) == before           # the check creates nothing
    try:
        if as_file:
            target.parent.mkdir(parents=True, exist_ok=True)
            import stat as _stat
            if target.exists() and not _stat.S_ISREG(target.stat().st_mode):
                raise IsADirectoryError(target)
            with open(target, "a"):
                pass
        else:
            os.makedirs(target, exist_ok=True)
        creatable = True
    except OSError:
        creatable = False
    _count("output paths", ok)
    assert ok == creatable, (parts, as_file, target)


# ============================================================================ report

@pytest.fixture(autouse=True)
def _property_tried_examples():
    """Every property must have run examples: a strategy that can draw nothing (or a
    filter that rejects everything) would otherwise pass without checking anything."""
    before = sum(COUNTS.values())
    yield
    assert sum(COUNTS.values()) > before, "the property tried no example"


def _property_counts():
    """The totals for docs/reliability.md (also written to $RNNKIT_REPORT_DIR when set)."""
    total = sum(COUNTS.values())
    if not total:
        return None
    report = {"total_examples": total, "by_property": dict(sorted(COUNTS.items())),
              "valid_by_property": dict(sorted(VALID.items())),
              "outcomes": dict(OUTCOMES), "scale": SCALE}
    out_dir = os.environ.get("RNNKIT_REPORT_DIR")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "property_counts.json"), "w") as f:
            json.dump(report, f, indent=2)
    return (f"{total}; by property (tried/valid): "
            + ", ".join(f"{k} {v}/{VALID[k]}" for k, v in sorted(COUNTS.items()))
            + f"; {dict(OUTCOMES)}")


counts.report("property examples tried", _property_counts)
