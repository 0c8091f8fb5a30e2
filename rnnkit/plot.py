"""Pictures of recurrent networks: loss curves, gate activations, hidden units, vanishing gradients.

Two kinds of functions live here:

* **Measurements** (NumPy only, no matplotlib needed):
  :func:`loss_curves`, :func:`gate_activations`, :func:`most_active_units`,
  :func:`gradient_norms_through_time`.
* **Pictures** (need matplotlib: ``pip install 'rnnkit[plot]'``). Each ``*_figure`` function
  returns a :class:`matplotlib.figure.Figure` (for notebooks and tests), and each ``plot_*``
  function draws the same figure into a PNG file and returns its path:

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
    >>> from rnnkit import plot
    >>> lstm = nn.LSTM(4, 8, seed=0)
    >>> gates = plot.gate_activations(lstm, np.random.randn(12, 4))
    >>> sorted(gates), gates["forget"].shape
    (['candidate', 'cell', 'forget', 'hidden', 'input', 'output'], (12, 8))
    >>> plot.plot_gates("hello world!", gates, "gates.png")      # doctest: +SKIP
    'gates.png'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ._mode import enable_grad, no_grad
from ._validate import as_float_array, check_int
from .errors import ConfigError, DataError, ShapeError

__all__ = [
    "GATE_NAMES",
    "loss_curves",
    "gate_activations",
    "most_active_units",
    "gradient_norms_through_time",
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
]

#: Names of the activated gate blocks returned by :func:`gate_activations`, in PyTorch's row
#: order (LSTM rows i, f, g, o; GRU rows r, z, n).
GATE_NAMES = {
    "LSTM": ("input", "forget", "candidate", "output"),
    "GRU": ("reset", "update", "candidate"),
    "RNN_TANH": (),
    "RNN_RELU": (),
}
#: The sigmoid gates (values in [0, 1]) that :func:`plot_gates` shows by default.
SIGMOID_GATES = ("input", "forget", "output", "reset", "update")

_DPI = 110


# ============================================================================================
# Measurements
# ============================================================================================

def loss_curves(metrics) -> dict:
    """Loss curves from evaluation records: ``{name: (steps, values)}`` of float64 arrays.

    ``metrics`` is a list of dicts (one per evaluation, as in ``metrics.jsonl``) or a
    checkpoint directory (read with :func:`rnnkit.checkpoint.read_metrics`). A record
    contributes ``(record["step"], record[name])`` to the curve ``name`` for every ``name`` in
    ``train_loss``, ``val_loss`` that it holds as a finite number; records without an integer
    ``"step"`` are skipped, and each curve is sorted by step.

    >>> loss_curves([{"step": 10, "train_loss": 2.0}, {"step": 20, "train_loss": 1.5,
    ...              "val_loss": 1.7}])["train_loss"]
    (array([10., 20.]), array([2. , 1.5]))
    """
    who = "loss_curves"
    if isinstance(metrics, (str, os.PathLike)):
        from .checkpoint import read_metrics
        metrics = read_metrics(metrics)
    if not isinstance(metrics, (list, tuple)):
        raise DataError(f"{who}: expected a list of metric records (dicts) or a checkpoint "
                        f"directory, got {type(metrics).__name__}.")
    curves = {}
    for name in ("train_loss", "val_loss"):
        pts = []
        for r in metrics:
            if not isinstance(r, Mapping):
                continue
            step, v = r.get("step"), r.get(name)
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            if np.isfinite(v):
                pts.append((float(step), float(v)))
        if pts:
            pts.sort(key=lambda p: p[0])
            arr = np.array(pts, dtype=np.float64)                               # (n, 2)
            curves[name] = (arr[:, 0].copy(), arr[:, 1].copy())
    return curves


def _find_layer(who, obj):
    """Return (recurrent layer, module to call) for a layer or a model with ``.rnn``."""
    from .nn.rnn import RNNBase
    if isinstance(obj, RNNBase):
        return obj, obj
    rnn = getattr(obj, "rnn", None)
    if isinstance(rnn, RNNBase):
        return rnn, obj
    raise ConfigError(f"{who}: expected a recurrent layer (rnnkit.nn.RNN/LSTM/GRU) or a model "
                      f"with an .rnn layer (e.g. rnnkit.nn.CharLM), got {type(obj).__name__}.")


def gate_activations(model_or_layer, inputs, *, layer: int = -1, direction: int = 0,
                     index: int = 0) -> dict:
    """Activated gates and states of one recurrent layer over one sequence, as (T, H) arrays.

    Runs ``model_or_layer`` forward once (in eval mode, so without dropout) and returns, for
    sequence ``index`` of the batch, layer ``layer`` (negative counts from the top) and
    direction ``direction`` (1 = the reverse direction of a bidirectional layer, returned in
    the original time order)::

        LSTM  input  i_t = s(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     (T, H) in [0, 1]
              forget f_t = s(W_if x_t + ... )                           (T, H) in [0, 1]
              candidate g_t = tanh(W_ig x_t + ...)                      (T, H) in [-1, 1]
              output o_t = s(W_io x_t + ... )                           (T, H) in [0, 1]
              cell   c_t = f_t * c_{t-1} + i_t * g_t                    (T, H)
        GRU   reset  r_t,  update z_t                                   (T, H) in [0, 1]
              candidate n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        all   hidden h_t                                                (T, H)

    Args:
        model_or_layer: an :class:`rnnkit.nn.RNN`/``LSTM``/``GRU`` layer, or a model with an
            ``.rnn`` layer that is called as ``model(inputs)`` (e.g. :class:`rnnkit.nn.CharLM`).
        inputs: for a layer, floats ``(T, input_size)`` or ``(T, N, input_size)`` (batch-first
            if the layer is); for a model, what the model takes, e.g. token ids ``(T,)`` or
            ``(T, N)``.

    Returns:
        dict name -> float64 array (T, H): the gate names of :data:`GATE_NAMES` plus
        ``"hidden"`` (and ``"cell"`` for LSTM).

    >>> import rnnkit.nn as nn
    >>> g = gate_activations(nn.GRU(3, 5, seed=0), np.zeros((7, 3)))
    >>> sorted(g), g["update"].shape
    (['candidate', 'hidden', 'reset', 'update'], (7, 5))
    """
    who = "gate_activations"
    rnn, module = _find_layer(who, model_or_layer)
    L, D = rnn.num_layers, rnn.num_directions
    layer = check_int(who, "layer", layer, -L, L - 1) % L
    direction = check_int(who, "direction", direction, 0, D - 1)
    x = np.asarray(inputs)
    if module is rnn:
        if x.ndim == 2:
            x = x[None] if rnn.batch_first else x[:, None]
    elif x.ndim == 1:
        x = x[:, None]
    was_training = module.training
    module.eval()
    try:
        with enable_grad():
            module(x)
        caches, _, mask, T, N = rnn._cache       # documented by rnnkit.nn.rnn.RNNBase.forward
    finally:
        module.train(was_training)
    index = check_int(who, "index", index, 0, N - 1)
    cache, _ = caches[layer][direction]
    H = rnn.hidden_size
    G = np.asarray(cache.G[:, index], dtype=np.float64)                         # (T, G*H)
    out = {name: G[:, j * H:(j + 1) * H].copy() for j, name in enumerate(GATE_NAMES[rnn.mode])}
    out["hidden"] = np.asarray(cache.Hs[1:, index], dtype=np.float64)           # (T, H)
    if cache.Cs is not None:
        out["cell"] = np.asarray(cache.Cs[1:, index], dtype=np.float64)         # (T, H)
    rnn._cache = None                       # free the backward cache; nobody will use it
    if direction == 1:                      # the reverse direction ran over x[::-1]
        out = {k: v[::-1].copy() for k, v in out.items()}
    return out


def most_active_units(hidden, k: int = 8) -> np.ndarray:
    """Indices of the ``k`` hidden units with the largest mean absolute activation.

    ``hidden`` is (T, H); the score of unit j is ``mean_t |hidden[t, j]|``. Returns an int
    array (min(k, H),), most active first (ties: lower index first).

    >>> most_active_units(np.array([[0.1, -0.9, 0.5], [0.0, -0.8, 0.4]]), k=2).tolist()
    [1, 2]
    """
    h = as_float_array("most_active_units", "hidden", hidden, np.float64)
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ShapeError(f"most_active_units: expected hidden of shape (T, H), got shape {h.shape}.")
    k = check_int("most_active_units", "k", k, 1)
    score = np.abs(h).mean(axis=0)                                              # (H,)
    return np.argsort(-score, kind="stable")[:k]


def gradient_norms_through_time(cell="rnn", T: int = 50, hidden_size: int = 32, *,
                                input_size: int | None = None, batch_size: int = 16,
                                seed: int = 0, x=None) -> np.ndarray:
    """How much of a gradient survives k steps back: ``norms[k] = E ||dL/ds_{T-k}||``.

    A recurrent stack runs over ``x`` (T, N, D) from a zero state. The loss puts a gradient
    only on the last output, ``L = <g, h_T>`` with ``g`` a random unit vector per sequence,
    and ``s_t`` is the whole recurrent state after step t (every layer's ``h_t``, and
    ``c_t`` for an LSTM). Backpropagation through time multiplies the gradient by one
    Jacobian per step::

        dL/ds_{T-k} = (ds_T/ds_{T-1})^T ... (ds_{T-k+1}/ds_{T-k})^T g
        tanh RNN:  ds_t/ds_{t-1} = diag(1 - h_t**2) W_hh               (shrinks when |W_hh| < 1)
        LSTM:      dc_t/dc_{t-1} = diag(f_t) + (paths through the gates)
        GRU:       dh_t/dh_{t-1} = diag(z_t) + (paths through r, z, n)

    ``norms[0] = ||g|| = 1``; ``norms[k]`` is the mean over the batch of the Euclidean norm
    of ``dL/ds_{T-k}``, k = 0..T.

    How it is computed, exactly and in one pass: the state ``s_{T-k}`` is the initial state
    of a k-step run over ``x[T-k:]``, so its gradient is that run's ``dstate0``. All T runs
    are stacked into one right-padded batch with ``lengths = k`` and differentiated by one
    call of ``layer.backward``.

    Args:
        cell: ``'rnn'`` (tanh), ``'lstm'``, ``'gru'`` (a fresh layer with PyTorch's default
            initialisation, float64, seeded by ``seed``), or an existing unidirectional
            rnnkit layer (its weights are used as they are).
        T: number of steps (ignored when ``x`` is given).
        hidden_size, input_size: sizes of a fresh layer (input_size defaults to hidden_size).
        batch_size: number of random sequences (ignored when ``x`` is given).
        seed: seeds the layer, the random inputs ``x ~ N(0, 1)`` and ``g``.
        x: optional inputs (T, N, input_size), time-major.

    Returns:
        float64 array (T + 1,).

    >>> n = gradient_norms_through_time("rnn", T=20, hidden_size=16)
    >>> n.shape, float(n[0]), bool(n[20] < 1e-3)
    ((21,), 1.0, True)
    """
    who = "gradient_norms_through_time"
    from .nn.rnn import RNNBase, recurrent_layer
    rng = np.random.default_rng(seed)
    if isinstance(cell, RNNBase):
        rnn = cell
        if rnn.bidirectional:
            raise ConfigError(f"{who}: expected a unidirectional layer, got a bidirectional one. "
                              f"The state 'k steps back' is only defined for one direction.")
    elif isinstance(cell, str) and cell.lower() in ("rnn", "rnn_tanh", "rnn_relu", "lstm", "gru"):
        H = check_int(who, "hidden_size", hidden_size, 1)
        D = H if input_size is None else check_int(who, "input_size", input_size, 1)
        rnn = recurrent_layer(cell, D, H, dtype=np.float64, seed=seed)
    else:
        raise ConfigError(f"{who}: expected cell 'rnn', 'lstm', 'gru' or an rnnkit recurrent layer, "
                          f"got {cell!r}.")
    H, L = rnn.hidden_size, rnn.num_layers
    if x is None:
        T = check_int(who, "T", T, 1)
        B = check_int(who, "batch_size", batch_size, 1)
        x = rng.standard_normal((T, B, rnn.input_size))
    else:
        x = as_float_array(who, "x", x, rnn.dtype)
        if x.ndim != 3 or x.shape[2] != rnn.input_size or 0 in x.shape:
            raise ShapeError(f"{who}: expected x of shape (T, N, input_size={rnn.input_size}), "
                             f"got shape {x.shape}.")
        T, B = x.shape[:2]
    x = np.asarray(x, dtype=rnn.dtype)
    if rnn.batch_first:
        raise ConfigError(f"{who}: expected a time-major layer (batch_first=False), got "
                          f"batch_first=True.")
    lstm = rnn.cell.has_cell_state
    was_training = rnn.training
    saved_grads = {k: v.copy() for k, v in rnn.gradients().items()}
    rnn.eval()
    try:
        # 1. the states s_0 .. s_T of every layer, one step at a time
        hs = np.zeros((T + 1, L, B, H), rnn.dtype)
        cs = np.zeros_like(hs) if lstm else None
        state = None
        with no_grad():
            for t in range(T):
                _, state = rnn(x[t:t + 1], state)
                if lstm:
                    hs[t + 1], cs[t + 1] = state
                else:
                    hs[t + 1] = state
        # 2. one batch of T runs: run j (k = j + 1 steps) reads x[T-k:] from state s_{T-k}
        ks = np.arange(1, T + 1)                                                 # (T,)
        X = np.zeros((T, T * B, rnn.input_size), rnn.dtype)                     # right-padded
        for j, k in enumerate(ks):
            X[:k, j * B:(j + 1) * B] = x[T - k:]
        starts = np.repeat(T - ks, B)                                            # (T*B,)
        cols = np.tile(np.arange(B), T)                                          # (T*B,)
        h0 = hs[starts, :, cols].transpose(1, 0, 2)                              # (L, T*B, H)
        s0 = (h0, cs[starts, :, cols].transpose(1, 0, 2)) if lstm else h0
        g = rng.standard_normal((B, H))
        g /= np.linalg.norm(g, axis=1, keepdims=True)                            # unit rows
        dh_n = np.zeros((L, T * B, H), rnn.dtype)
        dh_n[-1] = np.tile(g, (T, 1))                 # the loss reads the top layer's h_T
        with enable_grad():
            rnn(X, s0, np.repeat(ks, B))
            _, ds0 = rnn.backward(None, (dh_n, None) if lstm else dh_n)
    finally:
        rnn.train(was_training)
        for k, v in rnn.gradients().items():    # leave the caller's gradients as they were
            v[...] = saved_grads[k]
    parts = ds0 if lstm else (ds0,)
    sq = sum((np.asarray(p, np.float64) ** 2).sum(axis=(0, 2)) for p in parts)  # (T*B,)
    norms = np.sqrt(sq).reshape(T, B).mean(axis=1)                               # (T,) k=1..T
    return np.concatenate([[1.0], norms])


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
    """Write ``fig`` as a PNG file (parent directories are created); return ``str(path)``."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"save_figure: expected a path ending in .png, got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return str(path)


_VISIBLE = {"\n": "\u21b5", " ": "\u2423", "\t": "\u21e5", "\r": "\u240d"}


def char_labels(text) -> list:
    """One printable label per character: newline as '↵', space as '␣', tab as '⇥'.

    ``text`` may also be a list of strings (one per step, e.g. ``["<eos>", "e", "m"]``);
    ``"<eos>"`` becomes '↵'.
    """
    if isinstance(text, str):
        return [_VISIBLE.get(c, c) if c.isprintable() or c in _VISIBLE else "\u00bf" for c in text]
    if isinstance(text, (list, tuple)):
        out = []
        for s in text:
            s = str(s)
            out.append("\u21b5" if s == "<eos>" else (_VISIBLE.get(s, s) if len(s) == 1 else s))
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
                            f"{sorted(gates)}. Pass names=[...] to choose arrays to draw.")
    missing = [n for n in names if n not in gates]
    if missing:
        raise DataError(f"{who}: expected gates to contain {missing}, got keys {sorted(gates)}.")
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

