"""Pictures of recurrent networks: loss curves, gate activations, hidden units, vanishing gradients.

Needs matplotlib (``pip install 'rnnkit[plot]'``); the numbers come from :mod:`rnnkit.analysis`.
Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (for notebooks and
tests), and each ``plot_*`` function draws the same figure into a PNG file and returns its path:

============================  ==================================================  =============
function                      shows                                               data
============================  ==================================================  =============
:func:`plot_losses`           training / validation loss against the step         metrics.jsonl
:func:`plot_gates`            gate activations over the characters of a text      (T, H) arrays
:func:`plot_top_units`        the k most active hidden units over a text          (T, H) array
:func:`plot_gradient_norms`   ||dL/ds_{T-k}|| against k, log scale, per cell      (K,) arrays
:func:`plot_checkpoint`       the first three for a checkpoint directory          ``DIR``
============================  ==================================================  =============

The figures are drawn with :class:`matplotlib.figure.Figure` and the Agg canvas directly, not
with ``pyplot``: nothing global changes (no backend switch, no open figures), so this works on
servers without a display and inside other programs' plotting sessions alike.

Example::

    >>> import numpy as np, rnnkit.nn as nn
    >>> from rnnkit import analysis, plot
    >>> gates = analysis.gate_activations(nn.LSTM(4, 8, seed=0), np.random.randn(12, 4))
    >>> plot.plot_gates("hello world!", gates, "gates.png")      # doctest: +SKIP
    'gates.png'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._validate import as_float_array, check_int, short_list
from .analysis import loss_curves, most_active_units
from .cells import CELLS
from .errors import CheckpointError, ConfigError, DataError, ShapeError

__all__ = [
    "SIGMOID_GATES",
    "char_labels",
    "losses_figure",
    "gates_figure",
    "top_units_figure",
    "gradient_norms_figure",
    "save_figure",
    "plot_losses",
    "plot_gates",
    "plot_top_units",
    "plot_gradient_norms",
    "plot_checkpoint",
    "attention_figure",
    "plot_attention",
]

#: The gates with values in [0, 1] (of every cell kind) that :func:`plot_gates` shows by default.
SIGMOID_GATES = tuple(dict.fromkeys(g for spec in CELLS.values() for g in spec.sigmoid_gates))

_DPI = 110


# ============================================================================================
# Figures
# ============================================================================================

def _mpl():
    """Import matplotlib's Figure and Agg canvas, with an install hint when missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("rnnkit.plot: expected the optional 'matplotlib' package for pictures, "
                          "but it is not installed. Install it with: pip install 'rnnkit[plot]'") from e
    return Figure, FigureCanvasAgg


def _new_figure(width, height):
    Figure, FigureCanvasAgg = _mpl()
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> str:
    """Write ``fig`` as a PNG file (parent directories are created); return ``str(path)``.

    Written like every other file of rnnkit (:func:`rnnkit.io.atomic_write_bytes`): into a
    temporary file that then replaces ``path``, so a reader never sees half a picture and a
    symbolic link at ``path`` is replaced, never written through. An unwritable place is a
    :class:`ConfigError` naming the path."""
    import io

    from .io import atomic_write_bytes
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"save_figure: expected a path ending in .png, got {str(path)!r}.")
    if path.is_dir() and not path.is_symlink():
        raise ConfigError(f"save_figure: cannot write the picture {path}: it is a directory. "
                          f"Remove or rename it, or choose another --out.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"save_figure: cannot create {path.parent} for {path.name}: "
                          f"{e.strerror or e}. Choose another --out.") from None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except CheckpointError as e:
        cause = e.__cause__
        raise ConfigError(f"save_figure: cannot write the picture {path}: "
                          f"{getattr(cause, 'strerror', None) or cause or e}. Check the "
                          f"permissions and the free disk space, or choose another --out.") from None
    return str(path)


_VISIBLE = {"\n": "\u21b5", " ": "\u2423", "\t": "\u21e5", "\r": "\u240d"}


