"""Non-recurrent layers with the rnnkit contract: Linear, Embedding, Dropout, Sequential.

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
