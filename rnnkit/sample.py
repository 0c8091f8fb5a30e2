"""Generating text from a character-level language model.

Everything here works on a *step function* ``step(tokens (N,) int64, state) -> (logits (N, V),
state)``, so the same sampler drives rnnkit's own :class:`~rnnkit.nn.CharLM`
(``model.stepper().step``) and an ONNX Runtime session (:class:`rnnkit.interop.onnx_runtime.OnnxCharLM`),
and with the same seed both produce the same text.

Choosing the next token from ``logits`` (:func:`pick`):

* ``temperature``: p ~ softmax(logits / temperature); ``temperature == 0`` means greedy.
* ``top_k``: keep the k most probable tokens (k >= V keeps all; 0 or None = off).
* ``top_p``: nucleus - keep the smallest set of most probable tokens whose probability sums to
  at least ``top_p`` (``top_p = 1`` keeps all; ``top_p = 0`` keeps only the most probable).
* Draws use one uniform number per token from ``rng`` and the inverse CDF in float64.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._validate import as_float_array, check_float, check_int, check_shape
from .cells import map_state
from .errors import CheckpointError, ConfigError, DataError, ShapeError
from .ops import log_softmax


def check_sampling_args(temperature=1.0, top_k=None, top_p=None):
    """Validate the sampling settings once (``temperature >= 0``, ``top_k >= 0`` or None,
    ``top_p`` in [0, 1] or None) and return them as ``(temperature, top_k, top_p)``; raises
    :class:`~rnnkit.errors.ConfigError`."""
    temperature = check_float("sample", "temperature", temperature, 0.0)
    if top_k is not None:
        top_k = check_int("sample", "top_k", top_k, 0)
    if top_p is not None:
        top_p = check_float("sample", "top_p", top_p, 0.0, 1.0)
    return temperature, top_k, top_p


def _check_logits(who, logits) -> np.ndarray:
    """Logits as a float64 (N, V) array; refuses NaN/inf, complex, scalars, 3-D, V = 0."""
    z = as_float_array(who, "logits", logits, np.float64)
    if z.ndim == 1:
        z = z[None]
    check_shape(who, "logits", z, (("N", None), ("V", None)))
    return z


class Picker:
    """Chooses the next token of every row of ``logits`` (N, V) with settings checked once:
    ``Picker(temperature, top_k, top_p, greedy)(logits, rng) -> (N,) int64``. The samplers
    below make one per call and use it at every step; :func:`pick` is the one-off form.

    The draw is the inverse CDF of one uniform number per row from ``rng``, in float64.
    """

    def __init__(self, temperature=1.0, top_k=None, top_p=None, greedy=False):
        self.temperature, self.top_k, self.top_p = check_sampling_args(temperature, top_k, top_p)
        self.greedy = bool(greedy) or self.temperature == 0

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """The distribution (N, V) for finite float64 logits ``z`` (N, V)."""
        if self.greedy:
            p = np.zeros_like(z)
            p[np.arange(len(z)), z.argmax(axis=-1)] = 1.0
            return p
        with np.errstate(over="ignore"):      # a tiny temperature sends non-max entries to -inf
            z = (z - z.max(axis=-1, keepdims=True)) / self.temperature    # <= 0, max rows 0
        V = z.shape[-1]
        top_k, top_p = self.top_k, self.top_p
        if top_k and top_k < V:
            kth = np.partition(z, V - top_k, axis=-1)[:, V - top_k][:, None]
            z = np.where(z >= kth, z, -np.inf)
            z -= z.max(axis=-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)
        if top_p is not None and top_p < 1.0:
            order = np.argsort(-p, axis=-1, kind="stable")
            sp = np.take_along_axis(p, order, axis=-1)
            before = np.cumsum(sp, axis=-1) - sp                 # mass of strictly better tokens
            keep_sorted = before < top_p
            keep_sorted[:, 0] = True                             # always keep the best one
            keep = np.zeros_like(keep_sorted)
            np.put_along_axis(keep, order, keep_sorted, axis=-1)
            p = np.where(keep, p, 0.0)
            p /= p.sum(axis=-1, keepdims=True)
        return p

    def __call__(self, logits, rng: np.random.Generator, rows=None) -> np.ndarray:
        """One token per row of ``logits``. ``rows=(index, batch)`` when the rows are what is
        left of a batch of ``batch`` lines (``index``: their places in it): the draw still
        takes one uniform per line of the whole batch and uses these rows' own, so a line's
        draws do not depend on which other lines are still running."""
        z = np.asarray(logits)
        if z.ndim != 2 or z.dtype.kind != "f" or not np.isfinite(z.max()):
            z = _check_logits("pick", logits)      # says what is wrong (or converts)
        z = z.astype(np.float64)
        if self.greedy:
            return z.argmax(axis=-1)
        c = np.cumsum(self.probabilities(z), axis=-1)
        if rows is None:
            u = rng.random(len(c))                                                   # (N,)
        else:
            index, batch = rows
            if len(index) != len(c):
                raise ShapeError(f"Picker: expected one row index per row of logits ({len(c)}), "
                                 f"got {len(index)}.")
            u = rng.random(batch)[index]
        idx = (c < (u * c[:, -1])[:, None]).sum(axis=-1)
        return np.minimum(idx, c.shape[-1] - 1)


def probabilities(logits, temperature=1.0, top_k=None, top_p=None) -> np.ndarray:
    """Next-token distribution (N, V) in float64 after temperature, top-k and top-p.

    ``logits`` (V,) or (N, V), finite. The maximum is subtracted *before* dividing by the
    temperature, so a temperature near 0 tends to greedy (never inf - inf = NaN).
    """
    picker = Picker(temperature, top_k, top_p)
    return picker.probabilities(_check_logits("probabilities", logits))


def pick(logits, rng: np.random.Generator, temperature=1.0, top_k=None, top_p=None, greedy=False) -> np.ndarray:
    """Choose one token per row of ``logits`` (N, V); returns (N,) int64."""
    return Picker(temperature, top_k, top_p, greedy)(_check_logits("pick", logits), rng)


def _encode_prime(vocab, prime: str) -> np.ndarray:
    unknown = sorted({ch for ch in prime if ch not in vocab.stoi})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10])
        raise DataError(f"sample: the prime contains {len(unknown)} character(s) the model never saw: "
                        f"{shown}. Use only characters from its vocabulary (see `rnnkit info DIR`).")
    return vocab.encode(prime) if prime else np.zeros(0, np.int64)


def _feed(step, ids: np.ndarray, state, n: int):
    """Run the prime ``ids`` through the model for ``n`` parallel copies; returns last logits."""
    logits = None
    for t in ids:
        logits, state = step(np.full(n, t, np.int64), state)
    return logits, state


def sample_lines(step, vocab, num: int, rng, max_len: int = 64, prime: str = "", **pick_kw) -> list[str]:
    """Lines mode: ``num`` samples, each starting at the boundary token (then ``prime``) and
    ending at the boundary token (or after ``max_len`` characters).

    ``step(tokens, state) -> (logits, state)`` is any step function (a model's
    ``stepper().step``, :class:`rnnkit.interop.onnx_runtime.OnnxCharLM`'s ``step``); ``rng`` a NumPy
    generator; ``pick_kw``: ``temperature``, ``top_k``, ``top_p``, ``greedy``. The same
    generator state gives the same samples:

    >>> import numpy as np
    >>> from rnnkit import nn
    >>> from rnnkit.data import BOUNDARY, Vocab
    >>> vocab = Vocab.build(["anna", "bob"], specials=(BOUNDARY,))
    >>> model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=8, num_layers=1), seed=0)
    >>> step = model.stepper().step
    >>> names = sample_lines(step, vocab, 4, np.random.default_rng(0), max_len=6, temperature=0.8)
    >>> len(names), all(len(s) <= 6 and set(s) <= set("anbo") for s in names)
    (4, True)
    >>> names == sample_lines(step, vocab, 4, np.random.default_rng(0), max_len=6, temperature=0.8)
    True
    >>> all(s.startswith("b") for s in sample_lines(step, vocab, 3, np.random.default_rng(1), prime="b"))
    True
    """
    num = check_int("sample", "num", num, 1)
    max_len = check_int("sample", "max_len", max_len, 1)
    bos = vocab.bos_id
    if bos is None:
        raise ConfigError("sample_lines: the vocabulary has no boundary token; this is a stream-mode model.")
    choose = Picker(**pick_kw)
    prime_ids = _encode_prime(vocab, prime)
    logits, state = step(np.full(num, bos, np.int64), None)
    if len(prime_ids):
        logits, state = _feed(step, prime_ids, state, num)
    # Lines that have ended leave the batch (their rows of the state are dropped), so a step
    # costs what the lines still running need. Every step still draws one uniform per line of
    # the whole batch, so each line gets the draws it would get in the full batch (its numbers
    # equal the full batch's up to the round-off of products over fewer rows). A step function
    # whose state is not arrays with the batch on axis 1 (h, or a tuple (h, c), as rnnkit's and
    # ONNX's steppers return) runs the full batch to the end instead.
    toks = np.full((max_len, num), bos, np.int64)    # every draw; a line ends at its first bos
    live = np.arange(num)                            # the lines still in the batch, in order
    compact = _batch_on_axis1(state, num)
    done = np.zeros(num, bool)
    for t in range(max_len):
        new = choose(logits, rng, rows=(live, num))
        toks[t, live] = new
        done[live[new == bos]] = True
        if t == max_len - 1 or done.all():
            break
        running = ~done[live]
        if compact and not running.all():
            live, new = live[running], new[running]
            state = map_state(lambda a: a[:, running], state)
        logits, state = step(new, state)
    toks = toks[: t + 1]
    ends = np.where((toks == bos).any(axis=0), (toks == bos).argmax(axis=0), t + 1)
    return [prime + text for text in vocab.decode_rows(toks.T, ends.tolist())]


def _batch_on_axis1(state, n: int) -> bool:
    """True when ``state`` is an array, or a tuple of arrays, with ``n`` rows on axis 1 (the
    layout of rnnkit's states, (layers, N, H)), so rows can be dropped from it."""
    arrays = state if isinstance(state, tuple) else (state,)
    return all(isinstance(a, np.ndarray) and a.ndim >= 2 and a.shape[1] == n for a in arrays)


def _newline_id(vocab) -> int:
    """A newline's id (the natural start of a stream sample), else the first character's."""
    return vocab.stoi.get("\n", len(vocab.specials))


def iter_sample_lines(step, vocab, num: int, rng, max_len: int = 64, prime: str = "",
                      batch: int = 1000, **pick_kw):
    """:func:`sample_lines` for any ``num``: yields the samples one by one, generated ``batch``
    at a time, so memory stays bounded and output starts at once. The first ``batch`` samples
    equal ``sample_lines(step, vocab, batch, rng, ...)``."""
    num = check_int("sample", "num", num, 1)
    batch = check_int("sample", "batch", batch, 1)
    for start in range(0, num, batch):
        yield from sample_lines(step, vocab, min(batch, num - start), rng, max_len, prime, **pick_kw)


def iter_tokens(step, vocab, length: int, rng, prime_ids=None, chunk: int = 4096, **pick_kw):
    """The ids of :func:`sample_tokens`, yielded as arrays of at most ``chunk`` ids (the prime
    first): a long sample needs no memory for all of it and can be printed as it grows."""
    length = check_int("sample", "length", length, 1)
    if prime_ids is None or len(prime_ids) == 0:
        start = vocab.bos_id if vocab.bos_id is not None else _newline_id(vocab)
        prime_ids = np.array([start], np.int64)
    choose = Picker(**pick_kw)
    prime_ids = np.asarray(prime_ids, np.int64)
    yield prime_ids
    logits, state = _feed(step, prime_ids, None, 1)
    for first in range(0, length, chunk):
        out = np.empty(min(chunk, length - first), np.int64)
        for i in range(len(out)):
            tok = choose(logits, rng)
            out[i] = tok[0]
            logits, state = step(tok, state)
        yield out


def sample_tokens(step, vocab, length: int, rng, prime_ids=None, **pick_kw) -> np.ndarray:
    """One continuous sample of ``length`` ids after ``prime_ids`` (default: the boundary
    token in lines mode, else a newline); boundary tokens are kept, so in lines mode several
    lines follow each other. Returns prime + continuation ids (int64)."""
    return np.concatenate(list(iter_tokens(step, vocab, length, rng, prime_ids, **pick_kw)))


def iter_sample_stream(step, vocab, length: int, rng, prime: str = "", **pick_kw):
    """:func:`sample_stream` as pieces of text (the prime first), for printing as it grows."""
    prime_ids = _encode_prime(vocab, prime)
    if len(prime_ids) == 0:
        prime_ids = np.array([_newline_id(vocab)], np.int64)
    for ids in iter_tokens(step, vocab, length, rng, prime_ids, **pick_kw):
        yield vocab.decode(ids)


def print_stream(step: Callable, vocab: object, length: int, rng: np.random.Generator,
                 file: object = None, **kw: object) -> None:
    """Print a stream-mode sample to ``file`` (default: stdout) as it is generated
    (:func:`iter_sample_stream`; ``kw``: its ``prime`` and sampling arguments), one newline at
    the end: what ``rnnkit sample`` and the end of ``rnnkit train`` print."""
    import sys
    out = sys.stdout if file is None else file
    for piece in iter_sample_stream(step, vocab, length, rng, **kw):
        out.write(piece)
        out.flush()
    out.write("\n")


def sample_stream(step, vocab, length: int, rng, prime: str = "", **pick_kw) -> str:
    """Stream mode: ``length`` characters after ``prime`` - returns prime + continuation.
    Without a prime the sample starts after a newline (or the vocabulary's first character),
    which is shown as the first character.

    >>> import numpy as np
    >>> from rnnkit import nn
    >>> from rnnkit.data import Vocab
    >>> vocab = Vocab.build("hello world\\n")
    >>> model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=8, num_layers=1), seed=0)
    >>> text = sample_stream(model.stepper().step, vocab, 20, np.random.default_rng(0), prime="he")
    >>> text[:2], len(text), set(text) <= set("helo wrd\\n")
    ('he', 22, True)
    >>> greedy = [sample_stream(model.stepper().step, vocab, 5, np.random.default_rng(seed),
    ...                         greedy=True) for seed in (0, 9)]
    >>> greedy[0] == greedy[1]                          # greedy decoding draws nothing
    True
    """
    return "".join(iter_sample_stream(step, vocab, length, rng, prime, **pick_kw))


class Beam(NamedTuple):
    text: str
    logprob: float
    finished: bool


def _log_softmax(z):
    return log_softmax(np.asarray(z, dtype=np.float64))


def beam_search(step, vocab, beam: int, max_len: int = 64, prime: str = "", lines: bool = True) -> list[Beam]:
    """The ``beam`` most probable continuations of ``prime`` with their log-probabilities,
    most probable first.

    Lines mode: complete lines (ending at the boundary token, whose probability is included);
    stream mode: continuations of exactly ``max_len`` characters. The greedy continuation is
    always among the candidates, so the best beam is at least as probable as greedy decoding.
    """
    beam = check_int("sample", "beam", beam, 1)
    max_len = check_int("sample", "length", max_len, 1)
    prime_ids = _encode_prime(vocab, prime)
    bos = vocab.bos_id if lines else None
    if lines and bos is None:
        raise ConfigError("beam_search: lines=True needs a vocabulary with the boundary token.")
    start = ([bos] if lines else []) + list(prime_ids)
    if not start:
        start = [_newline_id(vocab)]
        prime = vocab.decode(start)
    logits, state = _feed(step, np.array(start, np.int64), None, 1)
    seqs = [[]]
    scores = np.zeros(1)
    finished: list[tuple[float, list]] = []
    for t in range(max_len):
        lp = _log_softmax(logits)                                         # (B, V)
        cand = scores[:, None] + lp                                       # (B, V)
        flat = cand.reshape(-1)
        V = lp.shape[1]
        order = np.argsort(-flat, kind="stable")[: 2 * beam]             # enough for B survivors
        new_seqs, new_scores, parents, toks = [], [], [], []
        for j in order:
            b, v = divmod(int(j), V)
            s = float(flat[j])
            if lines and v == bos:
                finished.append((s, seqs[b]))
            elif len(new_seqs) < beam:
                new_seqs.append(seqs[b] + [v])
                new_scores.append(s)
                parents.append(b)
                toks.append(v)
        if not new_seqs:
            break
        if lines and len(finished) >= beam:
            kth = heapq.nlargest(beam, [f[0] for f in finished])[-1]
            if max(new_scores) < kth:           # log-probs only fall: nothing active can win
                break
        seqs, scores = new_seqs, np.array(new_scores)
        rows = np.array(parents)
        state = map_state(lambda a: a[:, rows], state)
        if t == max_len - 1:
            break
        logits, state = step(np.array(toks, np.int64), state)
    if lines:
        results = [Beam(prime + vocab.decode(s), sc, True) for sc, s in finished]
        if len(results) < beam:           # hit max_len: report the best unfinished prefixes too
            results += [Beam(prime + vocab.decode(s), float(sc), False) for s, sc in zip(seqs, scores)]
    else:
        results = [Beam(prime + vocab.decode(s), float(sc), True) for s, sc in zip(seqs, scores)]
    g = greedy_with_logprob(step, vocab, max_len, start, lines)
    results.append(Beam(prime + g[0], g[1], g[2]))
    best = {}
    for r in results:
        key = (r.text, r.finished)
        if key not in best or r.logprob > best[key].logprob:
            best[key] = r
    ranked = sorted(best.values(), key=lambda r: (not r.finished, -r.logprob))
    return ranked[:beam]


def greedy_with_logprob(step, vocab, max_len, start_ids, lines=True):
    """Greedy decoding from ``start_ids``; returns (continuation text, log-prob, finished)."""
    logits, state = _feed(step, np.array(start_ids, np.int64), None, 1)
    out, total = [], 0.0
    bos = vocab.bos_id if lines else None
    for _ in range(max_len):
        lp = _log_softmax(logits)[0]
        v = int(lp.argmax())
        total += float(lp[v])
        if lines and v == bos:
            return vocab.decode(out), total, True
        out.append(v)
        logits, state = step(np.array([v], np.int64), state)
    return vocab.decode(out), total, not lines


def sequence_logprob(step, vocab, start_ids, continuation: str, end: bool) -> float:
    """Log-probability of ``continuation`` (plus the boundary token if ``end``) after
    ``start_ids`` - an independent check of beam-search scores."""
    ids = list(vocab.encode(continuation)) + ([vocab.bos_id] if end else [])
    logits, state = _feed(step, np.array(start_ids, np.int64), None, 1)
    total = 0.0
    for i, v in enumerate(ids):
        total += float(_log_softmax(logits)[0, v])
        if i < len(ids) - 1:
            logits, state = step(np.array([v], np.int64), state)
    return total


# ============================================================================== a request
#: The largest beam of :func:`beam_search` that :func:`sample_request` accepts.
MAX_BEAM = 1000
#: Characters generated in stream mode when no length is given (lines mode: the longest line).
DEFAULT_LENGTH = 500
#: Lines mode: no generated line is longer than this, whatever length is asked for.
MAX_LINE_LENGTH = 1000
#: Beam search over lines when no length is given: the longest hypothesis.
BEAM_LINE_LENGTH = 64


@dataclass(frozen=True)
class SampleRequest:
    """What to generate, checked (:func:`sample_request`): ``rnnkit sample``'s options."""

    num: int
    length: int | None               # None: DEFAULT_LENGTH (beam search over lines: BEAM_LINE_LENGTH)
    beam: int
    seed: int
    temperature: float
    top_k: int | None
    top_p: float | None
    greedy: bool

    def max_len(self, lines: bool) -> int:
        """The longest generation: a line in lines mode, the text in stream mode."""
        if self.beam:
            return BEAM_LINE_LENGTH if lines and self.length is None else (self.length or DEFAULT_LENGTH)
        length = self.length or DEFAULT_LENGTH
        return min(length, MAX_LINE_LENGTH) if lines else length

    def pick_kw(self) -> dict:
        """The keyword arguments of :func:`pick` (and the samplers that pass them on)."""
        return dict(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, greedy=self.greedy)


def sample_request(*, num: int = 10, length: int | None = None, beam: int = 0, seed: int = 0,
                   temperature: float = 1.0, top_k: int | None = 0, top_p: float | None = 1.0,
                   greedy: bool = False, flag: Callable[[str], str] = str) -> SampleRequest:
    """Check what is asked for before any model is loaded; every error names the argument as
    ``flag(name)`` spells it (``rnnkit sample`` passes ``--num``, ``--top-k``, ...)."""
    if num < 1 or (length is not None and length < 1):
        raise ConfigError(f"{flag('num')} and {flag('length')}: expected integers >= 1, got "
                          f"{flag('num')} {num} and {flag('length')} {length}.")
    if not 0 <= beam <= MAX_BEAM:
        raise ConfigError(f"{flag('beam')}: expected an integer in [0, {MAX_BEAM}] (0 = off), got {beam}.")
    if seed < 0:
        raise ConfigError(f"{flag('seed')}: expected an integer >= 0, got {seed}.")
    temperature, top_k, top_p = check_sampling_args(temperature, top_k or None, top_p)
    return SampleRequest(num, length, beam, seed, temperature, top_k, top_p, bool(greedy))


def finite_step(raw_step: Callable, source: str) -> Callable:
    """``raw_step`` whose logits must be finite: a model whose weights overflow is named
    (``source``) in one CheckpointError instead of sampling garbage."""
    def step(tokens, state):
        with np.errstate(over="ignore", invalid="ignore"):
            logits, state = raw_step(tokens, state)
        if not np.isfinite(logits).all():
            raise CheckpointError(f"{source}: the model computes NaN or infinite scores (its "
                                  f"weights overflow float32); the checkpoint is damaged or its "
                                  f"training diverged. Use another checkpoint (--latest, or an "
                                  f"earlier run).")
        return logits, state
    return step


def onnx_step(lm, vocab_size: int, source: str) -> Callable:
    """The step function of an :class:`~rnnkit.interop.onnx_runtime.OnnxCharLM` for a vocabulary
    of ``vocab_size`` (refused when the ONNX model's differs)."""
    if lm.vocab_size != vocab_size:
        raise CheckpointError(f"{source}: the ONNX model has vocab size {lm.vocab_size}, the "
                              f"checkpoint {vocab_size}; export it from this checkpoint.")

    def step(tokens, state):
        logits, state = lm.step(np.asarray(tokens, np.int64)[None, :], state)
        return np.asarray(logits).reshape(-1, vocab_size), state
    return step
