"""Export recurrent layers and char-level language models to ONNX (native RNN/LSTM/GRU ops).

This module lives at the edge of rnnkit: the core never imports it, and it needs the optional
``onnx`` package (``pip install 'rnnkit[onnx]'``). The runtime side is
:mod:`rnnkit.interop.onnx_runtime`. Nothing here imports torch: inputs are duck-typed, so rnnkit layers and
``torch.nn.RNN`` / ``LSTM`` / ``GRU`` modules both work.

What is exported
----------------
* :func:`export_layer` - a recurrent stack (any object with ``mode``, ``input_size``,
  ``hidden_size``, ``num_layers``, ``bidirectional``, ``bias``, ``batch_first`` and a
  ``state_dict()`` with PyTorch names ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
  ``bias_hh_l{k}`` and the ``_reverse`` suffix).

  ========  ===========================================  ==================================
  name      shape                                        notes
  ========  ===========================================  ==================================
  input     (seq_len, batch, input_size)                 (batch, seq_len, input_size) if
                                                         ``batch_first``
  h0        (num_layers * num_directions, batch, H)      only with ``initial_state=True``
  c0        (num_layers * num_directions, batch, H)      LSTM, only with ``initial_state``
  output    (seq_len, batch, num_directions * H)         batch-major if ``batch_first``
  h_n, c_n  (num_layers * num_directions, batch, H)      ``c_n`` for LSTM only
  ========  ===========================================  ==================================

  With ``sequence_lens=True`` one more input, ``sequence_lens`` (batch,) int32, gives the
  length of each sequence of a right-padded batch (rnnkit's ``lengths``): outputs past it are
  0, the final states are those at each sequence's end (the reverse direction reads each
  sequence from its own last element), as in rnnkit and PyTorch's packed sequences.

* :func:`export_charlm` / :func:`export_model` - a char-level language model
  ``tokens (T, N) int64 -> [embedding or one-hot] -> recurrent stack -> linear head ->
  logits (T, N, V)``, with inputs ``tokens``, ``h0`` (``c0``) and outputs ``logits``,
  ``h_n`` (``c_n``).
* :func:`export` - dispatches on the object (a layer, or a model with ``.config``).
* running an exported char LM with ONNX Runtime, step by step, is
  :class:`rnnkit.interop.onnx_runtime.OnnxCharLM` (a module of its own: it needs only
  ``onnxruntime``).

``seq_len`` and ``batch`` are dynamic axes (``dim_param``), so one session serves every
sequence length and batch size.

Graph
-----
Each layer of the stack is ONE native ONNX node (opset 17 by default, 14 at least) with
``direction="forward"`` or ``"bidirectional"``. Weights are reordered from PyTorch's fused gate
blocks to ONNX's::

    LSTM  PyTorch rows (i, f, g, o)  ->  ONNX W/R/B rows (i, o, f, c)
    GRU   PyTorch rows (r, z, n)     ->  ONNX rows (z, r, h), linear_before_reset=1
    RNN   one block; activations Tanh or Relu

``linear_before_reset=1`` is exactly PyTorch's ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
ONNX's ``B`` is ``[Wb; Rb]``, shape (num_directions, 2*G*H); with ``bias=False`` it is omitted
(ONNX then uses zeros). The node output ``Y`` is (T, num_directions, N, H): a unidirectional
layer Squeezes axis 1; a bidirectional one Transposes to (T, N, 2, H) and Reshapes to
(T, N, 2H), which is PyTorch's [forward | backward] concatenation. Layer ``k`` reads rows
``[k*dirs, (k+1)*dirs)`` of ``h0``/``c0`` (a Slice); ``h_n``/``c_n`` are the Concat of the
nodes' ``Y_h``/``Y_c`` along axis 0.

Initial states (the choice made here)
-------------------------------------
ONNX Runtime cannot leave out a graph input unless it has an initializer, and an initializer
fixes the shape (no dynamic batch). So the state inputs are either *required* or *absent*:

* ``initial_state=True`` (default): ``h0`` (and ``c0``) are required inputs. Feed zeros for a
  fresh start; feed the previous ``h_n``/``c_n`` to continue - this is what a step-by-step
  sampler needs (see :class:`rnnkit.interop.onnx_runtime.OnnxCharLM`).
* ``initial_state=False``: no state inputs; each node's optional ``initial_h``/``initial_c`` is
  left empty, which ONNX defines as zeros (for any batch size).

Dtype
-----
float32 by default (weights are cast). ``dtype=np.float64`` builds a valid double-precision
model (it passes ``onnx.checker``), but ONNX Runtime's CPU provider (checked with 1.32) has no
double kernel for RNN, LSTM or GRU, so such a model does not run there.

Example
-------
>>> import torch                                              # doctest: +SKIP
>>> from rnnkit.interop.onnx import export_layer               # doctest: +SKIP
>>> lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True)  # doctest: +SKIP
>>> model = export_layer(lstm, "lstm.onnx")                    # doctest: +SKIP
>>> import onnxruntime as ort                                  # doctest: +SKIP
>>> sess = ort.InferenceSession("lstm.onnx")                   # doctest: +SKIP
>>> y, h_n, c_n = sess.run(None, {"input": x, "h0": h0, "c0": c0})  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as _e:  # pragma: no cover - exercised by a test that hides onnx
    raise ImportError(
        "rnnkit.interop.onnx: expected the optional 'onnx' package, but it is not installed. "
        "Install it with: pip install 'rnnkit[onnx]'") from _e

from .._validate import check_bool, check_dtype_arg, check_int, short_list, to_numpy
from ..cells import CellSpec, cell_spec
from ..errors import ConfigError, DTypeError, ParameterKeyError, ShapeError

__all__ = [
    "DEFAULT_OPSET",
    "ExportOptions",
    "export_layer",
    "export_charlm",
    "export_model",
    "export",
]

#: The ONNX opset an export targets unless ``opset=`` says otherwise.
DEFAULT_OPSET = 17
MIN_OPSET = 14

_ONNX_FLOAT = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _cell(who: str, cell) -> CellSpec:
    try:
        spec = cell_spec(cell)
    except ConfigError as e:
        raise ConfigError(f"{who}: {e}") from None
    if spec.layer_norm:
        raise ConfigError(f"{who}: expected a cell with a standard ONNX operator (lstm, gru, rnn, "
                          f"rnn_relu), got the layer-normalised {spec.name!r}: ONNX's LSTM and "
                          f"GRU operators have no normalisation inside the recurrence, and rnnkit "
                          f"does not export it as a Loop graph. Sample it with rnnkit itself "
                          f"(`rnnkit sample`), or train a model without --layer-norm to export.")
    return spec


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How a model is written (the keyword arguments of every exporter here).

    ``dtype``: ``np.float32`` (default) or ``np.float64`` (valid ONNX, but ONNX Runtime's CPU
    provider has no double RNN/LSTM/GRU kernels). ``initial_state``: ``True`` -> required
    inputs ``h0`` (``c0``) of shape (L*dirs, N, H); ``False`` -> no state inputs, the stack
    starts from zeros. ``sequence_lens``: ``True`` -> a required input ``sequence_lens`` int32
    (N,), the length of each sequence of a right-padded batch (rnnkit's ``lengths``), given to
    every native node; ``False`` (default) -> every sequence is seq_len long. ``opset`` (>= 14,
    default 17). ``check``: run
    ``onnx.checker.check_model(model, full_check=True)``. ``metadata``: extra
    ``metadata_props`` (str -> str), merged over the automatic ones. ``doc_string``: the
    model's doc string (a description is written otherwise).
    """

    dtype: Any = np.float32
    initial_state: bool = True
    sequence_lens: bool = False
    opset: int = DEFAULT_OPSET
    check: bool = True
    metadata: Mapping[str, str] | None = None
    doc_string: str | None = None

    @classmethod
    def parse(cls, who: str, options: dict) -> ExportOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"{who}: unknown option(s) {unknown}; expected some of {sorted(names)}.")
        o = cls(**options)
        return dataclasses.replace(
            o, dtype=check_dtype_arg(who, o.dtype),
            initial_state=check_bool(who, "initial_state", o.initial_state),
            sequence_lens=check_bool(who, "sequence_lens", o.sequence_lens),
            opset=check_int(who, "opset", o.opset, minimum=MIN_OPSET),
            check=check_bool(who, "check", o.check))


