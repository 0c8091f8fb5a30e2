"""rnnkit.explore and `rnnkit explore`, the Python side: the measurements on constructed cases
whose answers are known, the numbers on the page against the layer's own activations and
rnnkit.scratch's, the predictions against an independent float64 softmax, the page's bounds,
escaping and offline-ness, and the command on a default names run and a stream-mode run.
(The page in a real browser: tests/test_explore_browser.py.)"""

import re

import numpy as np
import pytest
from conftest import EXPLORE_STREAM_TEXT

import rnnkit.nn as nn
from rnnkit import explore, scratch
from rnnkit.cells import cell_spec
from rnnkit.cli import main
from rnnkit.data import BOUNDARY, Vocab
from rnnkit.errors import ConfigError
from rnnkit.explore import (
    correlations,
    decode_values,
    inside_quotes_or_brackets,
    line_position,
    page_data,
    rank_units,
    read_page_data,
    render_page,
    saturation,
    unit_measurements,
)
from rnnkit.interop import notebook

B = BOUNDARY


# ------------------------------------------------------------------------------ measurements
def test_inside_quotes_or_brackets_on_constructed_texts():
    f = lambda s, **kw: inside_quotes_or_brackets(s, **kw).astype(int).tolist()   # noqa: E731
    # a quote opens and closes; the opening character is inside, the closing one is not
    assert f('x"(y)"z') == [0, 1, 1, 1, 1, 0, 0]
    assert f("([a]b)c") == [1, 1, 1, 1, 1, 0, 0]                 # nested: closed by the last ')'
    assert f(")a(") == [0, 0, 1]                                # a stray closer is ignored
    assert f('{"a"}') == [1, 1, 1, 1, 0]
    assert f('"a\nb"c') == [1, 1, 1, 1, 0, 0]                   # a newline does not close
    assert f(["(", "a", B, "b", ")"], boundary=B) == [1, 1, 0, 0, 0]   # the boundary token does
    assert f("it's fine") == [0] * 9                            # apostrophes are not quotes


def test_line_position_on_constructed_texts():
    assert line_position("ab\ncde").tolist() == [1, 2, 0, 1, 2, 3]
    assert line_position("\n\nab").tolist() == [0, 0, 1, 2]
    assert line_position([B, "e", "m", B, "m", B], boundary=B).tolist() == [0, 1, 2, 0, 1, 0]
    assert line_position(["a", B], boundary=None).tolist() == [1, 2]   # stream mode: no boundary


def test_correlations_and_saturation_on_constructed_activations():
    rng = np.random.default_rng(0)
    text = 'say "hi" (now) and "bye"\nthen [stop]\n' * 3
    inside, pos = inside_quotes_or_brackets(text), line_position(text)
    T = len(text)
    noise = rng.standard_normal(T)
    acts = np.stack([2 * inside - 1,                             # tracks quotes exactly: r = +1
                     -0.05 * pos,                                # counts the line: r = -1
                     np.full(T, 0.3),                            # constant: undefined
                     noise], axis=1)
    r_in = correlations(acts, inside)
    r_pos = correlations(acts, pos)
    assert r_in[0] == pytest.approx(1.0, abs=1e-12) and r_pos[1] == pytest.approx(-1.0, abs=1e-12)
    assert np.isnan(r_in[2]) and np.isnan(r_pos[2])
    assert r_in[3] == pytest.approx(np.corrcoef(noise, inside)[0, 1], abs=1e-12)
    assert r_pos[0] == pytest.approx(np.corrcoef(acts[:, 0], pos)[0, 1], abs=1e-12)
    assert np.isnan(correlations(acts, np.ones(T))).all()     # a constant feature: all undefined
    sat = saturation(np.array([[0.95, 0.5, 0.0], [-0.91, -0.9, 0.0], [0.2, 1.0, 0.0], [0.0, -0.95, 0.0]]))
    assert sat.tolist() == [0.5, 0.5, 0.0]                     # 0.9 itself is not saturated


