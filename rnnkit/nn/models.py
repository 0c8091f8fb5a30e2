"""Models built from the layers: CharLM, SequenceClassifier, SequenceRegressor.

Each model has a JSON-serialisable config dataclass (``config.to_dict()`` /
``Config.from_dict(d)``), ``forward``/``backward`` with the layer contract,
``parameters()``/``gradients()``/``state_dict()`` with PyTorch-style dotted names
(``embedding.weight``, ``rnn.weight_ih_l0``, ``head.weight``), and a ``loss`` method used
by :class:`rnnkit.train.Trainer`::

    res = model.loss(batch, carry)      # LossResult(loss, count, carry)
    model.backward_loss()               # gradients of res.loss into model.gradients()

Layouts are time-major: token ids (T, N), features (T, N, D); ``lengths`` (N,) right padding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._mode import no_grad
from .._validate import (
    FLOAT_DTYPES,
    Range,
    check_choice,
    check_dtype_arg,
    check_int,
    fmt_shape,
    key_mismatch,
    make_rng,
    short_list,
)
from ..cells import CELLS, cell_spec
from ..errors import ConfigError, ParameterKeyError, ShapeError
from ..ops import softmax
from .layers import Embedding, Linear, check_ids
from .losses import CrossEntropyLoss, MSELoss
from .module import Module
from .regularise import INITS, dropout_mask
from .rnn import MAX_LAYERS, MAX_PARAM_BYTES, check_param_bytes, recurrent_layer, rnn_parameter_shapes  # noqa: F401 (re-exported)


class LossResult(NamedTuple):
    loss: float          # mean loss of the batch
    count: int           # number of items (tokens, examples, values) it averages over
    carry: Any           # recurrent state to carry into the next chunk (stream mode) or None


#: The ranges of the recurrent stack's settings, shared by every model config.
STACK_RANGES = {"hidden_size": Range("int", 1, 65536), "num_layers": Range("int", 1, MAX_LAYERS),
                "dropout": Range("number", 0.0, 1.0, hi_open=True), "proj_size": Range("int", 0)}
#: The dtypes a model's parameters may have.
DTYPES = tuple(str(d) for d in FLOAT_DTYPES)


class _Config:
    """Mixin: dict round trip with type checks (hostile config.json files are refused).

    ``RANGES`` (a class attribute: setting -> :class:`~rnnkit._validate.Range`) is the one
    definition of each numeric setting's range; ``validate`` checks with it, and ``rnnkit
    train`` refuses its options and saved options with it (:mod:`rnnkit.train_setup`)."""

    model: str = ""
    RANGES: dict = STACK_RANGES

    def _check_ranges(self, who: str, *names: str) -> None:
        for name in names:
            self.RANGES[name].check(who, name, getattr(self, name))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"] = self.model
        return d

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}.")
        d = dict(d)
        model = d.pop("model", cls.model)
        if model != cls.model:
            raise ConfigError(f"{cls.__name__}: config is for model {model!r}, expected {cls.model!r}.")
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown config key(s) {short_list(map(repr, unknown))}; "
                              f"expected keys from {sorted(names)}.")
        for k, v in d.items():
            default = names[k].default
            if isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ConfigError(f"{cls.__name__}: expected {k} to be true/false, got {v!r}.")
            elif isinstance(default, int) or (default is dataclasses.MISSING and names[k].type in ("int", int)):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(f"{cls.__name__}: expected {k} to be an integer, got {v!r}.")
            elif isinstance(default, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{cls.__name__}: expected {k} to be a number, got {v!r}.")
            elif isinstance(default, str):
                if not isinstance(v, str):
                    raise ConfigError(f"{cls.__name__}: expected {k} to be a string, got {v!r}.")
        return cls(**d).checked()

    def checked(self) -> _Config:
        """``self``, validated (:meth:`validate`) unless it already passed with these very
        values: a config read from a file and then given to its model is checked once."""
        values = tuple(getattr(self, f.name) for f in fields(self))
        if self.__dict__.get("_valid_values") != values:
            self.validate()
            self.__dict__["_valid_values"] = values
        return self

    def _common(self, who):
        check_choice(who, "cell", self.cell, tuple(CELLS))
        self._check_ranges(who, "hidden_size", "num_layers", "dropout")
        check_dtype_arg(who, self.dtype)
        proj = self.RANGES["proj_size"].check(who, "proj_size", getattr(self, "proj_size", 0))
        if proj and not cell_spec(self.cell).projectable:
            raise ConfigError(f"{who}: expected proj_size=0 for cell {self.cell!r}, got proj_size="
                              f"{proj}: only an LSTM has a projection (LSTMP).")
        if proj >= self.hidden_size:
            raise ConfigError(f"{who}: expected proj_size < hidden_size={self.hidden_size}, got "
                              f"proj_size={proj} (PyTorch's rule); 0 means no projection.")

    @property
    def state_size(self) -> int:
        """Width of h and of the recurrent stack's outputs (``proj_size`` with a projection,
        else ``hidden_size``)."""
        return getattr(self, "proj_size", 0) or self.hidden_size

    def _check_size(self, who):
        """Refuse a config whose parameters would exceed :data:`rnnkit.nn.rnn.MAX_PARAM_BYTES`, computed
        from the sizes alone (nothing is allocated)."""
        check_param_bytes(who, self.num_parameters(), np.dtype(self.dtype).itemsize,
                          "hidden_size, num_layers, vocab_size, ...")

    def _rnn_shapes(self, input_size, bidirectional=False) -> dict:
        return {f"rnn.{k}": v for k, v in rnn_parameter_shapes(
            self.cell, input_size, self.hidden_size, self.num_layers, bidirectional,
            learn_initial_state=getattr(self, "learn_initial_state", False),
            proj_size=getattr(self, "proj_size", 0)).items()}

    def num_parameters(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.parameter_shapes().values()))

    def check_shapes(self, shapes: dict) -> None:
        """Compare ``shapes`` (name -> shape, e.g. from a safetensors header) with
        :meth:`parameter_shapes`; a missing, unexpected or wrongly shaped entry raises
        :class:`ParameterKeyError` / :class:`ShapeError` naming it."""
        want = self.parameter_shapes()
        mismatch = key_mismatch(want, shapes)
        if mismatch:
            raise ParameterKeyError(f"expected the weights of a {self.model} with cell {self.cell} "
                                    f"as the config describes, got {mismatch}.")
        for k, shape in want.items():
            if tuple(shapes[k]) != tuple(shape):
                raise ShapeError(f"expected weight {k} of shape {fmt_shape(shape)} as the config "
                                 f"describes, got {fmt_shape(tuple(shapes[k]))}.")


def _build_rnn(cfg, input_size, rng, bidirectional=False):
    import warnings
    options = {k: getattr(cfg, k) for k in REGULARISER_KEYS if k != "embedding_dropout"
               and hasattr(cfg, k)}
    if getattr(cfg, "proj_size", 0):                  # an LSTM's keyword only
        options["proj_size"] = cfg.proj_size
    with warnings.catch_warnings():      # a saved config's dropout with one layer: `rnnkit
        warnings.filterwarnings("ignore", message=_NO_EFFECT)    # train` warns when it is given
        return recurrent_layer(cfg.cell, input_size, cfg.hidden_size, num_layers=cfg.num_layers,
                               dropout=cfg.dropout, bidirectional=bidirectional,
                               dtype=np.dtype(cfg.dtype), seed=int(rng.integers(2**63)),
                               learn_initial_state=getattr(cfg, "learn_initial_state", False),
                               **options)


#: The regulariser and initialisation keys of a CharLMConfig (beyond PyTorch's ``dropout``),
#: each meaning what :class:`rnnkit.nn.RNNBase`'s keyword of that name means
#: (``embedding_dropout``: the CharLM's own); absent from older configs, which load with the
#: defaults (off).
REGULARISER_KEYS = ("input_dropout", "output_dropout", "recurrent_dropout", "weight_drop",
                    "embedding_dropout", "init", "forget_bias")
#: The regularisers that are dropout probabilities.
_DROPOUTS = ("input_dropout", "output_dropout", "recurrent_dropout", "weight_drop", "embedding_dropout")


_NO_EFFECT = r".*has no effect with num_layers=1"


# ============================================================================== CharLM
@dataclass
class CharLMConfig(_Config):
    """Character-level language model: (embedding or one-hot) -> recurrent stack -> linear.

    ``embedding_size = 0`` feeds one-hot vectors (char-rnn style) instead of an embedding.

    Regularisers and initialisations (all off by default; see :class:`rnnkit.nn.RNNBase`):
    ``input_dropout`` (locked, on every layer's input, the embeddings included),
    ``output_dropout`` (locked, on the top layer's output, before the head),
    ``recurrent_dropout`` (Keras's), ``weight_drop`` (DropConnect on ``weight_hh``),
    ``embedding_dropout`` (whole characters dropped for a batch: one factor per vocabulary
    entry, 0 or ``1 / (1 - p)``, on its embedding row or one-hot vector; AWD-LSTM's),
    ``init`` ('uniform' or 'orthogonal') and ``forget_bias`` (None, or B).
    """

    vocab_size: int = 0
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 2
    embedding_size: int = 32
    dropout: float = 0.0
    dtype: str = "float32"
    proj_size: int = 0                       # an LSTM's projection (LSTMP), as torch.nn.LSTM
    learn_initial_state: bool = False        # h0 (c0) parameters: rnn.h0, rnn.c0
    input_dropout: float = 0.0
    output_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    embedding_dropout: float = 0.0
    init: str = "uniform"
    forget_bias: float | None = None
    model = "CharLM"
    RANGES = {"vocab_size": Range("int", 2, 10_000_000), "embedding_size": Range("int", 0, 65536),
              **STACK_RANGES, **{k: STACK_RANGES["dropout"] for k in _DROPOUTS},
              "forget_bias": Range("number")}

    def validate(self) -> CharLMConfig:
        """``self`` after checking every setting (types, :attr:`RANGES`, the cell's options);
        :class:`~rnnkit.errors.ConfigError` otherwise."""
        who = "CharLMConfig"
        self._check_ranges(who, "vocab_size", "embedding_size")
        self._common(who)
        self._check_ranges(who, *_DROPOUTS)
        check_choice(who, "init", self.init, INITS)
        if self.forget_bias is not None:
            self._check_ranges(who, "forget_bias")
            if not CELLS[self.cell].forget_gate:
                raise ConfigError(f"{who}: expected forget_bias null for cell {self.cell!r} (it has "
                                  f"no forget gate), got {self.forget_bias!r}. Use cell 'lstm' "
                                  f"or 'gru', or drop forget_bias.")
        self._check_size(who)
        return self

    def parameter_shapes(self) -> dict:
        """Every parameter's name and shape (PyTorch's names), from the sizes alone."""
        V, E, H = self.vocab_size, self.embedding_size, self.state_size
        shapes = {"embedding.weight": (V, E)} if E > 0 else {}
        shapes.update(self._rnn_shapes(E if E > 0 else V))
        shapes.update({"head.weight": (V, H), "head.bias": (V,)})
        return shapes


class CharLM(Module):
    """``logits, state = lm(tokens (T, N), state=None, lengths=None)``; logits (T, N, V).

    Backward: ``(None, dstate0) = lm.backward(dlogits, dstate_n=None)`` (token ids get no
    gradient). Weights are named ``embedding.weight``, ``rnn.<PyTorch names>``,
    ``head.weight``, ``head.bias``, so ``model.safetensors`` loads into an equivalent
    ``torch.nn.Module`` unchanged (see :mod:`rnnkit.interop.torch`).
    """

    def __init__(self, config: CharLMConfig, seed: int | np.random.Generator | None = None):
        super().__init__()
        self.config = config.checked()
        rng = make_rng(type(self).__name__, seed)
        dt = np.dtype(config.dtype)
        V, E = config.vocab_size, config.embedding_size
        self._add_child("embedding", Embedding(V, E, dtype=dt, rng=rng) if E > 0 else None)
        self._add_child("rnn", _build_rnn(config, E if E > 0 else V, rng))
        self._add_child("head", Linear(config.state_size, V, dtype=dt, rng=rng))
        self.dtype = dt
        self._crit = CrossEntropyLoss()
        self._T_N = None
        self._char_mask = None          # (T, N, 1) embedding-dropout factors of the last forward
        self.last_char_factors = None   # (V,) the factors they came from

    def _embed(self, tokens):
        if self.embedding is not None:
            x = self.embedding(tokens)
        else:
            V = self.config.vocab_size
            x = np.zeros(tokens.shape + (V,), self.dtype)
            np.put_along_axis(x, tokens[..., None], 1, axis=-1)
        self._char_mask = None
        p = self.config.embedding_dropout
        if p and self.training:        # whole characters dropped for this batch (the rnn's generator)
            self.last_char_factors = dropout_mask(self.rnn.rng, (self.config.vocab_size,), p,
                                                  self.dtype)
            self._char_mask = self.last_char_factors[tokens][..., None]
            x = x * self._char_mask
        return x

    @property
    def last_masks(self) -> dict:
        """Masks of the last training forward by name, ``embedding`` (V,) (one factor per
        character, with ``embedding_dropout``) and the recurrent stack's
        (:attr:`rnnkit.nn.RNNBase.last_masks`)."""
        own = {"embedding": self.last_char_factors} if self.config.embedding_dropout else {}
        return {**own, **self.rnn.last_masks}

    def forward(self, tokens: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None, lengths: ArrayLike | None = None
                ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        tokens = check_ids("CharLM", "tokens", tokens, self.config.vocab_size)
        if tokens.ndim != 2:
            raise ShapeError(f"CharLM: expected tokens of shape (T, N), got shape {tokens.shape}. "
                             f"Use tokens[:, None] for a single sequence.")
        x = self._embed(tokens)                                             # (T, N, E)
        out, state = self.rnn(x, state, lengths)                            # (T, N, H)
        logits = self.head(out)                                             # (T, N, V)
        return logits, state

    def backward(self, dlogits: np.ndarray, dstate_n: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None
            ) -> tuple[None, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        dout = self.head.backward(dlogits)
        dx, dstate0 = self.rnn.backward(dout, dstate_n)
        if self.embedding is not None:
            self.embedding.backward(dx if self._char_mask is None else dx * self._char_mask)
        return None, dstate0

    def initial_state(self, batch_size: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Zeros of shape (num_layers, batch_size, hidden_size); ``(h, c)`` for LSTM."""
        return self.rnn.initial_state(batch_size)

    def stepper(self) -> CharLMStepper:
        """Fast next-character inference over the current weights (see :class:`CharLMStepper`)."""
        return CharLMStepper(self)

    def trace(self, tokens: ArrayLike, state: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray], list]:
        """``logits, state_n, acts``: a forward pass (no dropout, nothing kept for backward)
        that also returns the recurrent stack's activations (see
        :meth:`rnnkit.nn.RNNBase.trace`)."""
        tokens = check_ids("CharLM", "tokens", tokens, self.config.vocab_size)
        if tokens.ndim != 2:
            raise ShapeError(f"CharLM.trace: expected tokens of shape (T, N), got shape {tokens.shape}.")
        was = self.training
        self.eval()
        try:
            out, state_n, acts = self.rnn.trace(self._embed(tokens), state)
            with no_grad():
                logits = self.head(out)
        finally:
            self.train(was)
        return logits, state_n, acts

    def loss(self, batch: object, carry: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None) -> LossResult:
        """Mean cross-entropy (nats per predicted character) of ``batch.y`` given ``batch.x``.

        ``batch`` has ``x`` (T, N), ``y`` (T, N) with -100 at padding and optionally
        ``lengths`` (N,). ``carry`` is the state from the previous chunk (stream mode)."""
        lengths = getattr(batch, "lengths", None)
        logits, state = self.forward(batch.x, carry, lengths)
        loss = self._crit(logits, batch.y)
        return LossResult(loss, self._crit.last_count, state)

    def backward_loss(self) -> None:
        self.backward(self._crit.backward())


class CharLMStepper:
    """Next-character inference for a :class:`CharLM`, with the weights prepared once.

    ``logits, state = stepper.step(tokens (N,) int64, state)``; logits (N, V), ``state=None``
    starts from zeros, the returned state is fresh arrays. This is the one inference path of
    rnnkit's generation: the sampler, beam search, ``rnnkit sample``, the ONNX parity checks
    and the benchmarks all use it. Layer 0's input projection of every token is computed once,
    ``table[v] = embed(v) W_ih0^T + b_x`` (V, G*H), so a step starts with a row lookup; the
    rest is :class:`rnnkit.nn.rnn.LayerStepper` and the head. Token ids are checked (one
    (N,) array of integers in ``[0, V)``: a negative id would silently index the table from
    its end) at the cost of a min and a max; the state is trusted (it is the previous step's).
    The weights are a snapshot: take a new stepper after they change.
    """

    def __init__(self, model: CharLM):
        self.vocab_size = model.config.vocab_size
        self.layers = model.rnn.stepper()
        x = (model.embedding.parameters()["weight"] if model.embedding is not None
             else np.eye(self.vocab_size, dtype=model.dtype))                 # (V, E|V)
        self.table = self.layers.project(0, x)                                # (V, G*H)
        head = model.head.parameters()
        self.W_headT = np.ascontiguousarray(head["weight"].T)                  # (H, V)
        self.b_head = head["bias"].copy()
        self._rnn = model.rnn

    def initial_state(self, batch_size: int):
        return self._rnn.initial_state(batch_size)

    def step(self, tokens, state=None):
        """``logits (N, V), new_state`` of one step for ``tokens`` (N,) ids from ``state``
        (None: zeros)."""
        tokens = np.asarray(tokens)
        if (tokens.ndim != 1 or tokens.dtype.kind not in "iu" or not tokens.size
                or tokens.min() < 0 or tokens.max() >= self.vocab_size):
            tokens = check_ids("CharLMStepper.step", "tokens", tokens, self.vocab_size)
            if tokens.ndim != 1:
                raise ShapeError(f"CharLMStepper.step: expected tokens of shape (N,) (one id per "
                                 f"sequence), got shape {tokens.shape}.")
        if state is None:
            state = self.initial_state(tokens.shape[0])
        h, state = self.layers.step(tokens, state, table=self.table)
        logits = h @ self.W_headT
        logits += self.b_head
        return logits, state


# ============================================================================== classifier
@dataclass
class SequenceClassifierConfig(_Config):
    """Many-to-one classifier. ``vocab_size > 0``: token-id input through an embedding;
    otherwise float features of size ``input_size``. ``pooling``: 'last' valid state or 'mean'."""

    num_classes: int = 2
    vocab_size: int = 0
    input_size: int = 0
    embedding_size: int = 16
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    pooling: str = "last"
    dropout: float = 0.0
    dtype: str = "float32"
    proj_size: int = 0                       # an LSTM's projection (LSTMP), as torch.nn.LSTM
    learn_initial_state: bool = False        # h0 (c0) parameters: rnn.h0, rnn.c0
    model = "SequenceClassifier"
    RANGES = {"num_classes": Range("int", 2, 1_000_000), "vocab_size": Range("int", 0, 10_000_000),
              "input_size": Range("int", 0, 1_000_000), **STACK_RANGES}

    def validate(self) -> SequenceClassifierConfig:
        """``self`` after checking every setting; :class:`~rnnkit.errors.ConfigError` otherwise."""
        who = "SequenceClassifierConfig"
        self._check_ranges(who, "num_classes", "vocab_size", "input_size")
        if (self.vocab_size > 0) == (self.input_size > 0):
            raise ConfigError(f"{who}: set exactly one of vocab_size (token input) or input_size "
                              f"(feature input), got vocab_size={self.vocab_size}, input_size={self.input_size}.")
        check_int(who, "embedding_size", self.embedding_size, 1 if self.vocab_size else 0, 65536)
        check_choice(who, "pooling", self.pooling, ("last", "mean"))
        self._common(who)
        self._check_size(who)
        return self

    def parameter_shapes(self) -> dict:
        H, D = self.state_size, 2 if self.bidirectional else 1
        shapes = {}
        if self.vocab_size > 0:
            shapes["embedding.weight"] = (self.vocab_size, self.embedding_size)
        shapes.update(self._rnn_shapes(self.embedding_size if self.vocab_size > 0 else self.input_size,
                                       self.bidirectional))
        shapes.update({"head.weight": (self.num_classes, D * H), "head.bias": (self.num_classes,)})
        return shapes


class _ManyToOne(Module):
    """Shared pooling of a recurrent stack's output into one vector per sequence."""

    def _pool(self, out, state, lengths):
        """(T, N, D*H) -> (N, D*H) by the last valid state (top layer, both directions) or mean."""
        D = 2 if self.rnn.bidirectional else 1
        T, N, _ = out.shape
        self._pool_cache = (T, N, lengths)
        if self.config.pooling == "last":
            h = state[0] if self.rnn.spec.cell_state else state               # (L*D, N, H)
            top = h[-D:]                                                        # (D, N, H)
            return np.concatenate(list(top), axis=-1)                           # (N, D*H)
        L = np.full(N, T) if lengths is None else np.asarray(lengths)
        return out.sum(axis=0) / L[:, None].astype(out.dtype)                  # padding is 0

    def _unpool(self, dpooled):
        T, N, lengths = self._pool_cache
        H = self.rnn.state_size
        D = 2 if self.rnn.bidirectional else 1
        if self.config.pooling == "last":
            dh = np.zeros((self.rnn.num_layers * D, N, H), self.dtype)
            for d in range(D):
                dh[-D + d] = dpooled[:, d * H:(d + 1) * H]
            dstate = (dh, None) if self.rnn.spec.cell_state else dh
            return None, dstate
        L = np.full(N, T) if lengths is None else np.asarray(lengths)
        dout = np.broadcast_to(dpooled / L[:, None].astype(self.dtype), (T,) + dpooled.shape).copy()
        if lengths is not None:
            dout *= (np.arange(T)[:, None] < L[None, :])[:, :, None]
        return dout, None


class SequenceClassifier(_ManyToOne):
    """``logits (N, C) = clf(x, lengths=None)``; x is token ids (T, N) or features (T, N, D)."""

    def __init__(self, config: SequenceClassifierConfig, seed: int | np.random.Generator | None = None):
        super().__init__()
        self.config = config.checked()
        rng = make_rng(type(self).__name__, seed)
        dt = np.dtype(config.dtype)
        self.dtype = dt
        tokens = config.vocab_size > 0
        self._add_child("embedding", Embedding(config.vocab_size, config.embedding_size, dtype=dt, rng=rng)
                        if tokens else None)
        in_size = config.embedding_size if tokens else config.input_size
        self._add_child("rnn", _build_rnn(config, in_size, rng, config.bidirectional))
        D = 2 if config.bidirectional else 1
        self._add_child("head", Linear(D * config.state_size, config.num_classes, dtype=dt, rng=rng))
        self._crit = CrossEntropyLoss()

    def forward(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        if self.embedding is not None:
            x = check_ids("SequenceClassifier", "x", x, self.config.vocab_size)
            if x.ndim != 2:
                raise ShapeError(f"SequenceClassifier: expected token ids of shape (T, N), got {x.shape}.")
            x = self.embedding(x)
        out, state = self.rnn(x, None, lengths)
        return self.head(self._pool(out, state, lengths))                  # (N, C)

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        dout, dstate = self._unpool(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(dout, dstate)
        if self.embedding is not None:
            self.embedding.backward(dx)
            return None
        return dx

    def predict_proba(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        """Class probabilities (N, C), softmax of the logits, without keeping a cache."""
        with no_grad():
            return softmax(self.forward(x, lengths).astype(np.float64), axis=-1)

    def predict(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        """Most probable class (N,) without keeping a cache."""
        with no_grad():
            return self.forward(x, lengths).argmax(axis=-1)

    def loss(self, batch: object, carry: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None) -> LossResult:
        logits = self.forward(batch.x, getattr(batch, "lengths", None))
        loss = self._crit(logits, batch.y)
        return LossResult(loss, self._crit.last_count, None)

    def backward_loss(self) -> None:
        self.backward(self._crit.backward())


# ============================================================================== regressor
@dataclass
class SequenceRegressorConfig(_Config):
    """Regression from float sequences (T, N, input_size): ``many_to_many`` predicts
    (T, N, output_size) at every step; otherwise (N, output_size) from the pooled sequence."""

    input_size: int = 1
    output_size: int = 1
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    many_to_many: bool = False
    pooling: str = "last"
    dropout: float = 0.0
    dtype: str = "float32"
    proj_size: int = 0                       # an LSTM's projection (LSTMP), as torch.nn.LSTM
    learn_initial_state: bool = False        # h0 (c0) parameters: rnn.h0, rnn.c0
    model = "SequenceRegressor"
    RANGES = {"input_size": Range("int", 1, 1_000_000), "output_size": Range("int", 1, 1_000_000),
              **STACK_RANGES}

    def validate(self) -> SequenceRegressorConfig:
        """``self`` after checking every setting; :class:`~rnnkit.errors.ConfigError` otherwise."""
        who = "SequenceRegressorConfig"
        self._check_ranges(who, "input_size", "output_size")
        check_choice(who, "pooling", self.pooling, ("last", "mean"))
        self._common(who)
        self._check_size(who)
        return self

    def parameter_shapes(self) -> dict:
        H, D = self.state_size, 2 if self.bidirectional else 1
        shapes = self._rnn_shapes(self.input_size, self.bidirectional)
        shapes.update({"head.weight": (self.output_size, D * H), "head.bias": (self.output_size,)})
        return shapes


class SequenceRegressor(_ManyToOne):
    """``pred = reg(x (T, N, input_size), lengths=None)``; (T, N, out) or (N, out)."""

    def __init__(self, config: SequenceRegressorConfig, seed: int | np.random.Generator | None = None):
        super().__init__()
        self.config = config.checked()
        rng = make_rng(type(self).__name__, seed)
        dt = np.dtype(config.dtype)
        self.dtype = dt
        self._add_child("rnn", _build_rnn(config, config.input_size, rng, config.bidirectional))
        D = 2 if config.bidirectional else 1
        self._add_child("head", Linear(D * config.state_size, config.output_size, dtype=dt, rng=rng))
        self._crit = MSELoss()
        self._mask = None

    def forward(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        out, state = self.rnn(x, None, lengths)
        if self.config.many_to_many:
            return self.head(out)                                           # (T, N, out)
        return self.head(self._pool(out, state, lengths))                  # (N, out)

    def backward(self, dpred: np.ndarray) -> np.ndarray:
        dh = self.head.backward(dpred)
        if self.config.many_to_many:
            dx, _ = self.rnn.backward(dh, None)
        else:
            dout, dstate = self._unpool(dh)
            dx, _ = self.rnn.backward(dout, dstate)
        return dx

    def predict(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        """Predictions without keeping a cache."""
        with no_grad():
            return self.forward(x, lengths)

    def loss(self, batch: object, carry: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None) -> LossResult:
        lengths = getattr(batch, "lengths", None)
        pred = self.forward(batch.x, lengths)
        mask = None
        if self.config.many_to_many and lengths is not None:
            T = pred.shape[0]
            mask = (np.arange(T)[:, None] < np.asarray(lengths)[None, :])[:, :, None]
        loss = self._crit(pred, batch.y, mask)
        return LossResult(loss, self._crit.last_count, None)

    def backward_loss(self) -> None:
        self.backward(self._crit.backward())