def _float_param(who: str, params: Mapping[str, np.ndarray], key: str, shape: tuple,
                 dtype: np.dtype) -> np.ndarray:
    """Fetch ``params[key]`` as a float array of ``dtype`` and check its shape."""
    if key not in params:
        raise ParameterKeyError(f"{who}: expected parameter {key!r} in the state dict, but it is "
                                f"missing (have: {', '.join(sorted(params)) or 'nothing'}). Pass "
                                f"the full state_dict() of the module/model.")
    arr = to_numpy(who, key, params[key])
    if arr.dtype.kind not in "fiu":
        raise DTypeError(f"{who}: expected parameter {key!r} with a real float dtype, got dtype "
                         f"{arr.dtype}. Convert it to float32 or float64.")
    if tuple(arr.shape) != tuple(shape):
        raise ShapeError(f"{who}: expected parameter {key!r} of shape {tuple(shape)}, got shape "
                         f"{tuple(arr.shape)}. Check the configuration (sizes, cell kind) matches "
                         f"the weights.")
    if arr.size and not np.isfinite(arr).all():
        raise ConfigError(f"{who}: parameter {key!r} contains NaN or infinity; expected finite "
                          f"weights. Export a healthy checkpoint.")
    return np.ascontiguousarray(arr, dtype=dtype)


