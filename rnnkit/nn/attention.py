"""Attention over a padded memory (the encoder's outputs), with exact hand-written backward.

A query ``q`` (N, Hq) - the decoder's state at one step - attends over the keys ``h_s``
(S, N, Hk) - the encoder's outputs, time-major - of which the first ``lengths[n]`` positions
of sequence ``n`` are real and the rest padding. The score of each position::

    additive (Bahdanau):   score_s = v . tanh(W_q q + W_k h_s)      W_q (A, Hq), W_k (A, Hk), v (1, A)
    general  (Luong):      score_s = q . (W h_s)                    W (Hq, Hk)
    dot      (Luong):      score_s = q . h_s                        (needs Hq == Hk)

then ``a = softmax(score)`` over the real positions (padded ones get weight exactly 0) and the
context ``c = sum_s a_s h_s`` (N, Hk). Parameters have the names of bias-free ``torch.nn.Linear``
layers: ``query_proj.weight`` (W_q), ``key_proj.weight`` (W_k, or W of ``general``) and
``v.weight``, so a torch module built from them loads the same weights.

The keys' side is computed once per sequence (:meth:`Attention.memory`: ``W_k h_s`` or
``W h_s``) and then one :meth:`Attention.step` per decoder step; backward mirrors it:
:meth:`Attention.step_backward` per step (newest first) adds to a :class:`MemoryGrad` and
:meth:`Attention.memory_backward` turns that into the keys' gradient once. ``forward`` /
``backward`` are the one-query layer contract (for :func:`rnnkit.gradcheck.gradcheck`)::

    >>> import numpy as np
    >>> att = Attention(4, 6, "additive", dtype=np.float64, seed=0)
    >>> q, keys = np.ones((2, 4)), np.ones((3, 2, 6))
    >>> context, weights = att(q, keys, lengths=np.array([3, 1]))
    >>> context.shape, weights[1].tolist()
    ((2, 6), [1.0, 0.0, 0.0])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._mode import is_grad_enabled
from .._validate import as_float_array, check_choice, check_dtype_arg, check_int, check_shape, make_rng, to_numpy
from ..errors import ConfigError, DTypeError, NoForwardError, ShapeError
from ..ops import softmax
from .module import Module

#: The attention kinds of :class:`Attention` (``none`` is the models' "no attention").
ATTENTION_KINDS = ("additive", "general", "dot")


def attention_parameter_shapes(kind: str, query_size: int, key_size: int, attention_size: int) -> dict:
    """Names and shapes of an :class:`Attention`'s parameters, from the sizes alone."""
    if kind == "additive":
        return {"query_proj.weight": (attention_size, query_size),
                "key_proj.weight": (attention_size, key_size), "v.weight": (1, attention_size)}
    if kind == "general":
        return {"key_proj.weight": (query_size, key_size)}
    return {}


def length_mask(who: str, lengths, S: int, N: int) -> np.ndarray | None:
    """(S, N) bool, True at real positions, from ``lengths`` (N,) ints in [1, S]; None for no
    padding (``lengths`` None or all equal to S)."""
    if lengths is None:
        return None
    arr = to_numpy(who, "lengths", lengths)
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{who}: expected lengths as integers (one per sequence), got dtype {arr.dtype}.")
    if arr.shape != (N,):
        raise ShapeError(f"{who}: expected lengths of shape (N={N},), got shape {arr.shape}.")
    if N and (arr.min() < 1 or arr.max() > S):
        raise ShapeError(f"{who}: expected every length in [1, S={S}], got min {arr.min()} and max "
                         f"{arr.max()}. Every source needs at least one position to attend to.")
    if np.all(arr == S):
        return None
    return np.arange(S)[:, None] < arr[None, :]


class Memory(NamedTuple):
    """What :meth:`Attention.memory` computes once per batch of sequences."""
    keys: np.ndarray                 # (S, N, Hk)
    proj: np.ndarray | None       # (S, N, A) additive W_k h_s, (S, N, Hq) general W h_s, None for dot
    mask: np.ndarray | None       # (S, N) bool, True at real positions; None: no padding


class MemoryGrad:
    """Gradients collected over the steps of one sequence: ``keys`` (S, N, Hk) directly and
    ``proj`` (the projected keys'), turned into the keys' gradient by
    :meth:`Attention.memory_backward`."""

    def __init__(self, memory: Memory):
        self.keys = np.zeros_like(memory.keys)
        self.proj = None if memory.proj is None else np.zeros_like(memory.proj)


