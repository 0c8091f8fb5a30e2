"""Fused multi-layer, optionally bidirectional RNN / LSTM / GRU layers with exact backward.

Same constructor, names, shapes, gate order and numbers as ``torch.nn.RNN/LSTM/GRU``::

    >>> import numpy as np, rnnkit.nn as nn
    >>> lstm = nn.LSTM(input_size=8, hidden_size=16, num_layers=2, seed=0)
    >>> x = np.random.randn(5, 3, 8).astype(np.float32)      # (T, N, input_size)
    >>> out, (h, c) = lstm(x)                                   # out (5, 3, 16); h, c (2, 3, 16)
    >>> dx, (dh0, dc0) = lstm.backward(np.ones_like(out))       # parameter grads accumulate
    >>> sorted(lstm.gradients())[:2]
    ['bias_hh_l0', 'bias_hh_l1']

Layout: ``x`` is (T, N, input_size), or (N, T, input_size) with ``batch_first=True``; states are
(num_layers * num_directions, N, hidden_size) and row ``layer * num_directions + direction``.
``out`` is (T, N, num_directions * hidden_size) (batch-first likewise). Unbatched input, as
PyTorch: ``x`` (T, input_size) (whatever ``batch_first`` says) with states
(num_layers * num_directions, hidden_size), ``out`` (T, num_directions * hidden_size), and
``backward`` takes and returns gradients of those shapes.

``learn_initial_state=True`` (beyond PyTorch's arguments, which has no such option) adds the
parameters ``h0`` (and ``c0`` for LSTM) of shape (num_layers * num_directions, hidden_size),
zeros at first: a call without a state starts every sequence from them, and backward gives
them the gradient summed over the batch, so they train with the rest. A given state is used
as it is (the parameters get no gradient from that call).

``lengths`` (N,) ints in [1, T] describe right-padded sequences: outputs past a sequence's
end are 0, the final state is the state at its last step (for the reverse direction: after
reading its first element), and padding gets no gradient - the numbers of PyTorch's packed
sequences.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._mode import enable_grad, init_enabled, is_grad_enabled
from .._validate import (
    as_float_array,
    check_choice,
    check_dtype_arg,
    check_float,
    check_int,
    check_shape,
    make_rng,
    to_numpy,
)
from ..cells import CellSpec, cell_spec, layer_norm_spec, map_state, param_suffix
from ..errors import ConfigError, DTypeError, NoForwardError, ShapeError
from ..sequence import (
    pipeline_applies,
    pipeline_forward,
    prepare,
    step_buffers,
    step_forward,
    unroll_backward,
    unroll_forward,
)
from ..sequence_dropout import unroll_backward_rdrop, unroll_forward_rdrop
from .module import Module
from .regularise import INITS, dropout_mask, orthogonal_recurrent, parameter_init, set_forget_bias

#: Largest total parameter size a recurrent layer or a model config may describe (4 GiB);
#: checked from the sizes alone, before anything is allocated.
MAX_PARAM_BYTES = 4 * 1024 ** 3
#: The most layers one recurrent stack (a layer's ``num_layers``, a config's) may have.
MAX_LAYERS = 64


def rnn_num_parameters(cell, input_size: int, hidden_size: int, num_layers: int = 1,
                       bidirectional: bool = False, bias: bool = True) -> int:
    """The number of weights and biases of :func:`rnn_parameter_shapes` without a projection
    or learned initial states, by formula (no dict is built, so any sizes are cheap to ask
    about). A projection only lowers the count; learned initial states add ``L x D x H`` per
    state, which the size bound neglects."""
    G, H, D = cell_spec(cell).num_gates, int(hidden_size), 2 if bidirectional else 1
    per_dir = lambda in_size: G * H * (in_size + H) + (2 * G * H if bias else 0)   # noqa: E731
    return D * per_dir(int(input_size)) + (int(num_layers) - 1) * D * per_dir(H * D)


def check_layer_size(who, cell, input_size, hidden_size, num_layers, bidirectional, bias, dtype) -> None:
    """Refuse a stack of more than :data:`MAX_LAYERS` layers or more than
    :data:`MAX_PARAM_BYTES` of parameters (:class:`ConfigError`), before anything is
    allocated."""
    if num_layers > MAX_LAYERS:
        raise ConfigError(f"{who}: expected num_layers <= {MAX_LAYERS}, got {num_layers:,}.")
    n = rnn_num_parameters(cell, input_size, hidden_size, num_layers, bidirectional, bias)
    check_param_bytes(who, n, np.dtype(dtype).itemsize, "input_size, hidden_size, num_layers")


def check_param_bytes(who, n: int, itemsize: int, sizes: str) -> None:
    """Refuse ``n`` parameters of ``itemsize`` bytes over :data:`MAX_PARAM_BYTES`, naming the
    ``sizes`` to lower."""
    nbytes = n * itemsize
    if nbytes > MAX_PARAM_BYTES:
        raise ConfigError(f"{who}: the sizes describe {n:,} parameters ({nbytes / 1024 ** 3:.1f} "
                          f"GiB), more than the {MAX_PARAM_BYTES / 1024 ** 3:.0f} GiB rnnkit "
                          f"allows. Use smaller sizes ({sizes}).")


def rnn_parameter_shapes(cell, input_size: int, hidden_size: int, num_layers: int = 1,
                         bidirectional: bool = False, bias: bool = True,
                         learn_initial_state: bool = False, proj_size: int = 0) -> dict:
    """PyTorch's parameter names and shapes of a recurrent stack, computed without allocating;
    with ``learn_initial_state`` also ``h0`` (and ``c0`` for a cell state) of shape
    (num_layers * num_directions, hidden_size); an LSTM's ``proj_size`` P > 0 makes the states
    and the outputs P wide and adds ``weight_hr_l{k}`` (P, hidden_size).

    >>> rnn_parameter_shapes("gru", 3, 5)["weight_ih_l0"]
    (15, 3)
    """
    spec = cell_spec(cell)
    D = 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else (proj_size or hidden_size) * D
        for d in range(D):
            sfx = param_suffix(layer, d)
            shapes.update(spec.parameter_shapes(in_size, hidden_size, bias, sfx, proj_size))
    if learn_initial_state:
        shapes["h0"] = (num_layers * D, proj_size or hidden_size)
        if spec.cell_state:
            shapes["c0"] = (num_layers * D, hidden_size)
    return shapes


def _reverse_index(lengths: np.ndarray | None, T: int, N: int):
    """Index (T, N) mapping time t of the reversed sequence to the original time.

    Without lengths it is T-1-t; with lengths each sequence is reversed within its own length
    and padding stays in place, so the reversed batch is still right-padded. It is its own
    inverse.
    """
    t = np.arange(T)[:, None]
    if lengths is None:
        return np.broadcast_to(T - 1 - t, (T, N))
    L = lengths[None, :]
    return np.where(t < L, L - 1 - t, t)


def _gather_time(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """a[idx[t, n], n, :] for a (T, N, K)."""
    return a[idx, np.arange(a.shape[1])[None, :]]


class _Weights(NamedTuple):
    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None
    suffix: str
    W_hr: np.ndarray | None = None       # an LSTM's projection (proj_size)


class RNNBase(Module):
    """Shared implementation of :class:`RNN`, :class:`LSTM` and :class:`GRU`.

    ``mode`` is any cell name or PyTorch mode known to :func:`rnnkit.cells.cell_spec`; the
    layer's ``spec`` attribute tells everything else (gates, state shape, ONNX and torch names).

    Regularisers (keyword-only; PyTorch has none of them, so the names are rnnkit's, Keras's
    where it has one; all act in training mode only, draw from the layer's generator, and are
    off in ``eval()``):

    * ``input_dropout`` p: variational (locked) dropout on the input of every layer (the
      stack's input, and each layer's output entering the layer above): one (N, width) mask
      per sequence, the same at every time step (Gal & Ghahramani 2016).
    * ``output_dropout`` p: the same on the top layer's output.
    * ``recurrent_dropout`` p: Keras's meaning: one (N, H) mask per sequence and direction on
      ``h_{t-1}`` where it enters the recurrent product ``W_hh h`` (the carried state, and
      GRU's ``z * h``, are not dropped).
    * ``weight_drop`` p: DropConnect on every ``weight_hh`` (one mask of its shape per forward
      call, i.e. per batch; AWD-LSTM, Merity et al. 2018).

    PyTorch's ``dropout`` (a fresh mask per element, between layers) stays as it is and
    composes with these. The masks of the last training forward are in ``last_masks`` (name ->
    array: ``input_l{k}``, ``weight_hh_l{k}[_reverse]``, ``recurrent_l{k}[_reverse]``,
    ``output``). Initialisations: ``init="orthogonal"`` makes every gate block of each
    ``weight_hh`` orthogonal (the rest keeps PyTorch's uniform init, the default
    ``init="uniform"``); ``forget_bias=B`` sets the forget gate's bias (LSTM's forget gate,
    GRU's update gate) to B in ``bias_ih`` and 0 in ``bias_hh`` (Jozefowicz et al. 2015).
    ``recurrent_dropout`` and ``weight_drop`` are refused with ``proj_size``.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float32, seed: int | None = None,
                 learn_initial_state: bool = False, proj_size: int = 0, *, input_dropout: float = 0.0,
                 output_dropout: float = 0.0, recurrent_dropout: float = 0.0, weight_drop: float = 0.0,
                 init: str = "uniform", forget_bias: float | None = None, layer_norm: bool = False):
        super().__init__()
        who = type(self).__name__
        self.spec: CellSpec = cell_spec(mode)
        if layer_norm or self.spec.layer_norm:
            try:
                self.spec = layer_norm_spec(self.spec)
            except ConfigError as e:
                raise ConfigError(f"{who}: {e}") from None
        #: True for the layer-normalised cells (:class:`rnnkit.cells.LayerNormLSTMCell`, ...).
        self.layer_norm = self.spec.layer_norm
        self.mode = self.spec.torch_mode
        self.input_size = check_int(who, "input_size", input_size, 1)
        self.hidden_size = check_int(who, "hidden_size", hidden_size, 1)
        self.num_layers = check_int(who, "num_layers", num_layers, 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_float(who, "dropout", dropout, 0.0, 1.0, max_inclusive=False)
        if self.dropout > 0 and self.num_layers == 1:
            import warnings
            warnings.warn(f"{who}: dropout={self.dropout:g} has no effect with num_layers=1: dropout "
                          f"acts between stacked layers, on every layer's output but the last (as "
                          f"in PyTorch, which warns the same). Use num_layers > 1, or dropout 0.",
                          UserWarning, stacklevel=3)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype_arg(who, dtype)
        self.num_directions = 2 if self.bidirectional else 1
        self.learn_initial_state = bool(learn_initial_state)
        self.proj_size = check_int(who, "proj_size", proj_size, 0)
        if self.proj_size and not self.spec.projectable:
            raise ConfigError(f"{who}: expected proj_size=0, got proj_size={self.proj_size}: only "
                              f"an LSTM has a projection (LSTMP).")
        if self.proj_size >= self.hidden_size:
            raise ConfigError(f"{who}: expected proj_size < hidden_size={self.hidden_size}, got "
                              f"proj_size={self.proj_size} (PyTorch's rule). Use proj_size=0 for "
                              f"no projection.")
        #: The width of h and of the outputs (proj_size with a projection, else hidden_size).
        self.state_size = self.proj_size or self.hidden_size
        check_layer_size(who, self.spec.name, self.input_size, self.hidden_size, self.num_layers,
                         self.bidirectional, self.bias, self.dtype)
        self.cell = self.spec.new_cell()
        self.rng = make_rng(who, seed)
        for name, shape in rnn_parameter_shapes(self.spec, self.input_size, self.hidden_size,
                                                self.num_layers, self.bidirectional,
                                                self.bias, self.learn_initial_state,
                                                self.proj_size).items():
            self._add_param(name, shape, self.dtype, parameter_init(name, self.rng, self.hidden_size))
        self._set_regularisers(who, input_dropout, output_dropout, recurrent_dropout, weight_drop,
                               init, forget_bias)
        self._cache = None
        self._unbatched = False
        self._learned_used = False
        self.last_masks: dict = {}

    def _set_regularisers(self, who, input_dropout, output_dropout, recurrent_dropout,
                          weight_drop, init, forget_bias):
        """Check the regularisers and apply the initialisation (see :class:`RNNBase`)."""
        for name, v in (("input_dropout", input_dropout), ("output_dropout", output_dropout),
                        ("recurrent_dropout", recurrent_dropout), ("weight_drop", weight_drop)):
            setattr(self, name, check_float(who, name, v, 0.0, 1.0, max_inclusive=False))
        if self.proj_size and (self.recurrent_dropout or self.weight_drop):
            raise ConfigError(f"{who}: expected recurrent_dropout=0 and weight_drop=0 with "
                              f"proj_size={self.proj_size}: the projected loop has neither. Drop "
                              f"one of them.")
        self.init = check_choice(who, "init", init, INITS)
        self.forget_bias = None if forget_bias is None else check_float(who, "forget_bias", forget_bias)
        if self.forget_bias is not None and not self.bias:
            raise ConfigError(f"{who}: expected bias=True with forget_bias={self.forget_bias:g} "
                              f"(it sets the forget gate's bias). Drop forget_bias, or use bias=True.")
        if not init_enabled():                   # saved weights follow
            if self.forget_bias is not None and not self.spec.forget_gate:
                set_forget_bias(self.spec, None, None, self.forget_bias, who)    # its refusal
            return
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                w = self._weights(layer, d)
                if self.init == "orthogonal":
                    orthogonal_recurrent(w.W_hh, self.spec.num_gates, self.rng)
                if self.forget_bias is not None:
                    set_forget_bias(self.spec, w.b_ih, w.b_hh, self.forget_bias, who)

    @property
    def regularised(self) -> bool:
        """True when a forward pass in training mode draws masks beyond PyTorch's ``dropout``
        (then it runs the regularised path, chosen once per call)."""
        return bool(self.input_dropout or self.output_dropout or self.recurrent_dropout
                    or self.weight_drop)

    # -- helpers ---------------------------------------------------------------------------
    def _weights(self, layer, d) -> _Weights:
        sfx = param_suffix(layer, d)
        p = self._params
        return _Weights(p["weight_ih" + sfx], p["weight_hh" + sfx],
                        p.get("bias_ih" + sfx), p.get("bias_hh" + sfx), sfx, p.get("weight_hr" + sfx))

    def _prepared(self, layer, d, W_hh=None):
        """The direction's :class:`~rnnkit.sequence.Prepared` weights (with ``W_hh`` instead
        of its own: weight dropping)."""
        w = self._weights(layer, d)
        extra = None
        if self.layer_norm:
            extra = {k: self._params[k + w.suffix] for k in self.cell.extra_parameter_shapes(1)}
        return prepare(self.cell, w.W_ih, w.W_hh if W_hh is None else W_hh, w.b_ih, w.b_hh, w.W_hr,
                       extra)

    def state_shape(self, batch_size: int) -> tuple:
        """Shape of h: (num_layers * num_directions, N, hidden_size), or proj_size wide for
        an LSTM with a projection (its c stays hidden_size wide: :meth:`cell_state_shape`)."""
        return (self.num_layers * self.num_directions, batch_size, self.state_size)

    def cell_state_shape(self, batch_size: int) -> tuple:
        """Shape of an LSTM's c: (num_layers * num_directions, N, hidden_size)."""
        return (self.num_layers * self.num_directions, batch_size, self.hidden_size)

    def initial_state(self, batch_size: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The state a sequence starts from when none is given, of :meth:`state_shape` (the
        tuple ``(h, c)`` for LSTM): zeros, or with ``learn_initial_state`` the parameters
        ``h0`` (``c0``) repeated for every sequence (fresh arrays)."""
        shape = self.state_shape(batch_size)
        if self.learn_initial_state:
            names = ("h0", "c0") if self.spec.cell_state else ("h0",)
            parts = [np.repeat(self._params[n][:, None, :], batch_size, axis=1) for n in names]
            return tuple(parts) if self.spec.cell_state else parts[0]
        h = np.zeros(shape, self.dtype)
        return (h, np.zeros(self.cell_state_shape(batch_size), self.dtype)) if self.spec.cell_state else h

    def _state_or_zeros(self, who, state, N):
        """``(h0, c0)`` from a user's state (checked), or zeros for ``None``; c0 is None
        without a cell state."""
        if state is None:
            z = self.initial_state(N)
            return z if self.spec.cell_state else (z, None)
        spec = (("num_layers*num_directions", self.num_layers * self.num_directions), ("N", N),
                ("proj_size" if self.proj_size else "hidden_size", self.state_size))
        c_spec = spec[:2] + (("hidden_size", self.hidden_size),)
        if self.spec.cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ShapeError(f"{who}: expected state as a tuple (h0, c0) for LSTM, got "
                                 f"{type(state).__name__}. Pass state=(h0, c0) or None for zeros.")
            h0 = as_float_array(who, "h0", state[0], self.dtype)
            c0 = as_float_array(who, "c0", state[1], self.dtype)
            check_shape(who, "h0", h0, spec)
            check_shape(who, "c0", c0, c_spec)
            return h0, c0
        if isinstance(state, (tuple, list)):
            raise ShapeError(f"{who}: expected state as one array h0 for {self.spec.layer}, "
                             f"got a {type(state).__name__}. Only LSTM takes (h0, c0).")
        h0 = as_float_array(who, "h0", state, self.dtype)
        check_shape(who, "h0", h0, spec)
        return h0, None

    def _check_lengths(self, who, lengths, T, N):
        if lengths is None:
            return None
        arr = to_numpy(who, "lengths", lengths)
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise DTypeError(f"{who}: expected lengths as integers (one per sequence), got dtype "
                             f"{arr.dtype}. Pass e.g. np.array([5, 3, 2]).")
        if arr.ndim != 1 or arr.shape[0] != N:
            raise ShapeError(f"{who}: expected lengths of shape (N={N},), got shape {arr.shape}.")
        if arr.min() < 1 or arr.max() > T:
            raise ShapeError(f"{who}: expected every length in [1, T={T}], got min {arr.min()} and "
                             f"max {arr.max()}. Remove empty sequences and pad x to the longest one.")
        arr = arr.astype(np.int64)
        if np.all(arr == T):
            return None
        return arr

    # -- forward ---------------------------------------------------------------------------
    def _unbatched_state(self, who, name, state):
        """A state for unbatched input ((L*D, H) arrays, or an LSTM tuple of them, or None) with
        a batch axis of 1 added, so the batched code runs it."""
        if state is None:
            return None
        parts = state if isinstance(state, (tuple, list)) else (state,)
        out = []
        for k, a in zip(("h", "c"), parts):
            if a is None:
                out.append(None)
                continue
            a = as_float_array(who, f"{name} ({k})", a, self.dtype)
            if a.ndim != 2:
                raise ShapeError(f"{who}: expected {name} ({k}) of shape (num_layers*num_directions="
                                 f"{self.num_layers * self.num_directions}, hidden_size="
                                 f"{self.hidden_size}) (2-D) for unbatched input, got shape "
                                 f"{a.shape} ({a.ndim}-D). Give the input a batch axis too, or "
                                 f"drop the state's.")
            out.append(a[:, None, :])
        return tuple(out) if isinstance(state, (tuple, list)) else out[0]

    def forward(self, x: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None, lengths: ArrayLike | None = None
                ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        """``out, state_n = layer(x, state=None, lengths=None)``; see the module docstring."""
        who = type(self).__name__
        x = as_float_array(who, "x", x, self.dtype)
        if x.ndim == 2:                 # unbatched (T, input_size): PyTorch's semantics
            check_shape(who, "x", x, (("T", None), ("input_size", self.input_size)))
            if lengths is not None:
                raise ShapeError(f"{who}: expected lengths=None for unbatched input (one sequence "
                                 f"of shape (T, input_size)), got lengths. Cut the sequence to its "
                                 f"length, or pass a batch (T, N, input_size).")
            out, state_n = self._forward(who, x[:, None, :], self._unbatched_state(who, "state", state),
                                         None)
            self._unbatched = True
            return out[:, 0], map_state(lambda a: a[:, 0], state_n)
        names = ("N", "T") if self.batch_first else ("T", "N")
        if x.ndim != 3:
            raise ShapeError(f"{who}: expected x of shape ({names[0]}, {names[1]}, input_size="
                             f"{self.input_size}) (3-D), or unbatched (T, input_size), got shape "
                             f"{x.shape} ({x.ndim}-D).")
        check_shape(who, "x", x, ((names[0], None), (names[1], None), ("input_size", self.input_size)))
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        out, state_n = self._forward(who, x, state, lengths)
        self._unbatched = False
        if self.batch_first:
            out = out.transpose(1, 0, 2)
        return out, state_n

    def _forward(self, who, x, state, lengths):
        """The forward pass over time-major ``x`` (T, N, input_size)."""
        T, N, _ = x.shape
        h0, c0 = self._state_or_zeros(who, state, N)
        lengths = self._check_lengths(who, lengths, T, N)
        keep = is_grad_enabled()
        self._learned_used = keep and state is None and self.learn_initial_state
        mask = None
        if lengths is not None:
            mask = (np.arange(T)[:, None] < lengths[None, :]).astype(self.dtype)[:, :, None]
        H = self.state_size
        D = self.num_directions
        reg = self.training and self.regularised    # the regularised path, chosen once per call
        masks = {}                                  # its masks by name (see last_masks)
        if (not keep and D == 1 and mask is None and not (self.training and self.dropout > 0)
                and not reg and not self.proj_size and pipeline_applies(self.cell, x, self.num_layers)):
            out, h_n, c_n = pipeline_forward(self.cell, x, h0, c0,
                                             [self._prepared(k, 0) for k in range(self.num_layers)])
            self._cache = None
            return out, ((h_n, c_n) if c_n is not None else h_n)
        h_n = np.empty(self.state_shape(N), self.dtype)
        c_n = np.empty(self.cell_state_shape(N), self.dtype) if c0 is not None else None
        caches = []
        drop_masks = []
        inp = x
        for layer in range(self.num_layers):
            outs = []
            layer_caches = []
            if reg and self.input_dropout:              # one mask per sequence, every step
                m = masks[f"input_l{layer}"] = dropout_mask(self.rng, (N, inp.shape[2]),
                                                            self.input_dropout, self.dtype)
                inp = inp * m
            for d in range(D):
                row = layer * D + d
                sfx = param_suffix(layer, d)
                if d == 1:
                    idx = _reverse_index(lengths, T, N)
                    xin = _gather_time(inp, idx) if lengths is not None else inp[::-1]
                else:
                    idx, xin = None, inp
                h0_, c0_ = h0[row], c0[row] if c0 is not None else None
                if not reg:
                    Hs, hT, cT, cache = unroll_forward(self.cell, xin, h0_, c0_,
                                                       self._prepared(layer, d), mask,
                                                       keep_cache=keep)
                else:
                    Hs, hT, cT, cache = self._forward_regularised(xin, h0_, c0_, layer, d, sfx,
                                                                  mask, keep, masks)
                h_n[row] = hT
                if c_n is not None:
                    c_n[row] = cT
                o = Hs[1:]                                                 # (T, N, H)
                if mask is not None:
                    o = o * mask
                if d == 1:
                    o = _gather_time(o, idx) if lengths is not None else o[::-1]
                outs.append(o)
                layer_caches.append((cache, idx))
            if D == 1:
                out = outs[0]
            else:
                out = np.empty((T, N, D * H), self.dtype)
                out[:, :, :H] = outs[0]
                out[:, :, H:] = outs[1]
            caches.append(layer_caches)
            if layer < self.num_layers - 1 and self.training and self.dropout > 0:
                keep_p = 1.0 - self.dropout
                dm = (self.rng.random(out.shape) < keep_p).astype(self.dtype) / self.dtype.type(keep_p)
                out = out * dm
                drop_masks.append(dm)
            else:
                drop_masks.append(None)
                if reg and self.output_dropout and layer == self.num_layers - 1:
                    m = masks["output"] = dropout_mask(self.rng, (N, D * H), self.output_dropout,
                                                       self.dtype)
                    out = out * m
            inp = out
        if reg:
            self.last_masks = masks
        if keep:
            self._cache = (caches, drop_masks, mask, T, N, masks)
        else:
            self._cache = None
        if out.base is not None and out.flags.writeable:
            out = out.view()
            out.flags.writeable = False      # a view of the backward cache: protect it
        state_n = (h_n, c_n) if c_n is not None else h_n
        return out, state_n

    def _forward_regularised(self, xin, h0, c0, layer, d, sfx, mask, keep, masks):
        """One direction's unroll on the regularised path: ``W_hh`` dropped (one mask per
        call) and the recurrent state dropped (one mask per sequence), as configured."""
        N = xin.shape[1]
        W_hh = None
        if self.weight_drop:
            m = masks["weight_hh" + sfx] = dropout_mask(
                self.rng, self._params["weight_hh" + sfx].shape, self.weight_drop, self.dtype)
            W_hh = self._params["weight_hh" + sfx] * m
        w = self._prepared(layer, d, W_hh)
        if not self.recurrent_dropout:
            return unroll_forward(self.cell, xin, h0, c0, w, mask, keep_cache=keep)
        m = masks["recurrent" + sfx] = dropout_mask(self.rng, (N, self.state_size),
                                                    self.recurrent_dropout, self.dtype)
        Hs, hT, cT, cache = unroll_forward_rdrop(self.cell, xin, h0, c0, w, m, mask)
        return Hs, hT, cT, (cache if keep else None)

    def trace(self, x: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None, lengths: ArrayLike | None = None
              ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray], list]:
        """Forward pass that also returns every activation: ``out, state_n, acts``.

        ``acts[layer][direction]`` is a dict of float arrays (T, N, H) ((T, H) for unbatched
        input) in the input's time
        order: the activated gates by :attr:`CellSpec.gate_names` (LSTM ``input``, ``forget``,
        ``candidate``, ``output``; GRU ``reset``, ``update``, ``candidate``; RNN ``hidden``),
        ``"hidden"`` (h_t) and, for LSTM, ``"cell"`` (c_t). Nothing is kept for backward.
        Steps past a sequence's length hold the frozen state (outputs are 0 there).
        """
        with enable_grad():
            out, state_n = self.forward(x, state, lengths)
        caches = self._cache[0]
        self._cache = None
        H = self.hidden_size
        acts = []
        for layer_caches in caches:
            per_dir = []
            for cache, idx in layer_caches:
                a = {name: cache.G[:, :, j * H:(j + 1) * H]
                     for j, name in enumerate(self.spec.gate_names)}
                a["hidden"] = cache.Hs[1:]
                if cache.Cs is not None:
                    a["cell"] = cache.Cs[1:]
                if idx is not None:                 # the reverse direction: back to input order
                    a = {k: _gather_time(v, idx) for k, v in a.items()}
                per_dir.append({k: np.array(v[:, 0] if self._unbatched else v) for k, v in a.items()})
            acts.append(per_dir)
        return out, state_n, acts

    # -- one step (generation) ------------------------------------------------------------
    def stepper(self) -> LayerStepper:
        """A :class:`LayerStepper` over the current weights (prepared once)."""
        if self.bidirectional:
            raise ConfigError(f"{type(self).__name__}.stepper: expected a unidirectional layer, got "
                              f"bidirectional=True. A bidirectional layer needs the whole sequence; "
                              f"call the layer on it instead.")
        return LayerStepper(self)

    def step(self, x_t: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        """One time step for inference: ``h_top, state = layer.step(x_t, state)``.

        ``x_t`` (N, input_size), ``state`` as in :meth:`forward` ((num_layers, N, H) arrays,
        a tuple (h, c) for LSTM, or None for zeros). Returns the top layer's new hidden state
        (N, hidden_size) and the new state (fresh arrays; the given ones are not modified).
        Unidirectional layers only; no dropout, no cache. It checks its inputs and prepares
        the weights on every call; a loop over many steps should take one :meth:`stepper`
        (the same computation, prepared once)::

            >>> lstm = LSTM(65, 256, num_layers=2, seed=0)
            >>> h, st = lstm.step(np.zeros((1, 65), np.float32))            # h (1, 256)
            >>> h, st = lstm.step(np.ones((1, 65), np.float32), st)
        """
        stepper = self.stepper()
        who = f"{type(self).__name__}.step"
        x_t = as_float_array(who, "x_t", x_t, self.dtype)
        check_shape(who, "x_t", x_t, (("N", None), ("input_size", self.input_size)))
        h0, c0 = self._state_or_zeros(who, state, x_t.shape[0])
        return stepper.step(x_t, (h0, c0) if c0 is not None else h0)

    # -- backward --------------------------------------------------------------------------
    def backward(self, dout: ArrayLike | None = None, dstate_n: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        """Gradients of the last forward call. Returns ``(dx, dstate_0)``.

        ``dout`` has the shape of ``out`` (None = zeros); ``dstate_n`` the shape of
        ``state_n`` (None, an array, or for LSTM a tuple whose entries may be None). The
        cache is consumed: call forward again before another backward. Parameter gradients
        are added to :meth:`gradients`.
        """
        who = f"{type(self).__name__}.backward"
        if self._cache is None:
            raise NoForwardError(f"{who}: no forward pass to differentiate. Call the layer first "
                               f"(outside rnnkit.no_grad()), then backward once.")
        T, N = self._cache[3:5]
        H = self.state_size
        D = self.num_directions
        if self._unbatched:
            if dout is not None:
                dout = as_float_array(who, "dout", dout, self.dtype)
                check_shape(who, "dout", dout, (("T", T), ("num_directions*hidden_size", D * H)))
                dout = dout[:, None, :]
            dx, dstate0 = self._backward(who, dout, self._unbatched_state(who, "dstate_n", dstate_n))
            return dx[:, 0], map_state(lambda a: a[:, 0], dstate0)
        return self._backward(who, dout, dstate_n)

    def _backward(self, who, dout, dstate_n):
        """:meth:`backward` for batched (or batched-up) gradients."""
        caches, drop_masks, mask, T, N, masks = self._cache
        self._cache = None
        H = self.state_size
        D = self.num_directions
        if dout is not None:
            dout = as_float_array(who, "dout", dout, self.dtype)
            if self.batch_first and not self._unbatched:
                check_shape(who, "dout", dout, (("N", N), ("T", T), ("num_directions*hidden_size", D * H)))
                dout = dout.transpose(1, 0, 2)
            else:
                check_shape(who, "dout", dout, (("T", T), ("N", N), ("num_directions*hidden_size", D * H)))
        dh_n, dc_n = None, None
        if dstate_n is not None:
            spec = (("num_layers*num_directions", self.num_layers * D), ("N", N),
                    ("proj_size" if self.proj_size else "hidden_size", H))
            c_spec = spec[:2] + (("hidden_size", self.hidden_size),)
            if self.spec.cell_state:
                if not isinstance(dstate_n, (tuple, list)) or len(dstate_n) != 2:
                    raise ShapeError(f"{who}: expected dstate_n as a tuple (dh_n, dc_n) for LSTM.")
                dh_n, dc_n = dstate_n
            else:
                dh_n = dstate_n
            if dh_n is not None:
                dh_n = as_float_array(who, "dh_n", dh_n, self.dtype)
                check_shape(who, "dh_n", dh_n, spec)
            if dc_n is not None:
                dc_n = as_float_array(who, "dc_n", dc_n, self.dtype)
                check_shape(who, "dc_n", dc_n, c_spec)
        dh0 = np.zeros(self.state_shape(N), self.dtype)
        dc0 = np.zeros(self.cell_state_shape(N), self.dtype) if self.spec.cell_state else None
        d_layer_out = dout
        for layer in range(self.num_layers - 1, -1, -1):
            if drop_masks[layer] is not None and d_layer_out is not None:
                d_layer_out = d_layer_out * drop_masks[layer]
            if layer == self.num_layers - 1 and "output" in masks and d_layer_out is not None:
                d_layer_out = d_layer_out * masks["output"]
            dx_layer = None
            for d in range(D):
                cache, idx = caches[layer][d]
                W_ih, W_hh, _, _, sfx, W_hr = self._weights(layer, d)
                row = layer * D + d
                do = None
                if d_layer_out is not None:
                    do = d_layer_out[:, :, d * H:(d + 1) * H] if D > 1 else d_layer_out
                    if d == 1:
                        do = _gather_time(do, idx) if mask is not None else do[::-1]
                dhT = dh_n[row] if dh_n is not None else None
                dcT = dc_n[row] if dc_n is not None else None
                wd = masks.get("weight_hh" + sfx)
                if wd is not None:
                    W_hh = W_hh * wd                   # the weights this forward used
                if "recurrent" + sfx in masks:
                    dx, dh, dc, grads = unroll_backward_rdrop(
                        self.cell, cache, do, dhT, dcT, W_ih, W_hh, masks["recurrent" + sfx],
                        has_bias=self.bias)
                else:
                    dx, dh, dc, grads = unroll_backward(self.cell, cache, do, dhT, dcT, W_ih,
                                                        W_hh, has_bias=self.bias, W_hr=W_hr)
                if wd is not None:
                    grads["weight_hh"] *= wd
                dh0[row] = dh
                if dc0 is not None:
                    dc0[row] = dc
                for k, g in grads.items():
                    self._grads[k + sfx] += g
                if d == 1:
                    dx = _gather_time(dx, idx) if mask is not None else dx[::-1]
                dx_layer = dx if dx_layer is None else dx_layer + dx
            d_layer_out = dx_layer
            if "input" + f"_l{layer}" in masks:
                d_layer_out = d_layer_out * masks[f"input_l{layer}"]
        if self._learned_used:                   # the learned h0 (c0) served every sequence
            self._grads["h0"] += dh0.sum(axis=1)
            if dc0 is not None:
                self._grads["c0"] += dc0.sum(axis=1)
        dx = d_layer_out
        if self.batch_first and not self._unbatched:
            dx = dx.transpose(1, 0, 2)
        return dx, ((dh0, dc0) if dc0 is not None else dh0)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.learn_initial_state:
            s += ", learn_initial_state=True"
        if not self.bias:
            s += ", bias=False"
        return s + f", dtype={self.dtype.name}"

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"



class LayerStepper:
    """Single-step inference over a unidirectional layer, weights prepared once.

    The one inference path of rnnkit: the sampler, beam search, ``rnnkit sample`` and the
    benchmarks all step through this (via :meth:`rnnkit.nn.CharLM.stepper` for a model).
    Each step runs :func:`rnnkit.sequence.step_forward` per layer - the same
    :class:`~rnnkit.sequence.Prepared` weights and cell step as the whole-sequence unroll.
    Inputs are trusted (checked where they enter, e.g. :meth:`RNNBase.step`); the weights are
    a snapshot: take a new stepper after they change.
    """

    def __init__(self, layer: RNNBase):
        self.layer = layer
        self.cell = layer.cell
        self.prepared = [layer._prepared(k, 0) for k in range(layer.num_layers)]
        self._buffers = {}

    def buffers(self, N: int):
        buf = self._buffers.get(N)
        if buf is None:
            H = self.layer.hidden_size
            buf = step_buffers(self.cell, N, H, self.cell_width, self.layer.dtype)
            self._buffers = {N: buf}
        return buf

    @property
    def cell_width(self) -> int:
        return self.prepared[0].W_rows.shape[0]

    def project(self, layer: int, x):
        """Input projection ``x W_ih^T + b_x`` (N, G*H) of ``layer`` for inputs ``x`` (N, in)."""
        return self.prepared[layer].project(x)

    def step(self, x_t, state, table=None):
        """``h_top, new_state`` for inputs ``x_t`` (N, input_size); with ``table`` (rows of
        layer 0's input projection, e.g. one per token id) ``x_t`` are row indices (N,)."""
        h0, c0 = state if self.layer.spec.cell_state else (state, None)
        N = h0.shape[1]
        buf = self.buffers(N)
        g = buf.g
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if c0 is not None else None
        m = np.empty_like(c0[0]) if self.layer.proj_size else None       # (N, H) before W_hr
        inp = x_t
        for k, w in enumerate(self.prepared):
            if k == 0 and table is not None:
                np.take(table, x_t, axis=0, out=g)                         # (N, G*H)
            else:
                w.project(inp, out=g)
            step_forward(self.cell, w, buf, h0[k], c0[k] if c0 is not None else None,
                         h_n[k] if m is None else m, c_n[k] if c_n is not None else None)
            if m is not None:                                              # h = m W_hr^T (N, P)
                np.matmul(m, w.W_hrT, out=h_n[k])
            inp = h_n[k]
        return h_n[-1], ((h_n, c_n) if c_n is not None else h_n)

class RNN(RNNBase):
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh or relu.

    Same arguments as ``torch.nn.RNN`` plus ``dtype``, ``seed``, ``learn_initial_state`` and
    the regularisers and initialisations of :class:`RNNBase` (keyword ``options``). See the
    module docstring for shapes, ``lengths`` and the backward contract.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float32, seed: int | None = None,
                 learn_initial_state: bool = False, **options: object):
        check_choice("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, seed,
                         learn_initial_state, **options)


class LSTM(RNNBase):
    """LSTM (gate rows i, f, g, o, as PyTorch). State is the tuple ``(h, c)``.

    ``i, f, o = s(W_i* x + b_i* + W_h* h + b_h*)``, ``g = tanh(...)``,
    ``c' = f * c + i * g``, ``h' = o * tanh(c')``.

    Same arguments as ``torch.nn.LSTM`` plus ``dtype``, ``seed`` and the keyword ``options`` of
    :class:`RNNBase` (regularisers, initialisation); time-major ``(T, N, D)`` unless
    ``batch_first``:

    >>> import numpy as np
    >>> from rnnkit import nn
    >>> lstm = nn.LSTM(input_size=3, hidden_size=5, num_layers=2, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((7, 4, 3)).astype(np.float32)
    >>> out, (h, c) = lstm(x)
    >>> out.shape, h.shape, c.shape
    ((7, 4, 5), (2, 4, 5), (2, 4, 5))
    >>> bool(np.array_equal(out[-1], h[-1]))      # the top layer's last output is its state
    True

    :meth:`backward` returns the gradients of the inputs and initial states and adds the
    weights' to :meth:`gradients` (PyTorch's names):

    >>> dx, (dh0, dc0) = lstm.backward(np.ones_like(out))
    >>> dx.shape, dh0.shape, lstm.gradients()["weight_hh_l1"].shape
    ((7, 4, 3), (2, 4, 5), (20, 5))

    Padded batches take ``lengths``; :meth:`stepper` runs one step at a time (generation) with
    the same numbers; :meth:`trace` returns every gate:

    >>> out2, _ = lstm(x, lengths=np.array([7, 5, 2, 7]))
    >>> bool(np.all(out2[5:, 1] == 0))                 # past its length, a sequence outputs 0
    True
    >>> step, state = lstm.stepper(), (np.zeros((2, 4, 5), np.float32),) * 2
    >>> for t in range(7):
    ...     top, state = step.step(x[t], state)
    >>> bool(np.allclose(top, out[-1], atol=1e-6))
    True
    >>> sorted(lstm.trace(x)[2][0][0])                 # layer 0, forward direction
    ['candidate', 'cell', 'forget', 'hidden', 'input', 'output']
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float32, seed: int | None = None,
                 learn_initial_state: bool = False, proj_size: int = 0, **options: object):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, seed, learn_initial_state, proj_size, **options)


class GRU(RNNBase):
    """GRU (gate rows r, z, n, as PyTorch).

    ``r, z = s(W_i* x + b_i* + W_h* h + b_h*)``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    Keyword ``options``: the regularisers and initialisations of :class:`RNNBase`.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float32, seed: int | None = None,
                 learn_initial_state: bool = False, **options: object):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, seed, learn_initial_state, **options)


def recurrent_layer(cell: str, *args: object, **kwargs: object) -> RNNBase:
    """Build a layer from a cell name ('lstm', 'gru', 'rnn', 'rnn_relu', any alias or PyTorch
    mode): the :class:`RNN`/:class:`LSTM`/:class:`GRU` named by its :class:`CellSpec`."""
    spec = cell_spec(cell)
    return globals()[spec.layer](*args, **spec.layer_kwargs, **kwargs)