def test_ranking_finds_the_planted_units():
    """Two layers of constructed activations with three planted units; everything else is
    weak noise. The ranking must put each planted unit first in its list."""
    rng = np.random.default_rng(1)
    text = '"a (b) c" d\n' * 8 + "efg (h)\n" * 4
    tokens = list(text)
    inside, pos = inside_quotes_or_brackets(tokens), line_position(tokens)
    T, H = len(tokens), 6
    layers = []
    for _ in range(2):
        layers.append({q: 0.1 * rng.standard_normal((T, H)) for q in ("input", "hidden", "cell")})
    layers[1]["hidden"][:, 4] = 0.5 * inside + 0.01 * rng.standard_normal(T)   # quotes unit
    layers[0]["cell"][:, 2] = -pos / 10 + 0.01 * rng.standard_normal(T)         # line-length unit
    layers[0]["hidden"][:, 5] = np.where(np.arange(T) % 4 == 0, 0.5, 0.99)      # saturated 3/4
    layers[1]["input"][:, 0] = 0.999                             # a gate: not ranked (states only)
    measures = [unit_measurements(layer, tokens) for layer in layers]
    ranked = rank_units(measures, k=3)
    top = {name: (rows[0]["layer"], rows[0]["quantity"], rows[0]["unit"]) for name, rows in ranked.items()}
    assert top == {"inside": (1, "hidden", 4), "position": (0, "cell", 2), "saturation": (0, "hidden", 5)}
    assert ranked["position"][0]["score"] < -0.99                # the sign is kept
    assert ranked["saturation"][0]["score"] == pytest.approx(0.75, abs=0.02)
    assert all(r["quantity"] in ("hidden", "cell") for rows in ranked.values() for r in rows)
    assert all(len(rows) <= 3 for rows in ranked.values())
    scores = [abs(r["score"]) for r in ranked["inside"]]
    assert scores == sorted(scores, reverse=True)
    # nothing measurable: no quotes or brackets anywhere -> an empty list, not NaN rows
    plain = list("abc\nde\n" * 3)
    m = [unit_measurements({"hidden": rng.standard_normal((len(plain), 3))}, plain)]
    assert rank_units(m)["inside"] == [] and len(rank_units(m)["position"]) == 3


# ------------------------------------------------------------------------------ the numbers on the page
SCRATCH_GATES = {"lstm": {"input": "it", "forget": "ft", "candidate": "cct", "output": "ot"},
                 "gru": {"reset": "rt", "update": "zt", "candidate": "nt"}}


def _scratch_layers(model, ids):
    """Every layer's activations of a CharLM run with rnnkit.scratch, layer after layer:
    [{quantity: (T, H)}] in float64."""
    cell = model.config.cell
    kind = "rnn" if cell_spec(cell).name.startswith("rnn") else cell
    H = model.config.hidden_size
    x = model.parameters()["embedding.weight"][ids].T[:, None, :]            # (E, m=1, T)
    sd = model.rnn.state_dict()
    out = []
    for k in range(model.config.num_layers):
        p = notebook.from_torch_state_dict(kind, {n.replace(f"_l{k}", "_l0"): np.asarray(v, np.float64)
                                                  for n, v in sd.items() if n.endswith(f"_l{k}")})
        p["Wya" if kind == "rnn" else "Wy"], p["by"] = np.zeros((2, H)), np.zeros((2, 1))
        a0 = np.zeros((H, 1))
        if kind == "lstm":
            a, _, _, (caches, _) = scratch.lstm_forward(x, a0, p)
        elif kind == "gru":
            a, _, (caches, _) = scratch.gru_forward(x, a0, p)
        else:
            a, _, (caches, _) = scratch.rnn_forward(x, a0, p)
        layer = {"hidden": a[:, 0].T}
        for name, field in SCRATCH_GATES.get(kind, {}).items():
            layer[name] = np.stack([getattr(c, field)[:, 0] for c in caches])
        if kind == "lstm":
            layer["cell"] = np.stack([c.c_next[:, 0] for c in caches])
        out.append(layer)
        x = a
    return out


def _model(cell, vocab, dtype="float64", layers=2, hidden=5):
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell=cell, hidden_size=hidden, num_layers=layers,
                          embedding_size=4, dtype=dtype)
    return nn.CharLM(cfg, seed=3)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_page_numbers_equal_the_layers_own_and_scratchs(cell):
    text = EXPLORE_STREAM_TEXT[:90]
    vocab = Vocab.build(text)
    model = _model(cell, vocab)
    ids = vocab.encode(text)
    data = read_page_data(render_page(page_data(model, vocab, ids)))     # what the page holds
    _, _, acts = model.trace(ids[:, None])                               # the layer's own
    ref = _scratch_layers(model, ids)                                    # independent
    spec = cell_spec(cell)
    assert data["quantities"] == list(dict.fromkeys(spec.gate_names + ("hidden",)
                                                    + (("cell",) if spec.cell_state else ())))
    assert data["sigmoid"] == list(spec.sigmoid_gates)
    for layer in range(2):
        for q in data["quantities"]:
            page = decode_values(data, layer, q).astype(np.float64)
            own = acts[layer][0][q][:, 0]
            np.testing.assert_array_equal(page, own.astype(np.float32), err_msg=q)
            np.testing.assert_allclose(page, ref[layer][q], atol=1e-6, rtol=1e-6, err_msg=q)
    # float32 models (rnnkit's default) are stored exactly
    m32 = _model(cell, vocab, "float32")
    d32 = page_data(m32, vocab, ids)
    _, _, a32 = m32.trace(ids[:, None])
    np.testing.assert_array_equal(decode_values(d32, 1, "hidden"), a32[1][0]["hidden"][:, 0])