def _char_label(c: str) -> str:
    """The label of one character: itself when printable; newline, space, tab and carriage
    return as symbols; other C0 controls and DEL as their Control Pictures (NUL '␀', ESC
    '␛', DEL '␡'); every other invisible character (C1 controls, format characters such as
    U+202E RIGHT-TO-LEFT OVERRIDE, unassigned code points) as its code, ``U+202E``, so it can
    neither hide nor reorder the text around it."""
    if c in _VISIBLE:
        return _VISIBLE[c]
    if c.isprintable():
        return c
    cp = ord(c)
    if cp < 0x20:
        return chr(0x2400 + cp)
    if cp == 0x7F:
        return "\u2421"
    return f"U+{cp:04X}"


def char_labels(text) -> list:
    """One visible label per character (``_char_label``): newline as '↵', space as '␣',
    tab as '⇥', control characters as '␀'/'␛'/..., other invisible ones as ``U+XXXX``.

    ``text`` may also be a list of strings (one per step, e.g. ``["<eos>", "e", "m"]``);
    ``"<eos>"`` becomes '↵', and longer strings are labelled character by character.
    """
    if isinstance(text, str):
        return [_char_label(c) for c in text]
    if isinstance(text, (list, tuple)):
        out = []
        for s in text:
            s = str(s)
            out.append("\u21b5" if s == "<eos>" else "".join(_char_label(c) for c in s) if len(s) != 1
                       else _char_label(s))
        return out
    raise DataError(f"char_labels: expected a str or a list of strings, got {type(text).__name__}.")


def _check_steps(who, text, arrays):
    labels = char_labels(text)
    for name, a in arrays.items():
        if a.ndim != 2 or a.shape[0] != len(labels) or a.shape[1] == 0:
            raise ShapeError(f"{who}: expected {name} of shape (T={len(labels)}, H) (one row per "
                             f"character of the text), got shape {a.shape}. Pass the text the "
                             f"activations were computed on.")
    if not labels:
        raise DataError(f"{who}: expected a non-empty text, got an empty one.")
    return labels


def _char_axis(ax, labels):
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, fontsize=9 if len(labels) <= 60 else 7, fontfamily="DejaVu Sans Mono")
    ax.tick_params(axis="x", length=0)


def losses_figure(metrics_or_dir, title: str = "Training and validation loss"):
    """Figure of :func:`loss_curves`: loss (nats per character) against the training step."""
    curves = loss_curves(metrics_or_dir)
    if not curves:
        raise DataError("losses_figure: expected metric records with a 'step' and a "
                        "'train_loss' or 'val_loss', got none. Train with evaluations first "
                        "(they are appended to DIR/metrics.jsonl).")
    fig = _new_figure(7, 4.2)
    ax = fig.add_subplot()
    style = {"train_loss": ("training", "C0", "-"), "val_loss": ("validation", "C1", "-")}
    for name, (steps, values) in curves.items():
        label, color, ls = style[name]
        ax.plot(steps, values, ls, color=color, label=label, marker="o" if len(steps) < 30 else None,
                markersize=3, linewidth=1.8)
    ax.set_xlabel("training step", fontsize=11)
    ax.set_ylabel("cross-entropy loss (nats / character)", fontsize=11)
    ax.set_title(title, fontsize=13)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=10)
    return fig


def plot_losses(metrics_or_dir, path, title: str = "Training and validation loss") -> str:
    """Save :func:`losses_figure` as a PNG at ``path``; return the path.

    ``metrics_or_dir``: a list of evaluation records or a checkpoint directory holding
    ``metrics.jsonl``.
    """
    return save_figure(losses_figure(metrics_or_dir, title), path)