def _reorder_gates(mat: np.ndarray, cell: CellSpec, hidden_size: int) -> np.ndarray:
    """Reorder the fused gate blocks along axis 0 from PyTorch's order to ONNX's."""
    H = hidden_size
    return np.concatenate([mat[g * H:(g + 1) * H] for g in cell.onnx_gate_order], axis=0)


def _state_dict(who: str, obj) -> dict:
    if not hasattr(obj, "state_dict") or not callable(obj.state_dict):
        raise ConfigError(f"{who}: expected an object with a state_dict() method, got "
                          f"{type(obj).__name__}.")
    sd = obj.state_dict()
    if not isinstance(sd, Mapping):
        raise ConfigError(f"{who}: expected state_dict() to return a mapping of name -> array, got "
                          f"{type(sd).__name__}.")
    return dict(sd)


class _GraphBuilder:
    """Collects nodes and initializers with unique names."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.elem_type = _ONNX_FLOAT[dtype]
        self.nodes: list = []
        self.initializers: list = []
        self._names: set = set()
        self._counter = 0

    def fresh(self, base: str) -> str:
        name = base
        while name in self._names:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._names.add(name)
        return name

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list, outputs: list, name: str | None = None, **attrs) -> None:
        for o in outputs:
            self._names.add(o)
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(name or op),
                                           **attrs))


# --------------------------------------------------------------------------------------------
# the recurrent stack
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _StackSpec:
    """A recurrent stack to export: its cell, sizes, and where its weights are found."""

    cell: CellSpec
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    prefix: str = ""                 # the weights' name prefix in the state dict ("rnn.")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def expected_keys(self) -> list[str]:
        keys = []
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                keys += [f"{self.prefix}weight_ih{sfx}", f"{self.prefix}weight_hh{sfx}"]
                if self.bias:
                    keys += [f"{self.prefix}bias_ih{sfx}", f"{self.prefix}bias_hh{sfx}"]
        return keys


@dataclasses.dataclass(frozen=True)
class _StackIO:
    """Graph value names around a stack: input ``x`` (T, N, D) and optional initial states
    (L*dirs, N, H) in; output ``y`` (T, N, dirs*H) and final states out."""

    x: str
    h0: str | None
    c0: str | None
    y: str
    h_n: str
    c_n: str | None
    lens: str = ""                   # sequence_lens (N,) int32, "" = full length


def _add_stack(g: _GraphBuilder, who: str, spec: _StackSpec, params: Mapping, io: _StackIO) -> None:
    """Append the recurrent stack ``io.x`` -> ``io.y``, ``io.h_n`` (``io.c_n``): one native
    node per layer, weights reordered to ONNX's gate order. Missing initial states are zeros."""
    cell, H, L, dirs = spec.cell, spec.hidden_size, spec.num_layers, spec.num_directions
    G = cell.num_gates
    direction = "bidirectional" if spec.bidirectional else "forward"
    tag = spec.prefix.rstrip(".").replace(".", "_")
    tag = f"{tag}_" if tag else ""
    layer_in = io.x
    h_finals, c_finals = [], []
    for k in range(L):
        in_k = spec.input_size if k == 0 else dirs * H
        Ws, Rs, Bs = [], [], []
        for d in range(dirs):
            name = f"{spec.prefix}{{}}_l{k}" + ("_reverse" if d else "")
            w_ih = _float_param(who, params, name.format("weight_ih"), (G * H, in_k), g.dtype)
            w_hh = _float_param(who, params, name.format("weight_hh"), (G * H, H), g.dtype)
            Ws.append(_reorder_gates(w_ih, cell, H))                   # (G*H, in_k)
            Rs.append(_reorder_gates(w_hh, cell, H))                   # (G*H, H)
            if spec.bias:
                b_ih = _float_param(who, params, name.format("bias_ih"), (G * H,), g.dtype)
                b_hh = _float_param(who, params, name.format("bias_hh"), (G * H,), g.dtype)
                Bs.append(np.concatenate([_reorder_gates(b_ih, cell, H),
                                          _reorder_gates(b_hh, cell, H)]))  # (2*G*H,)
        W = g.const(f"{tag}W_l{k}", np.stack(Ws))                      # (dirs, G*H, in_k)
        R = g.const(f"{tag}R_l{k}", np.stack(Rs))                      # (dirs, G*H, H)
        B = g.const(f"{tag}B_l{k}", np.stack(Bs)) if spec.bias else ""  # (dirs, 2*G*H)

        def state_slice(src: str | None, name: str) -> str:
            if src is None:
                return ""
            if L == 1:
                return src
            starts = g.const(f"{tag}{name}_start_l{k}", np.array([k * dirs], np.int64))
            ends = g.const(f"{tag}{name}_end_l{k}", np.array([(k + 1) * dirs], np.int64))
            axes = g.const(f"{tag}{name}_axes_l{k}", np.array([0], np.int64))
            out = g.fresh(f"{tag}{name}_l{k}")                        # (dirs, N, H)
            g.node("Slice", [src, starts, ends, axes], [out], name=f"{tag}slice_{name}_l{k}")
            return out

        inputs = [layer_in, W, R, B, io.lens, state_slice(io.h0, "h0")]
        if cell.cell_state:
            inputs.append(state_slice(io.c0, "c0"))
        while inputs and inputs[-1] == "":   # trailing optional inputs are simply left out
            inputs.pop()
        y = g.fresh(f"{tag}Y_l{k}")                                   # (T, dirs, N, H)
        yh = io.h_n if L == 1 else g.fresh(f"{tag}Y_h_l{k}")           # (dirs, N, H)
        outputs = [y, yh]
        if cell.cell_state:
            yc = io.c_n if L == 1 else g.fresh(f"{tag}Y_c_l{k}")
            outputs.append(yc)
            c_finals.append(yc)
        h_finals.append(yh)
        attrs: dict[str, Any] = {"hidden_size": H, "direction": direction}
        for key, value in cell.onnx_attrs.items():
            if key == "activation":                # one activation per direction
                attrs["activations"] = [value] * dirs
            else:
                attrs[key] = value
        g.node(cell.onnx_op, inputs, outputs, name=f"{tag}{cell.onnx_op.lower()}_l{k}", **attrs)

        # (T, dirs, N, H) -> (T, N, dirs*H), the next layer's input (or the output).
        out = io.y if k == L - 1 else g.fresh(f"{tag}out_l{k}")
        if dirs == 1:
            axes = g.const(f"{tag}squeeze_axes_l{k}", np.array([1], np.int64))
            g.node("Squeeze", [y, axes], [out], name=f"{tag}squeeze_l{k}")
        else:
            yt = g.fresh(f"{tag}Y_t_l{k}")                            # (T, N, dirs, H)
            g.node("Transpose", [y], [yt], name=f"{tag}transpose_l{k}", perm=[0, 2, 1, 3])
            shape = g.const(f"{tag}shape_l{k}", np.array([0, 0, dirs * H], np.int64))
            g.node("Reshape", [yt, shape], [out], name=f"{tag}reshape_l{k}")
        layer_in = out

    if L > 1:
        g.node("Concat", h_finals, [io.h_n], name=f"{tag}concat_h_n", axis=0)
        if cell.cell_state:
            g.node("Concat", c_finals, [io.c_n], name=f"{tag}concat_c_n", axis=0)


