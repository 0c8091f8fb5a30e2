"""An interactive page that shows what each neuron and gate of a char LM does over a text.

In the spirit of Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent
Networks": :func:`explore_checkpoint` (``rnnkit explore DIR [FILE | --prime TEXT --length N |
--num N] --out explore.html``) runs a trained :class:`~rnnkit.nn.CharLM` over a text - a file,
or text the model generates with :mod:`rnnkit.sample` - and writes **one HTML file** with all
its JavaScript, CSS and data inline (no network; its Content-Security-Policy forbids any
request). In lines mode every line is run from the zero state after its boundary token, as the
model was trained; in stream mode the text is one run. The page shows:

* the text, each character coloured by the activation of a chosen unit of a chosen layer and
  quantity (the hidden state, the LSTM cell state, or a gate: the registry's gate names);
* hovering (or tapping) a character shows the model's top-5 next-character predictions and
  that step's value of every quantity of the chosen unit;
* the units worth looking at, ranked by the measurements below, computed here in NumPy.

The numbers come from one forward pass, :meth:`CharLM.trace <rnnkit.nn.CharLM.trace>` (every
layer's activated gates, hidden and cell states); the predictions are the softmax of its logits
in float64 (:func:`rnnkit.sample.probabilities`). Activations are stored on the page as
float32 (the models' default dtype, so for those they are the layer's own numbers exactly).

Measurements (T steps; step t is the state after reading token t):

* ``inside`` - :func:`inside_quotes_or_brackets`: 1 while a double quote ``"`` is open or a
  bracket ``( [ {`` is unclosed, else 0;
* ``position`` - :func:`line_position`: characters read since the last line break;
* per unit, :func:`correlations`: the Pearson correlation of its activation with each of them
  (undefined - NaN, ``null`` on the page - when either is constant over the text);
* per unit, :func:`saturation`: the fraction of steps with ``|activation| > 0.9`` (as in the
  paper's saturation plots; for a sigmoid gate, the steps where it is almost fully open);
  ranked for the bounded hidden state only.

:func:`rank_units` lists, for each measurement, the units of the states (``hidden``; ``cell``
for LSTM) with the largest ``|r|`` (correlations) or fraction (saturation).

On a seq2seq run (:class:`~rnnkit.nn.Seq2Seq` with attention) the page is another one
(:func:`seq2seq_page_data`, template ``explore_seq2seq.html``): the greedy translations of
FILE's pairs (or sources, one a line) or of the run's first ``--num`` validation pairs, each
marked right or wrong against its target; pointing at (or clicking, or moving the arrow keys
to) an output character shades every source character by the attention weight of that
output step.

A page holds at most :data:`MAX_CHARS` characters and :data:`MAX_VALUES` activation numbers
(a large model holds fewer characters); a longer text is cut, and the page says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from ._validate import as_float_array, check_float, check_int
from .cells import cell_spec
from .errors import ConfigError, DataError, ShapeError

__all__ = [
    "MAX_CHARS", "MAX_VALUES", "SATURATION", "TOP_K", "STATES", "BOUNDED_STATES",
    "inside_quotes_or_brackets", "line_position", "correlations", "saturation",
    "unit_measurements", "rank_units", "top_predictions",
    "page_data", "render_page", "read_page_data", "decode_values", "check_out_path", "lines_ids",
    "text_ids", "line_starts", "explore_checkpoint", "seq2seq_page_data", "MAX_PAIRS",
]

#: Most characters (tokens, boundary tokens included) one page holds.
MAX_CHARS = 5000
#: Most activation numbers one page holds (float32: 16 MB); bounds the characters of big models.
MAX_VALUES = 4_000_000
#: ``|activation|`` above this counts as saturated.
SATURATION = 0.9
#: Characters generated when no text is given (stream mode; in lines mode the longest line).
GENERATE = 500
#: Lines generated when no text is given (lines mode).
GENERATE_LINES = 60
#: Most sources one seq2seq page holds (the run's validation pairs by default: ``--num``).
MAX_PAIRS = 500
#: Validation sources a seq2seq page shows when neither FILE nor ``--num`` is given.
GENERATE_PAIRS = 20
#: Next-character predictions shown per step.
TOP_K = 5
#: Units per ranked list.
RANKED = 8
#: The quantities the ranking looks at (those a layer has): its states.
STATES = ("hidden", "cell")
#: The states whose values are bounded (tanh: [-1, 1]); only they are ranked by saturation
#: (an LSTM cell state is unbounded, so ``|c| > 0.9`` says nothing about it) and the page
#: opens on one of them.
BOUNDED_STATES = ("hidden",)

_OPEN, _CLOSE, _QUOTE = "([{", ")]}", '"'
_FORMAT = "rnnkit.explore"


# ============================================================================================
# What the text is doing at each step
# ============================================================================================

def _is_break(token: str, boundary: str | None) -> bool:
    return token == "\n" or (boundary is not None and token == boundary)


def inside_quotes_or_brackets(tokens: Sequence[str], boundary: str | None = None) -> np.ndarray:
    """``(T,)`` float64: 1 where, after reading ``tokens[t]``, a double quote is open or a
    bracket is unclosed; else 0.

    A ``"`` opens a quotation or closes the open one; ``(``, ``[``, ``{`` open a bracket and
    ``)``, ``]``, ``}`` close the innermost one (a closing bracket with none open is ignored).
    The ``boundary`` token (lines mode, e.g. ``"<eos>"``) ends a line-example and closes
    everything; a newline does not (quotations and brackets may span lines). So an opening
    character is inside, the character that closes the last open one is not.

    >>> inside_quotes_or_brackets('a "b" (c)').tolist()
    [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    """
    out = np.zeros(len(tokens))
    quote, depth = False, 0
    for t, tok in enumerate(tokens):
        if boundary is not None and tok == boundary:
            quote, depth = False, 0
        elif tok == _QUOTE:
            quote = not quote
        elif tok in _OPEN:
            depth += 1
        elif tok in _CLOSE:
            depth = max(0, depth - 1)
        out[t] = 1.0 if quote or depth else 0.0
    return out


def line_position(tokens: Sequence[str], boundary: str | None = None) -> np.ndarray:
    """``(T,)`` float64: how many characters of the current line have been read after
    ``tokens[t]``. A line break (a newline, or the ``boundary`` token in lines mode) has
    position 0 and every other token one more than the token before it; the text is taken to
    start after a line break.

    >>> line_position("ab\\ncde").tolist()
    [1.0, 2.0, 0.0, 1.0, 2.0, 3.0]
    """
    out = np.zeros(len(tokens))
    pos = 0
    for t, tok in enumerate(tokens):
        pos = 0 if _is_break(tok, boundary) else pos + 1
        out[t] = pos
    return out


def correlations(acts, feature) -> np.ndarray:
    """Pearson correlation of every column of ``acts`` (T, H) with ``feature`` (T,): (H,)
    float64 in [-1, 1]; NaN where it is undefined because the feature or the unit is constant
    over the T steps (standard deviation at most 1e-9 times its largest magnitude, or 1e-9)."""
    who = "correlations"
    a = as_float_array(who, "acts", acts, np.float64)
    f = as_float_array(who, "feature", feature, np.float64)
    if a.ndim != 2 or f.shape != (a.shape[0],) or a.shape[0] == 0:
        raise ShapeError(f"{who}: expected acts (T, H) and feature (T,), got shapes {a.shape} "
                         f"and {f.shape}.")
    ac = a - a.mean(axis=0)
    fc = f - f.mean()
    sa = np.sqrt((ac * ac).mean(axis=0))                                         # (H,) std
    sf = float(np.sqrt((fc * fc).mean()))
    constant = sa <= 1e-9 * np.maximum(1.0, np.abs(a).max(axis=0))
    if sf <= 1e-9 * max(1.0, float(np.abs(f).max())):
        constant[:] = True
    r = np.full(a.shape[1], np.nan)
    ok = ~constant
    r[ok] = (fc @ ac[:, ok]) / (a.shape[0] * sa[ok] * sf)
    return np.clip(r, -1.0, 1.0)


def saturation(acts, threshold: float = SATURATION) -> np.ndarray:
    """Fraction of the T steps with ``|acts[t, j]| > threshold``, per column: (H,) float64."""
    a = as_float_array("saturation", "acts", acts, np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ShapeError(f"saturation: expected acts of shape (T, H), got shape {a.shape}.")
    return (np.abs(a) > threshold).mean(axis=0)


def unit_measurements(acts: dict, tokens: Sequence[str], boundary: str | None = None) -> dict:
    """Every measurement of every unit of one layer: ``{quantity: {"inside": (H,),
    "position": (H,), "saturation": (H,)}}`` for the (T, H) arrays in ``acts``."""
    inside = inside_quotes_or_brackets(tokens, boundary)
    position = line_position(tokens, boundary)
    return {q: {"inside": correlations(a, inside), "position": correlations(a, position),
                "saturation": saturation(a)} for q, a in acts.items()}


def rank_units(measures: Sequence[dict], k: int = RANKED, quantities: Sequence[str] = STATES) -> dict:
    """The units worth looking at: for each measurement, up to ``k`` entries
    ``{"layer", "quantity", "unit", "score"}`` over every layer's ``quantities``, best first.

    ``measures[l]`` is :func:`unit_measurements` of layer l. Correlations rank by ``|r|``
    (the sign says which way the unit goes), saturation by the fraction and only over
    :data:`BOUNDED_STATES` (an LSTM cell state is unbounded); undefined correlations and zero
    saturation are left out; ties go to the lower layer, the earlier quantity, the lower unit.
    """
    k = check_int("rank_units", "k", k, 1)
    ranked = {}
    for name in ("inside", "position", "saturation"):
        rows = []
        for layer, per_q in enumerate(measures):
            for qi, q in enumerate(quantities):
                if q not in per_q or (name == "saturation" and q not in BOUNDED_STATES):
                    continue
                score = np.asarray(per_q[q][name], np.float64)
                key = np.abs(score)
                for unit in np.flatnonzero(np.isfinite(score) & (key > 0)):
                    rows.append((-float(key[unit]), layer, qi, int(unit), float(score[unit]), q))
        rows.sort()
        ranked[name] = [{"layer": layer, "quantity": q, "unit": unit, "score": score}
                        for _, layer, _, unit, score, q in rows[:k]]
    return ranked


def top_predictions(logits, k: int = TOP_K):
    """``ids (T, k) int64, probs (T, k) float64``: the k most probable next tokens at every
    step, most probable first (ties: lower id), from the softmax of ``logits`` (T, V) in
    float64 (:func:`rnnkit.sample.probabilities`), and the full distribution (T, V)."""
    from .sample import probabilities
    p = probabilities(logits)                                                    # (T, V) float64
    k = min(check_int("top_predictions", "k", k, 1), p.shape[1])
    ids = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return ids.astype(np.int64), np.take_along_axis(p, ids, axis=1), p


# ============================================================================================
# The page
# ============================================================================================

def _capacity(model, max_chars: int) -> tuple[int, str]:
    """How many characters a page may hold for ``model``, and why that many."""
    cfg = model.config
    spec = cell_spec(cfg.cell)
    quantities = len(dict.fromkeys(spec.gate_names + ("hidden",) + (("cell",) if spec.cell_state else ())))
    per_char = quantities * cfg.hidden_size * cfg.num_layers
    by_values = max(1, MAX_VALUES // per_char)
    if by_values < max_chars:
        return by_values, (f"{MAX_VALUES:,} activation numbers ({per_char:,} per character for "
                           f"this model)")
    return max_chars, f"{max_chars:,} characters"


def _float32_b64(a) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _nan_to_none(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, np.float64).tolist()]


def _default_view(ranked: dict):
    """The unit the page opens on: the first bounded state in the rankings (correlations
    first), else None (the page then shows the top layer's hidden unit 0)."""
    for name in ("inside", "position", "saturation"):
        for row in ranked[name]:
            if row["quantity"] in BOUNDED_STATES:
                return {k: row[k] for k in ("layer", "quantity", "unit")}
    return None


def _visible_text(text: str) -> str:
    """``text`` with every invisible character (controls, bidi overrides, ...) replaced by
    its label (:func:`rnnkit.plot.char_labels`); spaces stay spaces."""
    from .plot import char_labels
    return "".join(c if c == " " or c.isprintable() else char_labels(c)[0] for c in str(text))


def page_data(model, vocab, ids, *, title: str = "", source: str = "", total: int | None = None,
              capacity_reason: str = "") -> dict:
    """Everything the page shows, as a JSON-able dict (activations as base64 float32).

    ``ids`` (T,) are the tokens the page holds (already cut to the page's capacity);
    ``total`` the length of the whole text (default T), so the page can say it was cut. In
    lines mode every boundary token starts a new line from the zero state, as in training
    (:func:`line_starts`); in stream mode the whole text is one run.
    """
    from .plot import char_labels
    who = "page_data"
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise DataError(f"{who}: expected a non-empty 1-D array of token ids, got shape {ids.shape}.")
    cfg = model.config
    spec = cell_spec(cfg.cell)
    boundary = vocab.itos[vocab.bos_id] if vocab.bos_id is not None else None
    tokens = [vocab.itos[i] for i in ids.tolist()]
    T = len(ids)
    bounds = line_starts(vocab, ids).tolist() + [T]
    runs = [model.trace(ids[a:b, None]) for a, b in zip(bounds, bounds[1:])]    # one per line
    quantities = list(runs[0][2][0][0])
    layers = [{q: np.concatenate([acts[k][0][q][:, 0] for _, _, acts in runs]) for q in quantities}
              for k in range(cfg.num_layers)]
    top_ids, top_p, p = top_predictions(np.concatenate([logits[:, 0] for logits, _, _ in runs]))
    next_p = [float(p[t, ids[t + 1]]) for t in range(T - 1)] + [None]
    measures = [unit_measurements(layer, tokens, boundary) for layer in layers]
    total = T if total is None else int(total)
    ranked = rank_units(measures)
    return {
        "format": _FORMAT, "version": 1,
        "title": _visible_text(title), "source": _visible_text(source),
        "model": {"cell": spec.name, "num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
                  "vocab_size": cfg.vocab_size, "dtype": cfg.dtype,
                  "mode": "lines" if boundary is not None else "stream"},
        "T": T, "total": total, "cut": total > T, "capacity_reason": capacity_reason,
        "tokens": ids.tolist(), "boundary": vocab.bos_id,
        "labels": char_labels(tokens),
        "newline": [tok == "\n" for tok in tokens],
        "vocab_labels": char_labels(list(vocab.itos)),
        "quantities": quantities,
        "sigmoid": [q for q in quantities if q in spec.sigmoid_gates],
        "values": [[_float32_b64(layer[q]) for q in quantities] for layer in layers],
        "top_ids": top_ids.tolist(), "top_p": top_p.tolist(), "next_p": next_p,
        "inside": inside_quotes_or_brackets(tokens, boundary).tolist(),
        "position": line_position(tokens, boundary).tolist(),
        "saturation_threshold": SATURATION,
        "measures": [{q: {m: _nan_to_none(v) for m, v in ms.items()} for q, ms in layer.items()}
                     for layer in measures],
        "ranked": ranked,
        "default_view": _default_view(ranked),
    }


def seq2seq_page_data(translator, sources: Sequence[str], targets: Sequence | None = None, *,
                      title: str = "", source: str = "") -> dict:
    """The seq2seq page's data: for each source its greedy output and, for every output step
    (each character, then the step that emitted ``<eos>``, drawn '\u21b5'), the attention
    weights over the source characters (:class:`rnnkit.translate.Translation`'s
    ``alignment``); ``targets`` (or None) let the page mark each output right or wrong."""
    from .plot import char_labels
    who = "explore"
    model = translator.model
    if not model.attends:
        raise ConfigError(f"{who}: this seq2seq model has no attention (attention='none'); there "
                          f"are no weights to show. Train with --attention additive, general or dot.")
    sources = list(sources)
    if not sources:
        raise DataError(f"{who}: expected at least one source text, got none.")
    if len(sources) > MAX_PAIRS:
        raise DataError(f"{who}: expected at most {MAX_PAIRS} sources on one page, got {len(sources)}.")
    targets = [None] * len(sources) if targets is None else list(targets)
    items = []
    for src, tgt, tr in zip(sources, targets, translator.translate(sources)):
        labels = char_labels(list(tr.text)) + (["\u21b5"] if tr.finished else [])
        w = np.asarray(tr.alignment, np.float64)
        items.append({"source": _visible_text(src), "source_labels": char_labels(list(src)),
                      "output": _visible_text(tr.text), "output_labels": labels,
                      "target": None if tgt is None else _visible_text(tgt), "finished": bool(tr.finished),
                      "weights": [[float(v) for v in row] for row in w]})
    c = model.config
    return {"format": _FORMAT, "version": 1, "kind": "seq2seq",
            "title": _visible_text(title), "source": _visible_text(source),
            "model": {"encoder": f"{'bi' if c.bidirectional else ''}{c.cell.upper()} "
                                 f"{c.num_layers}x{c.hidden_size}",
                      "decoder": f"{c.decoder_kind.upper()} {c.key_size}", "attention": c.attention},
            "items": items}


def _template(name: str = "explore.html") -> str:
    return resources.files("rnnkit").joinpath("templates", name).read_text(encoding="utf-8")


_PLACEHOLDER = "__RNNKIT_EXPLORE_DATA__"


def render_page(data: dict) -> str:
    """The HTML page of :func:`page_data` (or :func:`seq2seq_page_data`: its own template):
    the template with the data inline, as JSON inside a ``<script type="application/json">``
    element (``<``, ``>``, ``&`` escaped, so no text can end the element)."""
    blob = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = _template("explore_seq2seq.html" if data.get("kind") == "seq2seq" else "explore.html")
    if page.count(_PLACEHOLDER) != 1:
        raise ConfigError(f"render_page: the template must hold {_PLACEHOLDER} once.")
    return page.replace(_PLACEHOLDER, blob)


def read_page_data(html: str) -> dict:
    """The data of a page written by :func:`render_page` (for tests and tools)."""
    start = html.index('<script id="rnnkit-data" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start:html.index("</script>", start)])


def decode_values(data: dict, layer: int, quantity: str) -> np.ndarray:
    """The (T, H) float32 activations of ``quantity`` of ``layer`` stored in a page's data."""
    q = data["quantities"].index(quantity)
    a = np.frombuffer(base64.b64decode(data["values"][layer][q]), dtype="<f4")
    return a.reshape(data["T"], -1)


# ============================================================================================
# From a checkpoint directory
# ============================================================================================

def check_out_path(out) -> Path:
    """The output file, checked before any work: it ends in ``.html``, is not a directory, is
    not inside a run's checkpoint (:func:`rnnkit.checkpoint.check_not_inside_run`), and its
    folder exists (or can be made) and is writable."""
    import os
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: expected a file name ending in .html (the page is one "
                          f"HTML file), e.g. --out explore.html.")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; expected the path of the HTML file to write.")
    from .checkpoint import check_not_inside_run
    check_not_inside_run(out, "--out")                 # before its folder is made
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create its folder {str(parent)!r} "
                          f"({e.strerror or e}).") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: its folder {str(parent)!r} is not writable.")
    return out


def lines_ids(vocab, lines: Sequence[str]) -> np.ndarray:
    """Lines mode: every line as the model reads it in training, the boundary token and then
    its characters (``<eos> e m m a <eos> m i a``)."""
    B = vocab.bos_id
    return np.array([i for line in lines for i in [B] + vocab.encode(line).tolist()], dtype=np.int64)


def text_ids(vocab, text: str) -> np.ndarray:
    """The tokens a page shows for ``text``: in lines mode the lines of
    :func:`rnnkit.data.split_lines` (stripped, empty ones dropped, as ``rnnkit train`` reads
    them) through :func:`lines_ids`; in stream mode the characters as they are. Unknown
    characters raise :class:`~rnnkit.errors.DataError` naming them."""
    from .data import split_lines
    if vocab.bos_id is None:
        return vocab.encode(text)
    return lines_ids(vocab, split_lines(text))


def line_starts(vocab, ids) -> np.ndarray:
    """Where a run of the model starts from the zero state: in lines mode at every boundary
    token (each line is an example of its own, as in training) and at 0; in stream mode at 0."""
    ids = np.asarray(ids)
    if vocab.bos_id is None:
        return np.zeros(1, np.int64)
    return np.union1d([0], np.flatnonzero(ids == vocab.bos_id)).astype(np.int64)


def explore_checkpoint(directory, out, *, file=None, prime: str | None = None, length: int | None = None,
                       num: int | None = None, seed: int = 0, temperature: float = 1.0,
                       max_chars: int = MAX_CHARS, encoding: str = "utf-8", latest: bool = False) -> dict:
    """Write the explorer page of the run in ``directory`` to ``out``; return a summary dict
    (``path``, ``chars``, ``total``, ``cut``, ``source``).

    The text is ``file`` (read with :func:`rnnkit.data.read_text`), or, without one, what the
    model generates with :mod:`rnnkit.sample` (its stepper), drawn with ``seed`` and
    ``temperature``, as ``rnnkit sample`` does: in lines mode ``num`` lines (default
    ``GENERATE_LINES``; :func:`~rnnkit.sample.sample_lines`) that begin with ``prime``, each
    at most ``length`` characters long; in stream mode ``length`` characters (default
    ``GENERATE``; :func:`~rnnkit.sample.sample_stream`) after ``prime``.
    ``out`` is checked first, before any work.
    """
    from .data import read_text
    from .load import load_model
    from .sample import sample_lines, sample_stream
    who = "explore"
    seed = check_int(who, "--seed", seed, 0)
    out = check_out_path(out)
    max_chars = check_int(who, "max_chars", max_chars, 1, MAX_CHARS)
    if file is not None and (prime is not None or length is not None or num is not None):
        raise ConfigError("give either FILE (a text to read) or --prime/--length/--num (a text to "
                          "generate), not both.")
    loaded = load_model(directory, latest=latest, need_charlm=False)
    if type(loaded.model).__name__ == "Seq2Seq":
        if prime is not None or length is not None:
            raise ConfigError("--prime and --length are for a CharLM; a seq2seq page shows the "
                              "translations of FILE (pairs or one source a line) or of the run's "
                              "validation sources (--num of them).")
        return _explore_seq2seq(loaded, directory, out, file, num, encoding)
    model, vocab, _, used = load_model(directory, latest=latest)
    capacity, reason = _capacity(model, max_chars)
    if file is not None:
        ids = text_ids(vocab, read_text(file, encoding=encoding))
        source = f"the file {Path(file).name}"
    else:
        length = check_int(who, "length", GENERATE if length is None else length, 1, MAX_CHARS)
        temperature = check_float(who, "temperature", temperature, 0.0)
        step, rng, prime = model.stepper().step, np.random.default_rng(seed), prime or ""
        drawn = f"seed {seed}, temperature {temperature:g}"
        if vocab.bos_id is not None:
            num = check_int(who, "num", GENERATE_LINES if num is None else num, 1, MAX_CHARS)
            ids = lines_ids(vocab, sample_lines(step, vocab, num, rng, max_len=length, prime=prime,
                                                temperature=temperature))
            source = (f"{num} lines the model generated" + (f" after the prime {prime!r}" if prime else "")
                      + f" ({drawn})")
        else:
            ids = vocab.encode(sample_stream(step, vocab, length, rng, prime=prime, temperature=temperature))
            source = (f"a text the model generated: {length:,} characters after "
                      + (f"the prime {prime!r}" if prime else "a newline") + f" ({drawn})")
    if len(ids) == 0:
        raise DataError(f"{who}: the text is empty; nothing to show.")
    total = len(ids)
    ids = ids[:capacity]
    data = page_data(model, vocab, ids, title=Path(directory).resolve().name, source=source,
                     total=total, capacity_reason=reason)
    data["model"]["path"] = str(used)
    from .io import atomic_write_text
    atomic_write_text(out, render_page(data))
    return {"path": str(out), "chars": len(ids), "total": total, "cut": total > len(ids),
            "source": source}


def _explore_seq2seq(loaded, directory, out: Path, file, num, encoding: str) -> dict:
    """:func:`explore_checkpoint` on a seq2seq run: FILE's pairs (or sources, one a line)
    or the run's first ``num`` validation pairs."""
    from .data import read_text
    from .data.pairs import is_pairs_text, parse_pairs
    from .io import atomic_write_text
    from .translate import run_pairs, translator_of
    tr = translator_of(loaded)
    if file is not None:
        if num is not None:
            raise ConfigError("give either FILE (the sources to show) or --num (that many of the "
                              "run's validation sources), not both.")
        text = read_text(file, encoding=encoding)
        if is_pairs_text(text):
            pairs = parse_pairs(text, origin=str(file))
            sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            sources, targets = [line for line in text.splitlines() if line.strip()], None
        source = f"the file {Path(file).name}"
    else:
        num = check_int("explore", "num", GENERATE_PAIRS if num is None else num, 1, MAX_PAIRS)
        from .checkpoint import load_checkpoint
        pairs = run_pairs(load_checkpoint(directory, load_optimizer=False), num)
        if not pairs:
            raise DataError(f"explore: cannot rebuild the validation pairs of {directory} (its pairs "
                            f"file moved?); give the sources as a FILE.")
        sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
        source = f"the first {len(pairs)} validation pairs of the run"
    data = seq2seq_page_data(tr, sources, targets, title=Path(directory).resolve().name, source=source)
    atomic_write_text(out, render_page(data))
    n = len(data["items"])
    return {"path": str(out), "chars": sum(len(i["source"]) for i in data["items"]), "total": n,
            "cut": False, "source": source, "pairs": n}