class Attention(Module):
    """``context, weights = att(query (N, Hq), keys (S, N, Hk), lengths=None)``.

    ``kind``: ``"additive"``, ``"general"`` or ``"dot"`` (see the module docstring);
    ``attention_size`` A (additive only; default ``query_size``). Weights are (N, S).
    Initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as ``torch.nn.Linear``.
    """

    def __init__(self, query_size, key_size, kind="additive", attention_size=None, dtype=np.float32,
                 seed=None, rng=None):
        super().__init__()
        who = "Attention"
        self.kind = check_choice(who, "kind", kind, ATTENTION_KINDS)
        self.query_size = check_int(who, "query_size", query_size, 1)
        self.key_size = check_int(who, "key_size", key_size, 1)
        if kind == "dot" and self.query_size != self.key_size:
            raise ConfigError(f"{who}: dot attention needs query_size == key_size, got "
                              f"{query_size} and {key_size}. Use kind='general' (a learned W "
                              f"between them) or make the sizes equal.")
        self.attention_size = check_int(who, "attention_size",
                                        attention_size if attention_size else query_size, 1)
        self.dtype = check_dtype_arg(who, dtype)
        rng = rng if rng is not None else make_rng(who, seed)
        for name, shape in attention_parameter_shapes(self.kind, self.query_size, self.key_size,
                                                      self.attention_size).items():
            k = 1.0 / np.sqrt(shape[1])
            self._add_param(name, shape, self.dtype, lambda shp, k=k: rng.uniform(-k, k, shp))
        self._last = None

    # -- the keys' side, once per sequence ------------------------------------------------
    def memory(self, keys, lengths=None) -> Memory:
        """The keys (S, N, Hk), their projection and the padding mask, computed once."""
        p = self._params
        if self.kind == "additive":
            proj = keys @ p["key_proj.weight"].T                              # (S, N, A)
        elif self.kind == "general":
            proj = keys @ p["key_proj.weight"].T                              # (S, N, Hq)
        else:
            proj = None
        return Memory(keys, proj, length_mask("Attention", lengths, keys.shape[0], keys.shape[1]))

    def memory_backward(self, memory: Memory, grad: MemoryGrad) -> np.ndarray:
        """The keys' gradient (S, N, Hk) from a sequence's collected :class:`MemoryGrad`;
        adds the key projection's weight gradient."""
        dkeys = grad.keys
        if grad.proj is not None:
            W = self._params["key_proj.weight"]
            S, N, K = memory.keys.shape
            self._grads["key_proj.weight"] += grad.proj.reshape(S * N, -1).T @ memory.keys.reshape(S * N, K)
            dkeys = dkeys + grad.proj @ W
        return dkeys

    # -- one query ------------------------------------------------------------------------
    def step(self, query, memory: Memory):
        """``context (N, Hk), weights (N, S), cache`` for ``query`` (N, Hq); ``cache`` is None
        under :func:`rnnkit.no_grad`."""
        keys, proj, mask = memory
        p = self._params
        if self.kind == "additive":
            qp = query @ p["query_proj.weight"].T                              # (N, A)
            e = np.tanh(proj + qp[None])                                       # (S, N, A)
            score = (e @ p["v.weight"][0]).T                                   # (N, S)
        else:
            e = None
            src = proj if self.kind == "general" else keys                    # (S, N, Hq)
            score = np.einsum("snh,nh->ns", src, query)
        if mask is not None:
            score = np.where(mask.T, score, -np.inf)
        weights = softmax(score, axis=-1)                                      # (N, S)
        context = np.einsum("ns,snk->nk", weights, keys)                       # (N, Hk)
        cache = (query, weights, e) if is_grad_enabled() else None
        return context, weights, cache

    def step_backward(self, dcontext, dweights, cache, memory: Memory, grad: MemoryGrad):
        """``dquery`` (N, Hq) of one :meth:`step` given ``dcontext`` (N, Hk) and ``dweights``
        (N, S) or None; the keys' part goes into ``grad``, parameter gradients accumulate."""
        query, weights, e = cache
        keys, proj, _ = memory
        dw = np.einsum("nk,snk->ns", dcontext, keys)                           # (N, S)
        if dweights is not None:
            dw += dweights
        grad.keys += weights.T[:, :, None] * dcontext[None]                    # (S, N, Hk)
        dscore = weights * (dw - (weights * dw).sum(axis=-1, keepdims=True))   # (N, S); 0 at padding
        p, g = self._params, self._grads
        if self.kind == "additive":
            v = p["v.weight"][0]                                               # (A,)
            g["v.weight"][0] += np.einsum("ns,sna->a", dscore, e)
            dpre = dscore.T[:, :, None] * v * (1 - e * e)                      # (S, N, A)
            grad.proj += dpre
            dqp = dpre.sum(axis=0)                                             # (N, A)
            g["query_proj.weight"] += dqp.T @ query
            return dqp @ p["query_proj.weight"]
        src = proj if self.kind == "general" else keys
        target = grad.proj if self.kind == "general" else grad.keys
        target += dscore.T[:, :, None] * query[None]
        return np.einsum("ns,snh->nh", dscore, src)

    # -- the layer contract (one query) -------------------------------------------------
    def forward(self, query, keys, lengths=None):
        """``context (N, Hk), weights (N, S)`` of one query over ``keys``; see the class."""
        who = "Attention"
        query = as_float_array(who, "query", query, self.dtype)
        keys = as_float_array(who, "keys", keys, self.dtype)
        if keys.ndim != 3:
            raise ShapeError(f"{who}: expected keys of shape (S, N, key_size={self.key_size}), got "
                             f"shape {keys.shape}.")
        check_shape(who, "keys", keys, (("S", None), ("N", None), ("key_size", self.key_size)))
        check_shape(who, "query", query, (("N", keys.shape[1]), ("query_size", self.query_size)))
        memory = self.memory(keys, lengths)
        context, weights, cache = self.step(query, memory)
        self._last = (memory, cache) if cache is not None else None
        return context, weights

    def backward(self, dcontext=None, dweights=None):
        """``(dquery, dkeys)`` of the last :meth:`forward`; parameter gradients accumulate."""
        if self._last is None:
            raise NoForwardError("Attention.backward: no forward pass to differentiate; call the "
                                 "layer first (outside rnnkit.no_grad()).")
        memory, cache = self._last
        self._last = None
        if dcontext is None:
            dcontext = np.zeros((memory.keys.shape[1], self.key_size), self.dtype)
        grad = MemoryGrad(memory)
        dquery = self.step_backward(np.asarray(dcontext, self.dtype),
                                    None if dweights is None else np.asarray(dweights, self.dtype),
                                    cache, memory, grad)
        return dquery, self.memory_backward(memory, grad)
