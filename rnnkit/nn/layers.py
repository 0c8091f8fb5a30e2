"""Non-recurrent layers with the rnnkit contract: Linear, Embedding, Dropout, LockedDropout,
Sequential.

Every layer works on any number of leading axes (time and batch), so a ``Linear`` applied to
an RNN output (T, N, H) is the per-time-step projection of a many-to-many model.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._validate import as_float_array, check_dtype_arg, check_float, check_int, make_rng, to_numpy
from ..errors import DataError, DTypeError, NoForwardError, ShapeError
from ..ops import linear, linear_backward
from .module import Module
from .regularise import dropout_mask


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last axis (PyTorch's ``nn.Linear``).

    x (..., in_features) -> y (..., out_features). ``weight`` (out, in), ``bias`` (out,),
    initialised U(-1/sqrt(in), 1/sqrt(in)) like PyTorch. Backward: ``dx = dy @ weight``,
    ``dweight = sum dy^T x``, ``dbias = sum dy`` over all leading axes.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        self.in_features = check_int("Linear", "in_features", in_features, 1)
        self.out_features = check_int("Linear", "out_features", out_features, 1)
        self.dtype = check_dtype_arg("Linear", dtype)
        rng = rng if rng is not None else make_rng(type(self).__name__, seed)
        k = 1.0 / np.sqrt(self.in_features)
        self._add_param("weight", (self.out_features, self.in_features), self.dtype,
                        lambda shape: rng.uniform(-k, k, shape))
        if bias:
            self._add_param("bias", (self.out_features,), self.dtype, lambda shape: rng.uniform(-k, k, shape))
        self._x = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        x = as_float_array("Linear", "x", x, self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear: expected x of shape (..., in_features={self.in_features}), "
                             f"got shape {x.shape}.")
        self._x = x
        return linear(x, self._params["weight"], self._params.get("bias"))   # (..., out)

    def backward(self, dy: ArrayLike) -> np.ndarray | None:
        if self._x is None:
            raise NoForwardError("Linear.backward: no forward pass to differentiate; call forward first.")
        x, self._x = self._x, None
        dy = np.asarray(dy, dtype=self.dtype)
        dx, dW, db = linear_backward(dy, x, self._params["weight"])
        self._grads["weight"] += dW
        if "bias" in self._params:
            self._grads["bias"] += db
        return dx                                                          # (..., in)


class Embedding(Module):
    """Lookup table: ids (...) int -> vectors (..., embedding_dim) (PyTorch's ``nn.Embedding``).

    ``weight`` (num_embeddings, embedding_dim) initialised N(0, 1) like PyTorch. Backward
    scatters ``dy`` into the rows that were used (``dweight[ids] += dy``); ids get no gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        self.num_embeddings = check_int("Embedding", "num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("Embedding", "embedding_dim", embedding_dim, 1)
        self.dtype = check_dtype_arg("Embedding", dtype)
        rng = rng if rng is not None else make_rng(type(self).__name__, seed)
        self._add_param("weight", (self.num_embeddings, self.embedding_dim), self.dtype,
                        rng.standard_normal)
        self._ids = None

    def forward(self, ids: ArrayLike) -> np.ndarray:
        ids = check_ids("Embedding", "ids", ids, self.num_embeddings)
        self._ids = ids
        return self._params["weight"][ids]                                 # (..., E)

    def backward(self, dy: ArrayLike) -> np.ndarray | None:
        if self._ids is None:
            raise NoForwardError("Embedding.backward: no forward pass to differentiate; call forward first.")
        ids, self._ids = self._ids, None
        dy = np.asarray(dy, dtype=self.dtype).reshape(-1, self.embedding_dim)
        np.add.at(self._grads["weight"], ids.reshape(-1), dy)
        return None


def check_ids(who, name, ids, num):
    """Validate integer token ids in [0, num)."""
    arr = to_numpy(who, name, ids)
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{who}: expected {name} as integer token ids, got dtype {arr.dtype}. "
                         f"Encode text with a Vocab first.")
    if arr.size == 0:
        raise ShapeError(f"{who}: expected at least one token id in {name}, got shape {arr.shape}.")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= num:
        raise DataError(f"{who}: expected {name} in [0, {num - 1}], got values from {lo} to {hi}. "
                        f"Was the data encoded with the model's vocabulary?")
    return arr.astype(np.int64, copy=False)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest
    by 1 / (1 - p); identity in eval mode."""

    def __init__(self, p: float = 0.5, seed: int | np.random.Generator | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        self.p = check_float("Dropout", "p", p, 0.0, 1.0, max_inclusive=False)
        self.rng = rng if rng is not None else make_rng(type(self).__name__, seed)
        self._mask = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        if not self.training or self.p == 0:
            self._mask = None
            return x
        keep = 1.0 - self.p
        self._mask = (self.rng.random(np.shape(x)) < keep).astype(np.asarray(x).dtype) / keep
        return x * self._mask

    def backward(self, dy: ArrayLike) -> np.ndarray | None:
        return dy if self._mask is None else dy * self._mask


class LockedDropout(Module):
    """Variational ("locked") dropout (Gal & Ghahramani 2016), AWD-LSTM's ``LockedDropout``:
    one mask per sequence, the same at every time step; identity in eval mode.

    Masks are inverted-dropout factors (0 with probability ``p``, else ``1 / (1 - p)``) drawn
    from the module's generator (``seed``, or a shared ``rng``), the draw the layers'
    ``input_dropout`` / ``recurrent_dropout`` use.

    * On a whole sequence: ``y = drop(x)`` with ``x`` (T, N, D) (``batch_first``: (N, T, D);
      unbatched (T, D)) draws one (N, D) mask (kept in ``mask``) and multiplies every step by
      it; ``drop.backward(dy)`` multiplies by the same mask.
    * In a hand-written cell loop: ``m = drop.new_mask((N, H))`` once per sequence (ones in
      eval mode or with ``p = 0``), applied by the loop at every step, e.g. to the ``h`` that
      enters the next step (Gal's dropout on the recurrent connection; for LSTM the ``h``
      enters only ``W_hh h``), and the same ``m`` on the gradient on the way back::

        >>> import numpy as np, rnnkit.nn as nn
        >>> cell, drop = nn.LSTMCell(3, 4, dtype=np.float64, seed=0), nn.LockedDropout(0.25, seed=0)
        >>> x = np.ones((5, 2, 3))                                  # (T, N, input_size)
        >>> m = drop.new_mask((2, 4), np.float64)                   # one mask for the sequence
        >>> st, hs = None, []
        >>> for t in range(5):
        ...     st = cell(x[t], None if st is None else (st[0] * m, st[1]))
        ...     hs.append(st[0])
        >>> dstate = None                                           # backward, latest step first
        >>> for t in reversed(range(5)):
        ...     dh = np.ones((2, 4)) + (0 if dstate is None else dstate[0] * m)
        ...     _, dstate = cell.backward_step((dh, None if dstate is None else dstate[1]))

    Why a module and not Keras's ``dropout``/``recurrent_dropout`` arguments of each cell: a
    hand-written loop (a decoder, attention) decides itself what to drop (the input, the
    recurrent ``h``, the attention context, the output) and already routes its gradients step
    by step; one module with one explicit mask serves all of them, as AWD-LSTM's does in
    PyTorch. The layers (``nn.LSTM(..., recurrent_dropout=p)``) keep Keras's meaning.
    """

    def __init__(self, p: float = 0.5, batch_first: bool = False, seed: int | np.random.Generator | None = None,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.p = check_float("LockedDropout", "p", p, 0.0, 1.0, max_inclusive=False)
        self.batch_first = bool(batch_first)
        self.rng = rng if rng is not None else make_rng(type(self).__name__, seed)
        #: The (N, D) mask of the last training forward (None in eval mode or with p = 0).
        self.mask = None

    def new_mask(self, shape: tuple[int, ...], dtype: DTypeLike = np.float32) -> np.ndarray:
        """One mask of ``shape`` (e.g. (N, H)) for a sequence: dropout factors in training
        mode, ones in eval mode or with ``p = 0``."""
        shape = tuple(int(n) for n in np.atleast_1d(shape))
        dtype = check_dtype_arg("LockedDropout.new_mask", dtype)
        if not self.training or self.p == 0:
            return np.ones(shape, dtype)
        return dropout_mask(self.rng, shape, self.p, dtype)

    def _time_axis(self, x):
        if x.ndim == 3:
            return 1 if self.batch_first else 0
        if x.ndim == 2:
            return 0
        raise ShapeError(f"LockedDropout: expected a sequence of shape (T, N, D) "
                         f"({'(N, T, D) with batch_first' if self.batch_first else 'or (N, T, D) with batch_first=True'}) "
                         f"or, unbatched, (T, D), got shape {x.shape}. For one time step, draw "
                         f"a mask with new_mask((N, D)) and multiply by it.")

    def forward(self, x: ArrayLike) -> np.ndarray:
        """``x`` times one mask shared by all its time steps (see the class docstring)."""
        x = as_float_array("LockedDropout", "input", x)
        axis = self._time_axis(x)
        if not self.training or self.p == 0:
            self.mask = None
            return x
        shape = x.shape[:axis] + x.shape[axis + 1:]
        self.mask = self.new_mask(shape, x.dtype)
        return x * np.expand_dims(self.mask, axis)

    def backward(self, dy: ArrayLike) -> np.ndarray:
        """The gradient on the input: ``dy`` times the last forward's mask."""
        if self.mask is None:
            return dy
        return dy * np.expand_dims(self.mask, self._time_axis(np.asarray(dy)))

    def extra_repr(self) -> str:
        return f"p={self.p:g}" + (", batch_first=True" if self.batch_first else "")

    def __repr__(self):
        return f"LockedDropout({self.extra_repr()})"


class Sequential(Module):
    """Chain of single-input layers: forward in order, backward in reverse order.

    Parameter names are prefixed with the layer index, as in PyTorch (``0.weight``).
    """

    def __init__(self, *layers: Module):
        super().__init__()
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            self._children[str(i)] = layer

    def forward(self, x: ArrayLike) -> np.ndarray:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy: ArrayLike) -> np.ndarray | None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)
