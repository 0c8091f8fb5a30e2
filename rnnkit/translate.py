"""Decoding a :class:`~rnnkit.nn.Seq2Seq`: greedy and beam search, batched, with alignments.

:class:`Translator` turns source strings into target strings with a trained model and its two
vocabularies (``rnnkit translate``); :func:`evaluate_pairs` measures exact match and bits per
character on (source, target) pairs (``rnnkit eval`` on a seq2seq run, and the validation
exact match ``rnnkit train`` prints)::

    >>> tr = Translator(model, src_vocab, tgt_vocab)                     # doctest: +SKIP
    >>> [t.text for t in tr.translate(["3 May 1979", "05/03/79"])]      # doctest: +SKIP
    ['1979-05-03', '1979-05-03']

Decoding starts from ``<eos>`` and stops at the first ``<eos>`` a hypothesis emits, or after
``max_length`` characters (the output-length guard: by default ``2 * longest source + 10``);
an output cut by the guard has ``finished=False``.

Beam search (``beam=K``) keeps the K best unfinished hypotheses of every source, all sources'
hypotheses in one batch (N*K rows), and ranks hypotheses by their length-normalised
log-probability ``sum log p / len``, ``len`` counting the final ``<eos>``. Each step expands
every live hypothesis by every character, keeps the 2K best candidates of each source, moves
those ending in ``<eos>`` to the source's finished list and continues with the K best others;
a source stops once it has K finished hypotheses (the usual early stop), or at the guard, and
returns its best finished one by normalised score. ``beam=1`` is greedy decoding.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validate import check_int
from .errors import ConfigError, DataError
from .nn.attention import Memory
from .nn.seq2seq import Seq2Seq
from .ops import LN2, log_softmax

#: Sources decoded together (one batch of N * beam rows at most this many rows).
DECODE_ROWS = 512


class Translation(NamedTuple):
    """One decoded output: its text, the attention weights of each output step over the
    source characters (``alignment`` (len(ids) + 1, len(source)): the last row is the step
    that emitted ``<eos>``; None without attention), its total log-probability, and whether
    it ended with ``<eos>`` (False: cut at the length guard)."""
    text: str
    ids: list
    alignment: np.ndarray | None
    logprob: float
    finished: bool


def _take_state(state, idx):
    return tuple(s[idx] for s in state) if isinstance(state, tuple) else state[idx]


def _take_memory(memory: Memory | None, idx) -> Memory | None:
    if memory is None:
        return None
    return Memory(memory.keys[:, idx], None if memory.proj is None else memory.proj[:, idx],
                  None if memory.mask is None else memory.mask[:, idx])


class Translator:
    """Greedy and beam decoding of a trained :class:`Seq2Seq` (see the module docstring), or of
    anything with its decoding interface (``encode``, ``decode_step``, ``attends``,
    ``config``): :class:`rnnkit.interop.onnx_runtime.OnnxSeq2Seq` runs the same search on an
    exported model in ONNX Runtime."""

    def __init__(self, model: Seq2Seq, src_vocab, tgt_vocab):
        if not isinstance(model, Seq2Seq) and not all(
                hasattr(model, a) for a in ("encode", "decode_step", "attends", "config")):
            raise ConfigError(f"Translator: expected a Seq2Seq model (or an OnnxSeq2Seq), got "
                              f"{type(model).__name__}.")
        self.model = model.eval() if isinstance(model, Seq2Seq) else model
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.eos = int(tgt_vocab.eos_id)

    def encode_sources(self, texts) -> list:
        """Source ids of each text; an empty text or a character the model never saw in
        training raises :class:`DataError` naming the text and the characters."""
        out = []
        known = set(self.src_vocab.chars)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"translate: expected source texts as strings, got "
                                f"{type(text).__name__} at position {i}.")
            if not text:
                raise DataError(f"translate: input {i + 1} is empty; expected a non-empty source text.")
            unseen = sorted(set(text) - known)
            if unseen:
                shown = ", ".join(repr(c) for c in unseen[:8])
                raise DataError(f"translate: input {i + 1} ({text[:60]!r}) has character(s) {shown} "
                                f"never seen in training; the model knows only the "
                                f"{len(known)} source characters of its training pairs.")
            out.append(self.src_vocab.encode(text))
        return out

    def translate(self, texts, beam: int = 1, max_length: int | None = None) -> list:
        """A :class:`Translation` for each text (same order)."""
        beam = check_int("translate", "beam", beam, 1, 1000)
        ids = self.encode_sources(list(texts))
        if max_length is not None:
            max_length = check_int("translate", "max_length", max_length, 1)
        per = max(1, DECODE_ROWS // beam)
        order = np.argsort([len(a) for a in ids], kind="stable")         # similar lengths together
        results = [None] * len(ids)
        for start in range(0, len(ids), per):
            chunk = order[start:start + per]
            for i, tr in zip(chunk, self._decode([ids[i] for i in chunk], beam, max_length)):
                results[i] = tr
        return results

    # -- decoding a batch ---------------------------------------------------------------------
    def _decode(self, src_ids, K, max_length):
        S = max(len(a) for a in src_ids)
        N = len(src_ids)
        src = np.zeros((S, N), np.int64)
        lengths = np.array([len(a) for a in src_ids], np.int64)
        for n, a in enumerate(src_ids):
            src[:len(a), n] = a
        limit = max_length if max_length is not None else 2 * S + 10
        enc = self.model.encode(src, lengths)
        if K == 1:
            return self._greedy(enc, lengths, limit)
        rows = np.repeat(np.arange(N), K)                                  # hypothesis -> source
        memory = _take_memory(enc.memory, rows)
        state = _take_state(enc.state, rows)
        score = np.where(np.arange(N * K) % K == 0, 0.0, -np.inf)          # one live copy at first
        tokens = np.full(N * K, self.eos, np.int64)
        hyps = [[] for _ in range(N * K)]
        aligns = [[] for _ in range(N * K)]
        finished = [[] for _ in range(N)]                                  # (norm, Translation)
        done = np.zeros(N, bool)
        feed = None
        V = self.model.config.tgt_vocab_size
        for _ in range(limit):
            logits, state, feed, weights = self.model.decode_step(tokens, state, feed, memory)
            logp = log_softmax(logits.astype(np.float64), axis=-1)         # (N*K, V)
            cand = (score[:, None] + logp).reshape(N, K * V)               # (N, K*V)
            top = np.argsort(-cand, axis=1, kind="stable")[:, :2 * K]      # (N, 2K)
            new_rows, new_tokens, new_score = [], [], []
            for n in range(N):
                live = 0
                for c in (top[n] if not done[n] else ()):
                    total = cand[n, c]
                    if live == K or not np.isfinite(total):
                        break
                    src_row, tok = n * K + c // V, int(c % V)
                    if tok == self.eos:
                        al = aligns[src_row] + ([weights[src_row]] if weights is not None else [])
                        finished[n].append((total / (len(hyps[src_row]) + 1), Translation(
                            "", hyps[src_row], _stack(al, lengths[n]), float(total), True)))
                        continue
                    new_rows.append(src_row)
                    new_tokens.append(tok)
                    new_score.append(total)
                    live += 1
                while live < K:                                            # pad with dead rows
                    new_rows.append(n * K)
                    new_tokens.append(self.eos)
                    new_score.append(-np.inf)
                    live += 1
                if len(finished[n]) >= K:
                    done[n] = True
            idx = np.asarray(new_rows)
            new_hyps = [hyps[r] + [tok] for r, tok in zip(new_rows, new_tokens)]
            if weights is not None:
                aligns = [aligns[r] + [weights[r]] for r in new_rows]
            hyps = new_hyps
            score = np.asarray(new_score)
            score[np.repeat(done, K)] = -np.inf
            tokens = np.asarray(new_tokens, np.int64)
            state = _take_state(state, idx)
            feed = feed[idx]
            if done.all() or not np.isfinite(score).any():
                break
        out = []
        for n in range(N):
            cands = list(finished[n])
            if not cands:                                                  # the guard cut them all
                for r in range(n * K, n * K + K):
                    if np.isfinite(score[r]):
                        cands.append((score[r] / max(len(hyps[r]), 1), Translation(
                            "", hyps[r], _stack(aligns[r], lengths[n]) if self.model.attends else None,
                            float(score[r]), False)))
            best = max(cands, key=lambda f: f[0])[1]
            out.append(best._replace(text=self.tgt_vocab.decode(best.ids),
                                     alignment=best.alignment if self.model.attends else None))
        return out


    def _greedy(self, enc, lengths, limit):
        """Beam 1, vectorised: the most probable character at every step."""
        N = len(lengths)
        state, memory, feed = enc.state, enc.memory, None
        tokens = np.full(N, self.eos, np.int64)
        out = np.full((limit, N), self.eos, np.int64)
        total = np.zeros(N)
        ended = np.full(N, -1)                                             # step of the <eos>
        aligns = []
        for t in range(limit):
            logits, state, feed, weights = self.model.decode_step(tokens, state, feed, memory)
            logp = log_softmax(logits.astype(np.float64), axis=-1)
            tokens = logp.argmax(axis=-1)
            live = ended < 0
            total[live] += logp[live, tokens[live]]
            out[t] = tokens
            if weights is not None:
                aligns.append(weights)
            ended[live & (tokens == self.eos)] = t
            if (ended >= 0).all():
                break
        steps = len(out[:t + 1])
        A = np.stack(aligns) if aligns else None                           # (steps, N, S)
        result = []
        for n in range(N):
            k = ended[n] if ended[n] >= 0 else steps
            ids = out[:k, n].tolist()
            al = None if A is None else A[:min(k + 1, steps), n, :lengths[n]]
            result.append(Translation(self.tgt_vocab.decode(ids), ids, al, float(total[n]), ended[n] >= 0))
        return result


def _stack(rows, length):
    if not rows:
        return None
    return np.stack(rows)[:, :length]


def evaluate_pairs(model: Seq2Seq, pairs, src_vocab, tgt_vocab, beam: int = 1) -> dict:
    """``{"exact_match", "bits_per_char", "pairs"}`` of a model on (source, target) pairs:
    the share of sources whose decoded output equals the target exactly, and the
    teacher-forced cross-entropy of the targets (``<eos>`` included) in bits per character."""
    from ._mode import no_grad
    from .data.pairs import PairsDataset
    pairs = list(pairs)
    tr = Translator(model, src_vocab, tgt_vocab)
    tr.encode_sources([s for s, _ in pairs])                               # unseen characters
    unseen = sorted({c for _, t in pairs for c in t} - set(tgt_vocab.chars))
    if unseen:
        raise DataError(f"eval: the targets have character(s) {', '.join(map(repr, unseen[:8]))} "
                        f"the model cannot produce (not in its training targets).")
    outputs = tr.translate([s for s, _ in pairs], beam=beam)
    exact = sum(o.text == t for o, (_, t) in zip(outputs, pairs)) / len(pairs)
    data = PairsDataset(pairs, src_vocab, tgt_vocab)
    total, count = 0.0, 0
    with no_grad():
        for idx in data.index_batches():
            res = model.loss(data.get_batch(idx))
            total += res.loss * res.count
            count += res.count
    return {"exact_match": exact, "bits_per_char": total / max(count, 1) / LN2, "pairs": len(pairs)}


def load_translator(directory, latest: bool = False) -> Translator:
    """The :class:`Translator` of a seq2seq run directory (its best weights unless
    ``latest``); a run of another model raises :class:`CheckpointError` naming the command
    that fits it."""
    from .load import load_model
    return translator_of(load_model(directory, latest=latest, need_charlm=False))


def translator_of(loaded) -> Translator:
    """The :class:`Translator` of a :func:`rnnkit.load.load_model` result (see
    :func:`load_translator`)."""
    from .errors import CheckpointError
    if not isinstance(loaded.model, Seq2Seq):
        hint = (" Use `rnnkit sample DIR` to generate from a CharLM." if
                type(loaded.model).__name__ == "CharLM" else "")
        raise CheckpointError(f"{loaded.path}: holds a {type(loaded.model).__name__} model; "
                              f"`rnnkit translate` needs a seq2seq run trained on pairs (`rnnkit "
                              f"train pairs.tsv` or `rnnkit train --dataset dates`).{hint}")
    if loaded.vocab is None:
        raise CheckpointError(f"{loaded.path}: vocab.json is missing; it is needed to turn text "
                              f"into ids and back.")
    tr = Translator(loaded.model, loaded.vocab.source, loaded.vocab.target)
    tr.path = loaded.path
    return tr


def run_pairs(ck, count: int) -> list:
    """Up to ``count`` (source, target) validation pairs of a seq2seq run's checkpoint ``ck``
    (the run directory's, which holds the trainer state),
    rebuilt from the options `rnnkit train` saved (the same split); the training pairs when it
    held none out; ``[]`` when the data cannot be rebuilt (a pairs file moved away)."""
    from .data import load_pairs_data
    from .datasets import corpus
    from .errors import RnnkitError
    cli = ((ck.trainer_state or {}).get("extra") or {}).get("cli") or {}
    if not (cli.get("file") or cli.get("dataset")):
        return []                                  # not trained by `rnnkit train`: unknown data
    try:
        task = None if cli.get("file") else corpus(cli["dataset"])       # a built-in pair task
        data = load_pairs_data(cli.get("file"), task and task.name, pairs=task and task.load(),
                               encoding=cli.get("encoding", "utf-8"), val_frac=cli.get("val_frac", 0.1),
                               seed=cli.get("seed", 0))
    except (RnnkitError, OSError):
        return []
    return list((data.val_pairs or data.train_pairs)[:count])


def onnx_translator(translator: Translator, onnx_model) -> Translator:
    """A :class:`Translator` decoding with ``onnx_model`` (an
    :class:`rnnkit.interop.onnx_runtime.OnnxSeq2Seq`) and the vocabularies of ``translator``
    (a run's, :func:`load_translator`); an ONNX model exported from another run (other
    vocabularies or sizes) is one :class:`ConfigError`."""
    import json
    mine = json.dumps({"source": translator.src_vocab.to_json(), "target": translator.tgt_vocab.to_json()})
    theirs = onnx_model.metadata.get("vocab")
    a, b = translator.model.config, onnx_model.config
    if theirs is not None and json.loads(theirs) != json.loads(mine) or (
            (a.src_vocab_size, a.tgt_vocab_size) != (b.src_vocab_size, b.tgt_vocab_size)):
        raise ConfigError(f"--onnx {onnx_model.path}: exported from another run (its vocabularies "
                          f"differ from those of {getattr(translator, 'path', 'this run')}); export "
                          f"this run with `rnnkit export DIR --onnx FILE`.")
    tr = Translator(onnx_model, translator.src_vocab, translator.tgt_vocab)
    tr.path = onnx_model.path
    return tr


def eval_pairs_file(translator: Translator, path, encoding: str = "utf-8", beam: int = 1) -> list:
    """The lines ``rnnkit eval DIR pairs.tsv`` prints for a seq2seq run: the checkpoint, the
    number of pairs, ``exact_match: X`` and ``bits_per_char: Y``."""
    from .data.pairs import read_pairs
    pairs = read_pairs(path, encoding)
    res = evaluate_pairs(translator.model, pairs, translator.src_vocab, translator.tgt_vocab, beam=beam)
    return [f"checkpoint: {getattr(translator, 'path', '-')}", f"pairs: {res['pairs']}",
            f"exact_match: {res['exact_match']:.6f}", f"bits_per_char: {res['bits_per_char']:.6f}"]