def _finish_model(g: _GraphBuilder, who: str, graph_name: str, inputs: list, outputs: list,
                  metadata: dict, doc_string: str, opt: ExportOptions,
                  path) -> onnx.ModelProto:
    doc = opt.doc_string if opt.doc_string is not None else doc_string
    graph = helper.make_graph(g.nodes, graph_name, inputs, outputs, g.initializers, doc_string=doc)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opt.opset)],
                              producer_name="rnnkit", doc_string=doc)
    props = {k: _meta_value(v) for k, v in metadata.items()}
    if opt.metadata is not None:
        if not isinstance(opt.metadata, Mapping):
            raise ConfigError(f"{who}: expected metadata as a dict of str -> str, got "
                              f"{type(opt.metadata).__name__}.")
        for k, v in opt.metadata.items():
            if not isinstance(k, str):
                raise ConfigError(f"{who}: expected metadata keys to be strings, got {k!r}.")
            props[k] = str(v)
    helper.set_model_props(model, props)
    if opt.check:
        onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _save(who, model, path)
    return model


def _save(who: str, model, path) -> None:
    """Write ``model`` to ``path``; an unwritable place is one clear ConfigError."""
    try:
        onnx.save(model, os.fspath(path))
    except OSError as e:
        raise ConfigError(f"{who}: cannot write the ONNX file {os.fspath(path)!r}: "
                          f"{e.strerror or e}. Choose a writable path.") from None


