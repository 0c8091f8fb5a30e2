"""Trainable single-step cells: ``RNNCell``, ``LSTMCell``, ``GRUCell`` (``torch.nn``'s), and
the layer-normalised ``LayerNormLSTMCell`` and ``LayerNormGRUCell``.

Same constructor, parameter names (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``),
shapes, gate order and numbers as ``torch.nn.RNNCell/LSTMCell/GRUCell``; one call is one time
step, for loops written by hand (decoders that feed their output back, attention, custom
models)::

    >>> import numpy as np, rnnkit.nn as nn
    >>> cell = nn.LSTMCell(4, 4, dtype=np.float64, seed=0)
    >>> x, state = np.ones((2, 4)), None                     # (N, input_size); None = zeros
    >>> outs = []
    >>> for t in range(3):
    ...     h, c = state = cell(x, state)                    # h, c (N, hidden_size)
    ...     outs.append(h)
    ...     x = h                                            # the output is the next input
    >>> dxs, (dh0, dc0) = cell.backward([np.ones_like(h) for h in outs])

Shapes: ``x`` (N, input_size) or, unbatched, (input_size,); the state ``h`` (or ``(h, c)``)
is (N, hidden_size), or (hidden_size,) for an unbatched ``x``; None means zeros. The returned
state arrays are read-only (the tape holds them for backward).

**The tape.** Outside :func:`rnnkit.no_grad`, every call records its step on the cell's tape
(the cache of a one-step :func:`rnnkit.sequence.unroll_forward`: the gate math is the
registry's cell, the same as the layers'). Two ways back, both exact:

* ``dx, dstate = cell.backward_step(dstate_out)`` pops the **last** recorded step: given the
  gradient on the state that step returned (``dh``, or ``(dh, dc)`` for LSTM, entries may be
  None), it adds the parameter gradients to ``gradients()`` and returns the gradient on
  that step's ``x`` and on the state it was given. Call it once per step, latest step first;
  the caller routes the gradients (e.g. a decoder with attention adds ``dstate`` to the
  gradient of the previous step's output and sends ``dx`` into its own layers).
* ``dxs, dstate_0 = cell.backward(douts=None, dstate=None)`` runs ``backward_step``
  over the whole tape for the plain loop in which each step was given the state the step
  before returned (the same objects): ``douts`` holds one gradient per recorded step on the
  state that step returned (an array on ``h``, or for LSTM a tuple ``(dh, dc)``; None
  entries, or ``douts=None``, are zeros), ``dstate`` an extra gradient on the last state.
  Where a step's ``x`` *is* the ``h`` the step before returned (the output fed back as the
  next input), the gradient on that ``x`` is added to the step before's ``dh`` too.
  ``dxs`` stacks the gradient on every step's ``x`` ((T, N, input_size), or (T, input_size)
  unbatched); ``dstate_0`` is the gradient on the first step's given state.

``zero_grad()`` and ``clear_tape()`` drop the tape; under :func:`rnnkit.no_grad` nothing
is recorded. Backward uses the current weights: change them (an optimizer step) only after the
tape is consumed, as with PyTorch's autograd. While one chain of steps is being recorded (each
step given the state the step before returned) the weights are laid out for the time loop once.

**Layer normalisation** (Ba et al. 2016): :class:`LayerNormLSTMCell` and
:class:`LayerNormGRUCell` (or ``LSTMCell(..., layer_norm=True)``, the keyword of
``nn.LSTM``/``nn.GRU``; ``recurrent_cell('lstm_ln')``) step the registry's
:class:`rnnkit.cells.LayerNormLSTMCell` / :class:`rnnkit.cells.LayerNormGRUCell`, the gate
math of the layers with ``layer_norm=True``: the same equations, parameters
(``ln_weight_ih``, ``ln_weight_hh`` and, for LSTM, ``ln_weight_c``, ``ln_bias_c``; gains start
at 1, shifts at 0) and exact backward. PyTorch has no such cell, so ``to_torch`` refuses them.

**Variational dropout in a hand-written loop**: :class:`rnnkit.nn.LockedDropout` draws one
mask per sequence (``m = drop.new_mask((N, H))``) that the loop applies at every step, e.g. to
the ``h`` entering the next step, with the gradient multiplied by the same ``m`` on the way
back (``backward_step``); see its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._mode import is_grad_enabled
from .._validate import as_float_array, check_choice, check_dtype_arg, check_int, make_rng
from ..cells import CellSpec, cell_spec, layer_norm_spec, state_arrays, state_from_arrays
from ..errors import ConfigError, NoForwardError, ShapeError
from ..sequence import Prepared, UnrollCache, prepare, unroll_backward, unroll_forward
from .module import Module
from .regularise import parameter_init


class _Record(NamedTuple):
    """One recorded step of a cell's tape."""

    cache: UnrollCache               # the one-step unroll's cache (x, gates, states)
    unbatched: bool
    x_in: object                     # the x object the caller passed (for the feedback check)
    state_in: tuple                  # the state objects the caller passed, () for None
    out: tuple                       # the state objects returned: (h,) or (h, c)