def test_predictions_and_measurements_on_the_page_against_independent_references():
    text = EXPLORE_STREAM_TEXT[:120]
    vocab = Vocab.build(text)
    model = _model("lstm", vocab)
    ids = vocab.encode(text)
    data = read_page_data(render_page(page_data(model, vocab, ids)))
    logits, _ = model(ids[:, None])                                  # forward, not trace
    z = logits[:, 0].astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top = np.argsort(-p, axis=1, kind="stable")[:, :5]
    assert data["top_ids"] == top.tolist()
    np.testing.assert_allclose(data["top_p"], np.take_along_axis(p, top, 1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(data["next_p"][:-1], p[np.arange(len(ids) - 1), ids[1:]], rtol=1e-12)
    assert data["next_p"][-1] is None and data["T"] == len(text) and not data["cut"]
    # the page's measurements are Pearson correlations (numpy's corrcoef) of its numbers
    inside = np.array([1.0 if x else 0.0 for x in data["inside"]])
    assert inside.any() and not inside.all()
    h = decode_values(data, 1, "hidden").astype(np.float64)
    for j in range(5):
        assert data["measures"][1]["hidden"]["inside"][j] == pytest.approx(
            np.corrcoef(h[:, j], inside)[0, 1], abs=1e-5)
        assert data["measures"][1]["hidden"]["position"][j] == pytest.approx(
            np.corrcoef(h[:, j], data["position"])[0, 1], abs=1e-5)
        assert data["measures"][1]["hidden"]["saturation"][j] == np.mean(np.abs(h[:, j]) > 0.9)
    assert data["labels"][:4] == list(text[:4].replace(" ", "\u2423"))


def test_lines_mode_runs_each_line_from_a_fresh_state_after_the_boundary_token():
    vocab = Vocab.build(["emma", "mia"], specials=(B,))
    ids = explore.text_ids(vocab, "emma\n\n  mia \n")                 # as `rnnkit train` reads lines
    assert [vocab.itos[i] for i in ids] == [B, "e", "m", "m", "a", B, "m", "i", "a"]
    assert explore.line_starts(vocab, ids).tolist() == [0, 5]
    model = _model("gru", vocab, layers=2)
    data = page_data(model, vocab, ids)
    assert data["labels"][0] == data["labels"][5] == "\u21b5" and data["model"]["mode"] == "lines"
    assert data["position"] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert not any(data["newline"])
    # the second line's numbers are those of the line alone, from the zero state
    logits, _, alone = model.trace(ids[5:, None])
    carried = model.trace(ids[:, None])[2][1][0]["hidden"][5:, 0]
    page = decode_values(data, 1, "hidden")[5:]
    np.testing.assert_array_equal(page, alone[1][0]["hidden"][:, 0].astype(np.float32))
    assert not np.allclose(page, carried, atol=1e-4)
    np.testing.assert_array_equal(data["top_ids"][5], np.argsort(-logits[0, 0], kind="stable")[:5])


def test_page_escapes_the_text_and_asks_for_nothing_from_the_network():
    text = 'a</script><script>alert(1)</script><!-- & "\u2028'
    vocab = Vocab.build(text)
    html = render_page(page_data(_model("rnn", vocab, layers=1), vocab, vocab.encode(text)))
    assert html.count("</script>") == 2                         # the data's and the code's
    assert "alert(1)</script>" not in html and "<!-- &" not in html
    assert read_page_data(html)["labels"][1:9] == list("</script")
    for pattern in (r"https?:", r"\bsrc\s*=", r"<link", r"url\(", r"@import", r"fetch\(", r"XMLHttpRequest"):
        assert not re.search(pattern, html), pattern
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_capacity_cuts_the_text_and_says_why(tmp_path, monkeypatch):
    vocab = Vocab.build(EXPLORE_STREAM_TEXT)
    model = _model("lstm", vocab, "float32", layers=2, hidden=5)
    assert explore._capacity(model, 5000) == (5000, "5,000 characters")
    monkeypatch.setattr(explore, "MAX_VALUES", 6000)             # 2 layers x 6 quantities x 5 units
    cap, why = explore._capacity(model, 5000)
    assert cap == 100 and "60 per character" in why


# ------------------------------------------------------------------------------ the command
def _page(path):
    return read_page_data(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_cli_explore_on_the_default_names_run(explore_runs, tmp_path, capsys):
    run = explore_runs["names"]
    out = tmp_path / "names.html"
    assert main(["explore", str(run), "--out", str(out)]) == 0            # generated lines
    data = _page(out)
    assert f"{data['T']:,} characters" in capsys.readouterr().out
    assert data["model"]["mode"] == "lines" and data["model"]["num_layers"] == 2
    assert data["model"]["hidden_size"] == 128 and data["quantities"][-1] == "cell"
    assert data["labels"].count("\u21b5") == 60 and data["labels"][0] == "\u21b5"
    assert data["model"]["path"].endswith("best")
    # the generation is rnnkit.sample's, from the model's stepper: same seed, same lines
    from rnnkit.load import load_model
    from rnnkit.sample import sample_lines
    model, vocab, _, _ = load_model(run)
    lines = sample_lines(model.stepper().step, vocab, 60, np.random.default_rng(0), max_len=500)
    assert data["tokens"] == [i for s in lines for i in [0] + vocab.encode(s).tolist()]
    names = tmp_path / "some_names.txt"
    names.write_text("emma\nolivia\n", encoding="utf-8")
    assert main(["explore", str(run), str(names), "--out", str(tmp_path / "file.html")]) == 0
    assert _page(tmp_path / "file.html")["tokens"] == [0] + vocab.encode("emma").tolist() + [0] + \
        vocab.encode("olivia").tolist()
    assert main(["explore", str(run), "--prime", "em", "--num", "4", "--length", "12",
                 "--out", str(tmp_path / "p.html")]) == 0
    d = _page(tmp_path / "p.html")
    starts = [i for i, t in enumerate(d["tokens"]) if t == 0]
    assert len(starts) == 4 and "'em'" in d["source"]
    for a, b in zip(starts, starts[1:] + [d["T"]]):
        assert d["tokens"][a:a + 3] == [0] + vocab.encode("em").tolist() and b - a <= 1 + 2 + 12


@pytest.mark.slow
def test_cli_explore_on_a_stream_mode_run(explore_runs, tmp_path, capsys):
    run, text = explore_runs["stream"], explore_runs["text"]
    out = tmp_path / "sub" / "stream.html"                        # its folder is created
    assert main(["explore", str(run), str(text), "--out", str(out)]) == 0
    data = _page(out)
    assert data["model"]["mode"] == "stream" and data["model"]["cell"] == "gru"
    assert data["T"] == len(EXPLORE_STREAM_TEXT) and not data["cut"]
    assert sum(data["newline"]) == EXPLORE_STREAM_TEXT.count("\n")
    assert data["ranked"]["inside"] and data["ranked"]["position"]
    assert main(["explore", str(run), str(text), "--max-chars", "300", "--out", str(out)]) == 0
    assert "the text was cut" in capsys.readouterr().out
    data = _page(out)
    assert data["T"] == 300 and data["cut"] and data["total"] == len(EXPLORE_STREAM_TEXT)
    assert data["capacity_reason"] == "300 characters"


@pytest.mark.slow
def test_cli_explore_errors_are_one_line_and_the_output_is_checked_first(explore_runs, tmp_path, capsys):
    run = str(explore_runs["names"])

    def err(argv):
        assert main(["explore"] + argv) == 1
        e = capsys.readouterr().err
        assert e.startswith("rnnkit: error: ") and e.count("\n") == 1, e
        return e

    missing = str(tmp_path / "no-such-run")
    assert "--out" in err([missing, "--out", str(tmp_path / "page.txt")])   # before the run is read
    (tmp_path / "d.html").mkdir()
    assert "is a directory" in err([missing, "--out", str(tmp_path / "d.html")])
    e = err([missing, "--out", str(tmp_path / "x.html")])                # then the run is read
    assert "no-such-run" in e and "x.html" not in e
    both = tmp_path / "n.txt"
    both.write_text("emma\n", encoding="utf-8")
    assert "not both" in err([run, str(both), "--prime", "em", "--out", str(tmp_path / "a.html")])
    assert "not both" in err([run, str(both), "--length", "9", "--out", str(tmp_path / "a.html")])
    assert "not both" in err([run, str(both), "--num", "9", "--out", str(tmp_path / "a.html")])
    bad = tmp_path / "bad.txt"
    bad.write_text("emma\nZo\u00eb!\n", encoding="utf-8")
    assert "unknown character" in err([run, str(bad), "--out", str(tmp_path / "a.html")])
    assert "max_chars" in err([run, "--max-chars", "6000", "--out", str(tmp_path / "a.html")])
    assert not (tmp_path / "a.html").exists()
    with pytest.raises(ConfigError):
        explore.check_out_path(tmp_path / "x.png")