def _meta_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


# --------------------------------------------------------------------------------------------
# public exporters
# --------------------------------------------------------------------------------------------

def _state_inputs(g, inputs: list, initial_state: bool, cell: CellSpec, state_shape: list):
    """Declare the optional ``h0`` (and ``c0``) graph inputs; return their names or None."""
    if not initial_state:
        return None, None
    inputs.append(helper.make_tensor_value_info("h0", g.elem_type, state_shape))
    if not cell.cell_state:
        return "h0", None
    inputs.append(helper.make_tensor_value_info("c0", g.elem_type, state_shape))
    return "h0", "c0"


def _lens_input(g, inputs: list, opt: ExportOptions) -> str:
    """Declare the ``sequence_lens`` (batch,) int32 input when asked; its name, or ""."""
    if not opt.sequence_lens:
        return ""
    inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    return "sequence_lens"


def _state_outputs(g, outputs: list, cell: CellSpec, state_shape: list) -> None:
    outputs.append(helper.make_tensor_value_info("h_n", g.elem_type, state_shape))
    if cell.cell_state:
        outputs.append(helper.make_tensor_value_info("c_n", g.elem_type, state_shape))


def _state_doc(opt: ExportOptions, cell: CellSpec) -> str:
    c = "/c0" if cell.cell_state else ""
    return f" are inputs h0{c}" if opt.initial_state else " start at zero"