def _read_only(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class RNNCellBase(Module):
    """Shared implementation of :class:`RNNCell`, :class:`LSTMCell` and :class:`GRUCell`
    (see the module docstring). ``mode`` is any cell name or PyTorch mode known to
    :func:`rnnkit.cells.cell_spec` (a layer-normalised one, ``'lstm_ln'``, or ``layer_norm=True``:
    the layer-normalised variant of ``mode``)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None, layer_norm: bool = False):
        super().__init__()
        who = type(self).__name__
        self.spec: CellSpec = cell_spec(mode)
        if layer_norm:
            try:
                self.spec = layer_norm_spec(self.spec)
            except ConfigError as e:
                raise ConfigError(f"{who}: {e}") from None
        #: True for the layer-normalised cells (extra parameters ``ln_*``).
        self.layer_norm = self.spec.layer_norm
        self.input_size = check_int(who, "input_size", input_size, 1)
        self.hidden_size = check_int(who, "hidden_size", hidden_size, 1)
        self.bias = bool(bias)
        self.dtype = check_dtype_arg(who, dtype)
        self.cell = self.spec.new_cell()
        self.rng = make_rng(who, seed)
        for name, shape in self.spec.parameter_shapes(self.input_size, self.hidden_size,
                                                      self.bias).items():
            self._add_param(name, shape, self.dtype, parameter_init(name, self.rng, self.hidden_size))
        self._tape: list[_Record] = []
        self._chain_weights: Prepared | None = None    # prepared for the tape's current chain

    # -- the tape ------------------------------------------------------------------------
    @property
    def recorded_steps(self) -> int:
        """Number of steps on the tape (recorded and not yet consumed by backward)."""
        return len(self._tape)

    def clear_tape(self) -> None:
        """Forget every recorded step (their gradients will not be computed)."""
        self._tape.clear()
        self._chain_weights = None

    def zero_grad(self) -> None:
        """Zero the parameter gradients and clear the tape."""
        super().zero_grad()
        self.clear_tape()

    # -- forward -------------------------------------------------------------------------
    def _given_state(self, who, state, N, unbatched):
        """``(h0, c0)`` (N, H) arrays from the caller's state, or zeros for None."""
        H = self.hidden_size
        want = (H,) if unbatched else (N, H)
        kind = "unbatched " if unbatched else ""
        if state is None:
            z = np.zeros((N, H), self.dtype)
            return z, (np.zeros_like(z) if self.spec.cell_state else None)
        if self.spec.cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ShapeError(f"{who}: expected the state as a tuple (h, c), got "
                                 f"{type(state).__name__}. Pass (h, c), or None for zeros.")
            arrays = [as_float_array(who, n, s, self.dtype) for n, s in zip(("h", "c"), state)]
        else:
            if isinstance(state, (tuple, list)):
                raise ShapeError(f"{who}: expected the state as one array h, got a "
                                 f"{type(state).__name__}. Only LSTMCell takes (h, c).")
            arrays = [as_float_array(who, "h", state, self.dtype)]
        for name, a in zip(("h", "c"), arrays):
            if a.shape != want:
                raise ShapeError(f"{who}: expected {name} of shape {want} for {kind}input "
                                 f"of shape {(N, self.input_size)[unbatched:]}, got shape "
                                 f"{a.shape}. The state has the input's batch axis (or none "
                                 f"for an unbatched input) and hidden_size={H}.")
        arrays = [a.reshape(N, H) for a in arrays]
        return arrays[0], (arrays[1] if len(arrays) > 1 else None)

    def _continues_tape(self, state) -> bool:
        """True when ``state`` is (object for object) the state the last recorded step returned."""
        if not self._tape or state is None:
            return False
        given = state_arrays(tuple(state) if isinstance(state, list) else state)
        out = self._tape[-1].out
        return len(given) == len(out) and all(a is b for a, b in zip(given, out))

    def _prepared(self, record: bool, chained: bool) -> Prepared:
        if record and chained and self._chain_weights is not None:
            return self._chain_weights
        p = self._params
        extra = ({k: p[k] for k in self.cell.extra_parameter_shapes(1)} if self.layer_norm
                 else None)
        w = prepare(self.cell, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"),
                    extra=extra)
        self._chain_weights = w if record else None
        return w

    def forward(self, x: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
            ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """One step: ``h = cell(x, h)`` or, for LSTM, ``h, c = cell(x, (h, c))`` (see the
        module docstring for shapes and the tape)."""
        who = type(self).__name__
        x_in = x
        x = as_float_array(who, "input", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size or 0 in x.shape:
            raise ShapeError(f"{who}: expected input of shape (N, input_size={self.input_size}) "
                             f"or, unbatched, ({self.input_size},), got shape {x.shape}.")
        unbatched = x.ndim == 1
        N = 1 if unbatched else x.shape[0]
        h0, c0 = self._given_state(who, state, N, unbatched)
        record = is_grad_enabled()
        chained = record and self._continues_tape(state)
        w = self._prepared(record, chained)
        # the tape keeps its own copy of x (the caller may reuse its buffer)
        xs = np.array(x.reshape(1, N, self.input_size), copy=True) if record else x.reshape(1, N, -1)
        Hs, h, c, cache = unroll_forward(self.cell, xs, h0, c0, w, keep_cache=record)
        out = tuple(a[0] if unbatched else a for a in ((h,) if c is None else (h, c)))
        if record:
            out = tuple(_read_only(a) for a in out)
            given = () if state is None else state_arrays(
                tuple(state) if isinstance(state, list) else state)
            self._tape.append(_Record(cache, unbatched, x_in, tuple(given), out))
        return state_from_arrays(out)

    # -- backward ------------------------------------------------------------------------
    def _state_grad(self, who, name, dstate, rec: _Record, h_alone=False):
        """``(dh, dc)`` (N, H) arrays or None from a gradient on a recorded step's state
        (``h_alone``: an LSTM's gradient may also be one array, on h)."""
        H = self.hidden_size
        N = rec.cache.x.shape[1]
        if self.spec.cell_state:
            if dstate is None:
                parts = (None, None)
            elif isinstance(dstate, (tuple, list)) and len(dstate) == 2:
                parts = tuple(dstate)
            elif h_alone and not isinstance(dstate, (tuple, list)):
                parts = (dstate, None)
            else:
                raise ShapeError(f"{who}: expected {name} as a tuple (dh, dc) for LSTMCell "
                                 f"(entries may be None), got {type(dstate).__name__}.")
        else:
            if isinstance(dstate, (tuple, list)):
                raise ShapeError(f"{who}: expected {name} as one array dh, got a "
                                 f"{type(dstate).__name__}. Only LSTMCell's state is (h, c).")
            parts = (dstate,)
        want = (H,) if rec.unbatched else (N, H)
        out = []
        for part, g in zip(("dh", "dc"), parts):
            if g is not None:
                g = as_float_array(who, f"{name} ({part})", g, self.dtype)
                if g.shape != want:
                    raise ShapeError(f"{who}: expected {name} ({part}) of shape {want}, the shape "
                                     f"of the state that step returned, got shape {g.shape}.")
                g = g.reshape(N, H)
            out.append(g)
        return out[0], (out[1] if len(out) > 1 else None)

    def _step_back(self, rec: _Record, dh, dc):
        """Backward of one recorded step (popped): returns (dx (N, D), dh0, dc0)."""
        p = self._params
        dx, dh0, dc0, grads = unroll_backward(self.cell, rec.cache, None, dh, dc,
                                              p["weight_ih"], p["weight_hh"], has_bias=self.bias)
        for k, g in grads.items():
            self._grads[k] += g
        return dx[0], dh0, dc0

    def _pack(self, rec, dx, dh0, dc0):
        if rec.unbatched:
            dx, dh0 = dx[0], dh0[0]
            dc0 = dc0[0] if dc0 is not None else None
        return dx, (dh0 if dc0 is None else (dh0, dc0))

    def _no_tape(self, who):
        return NoForwardError(f"{who}: no recorded step to differentiate. Call the cell first "
                              f"(outside rnnkit.no_grad()); each recorded step is consumed once.")

    def backward_step(self, dstate: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None
            ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        """Backward of the last recorded step; see the module docstring.

        ``dstate``: gradient on the state that step returned (``dh``, or ``(dh, dc)`` for
        LSTM with entries possibly None; None = zeros). Returns ``(dx, dstate_in)``: the
        gradient on that step's ``x`` and on the state it was given (zeros included), with
        the shapes they had. Parameter gradients are added to :meth:`gradients`.
        """
        who = f"{type(self).__name__}.backward_step"
        if not self._tape:
            raise self._no_tape(who)
        dh, dc = self._state_grad(who, "dstate", dstate, self._tape[-1])
        rec = self._tape.pop()
        if not self._tape:
            self._chain_weights = None
        return self._pack(rec, *self._step_back(rec, dh, dc))

    def backward(self, douts: Sequence[np.ndarray | None] | np.ndarray | None = None,
                 dstate: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        """Backward of the whole tape, for a loop that fed each step's state to the next;
        see the module docstring. Returns ``(dxs, dstate_0)``."""
        who = f"{type(self).__name__}.backward"
        tape = self._tape
        if not tape:
            raise self._no_tape(who)
        T = len(tape)
        for t in range(1, T):
            given, prev = tape[t].state_in, tape[t - 1].out
            if len(given) != len(prev) or not all(a is b for a, b in zip(given, prev)):
                raise NoForwardError(f"{who}: expected a loop in which every step is given the "
                                     f"state the step before returned, but recorded step {t} of "
                                     f"{T} was given another state. Route the gradients yourself "
                                     f"with backward_step(), or clear_tape() before each loop.")
        if douts is not None:
            if isinstance(douts, np.ndarray):
                douts = list(douts)
            if not isinstance(douts, (list, tuple)) or len(douts) != T:
                got = f"{len(douts)}" if isinstance(douts, (list, tuple)) else type(douts).__name__
                raise ShapeError(f"{who}: expected douts with one gradient per recorded step "
                                 f"({T}), got {got}. Pass a list (entries may be None), or None.")
        grads = [self._state_grad(who, f"douts[{t}]", None if douts is None else douts[t], tape[t],
                                  h_alone=True) for t in range(T)]
        carry = self._state_grad(who, "dstate", dstate, tape[-1])
        fed_back = [t > 0 and tape[t].x_in is tape[t - 1].out[0] for t in range(T)]
        dxs = [None] * T
        for t in range(T - 1, -1, -1):
            dh, dc = (_add(a, b) for a, b in zip(carry, grads[t]))
            if t + 1 < T and fed_back[t + 1]:                  # the output was the next input
                dh = _add(dh, dxs[t + 1])
            rec = tape.pop()
            dxs[t], dh0, dc0 = self._step_back(rec, dh, dc)
            carry = (dh0, dc0)
        self._chain_weights = None
        _, dstate0 = self._pack(rec, dxs[0], *carry)
        dx_all = np.stack(dxs)
        return (dx_all[:, 0] if rec.unbatched else dx_all), dstate0

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.layer_norm and not type(self).__name__.startswith("LayerNorm"):
            s += ", layer_norm=True"
        nl = self.spec.layer_kwargs.get("nonlinearity")
        if nl and nl != "tanh":
            s += f", nonlinearity={nl!r}"
        return s + f", dtype={self.dtype.name}"

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class RNNCell(RNNCellBase):
    """Elman cell: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act = tanh or relu.

    Same arguments as ``torch.nn.RNNCell`` plus ``dtype`` and ``seed`` (``layer_norm=True`` is
    refused: there is no layer-normalised RNN cell); see the module docstring for shapes and
    the tape (``backward_step`` / ``backward``).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None, *, layer_norm: bool = False):
        check_choice("RNNCell", "nonlinearity", nonlinearity, ("tanh", "relu"))
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, bias, dtype, seed, layer_norm)


class LSTMCell(RNNCellBase):
    """LSTM cell (gate rows i, f, g, o, as PyTorch): ``h', c' = cell(x, (h, c))``.

    Same arguments as ``torch.nn.LSTMCell`` plus ``dtype``, ``seed`` and ``layer_norm``
    (keyword; True: the layer-normalised cell, as :class:`LayerNormLSTMCell`); see the module
    docstring for shapes and the tape (``backward_step`` / ``backward``).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None, *, layer_norm: bool = False):
        super().__init__("LSTM", input_size, hidden_size, bias, dtype, seed, layer_norm)


class GRUCell(RNNCellBase):
    """GRU cell (gate rows r, z, n, as PyTorch): ``h' = cell(x, h)``.

    Same arguments as ``torch.nn.GRUCell`` plus ``dtype``, ``seed`` and ``layer_norm``
    (keyword; True: the layer-normalised cell, as :class:`LayerNormGRUCell`); see the module
    docstring for shapes and the tape (``backward_step`` / ``backward``).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None, *, layer_norm: bool = False):
        super().__init__("GRU", input_size, hidden_size, bias, dtype, seed, layer_norm)


class LayerNormLSTMCell(LSTMCell):
    """Layer-normalised LSTM cell (Ba et al. 2016) for hand-written loops:
    ``h', c' = cell(x, (h, c))``, the single step of ``nn.LSTM(..., layer_norm=True)``.

    The equations of :class:`rnnkit.cells.LayerNormLSTMCell` (one definition, shared with the
    layers): LN of ``x W_ih^T`` and of ``h W_hh^T`` (over the 4H pre-activations, each times its
    gain ``ln_weight_ih`` / ``ln_weight_hh``) plus ``b_ih + b_hh`` give the gates i, f, g, o;
    ``c' = f c + i g``; ``h' = o tanh(LN(c') ln_weight_c + ln_bias_c)``. Arguments as
    :class:`LSTMCell`; the tape and backward as every cell (module docstring).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None):
        super().__init__(input_size, hidden_size, bias, dtype, seed, layer_norm=True)


class LayerNormGRUCell(GRUCell):
    """Layer-normalised GRU cell for hand-written loops: ``h' = cell(x, h)``, the single step
    of ``nn.GRU(..., layer_norm=True)``.

    The equations of :class:`rnnkit.cells.LayerNormGRUCell` (shared with the layers):
    ``a_x = LN(x W_ih^T) ln_weight_ih + b_ih``, ``a_h = LN(h W_hh^T) ln_weight_hh + b_hh``;
    ``r, z = sigmoid(a_x + a_h)`` on their rows; ``n = tanh(a_x[n] + r a_h[n])``;
    ``h' = (1 - z) n + z h``. Arguments as :class:`GRUCell`.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None):
        super().__init__(input_size, hidden_size, bias, dtype, seed, layer_norm=True)


def recurrent_cell(cell: str, *args: object, **kwargs: object) -> RNNCellBase:
    """Build a trainable cell from a cell name ('lstm', 'gru', 'rnn', 'rnn_relu', 'lstm_ln',
    'gru_ln', any alias or PyTorch mode): the :class:`RNNCell`/:class:`LSTMCell`/
    :class:`GRUCell` its :class:`~rnnkit.cells.CellSpec` names (``cell_layer``), or for a
    layer-normalised kind :class:`LayerNormLSTMCell`/:class:`LayerNormGRUCell`."""
    spec = cell_spec(cell)
    if spec.layer_norm:
        return globals()["LayerNorm" + spec.cell_layer](*args, **kwargs)
    return globals()[spec.cell_layer](*args, **spec.layer_kwargs, **kwargs)
