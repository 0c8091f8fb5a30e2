"""Export recurrent layers, char-level language models and seq2seq models to ONNX (native
RNN/LSTM/GRU ops).

This module lives at the edge of rnnkit: the core never imports it, and it needs the optional
``onnx`` package (``pip install 'rnnkit[onnx]'``). The runtime side is
:mod:`rnnkit.interop.onnx_runtime`. Nothing here imports torch: inputs are duck-typed, so rnnkit layers and
``torch.nn.RNN`` / ``LSTM`` / ``GRU`` modules both work.

What is exported
----------------
One entry point, :func:`export`, dispatches on what it is given:

* a recurrent layer - a recurrent stack (any object with ``mode``, ``input_size``,
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

* a char LM (or its state dict with ``config=``) - a char-level language model
  ``tokens (T, N) int64 -> [embedding or one-hot] -> recurrent stack -> linear head ->
  logits (T, N, V)``, with inputs ``tokens``, ``h0`` (``c0``) and outputs ``logits``,
  ``h_n`` (``c_n``).
* a :class:`rnnkit.nn.Seq2Seq` - two graphs, the encoder and one decoder step with the
  attention (see :func:`export` for their inputs and outputs).
* running an exported char LM with ONNX Runtime, step by step, is
  :class:`rnnkit.interop.onnx_runtime.OnnxCharLM`, and a seq2seq model
  :class:`rnnkit.interop.onnx_runtime.OnnxSeq2Seq` (a module of its own: it needs only
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
>>> from rnnkit.interop.onnx import export                     # doctest: +SKIP
>>> lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True)  # doctest: +SKIP
>>> model = export(lstm, "lstm.onnx")                          # doctest: +SKIP
>>> import onnxruntime as ort                                  # doctest: +SKIP
>>> sess = ort.InferenceSession("lstm.onnx")                   # doctest: +SKIP
>>> y, h_n, c_n = sess.run(None, {"input": x, "h0": h0, "c0": c0})  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
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
from ..cells import CellSpec, cell_spec, param_suffix
from ..errors import ConfigError, DTypeError, ParameterKeyError, ShapeError
from ..nn.rnn import rnn_parameter_shapes

__all__ = ["DEFAULT_OPSET", "ExportOptions", "export", "decoder_path"]

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
        """The stack's weight names in the state dict (``rnn_parameter_shapes``, prefixed)."""
        return [self.prefix + k for k in rnn_parameter_shapes(
            self.cell.name, self.input_size, self.hidden_size, self.num_layers, self.bidirectional, self.bias)]


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
            name = spec.prefix + "{}" + param_suffix(k, d)
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


def _export_layer(layer, path, opt: ExportOptions) -> onnx.ModelProto:
    """A recurrent layer's graph (see :func:`export`): one native node per layer."""
    who = "export"
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


def _export_charlm(state_dict: Mapping, config, path, opt: ExportOptions) -> onnx.ModelProto:
    """A char LM's graph from its state dict and config (see :func:`export`)."""
    who = "export"
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
    if "rnn.weight_hr_l0" in params:
        raise ConfigError(f"{who}: expected a model without a projection, got rnn.weight_hr_l0 in "
                          f"the weights (proj_size > 0). LSTMs with projections have no native ONNX "
                          f"operator; export a model trained without --proj-size.")
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


# --------------------------------------------------------------------------------------------
# sequence to sequence: an encoder graph and a decoder-step graph
# --------------------------------------------------------------------------------------------

def decoder_path(path: str | os.PathLike) -> str:
    """Where the decoder-step graph of a seq2seq export to ``path`` goes: ``X.onnx`` ->
    ``X.decoder.onnx`` (next to the encoder file ``path``)."""
    p = os.fspath(path)
    stem = p[:-5] if p.lower().endswith(".onnx") else p
    return stem + ".decoder.onnx"


def _seq2seq_config(who: str, config):
    from ..nn.seq2seq import Seq2SeqConfig
    if isinstance(config, Seq2SeqConfig):
        return config.validate()
    if isinstance(config, Mapping):
        return Seq2SeqConfig.from_dict(dict(config))
    raise ConfigError(f"{who}: expected a Seq2SeqConfig or its dict (a run's config.json), got "
                      f"{type(config).__name__}.")