def export_layer(layer, path=None, **options) -> onnx.ModelProto:
    """Export a recurrent layer (rnnkit or ``torch.nn.RNN/LSTM/GRU``) to ONNX.

    One native ONNX ``RNN``/``LSTM``/``GRU`` node per layer (see the module docstring for the
    gate reordering and the chaining). With ``h_t`` the state of one direction of layer ``k``::

        LSTM  i,f,g,o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); c_t = s(f)*c + s(i)*tanh(g)
        GRU   r,z = s(...); n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
              h_t = (1 - z) * n + z * h_{t-1}
        RNN   h_t = tanh|relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    Args:
        layer: object with ``mode`` (``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'``, ``'GRU'``),
            ``input_size``, ``hidden_size``, ``num_layers``, ``bidirectional``, ``bias``,
            ``batch_first`` and ``state_dict()`` (PyTorch names; NumPy arrays or tensors).
        path: where to save the model (``str`` or path-like); ``None`` only returns it.
        **options: :class:`ExportOptions` (``dtype``, ``initial_state``, ``opset``,
            ``check``, ``metadata``, ``doc_string``).

    Returns:
        The ``onnx.ModelProto``. Graph inputs ``input`` (T, N, D) (or (N, T, D) if
        ``batch_first``), ``h0``, ``c0``; outputs ``output`` (T, N, dirs*H) (or batch-major),
        ``h_n``, ``c_n``, with dynamic ``seq_len`` and ``batch`` axes.

    Example:
        >>> lstm = torch.nn.LSTM(3, 5, num_layers=2)                  # doctest: +SKIP
        >>> export_layer(lstm, "lstm.onnx")                            # doctest: +SKIP
    """
    who = "export_layer"
    opt = ExportOptions.parse(who, options)
    missing = [a for a in ("mode", "input_size", "hidden_size", "num_layers", "bidirectional",
                           "bias", "batch_first") if not hasattr(layer, a)]
    if missing:
        raise ConfigError(f"{who}: expected a recurrent layer with attributes mode, input_size, "
                          f"hidden_size, num_layers, bidirectional, bias, batch_first; "
                          f"{type(layer).__name__} lacks {', '.join(missing)}. Pass an rnnkit "
                          f"RNN/LSTM/GRU layer or a torch.nn.RNN/LSTM/GRU module.")
    cell = _cell(who, layer.mode)
    if int(getattr(layer, "proj_size", 0) or 0) != 0:
        raise ConfigError(f"{who}: expected proj_size=0, got proj_size={layer.proj_size}. LSTMs "
                          f"with projections have no native ONNX operator; export without it.")
    spec = _StackSpec(cell=cell,
                      input_size=check_int(who, "input_size", layer.input_size, minimum=1),
                      hidden_size=check_int(who, "hidden_size", layer.hidden_size, minimum=1),
                      num_layers=check_int(who, "num_layers", layer.num_layers, minimum=1),
                      bidirectional=check_bool(who, "bidirectional", layer.bidirectional),
                      bias=check_bool(who, "bias", layer.bias))
    batch_first = check_bool(who, "batch_first", layer.batch_first)
    params = _state_dict(who, layer)
    if "h0" in params:
        raise ConfigError(f"{who}: expected a layer without a learned initial state, got h0 in "
                          f"its parameters (learn_initial_state=True). Export with "
                          f"initial_state=True and feed its h0 (c0) repeated over the batch.")
    unexpected = sorted(set(params) - set(spec.expected_keys()))
    if unexpected:
        raise ParameterKeyError(f"{who}: expected only the parameters {spec.expected_keys()}, "
                                f"got unexpected {unexpected}. Is the configuration (num_layers, "
                                f"bidirectional, bias) consistent with the weights?")

    g = _GraphBuilder(opt.dtype)
    H, L, dirs, D = spec.hidden_size, spec.num_layers, spec.num_directions, spec.input_size
    in_shape = ["batch", "seq_len", D] if batch_first else ["seq_len", "batch", D]
    out_shape = (["batch", "seq_len", dirs * H] if batch_first
                 else ["seq_len", "batch", dirs * H])
    state_shape = [L * dirs, "batch", H]
    inputs = [helper.make_tensor_value_info("input", g.elem_type, in_shape)]
    for n in ("input", "output", "h0", "c0", "h_n", "c_n", "sequence_lens"):
        g._names.add(n)
    h0, c0 = _state_inputs(g, inputs, opt.initial_state, cell, state_shape)
    lens = _lens_input(g, inputs, opt)
    x = "input"
    if batch_first:
        x = g.fresh("input_tm")                                        # (T, N, D)
        g.node("Transpose", ["input"], [x], name="input_to_time_major", perm=[1, 0, 2])
    y = g.fresh("output_tm") if batch_first else "output"               # (T, N, dirs*H)
    _add_stack(g, who, spec, params, _StackIO(x, h0, c0, y, "h_n", "c_n" if cell.cell_state else None,
                                              lens))
    if batch_first:
        g.node("Transpose", [y], ["output"], name="output_to_batch_first", perm=[1, 0, 2])
    outputs = [helper.make_tensor_value_info("output", g.elem_type, out_shape)]
    _state_outputs(g, outputs, cell, state_shape)

    mode = cell.torch_mode
    meta = {"kind": "recurrent", "mode": mode, "input_size": D, "hidden_size": H,
            "num_layers": L, "bidirectional": spec.bidirectional, "bias": spec.bias,
            "batch_first": batch_first, "initial_state": opt.initial_state,
            "sequence_lens": opt.sequence_lens, "dtype": opt.dtype.name}
    layout = "(batch, seq_len, features)" if batch_first else "(seq_len, batch, features)"
    doc = (f"rnnkit {mode} stack: {L} layer(s), hidden_size={H}, "
           f"{'bidirectional' if spec.bidirectional else 'unidirectional'}, input/output layout "
           f"{layout}; states (num_layers*num_directions, batch, hidden_size)"
           f"{_state_doc(opt, cell)}.")
    return _finish_model(g, who, f"rnnkit_{mode.lower()}", inputs, outputs, meta, doc, opt, path)


_CHARLM_FIELDS = ("cell", "vocab_size", "hidden_size", "num_layers", "embedding_size")