def gates_figure(text, gates: Mapping, names: Sequence[str] | None = None, units=None,
                 max_units: int = 24, title: str | None = None):
    """Heatmaps of gate activations: one panel per gate, rows = hidden units, columns = characters.

    ``gates`` is a dict name -> (T, H) as returned by :func:`gate_activations` and ``text`` the
    T characters it was computed on. ``names`` chooses the panels (default: the sigmoid gates
    present, :data:`SIGMOID_GATES`); ``units`` the hidden units shown (default: the first
    ``max_units``). Sigmoid gates use the colour scale [0, 1]; other arrays [-1, 1].
    """
    who = "gates_figure"
    if names is None:
        names = [n for n in SIGMOID_GATES if n in gates]
        if not names:
            raise DataError(f"{who}: expected gates with some of the names {SIGMOID_GATES}, got "
                            f"{short_list(sorted(map(str, gates)))}. Pass names=[...] to choose arrays to draw.")
    missing = [n for n in names if n not in gates]
    if missing:
        raise DataError(f"{who}: expected gates to contain {short_list(missing)}, got keys "
                        f"{short_list(sorted(map(str, gates)))}.")
    arrays = {n: as_float_array(who, f"gates[{n!r}]", gates[n], np.float64) for n in names}
    labels = _check_steps(who, text, arrays)
    H = next(iter(arrays.values())).shape[1]
    units = np.arange(min(H, max_units)) if units is None else np.asarray(units, dtype=np.int64)
    if units.ndim != 1 or units.size == 0 or units.min() < 0 or units.max() >= H:
        raise ConfigError(f"{who}: expected units as indices in [0, {H - 1}], got {units!r:.80}.")
    T = len(labels)
    fig = _new_figure(max(6.0, 0.16 * T + 2.2), 0.9 + len(names) * (0.6 + 0.17 * units.size))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    im = None
    for ax, name in zip(axes, names):
        a = arrays[name][:, units].T                                            # (units, T)
        sig = name in SIGMOID_GATES
        im = ax.imshow(a, aspect="auto", interpolation="nearest", cmap="viridis" if sig else "RdBu_r",
                       vmin=0.0 if sig else -1.0, vmax=1.0)
        ax.set_title(f"{name} gate" if sig else name, fontsize=11, loc="left")
        ax.set_ylabel("hidden unit", fontsize=10)
        ax.set_yticks(np.arange(units.size)[:: max(1, units.size // 6)])
        ax.set_yticklabels([str(u) for u in units[:: max(1, units.size // 6)]], fontsize=8)
        _char_axis(ax, labels)
        cb = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03)
        cb.set_label("activation", fontsize=9)
        cb.ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("character of the text (time step)", fontsize=10)
    fig.suptitle(title or f"Gate activations over {T} characters", fontsize=13)
    return fig


def plot_gates(text, gates: Mapping, path, names=None, units=None, max_units: int = 24,
               title: str | None = None) -> str:
    """Save :func:`gates_figure` (gate heatmaps over the characters of ``text``) as a PNG."""
    return save_figure(gates_figure(text, gates, names, units, max_units, title), path)


def top_units_figure(text, hidden, k: int = 8, title: str | None = None):
    """The ``k`` most active hidden units (:func:`most_active_units`) over ``text``.

    One row per unit; every character is drawn in a cell coloured by the unit's activation
    (blue -1, white 0, red +1), as in Karpathy, Johnson & Fei-Fei (2015), "Visualizing and
    Understanding Recurrent Networks".
    """
    who = "top_units_figure"
    h = as_float_array(who, "hidden", hidden, np.float64)
    labels = _check_steps(who, text, {"hidden": h})
    idx = most_active_units(h, k)
    a = h[:, idx].T                                                             # (k, T)
    T = len(labels)
    lim = max(1.0, float(np.abs(a).max()))
    fig = _new_figure(max(6.0, 0.2 * T + 2.0), 1.4 + 0.36 * idx.size)
    ax = fig.add_subplot()
    im = ax.imshow(a, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
    for r in range(a.shape[0]):
        for t, ch in enumerate(labels):
            ax.text(t, r, ch, ha="center", va="center", fontsize=9 if T <= 60 else 7,
                    family="DejaVu Sans Mono", color="white" if abs(a[r, t]) > 0.65 * lim else "black")
    ax.set_yticks(np.arange(idx.size))
    ax.set_yticklabels([f"unit {u}" for u in idx], fontsize=9)
    ax.set_xticks([])
    ax.set_xlabel(f"the text, one character per column ({T} characters)", fontsize=10)
    ax.set_ylabel("hidden unit (most active first)", fontsize=10)
    ax.set_title(title or f"The {idx.size} most active hidden units (largest mean |h|)", fontsize=12)
    cb = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03)
    cb.set_label("activation h", fontsize=9)
    return fig


def plot_top_units(text, hidden, path, k: int = 8, title: str | None = None) -> str:
    """Save :func:`top_units_figure` as a PNG at ``path``; return the path."""
    return save_figure(top_units_figure(text, hidden, k, title), path)


def gradient_norms_figure(norms_by_cell: Mapping, title: str = "Vanishing gradients through time"):
    """Log-scale lines of ``norms[k]`` against k, one per entry of ``norms_by_cell``
    (name -> (K,) array from :func:`gradient_norms_through_time`). Zeros are not drawn."""
    who = "gradient_norms_figure"
    if not isinstance(norms_by_cell, Mapping) or not norms_by_cell:
        raise DataError(f"{who}: expected a non-empty dict name -> norms array, got "
                        f"{type(norms_by_cell).__name__}.")
    fig = _new_figure(7, 4.4)
    ax = fig.add_subplot()
    for name, norms in norms_by_cell.items():
        n = as_float_array(who, f"norms_by_cell[{name!r}]", norms, np.float64, allow_nonfinite=True)
        if n.ndim != 1 or n.size < 2:
            raise ShapeError(f"{who}: expected norms_by_cell[{name!r}] of shape (K,) with K >= 2, "
                             f"got shape {n.shape}.")
        k = np.arange(n.size)
        keep = np.isfinite(n) & (n > 0)
        ax.semilogy(k[keep], n[keep], label=str(name), linewidth=2)
    ax.set_xlabel("k, steps back from the loss", fontsize=11)
    ax.set_ylabel(r"$\|\partial L / \partial s_{T-k}\|$ (log scale)", fontsize=11)
    ax.set_title(title, fontsize=13)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=10)
    return fig


def plot_gradient_norms(norms_by_cell: Mapping, path,
                        title: str = "Vanishing gradients through time") -> str:
    """Save :func:`gradient_norms_figure` as a PNG at ``path``; return the path."""
    return save_figure(gradient_norms_figure(norms_by_cell, title), path)


# ============================================================================================
# A checkpoint directory
# ============================================================================================

def attention_figure(items, title: str = "Attention: each output character over the source"):
    """Heatmaps of alignments: ``items`` is a list of ``(source, output, alignment)`` with
    ``alignment`` (len(output) + 1, len(source)) - one row per output character and a last
    row for the final ``<eos>`` (drawn '↵'), as :class:`rnnkit.translate.Translation` holds."""
    items = list(items)
    if not items:
        raise DataError("attention_figure: expected at least one (source, output, alignment).")
    n = len(items)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    widest = max(len(s) for s, _, _ in items)
    fig = _new_figure(min(16, 1.5 + 0.28 * widest * cols), 1.2 + 2.6 * rows)
    for k, (src, out, a) in enumerate(items):
        a = np.asarray(a, dtype=np.float64)
        labels = char_labels(out) + ["\u21b5"]
        if a.shape != (len(labels), len(src)) and a.shape != (len(labels) - 1, len(src)):
            raise ShapeError(f"attention_figure: expected the alignment of {src!r} -> {out!r} of "
                             f"shape ({len(labels)}, {len(src)}), got {a.shape}.")
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(a, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        _char_axis(ax, char_labels(src))
        ax.set_yticks(np.arange(a.shape[0]))
        ax.set_yticklabels(labels[:a.shape[0]], fontsize=9, fontfamily="DejaVu Sans Mono")
        ax.set_xlabel("source")
        ax.set_ylabel("output")
    fig.suptitle(title)
    return fig


def plot_attention(items, path, title: str = "Attention: each output character over the source") -> str:
    """Write :func:`attention_figure` to ``path`` (PNG); return the path."""
    return save_figure(attention_figure(items, title), path)


def _line_pieces(vocab, lines, max_chars: int) -> list:
    """Lines mode: the ids ``[<eos>, c_1, ..., c_L]`` of each line, as `rnnkit sample` and
    training see them, until ``max_chars`` steps in all (the last line cut)."""
    pieces, total = [], 0
    for line in lines:
        ids = np.concatenate([[vocab.bos_id], vocab.encode(line)]).astype(np.int64)[:max_chars - total]
        pieces.append(ids)
        total += len(ids)
        if total >= max_chars:
            break
    return pieces


def _activations(model, pieces) -> dict:
    """:func:`gate_activations` of each piece from a fresh state, joined along time."""
    from .analysis import gate_activations
    runs = [gate_activations(model, ids) for ids in pieces]
    return {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}


def plot_checkpoint(directory, out_dir=None, text: str | None = None, *, max_chars: int = 80,
                    k: int = 8, seed: int = 0) -> list:
    """Draw the pictures of a training run; return the list of PNG paths written.

    * ``loss.png``  - :func:`plot_losses` of ``DIR/metrics.jsonl`` (when it has losses);
    * ``gates.png`` - :func:`plot_gates` of the top recurrent layer (LSTM and GRU models);
    * ``units.png`` - :func:`plot_top_units` of the top layer's hidden states.

    * ``attention.png`` - for a seq2seq run with attention: :func:`plot_attention` of up to
      four sources (the lines of ``text``, or the run's first validation pairs).

    The gate and unit pictures need a char LM (``CharLM``) with its vocabulary and run it over
    ``text``; without ``text`` the model's own sample of ``max_chars`` characters (seeded by
    ``seed``) is used. A lines-mode model runs over each line on its own, from a fresh state,
    as it was trained and as `rnnkit sample` generates: the line's steps start at the boundary
    token (drawn '↵'); without ``text`` its samples are real lines
    (:func:`rnnkit.sample.sample_lines`).
    ``out_dir`` defaults to ``directory``.
    """
    who = "plot_checkpoint"
    from .checkpoint import has_checkpoint, load_checkpoint, read_metrics
    from .data import split_lines
    from .load import checked_model
    from .sample import sample_lines, sample_tokens
    directory = Path(directory)
    out = Path(out_dir) if out_dir is not None else directory
    max_chars = check_int(who, "max_chars", max_chars, 2)
    paths = []
    metrics = read_metrics(directory) if directory.is_dir() else []
    if loss_curves(metrics):
        paths.append(plot_losses(metrics, out / "loss.png"))
    if not has_checkpoint(directory):
        if not paths:
            raise DataError(f"{who}: nothing to plot in {directory}: no metrics.jsonl with losses "
                            f"and no checkpoint. Run `rnnkit train --out {directory}` first.")
        return paths
    ck = load_checkpoint(directory, load_optimizer=False)
    if ck.config.get("model") == "Seq2Seq" and ck.config.get("attention") != "none":
        from .load import load_model
        from .translate import run_pairs, translator_of
        tr = translator_of(load_model(directory, need_charlm=False))
        sources = text.split("\n") if text else [s for s, _ in run_pairs(ck, 4)]
        sources = [s for s in sources if s][:4]
        if sources:
            outs = tr.translate(sources)
            paths.append(plot_attention([(s, o.text, o.alignment) for s, o in zip(sources, outs)],
                                        out / "attention.png"))
        return paths
    if ck.config.get("model") != "CharLM" or ck.vocab is None:
        return paths
    model, vocab = checked_model(ck, str(ck.path), need_charlm=True)
    model.eval()
    if text is not None and (not isinstance(text, str) or not text):
        raise DataError(f"{who}: expected text as a non-empty str, got {text!r:.40}.")
    rng = np.random.default_rng(seed)
    if vocab.bos_id is not None:                    # lines: each line alone, from a fresh state
        if text is None:
            lines = [s for s in sample_lines(model.stepper().step, vocab, 16, rng,
                                             max_len=max_chars) if s] or [""]
        else:
            lines = split_lines(text) or [""]
        pieces = _line_pieces(vocab, lines, max_chars)
    elif text is None:
        pieces = [sample_tokens(model.stepper().step, vocab, max_chars, rng)]
    else:
        pieces = [vocab.encode(text)[:max_chars]]
    ids = np.concatenate(pieces)
    labels = [vocab.itos[i] for i in ids.tolist()]
    acts = _activations(model, pieces)
    name = ck.config.get("cell", "").upper()
    if any(n in acts for n in SIGMOID_GATES):
        paths.append(plot_gates(labels, acts, out / "gates.png",
                                title=f"{name} gate activations (top layer) over {len(labels)} characters"))
    paths.append(plot_top_units(labels, acts["hidden"], out / "units.png", k=k))
    return paths