def _sample_tokens(model, vocab, n, seed):
    """Sample up to ``n`` token ids from a char LM (lines mode: several lines)."""
    rng = np.random.default_rng(seed)
    V = model.config.vocab_size
    B = vocab.bos_id
    tok = np.array([[B if B is not None else int(rng.integers(V))]], dtype=np.int64)
    out = [int(tok[0, 0])]
    state = None
    with no_grad():
        while len(out) < n:
            logits, state = model(tok, state)
            z = np.asarray(logits[-1, 0], np.float64)
            p = np.exp(z - z.max())
            nxt = int(rng.choice(V, p=p / p.sum()))
            out.append(nxt)
            tok = np.array([[nxt]], dtype=np.int64)
    return np.array(out, dtype=np.int64)


def _text_tokens(vocab, text):
    """Token ids of ``text``; in lines mode each line is wrapped in the boundary token."""
    B = vocab.bos_id
    if B is None:
        return vocab.encode(text)
    ids = [B]
    for line in text.split("\n"):
        ids.extend(vocab.encode(line).tolist())
        ids.append(B)
    return np.array(ids, dtype=np.int64)


def plot_checkpoint(directory, out_dir=None, text: str | None = None, *, max_chars: int = 80,
                    k: int = 8, seed: int = 0) -> list:
    """Draw the pictures of a training run; return the list of PNG paths written.

    * ``loss.png``  - :func:`plot_losses` of ``DIR/metrics.jsonl`` (when it has losses);
    * ``gates.png`` - :func:`plot_gates` of the top recurrent layer (LSTM and GRU models);
    * ``units.png`` - :func:`plot_top_units` of the top layer's hidden states.

    The last two need a char LM (``CharLM``) with its vocabulary and run it over ``text``
    (in lines mode each line is wrapped in the boundary token, drawn '↵'); without ``text``
    the model's own sample of ``max_chars`` characters (seeded by ``seed``) is used.
    ``out_dir`` defaults to ``directory``.
    """
    who = "plot_checkpoint"
    from .checkpoint import has_checkpoint, load_checkpoint, read_metrics
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
    if ck.config.get("model") != "CharLM" or ck.vocab is None:
        return paths
    from .data import Vocab
    from .nn import model_from_config
    model = model_from_config(ck.config)
    model.load_state_dict(ck.model_state)
    model.eval()
    vocab = Vocab.from_json(ck.vocab)
    if text is None:
        ids = _sample_tokens(model, vocab, max_chars, seed)
    else:
        if not isinstance(text, str) or not text:
            raise DataError(f"{who}: expected text as a non-empty str, got {text!r:.40}.")
        ids = _text_tokens(vocab, text)[:max_chars]
    labels = [vocab.itos[i] for i in ids.tolist()]
    acts = gate_activations(model, ids)
    name = ck.config.get("cell", "").upper()
    if any(n in acts for n in SIGMOID_GATES):
        paths.append(plot_gates(labels, acts, out / "gates.png",
                                title=f"{name} gate activations (top layer) over {len(labels)} characters"))
    paths.append(plot_top_units(labels, acts["hidden"], out / "units.png", k=k))
    return paths