def _charlm_fields(who: str, config) -> dict:
    """The char LM's sizes from a config dataclass, a dict (config.json) or an object with
    those attributes; ``mode`` is accepted for ``cell``."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        cfg = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        cfg = dict(config)
    else:
        cfg = {f: getattr(config, f) for f in _CHARLM_FIELDS + ("mode", "bidirectional")
               if hasattr(config, f)}
    if cfg.get("bidirectional"):
        raise ConfigError(f"{who}: expected a unidirectional char LM, got bidirectional=True. "
                          f"A bidirectional language model cannot generate text step by step.")
    if "cell" not in cfg and "mode" in cfg:
        cfg["cell"] = cfg["mode"]
    missing = [f for f in _CHARLM_FIELDS if f not in cfg]
    if missing:
        raise ConfigError(f"{who}: expected the config to provide {', '.join(_CHARLM_FIELDS)}; "
                          f"missing {', '.join(missing)}.")
    return {f: cfg[f] for f in _CHARLM_FIELDS}


def export_charlm(state_dict: Mapping, config, path=None, **options) -> onnx.ModelProto:
    """Export a char-level language model, given its state dict and config, to ONNX.

    The graph (time-major; T = seq_len, N = batch, V = vocab_size)::

        x      = Gather(embedding.weight, tokens)      # (T, N, E)   if embedding_size > 0
               = Gather(eye(V), tokens)                # (T, N, V)   one-hot otherwise
        y, h_n[, c_n] = stack(x, h0[, c0])             # (T, N, H)   native RNN/LSTM/GRU nodes
        logits = MatMul(y, head.weight.T) + head.bias  # (T, N, V)

    Args:
        state_dict: name -> array/tensor with ``embedding.weight`` (V, E) (only when
            ``embedding_size > 0``), ``rnn.weight_ih_l{k}`` / ``rnn.weight_hh_l{k}`` /
            ``rnn.bias_ih_l{k}`` / ``rnn.bias_hh_l{k}`` (layer 0 input size E, or V for
            one-hot input), ``head.weight`` (V, H), ``head.bias`` (V,). Unidirectional.
        config: a :class:`rnnkit.nn.CharLMConfig`, its dict (a checkpoint's config.json), or
            any object with ``cell`` (any cell name or torch mode), ``vocab_size``,
            ``hidden_size``, ``num_layers`` and ``embedding_size`` (0 = one-hot input).
        path: where to save the model; ``None`` only returns it.
        **options: :class:`ExportOptions`.

    Returns:
        The ``onnx.ModelProto`` with inputs ``tokens`` int64 (seq_len, batch), ``h0`` (``c0``)
        of shape (num_layers, batch, H) and outputs ``logits`` (seq_len, batch, V), ``h_n``
        (``c_n``). ``metadata_props`` record kind="charlm", cell, vocab_size, hidden_size,
        num_layers, embedding_size, initial_state and dtype (read by :class:`rnnkit.interop.onnx_runtime.OnnxCharLM`).

    Example:
        >>> export_charlm(model.state_dict(), model.config, "charlm.onnx")   # doctest: +SKIP
    """
    who = "export_charlm"
    opt = ExportOptions.parse(who, options)
    f = _charlm_fields(who, config)
    cell = _cell(who, f["cell"])
    V = check_int(who, "vocab_size", f["vocab_size"], minimum=1)
    H = check_int(who, "hidden_size", f["hidden_size"], minimum=1)
    L = check_int(who, "num_layers", f["num_layers"], minimum=1)
    E = check_int(who, "embedding_size", f["embedding_size"], minimum=0)
    if not isinstance(state_dict, Mapping):
        raise ConfigError(f"{who}: expected state_dict as a mapping of name -> array, got "
                          f"{type(state_dict).__name__}.")
    params = dict(state_dict)
    if "rnn.h0" in params:
        raise ConfigError(f"{who}: expected a model without a learned initial state, got rnn.h0 "
                          f"in the weights (learn_initial_state). Its graph would start from "
                          f"zeros, unlike the model; export a model trained without it.")
    has_bias = "rnn.bias_ih_l0" in params or "rnn.bias_hh_l0" in params
    spec = _StackSpec(cell=cell, input_size=E if E > 0 else V, hidden_size=H, num_layers=L,
                      bidirectional=False, bias=has_bias, prefix="rnn.")
    expected = set(spec.expected_keys()) | {"head.weight", "head.bias"}
    if E > 0:
        expected.add("embedding.weight")
    unexpected = sorted(set(params) - expected)
    if unexpected:
        hint = (" embedding_size=0 means one-hot input without an embedding table."
                if "embedding.weight" in unexpected else "")
        raise ParameterKeyError(f"{who}: expected only the parameters {short_list(sorted(expected))}, "
                                f"got unexpected {short_list(unexpected)}. Check cell, num_layers and "
                                f"embedding_size against the weights (the char LM is "
                                f"unidirectional).{hint}")

    g = _GraphBuilder(opt.dtype)
    for n in ("tokens", "logits", "h0", "c0", "h_n", "c_n", "sequence_lens"):
        g._names.add(n)
    state_shape = [L, "batch", H]
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["seq_len", "batch"])]
    h0, c0 = _state_inputs(g, inputs, opt.initial_state, cell, state_shape)
    lens = _lens_input(g, inputs, opt)

    if E > 0:
        table = g.const("embedding_weight",
                        _float_param(who, params, "embedding.weight", (V, E), g.dtype))  # (V, E)
    else:
        table = g.const("one_hot_table", np.eye(V, dtype=g.dtype))                      # (V, V)
    x = g.fresh("x")                                                                 # (T, N, E|V)
    g.node("Gather", [table, "tokens"], [x], name="embedding" if E > 0 else "one_hot", axis=0)
    y = g.fresh("rnn_out")                                                           # (T, N, H)
    _add_stack(g, who, spec, params, _StackIO(x, h0, c0, y, "h_n", "c_n" if cell.cell_state else None,
                                              lens))
    w_head = _float_param(who, params, "head.weight", (V, H), g.dtype)
    b_head = _float_param(who, params, "head.bias", (V,), g.dtype)
    wt = g.const("head_weight_t", np.ascontiguousarray(w_head.T))                    # (H, V)
    bh = g.const("head_bias", b_head)                                                # (V,)
    z = g.fresh("head_matmul")                                                       # (T, N, V)
    g.node("MatMul", [y, wt], [z], name="head_matmul")
    g.node("Add", [z, bh], ["logits"], name="head_add")

    outputs = [helper.make_tensor_value_info("logits", g.elem_type, ["seq_len", "batch", V])]
    _state_outputs(g, outputs, cell, state_shape)
    mode = cell.torch_mode
    meta = {"kind": "charlm", "cell": mode, "vocab_size": V, "hidden_size": H, "num_layers": L,
            "embedding_size": E, "bias": has_bias, "initial_state": opt.initial_state,
            "sequence_lens": opt.sequence_lens, "dtype": opt.dtype.name}
    doc = (f"rnnkit char-level language model: tokens int64 (seq_len, batch) -> "
           f"{'embedding (E=' + str(E) + ')' if E > 0 else 'one-hot'} -> {L}-layer {mode} "
           f"(hidden_size={H}) -> linear head -> logits (seq_len, batch, {V}). States "
           f"(num_layers, batch, hidden_size){_state_doc(opt, cell)}; outputs "
           f"h_n{'/c_n' if cell.cell_state else ''} continue generation step by step.")
    return _finish_model(g, who, "rnnkit_charlm", inputs, outputs, meta, doc, opt, path)


def export_model(model, path=None, **options) -> onnx.ModelProto:
    """Export a char LM object (``.config`` + ``.state_dict()``) to ONNX: see
    :func:`export_charlm` for the config and :class:`ExportOptions` for ``options``.

    Example:
        >>> export_model(charlm, "charlm.onnx")                        # doctest: +SKIP
    """
    who = "export_model"
    if not hasattr(model, "config"):
        raise ConfigError(f"{who}: expected a model with a .config attribute and a state_dict() "
                          f"method, got {type(model).__name__}. For a recurrent layer use "
                          f"export_layer().")
    return export_charlm(_state_dict(who, model), model.config, path, **options)


def export(obj, path=None, **kw) -> onnx.ModelProto:
    """Export ``obj`` to ONNX: a recurrent layer (has ``mode``) via :func:`export_layer`, a char
    LM (has ``config``) via :func:`export_model`. Keyword arguments are passed on.

    Example:
        >>> export(torch.nn.GRU(4, 8), "gru.onnx")                     # doctest: +SKIP
    """
    if hasattr(obj, "mode") and hasattr(obj, "state_dict"):
        return export_layer(obj, path, **kw)
    if hasattr(obj, "config") and hasattr(obj, "state_dict"):
        return export_model(obj, path, **kw)
    raise ConfigError(f"export: expected a recurrent layer (with .mode and .state_dict()) or a "
                      f"char LM (with .config and .state_dict()), got {type(obj).__name__}. "
                      f"For a bare state dict call export_charlm().")