def _linear_t(g: _GraphBuilder, who: str, params, key: str, shape: tuple, base: str) -> str:
    """A weight (out, in) from the state dict as the constant of its transpose (in, out)."""
    return g.const(base, np.ascontiguousarray(_float_param(who, params, key, shape, g.dtype).T))


def _export_seq2seq(params: dict, config, path, opt: ExportOptions):
    """The two graphs of a :class:`rnnkit.nn.Seq2Seq` (see :func:`export`)."""
    who = "export"
    cfg = _seq2seq_config(who, config)
    expected = cfg.parameter_shapes()
    missing = sorted(set(expected) - set(params))
    unexpected = sorted(set(params) - set(expected))
    if missing or unexpected:
        raise ParameterKeyError(f"{who}: expected the parameters of the Seq2Seq config, got "
                                f"missing {short_list(missing)} and unexpected {short_list(unexpected)}. "
                                f"Pass the model's own state_dict() and config.")
    if opt.sequence_lens or not opt.initial_state:
        raise ConfigError(f"{who}: a Seq2Seq export always has the inputs src_lengths and the "
                          f"decoder state; expected the options sequence_lens and initial_state "
                          f"left at their defaults, got sequence_lens={opt.sequence_lens}, "
                          f"initial_state={opt.initial_state}.")
    enc_cell, dec_cell = _cell(who, cfg.cell), _cell(who, cfg.decoder_kind)
    E, K, He, L = cfg.embedding_size, cfg.key_size, cfg.hidden_size, cfg.num_layers
    D = 2 if cfg.bidirectional else 1
    Vs, Vt = cfg.src_vocab_size, cfg.tgt_vocab_size
    att = cfg.attention
    attends = att != "none"
    A = cfg.attention_size or K
    P = {"additive": A, "general": K}.get(att, 0)           # the projected keys' size (0: none)
    meta = {"kind": "seq2seq", "decoder_file": os.path.basename(decoder_path(path or "model.onnx")),
            "config": json.dumps(cfg.to_dict()), "attention": att,
            "cell": enc_cell.torch_mode, "decoder_cell": dec_cell.torch_mode, "key_size": K,
            "proj_size": P, "src_vocab_size": Vs, "tgt_vocab_size": Vt, "dtype": opt.dtype.name}

    # encoder: src (S, N), src_lengths (N,) -> keys (S, N, K), [proj (S, N, P)], h (N, K), [c]
    g = _GraphBuilder(opt.dtype)
    for n in ("src", "src_lengths", "keys", "proj", "h", "c"):
        g._names.add(n)
    inputs = [helper.make_tensor_value_info("src", TensorProto.INT64, ["src_len", "batch"]),
              helper.make_tensor_value_info("src_lengths", TensorProto.INT64, ["batch"])]
    table = g.const("src_embedding_weight", _float_param(who, params, "src_embedding.weight", (Vs, E), g.dtype))
    x = g.fresh("src_emb")                                                        # (S, N, E)
    g.node("Gather", [table, "src"], [x], name="src_embedding", axis=0)
    lens = g.fresh("src_lengths_i32")
    g.node("Cast", ["src_lengths"], [lens], name="src_lengths_to_int32", to=TensorProto.INT32)
    hn = g.fresh("encoder_h_n")                                                   # (L*D, N, He)
    cn = g.fresh("encoder_c_n") if enc_cell.cell_state else None
    spec = _StackSpec(cell=enc_cell, input_size=E, hidden_size=He, num_layers=L,
                      bidirectional=cfg.bidirectional, bias=True, prefix="encoder.")
    _add_stack(g, who, spec, params, _StackIO(x, None, None, "keys", hn, cn, lens))
    top = g.fresh("encoder_top")                                                  # (D, N, He)
    g.node("Slice", [hn, g.const("top_start", np.array([L * D - D], np.int64)),
                     g.const("top_end", np.array([L * D], np.int64)),
                     g.const("top_axes", np.array([0], np.int64))], [top], name="top_layer_state")
    topt = g.fresh("encoder_top_t")                                               # (N, D, He)
    g.node("Transpose", [top], [topt], name="top_to_batch_major", perm=[1, 0, 2])
    e = g.fresh("encoder_final")                                                  # (N, K)
    g.node("Reshape", [topt, g.const("final_shape", np.array([0, K], np.int64))], [e], name="final_concat")
    bw = _linear_t(g, who, params, "bridge.weight", (K, K), "bridge_weight_t")
    bb = g.const("bridge_bias", _float_param(who, params, "bridge.bias", (K,), g.dtype))
    bm, ba = g.fresh("bridge_matmul"), g.fresh("bridge_add")
    g.node("MatMul", [e, bw], [bm], name="bridge_matmul")
    g.node("Add", [bm, bb], [ba], name="bridge_add")
    g.node("Tanh", [ba], ["h"], name="bridge_tanh")                              # s_0 (N, K)
    outputs = [helper.make_tensor_value_info("keys", g.elem_type, ["src_len", "batch", K])]
    if P:
        kw = _linear_t(g, who, params, "attention.key_proj.weight", (P, K), "key_proj_weight_t")
        g.node("MatMul", ["keys", kw], ["proj"], name="key_proj")                 # (S, N, P)
        outputs.append(helper.make_tensor_value_info("proj", g.elem_type, ["src_len", "batch", P]))
    outputs.append(helper.make_tensor_value_info("h", g.elem_type, ["batch", K]))
    if dec_cell.cell_state:
        shape = g.fresh("h_shape")
        g.node("Shape", ["h"], [shape], name="h_shape")
        g.node("ConstantOfShape", [shape], ["c"], name="c_zeros",
               value=numpy_helper.from_array(np.zeros(1, g.dtype)))               # c_0 = 0
        outputs.append(helper.make_tensor_value_info("c", g.elem_type, ["batch", K]))
    doc = (f"rnnkit seq2seq encoder: src int64 (src_len, batch), src_lengths int64 (batch,) -> "
           f"keys (src_len, batch, {K}){', proj' if P else ''}, the decoder's start state h"
           f"{' and c (zeros)' if dec_cell.cell_state else ''} (batch, {K}). Decode with the graph "
           f"in {meta['decoder_file']} one step at a time.")
    encoder = _finish_model(g, who, "rnnkit_seq2seq_encoder", inputs, outputs, meta, doc, opt, path)

    # decoder step: tokens (N,), h, [c], [feed, keys, proj, src_lengths] -> logits (N, V), ...
    g = _GraphBuilder(opt.dtype)
    names = ["tokens", "h", "c", "feed", "keys", "proj", "src_lengths", "logits", "h_next",
             "c_next", "feed_next", "weights"]
    for n in names:
        g._names.add(n)
    n_in = E + (K if attends else 0)
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch"]),
              helper.make_tensor_value_info("h", g.elem_type, ["batch", K])]
    if dec_cell.cell_state:
        inputs.append(helper.make_tensor_value_info("c", g.elem_type, ["batch", K]))
    if attends:
        inputs += [helper.make_tensor_value_info("feed", g.elem_type, ["batch", K]),
                   helper.make_tensor_value_info("keys", g.elem_type, ["src_len", "batch", K])]
        if P:
            inputs.append(helper.make_tensor_value_info("proj", g.elem_type, ["src_len", "batch", P]))
        inputs.append(helper.make_tensor_value_info("src_lengths", TensorProto.INT64, ["batch"]))
    table = g.const("tgt_embedding_weight", _float_param(who, params, "tgt_embedding.weight", (Vt, E), g.dtype))
    emb = g.fresh("tgt_emb")                                                      # (N, E)
    g.node("Gather", [table, "tokens"], [emb], name="tgt_embedding", axis=0)
    if attends:
        cat = g.fresh("decoder_input")                                            # (N, E + K)
        g.node("Concat", [emb, "feed"], [cat], name="input_feeding", axis=1)
        emb = cat
    axis0 = g.const("axis0", np.array([0], np.int64))
    x1, h1 = g.fresh("x_step"), g.fresh("h_step")
    g.node("Unsqueeze", [emb, axis0], [x1], name="x_to_one_step")                 # (1, N, E [+ K])
    g.node("Unsqueeze", ["h", axis0], [h1], name="h_to_layer")                    # (1, N, K)
    c1 = None
    if dec_cell.cell_state:
        c1 = g.fresh("c_step")
        g.node("Unsqueeze", ["c", axis0], [c1], name="c_to_layer")
    cell_params = {f"decoder.{k}_l0": params[f"decoder.{k}"] for k in
                   ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    spec = _StackSpec(cell=dec_cell, input_size=n_in, hidden_size=K, num_layers=1, bidirectional=False,
                      bias=True, prefix="decoder.")
    hn, y = g.fresh("decoder_h_n"), g.fresh("decoder_y")
    cn = g.fresh("decoder_c_n") if dec_cell.cell_state else None
    _add_stack(g, who, spec, cell_params, _StackIO(x1, h1, c1, y, hn, cn))
    g.node("Squeeze", [hn, axis0], ["h_next"], name="h_next")                     # (N, K)
    outputs = []
    if dec_cell.cell_state:
        g.node("Squeeze", [cn, axis0], ["c_next"], name="c_next")
    if attends:
        score = g.fresh("score_sn")                                               # (S, N)
        axis2 = g.const("axis2", np.array([2], np.int64))
        if att == "additive":
            qw = _linear_t(g, who, params, "attention.query_proj.weight", (A, K), "query_proj_weight_t")
            v = _linear_t(g, who, params, "attention.v.weight", (1, A), "v_weight_t")  # (A, 1)
            qp, pre, th, s3 = (g.fresh(n) for n in ("query_proj", "score_pre", "score_tanh", "score3"))
            g.node("MatMul", ["h_next", qw], [qp], name="query_proj")            # (N, A)
            g.node("Add", ["proj", qp], [pre], name="score_add")                  # (S, N, A)
            g.node("Tanh", [pre], [th], name="score_tanh")
            g.node("MatMul", [th, v], [s3], name="score_v")                       # (S, N, 1)
            g.node("Squeeze", [s3, axis2], [score], name="score_squeeze")
        else:
            prod = g.fresh("score_prod")                                          # (S, N, K)
            g.node("Mul", ["proj" if P else "keys", "h_next"], [prod], name="score_mul")
            g.node("ReduceSum", [prod, axis2], [score], name="score_sum", keepdims=0)
        score_ns, masked = g.fresh("score"), g.fresh("score_masked")
        g.node("Transpose", [score], [score_ns], name="score_to_batch_major", perm=[1, 0])
        shape, S, pos, lens2, mask = (g.fresh(n) for n in ("keys_shape", "S", "positions",
                                                           "lengths_col", "mask"))
        g.node("Shape", ["keys"], [shape], name="keys_shape")
        g.node("Gather", [shape, g.const("zero", np.array(0, np.int64))], [S], name="src_len", axis=0)
        g.node("Range", [g.const("range_start", np.array(0, np.int64)), S,
                         g.const("range_step", np.array(1, np.int64))], [pos], name="positions")
        axis1 = g.const("axis1", np.array([1], np.int64))
        g.node("Unsqueeze", ["src_lengths", axis1], [lens2], name="lengths_column")  # (N, 1)
        g.node("Less", [pos, lens2], [mask], name="real_positions")               # (N, S)
        g.node("Where", [mask, score_ns, g.const("minus_inf", np.array(-np.inf, g.dtype))], [masked],
               name="mask_padding")
        g.node("Softmax", [masked], ["weights"], name="attention_softmax", axis=-1)  # (N, S)
        w3, kt, c3, ctx = (g.fresh(n) for n in ("weights_row", "keys_bm", "context3", "context"))
        g.node("Unsqueeze", ["weights", axis1], [w3], name="weights_row")          # (N, 1, S)
        g.node("Transpose", ["keys"], [kt], name="keys_to_batch_major", perm=[1, 0, 2])  # (N, S, K)
        g.node("MatMul", [w3, kt], [c3], name="context_matmul")                   # (N, 1, K)
        g.node("Squeeze", [c3, axis1], [ctx], name="context")                     # (N, K)
        z, zc = g.fresh("combine_input"), g.fresh("combine_matmul")
        g.node("Concat", [ctx, "h_next"], [z], name="combine_concat", axis=1)     # (N, 2K)
        cw = _linear_t(g, who, params, "combine.weight", (K, 2 * K), "combine_weight_t")
        g.node("MatMul", [z, cw], [zc], name="combine_matmul")
        g.node("Tanh", [zc], ["feed_next"], name="combine_tanh")                  # f_t (N, K)
        f = "feed_next"
    else:
        f = "h_next"
    hw = _linear_t(g, who, params, "head.weight", (Vt, K), "head_weight_t")
    hb = g.const("head_bias", _float_param(who, params, "head.bias", (Vt,), g.dtype))
    hm = g.fresh("head_matmul")
    g.node("MatMul", [f, hw], [hm], name="head_matmul")
    g.node("Add", [hm, hb], ["logits"], name="head_add")                         # (N, V)
    outputs.append(helper.make_tensor_value_info("logits", g.elem_type, ["batch", Vt]))
    outputs.append(helper.make_tensor_value_info("h_next", g.elem_type, ["batch", K]))
    if dec_cell.cell_state:
        outputs.append(helper.make_tensor_value_info("c_next", g.elem_type, ["batch", K]))
    if attends:
        outputs += [helper.make_tensor_value_info("feed_next", g.elem_type, ["batch", K]),
                    helper.make_tensor_value_info("weights", g.elem_type, ["batch", "src_len"])]
    dmeta = {k: v for k, v in meta.items() if k != "decoder_file"}
    dmeta["kind"] = "seq2seq_decoder"
    doc = (f"rnnkit seq2seq decoder, one step: tokens int64 (batch,) (the previous output, <eos> "
           f"= 0 at the first step), the state h{', c' if dec_cell.cell_state else ''}"
           f"{', the fed-back feed (zeros at the first step), the encoder outputs keys' if attends else ''}"
           f"{', proj' if P else ''}{', src_lengths' if attends else ''} -> logits (batch, {Vt}), "
           f"the next state{', feed_next and the attention weights (batch, src_len)' if attends else ''}.")
    decoder = _finish_model(g, who, "rnnkit_seq2seq_decoder_step", inputs, outputs, dmeta, doc, opt,
                            None if path is None else decoder_path(path))
    return encoder, decoder


# --------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------

def _model_kind(config) -> str:
    """"CharLM", "Seq2Seq" or another model name, from a config dataclass or dict; a config
    without a model name is a char LM's (any object with its sizes)."""
    name = config.get("model") if isinstance(config, Mapping) else getattr(config, "model", None)
    return name or "CharLM"


def export(obj: object, path: str | os.PathLike | None = None, *,
           config: Mapping | None = None, **options: object) -> onnx.ModelProto | tuple[onnx.ModelProto, onnx.ModelProto]:
    """Export a recurrent layer, a char LM or a sequence-to-sequence model to ONNX.

    What is written depends on ``obj``:

    * a recurrent layer (rnnkit ``RNN``/``LSTM``/``GRU`` or ``torch.nn.RNN/LSTM/GRU``: has
      ``mode`` and ``state_dict()``) -> one graph, inputs ``input`` (T, N, D) (or (N, T, D) if
      ``batch_first``), ``h0`` (``c0``); outputs ``output``, ``h_n`` (``c_n``). With ``h_t``
      the state of one direction of layer ``k``::

          LSTM  i,f,g,o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); c_t = s(f)*c + s(i)*tanh(g)
          GRU   r,z = s(...); n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
                h_t = (1 - z) * n + z * h_{t-1}
          RNN   h_t = tanh|relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    * a char LM (:class:`rnnkit.nn.CharLM`, or any object with ``config`` and
      ``state_dict()``; or a bare state dict with ``config=``: a
      :class:`~rnnkit.nn.CharLMConfig`, its dict, or an object with ``cell``, ``vocab_size``,
      ``hidden_size``, ``num_layers``, ``embedding_size`` (0 = one-hot input)) -> one graph::

          x      = Gather(embedding.weight, tokens)      # (T, N, E)   (one-hot if E = 0)
          y, h_n[, c_n] = stack(x, h0[, c0])             # (T, N, H)   native RNN/LSTM/GRU nodes
          logits = MatMul(y, head.weight.T) + head.bias  # (T, N, V)

      inputs ``tokens`` int64 (T, N), ``h0`` (``c0``) (num_layers, N, H); outputs ``logits``,
      ``h_n`` (``c_n``); metadata kind="charlm" (read by
      :class:`rnnkit.interop.onnx_runtime.OnnxCharLM`).
    * a :class:`rnnkit.nn.Seq2Seq` (or its state dict with ``config=`` its
      :class:`~rnnkit.nn.Seq2SeqConfig`) -> TWO graphs, returned as ``(encoder, decoder)``:
      the encoder at ``path`` and the decoder step at :func:`decoder_path` (``X.onnx`` ->
      ``X.decoder.onnx``). The encoder maps ``src`` int64 (S, N) and ``src_lengths`` int64
      (N,) to ``keys`` (S, N, K) (the encoder's outputs), ``proj`` (the attention's projected
      keys, additive and general only) and the decoder's start state ``h`` (and ``c``, zeros,
      for an LSTM decoder). The decoder step maps ``tokens`` (N,), ``h`` (``c``) and, with
      attention, ``feed`` (the previous step's attentional state, zeros at the first step),
      ``keys``, ``proj``, ``src_lengths`` to ``logits`` (N, V), ``h_next`` (``c_next``),
      ``feed_next`` and ``weights`` (N, S), the attention weights. The equations are those of
      :mod:`rnnkit.nn.seq2seq`; the decoding loop (greedy, beam) stays outside the graph, in
      :class:`rnnkit.translate.Translator` on an
      :class:`rnnkit.interop.onnx_runtime.OnnxSeq2Seq`, so both searches and their
      length guard are one code path for NumPy and ONNX Runtime.

    Args:
        obj: the layer, model or state dict.
        path: where to save (``str`` or path-like); ``None`` only returns the model(s).
        config: the config of a bare state dict (nothing else takes it).
        **options: :class:`ExportOptions` (``dtype``, ``initial_state``, ``sequence_lens``,
            ``opset``, ``check``, ``metadata``, ``doc_string``); a Seq2Seq export takes only
            ``dtype``, ``opset``, ``check``, ``metadata`` and ``doc_string``.

    Returns:
        The ``onnx.ModelProto``, or ``(encoder, decoder)`` for a Seq2Seq. ``seq_len``,
        ``src_len`` and ``batch`` are dynamic axes.

    Example:
        >>> export(torch.nn.GRU(4, 8), "gru.onnx")                     # doctest: +SKIP
        >>> export(charlm, "charlm.onnx")                              # doctest: +SKIP
        >>> encoder, decoder = export(seq2seq, "dates.onnx")           # doctest: +SKIP
    """
    who = "export"
    opt = ExportOptions.parse(who, options)
    if isinstance(obj, Mapping):
        if config is None:
            raise ConfigError(f"{who}: a bare state dict needs config= (the model's config or "
                              f"its dict), got none.")
        params = dict(obj)
    elif hasattr(obj, "mode") and hasattr(obj, "state_dict"):
        if config is not None:
            raise ConfigError(f"{who}: config= is only for a bare state dict; a layer carries "
                              f"its own sizes.")
        return _export_layer(obj, path, opt)
    elif hasattr(obj, "config") and hasattr(obj, "state_dict"):
        if config is not None:
            raise ConfigError(f"{who}: config= is only for a bare state dict; the model carries "
                              f"its own config.")
        params, config = _state_dict(who, obj), obj.config
    else:
        raise ConfigError(f"{who}: expected a recurrent layer (with .mode and .state_dict()), a "
                          f"model (with .config and .state_dict()) or a state dict with config=, "
                          f"got {type(obj).__name__}.")
    kind = _model_kind(config)
    if kind == "Seq2Seq":
        return _export_seq2seq(params, config, path, opt)
    if kind != "CharLM":
        raise ConfigError(f"{who}: no ONNX export for a {kind} model; expected a CharLM, a "
                          f"Seq2Seq or a recurrent layer.")
    return _export_charlm(params, config, path, opt)
