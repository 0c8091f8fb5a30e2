"""What ``rnnkit train`` does differently on pairs (``source<TAB>target`` files, ``--dataset
dates`` / ``numbers``): the sequence-to-sequence defaults, the model, the validation exact
match and the translations it prints. The command line only dispatches here.

The defaults (:data:`PAIRS_DEFAULTS`, used for every option the command line does not give)
are the recipe that reaches over 99% exact match on held-out dates: a bidirectional LSTM
encoder of 64 units per direction, an LSTM decoder of 128 with additive attention and input
feeding, Adam at 3e-3, batches of 64, :data:`PAIRS_STEPS` steps.
"""

from __future__ import annotations

import sys

from .nn.seq2seq import Seq2Seq, Seq2SeqConfig
from .ops import LN2
from .translate import Translator

#: Options of ``rnnkit train`` whose default differs for pairs (the CharLM's: ``train_setup.TRAIN_DEFAULTS``).
PAIRS_DEFAULTS = dict(hidden_size=64, num_layers=1, dropout=0.0, embedding_size=32)
#: Steps of a pairs run when neither --steps nor --epochs is given.
PAIRS_STEPS = 500
#: Validation pairs decoded (greedy) at each evaluation for the exact match.
EVAL_PAIRS = 500


def apply_defaults(o: dict, given) -> dict:
    """``o`` (the run's options) with the pairs defaults for every option not in ``given``."""
    for k, v in PAIRS_DEFAULTS.items():
        if k not in given:
            o[k] = v
    if "steps" not in given and "epochs" not in given:
        o["steps"] = PAIRS_STEPS
    return o


def build_model(o: dict, data) -> Seq2Seq:
    """The :class:`Seq2Seq` of a run's options and its :class:`~rnnkit.data.PairsData`."""
    cfg = Seq2SeqConfig(src_vocab_size=len(data.src_vocab), tgt_vocab_size=len(data.tgt_vocab),
                        cell=o["cell"], decoder_cell=o.get("decoder_cell") or "",
                        hidden_size=o["hidden_size"], num_layers=o["num_layers"],
                        embedding_size=o["embedding_size"], attention=o.get("attention", "additive"),
                        dropout=o["dropout"], dtype=o["dtype"])
    return Seq2Seq(cfg, seed=o["seed"])


def describe(model: Seq2Seq, data, steps: int, out) -> str:
    """The run's one-line summary (printed when training starts)."""
    c = model.config
    enc = f"{'bi' if c.bidirectional else ''}{c.cell.upper()} {c.num_layers}x{c.hidden_size}"
    return (f"rnnkit train: seq2seq, encoder {enc}, decoder {c.decoder_kind.upper()} {c.key_size}, "
            f"attention {c.attention}; {model.num_parameters():,} parameters, vocab "
            f"{len(data.src_vocab)} -> {len(data.tgt_vocab)}, pairs mode; {data.origin}: "
            f"{data.summary}; {steps:,} steps -> {out}")


def exact_match(model: Seq2Seq, data, pairs, limit: int = EVAL_PAIRS):
    """Share of ``pairs[:limit]`` whose greedy output equals the target, and the outputs."""
    pairs = pairs[:limit]
    outputs = Translator(model, data.src_vocab, data.tgt_vocab).translate([s for s, _ in pairs])
    return sum(o.text == t for o, (_, t) in zip(outputs, pairs)) / max(len(pairs), 1), outputs


def on_eval(trainer, record, data, quiet: bool) -> dict:
    """The trainer's evaluation hook for pairs: bits per character, the validation exact
    match (``val_exact_match``), and a few translations on stderr unless ``quiet``."""
    extra = {}
    if "val_loss" in record:
        extra["val_bpc"] = record["val_loss"] / LN2
    if data.val_pairs:
        match, outputs = exact_match(trainer.model, data, data.val_pairs)
        extra["val_exact_match"] = match
        if not quiet:
            shown = "; ".join(f"{s!r} -> {o.text!r}" for (s, _), o in zip(data.val_pairs[:3], outputs))
            print(f"  val exact match {match:.4f}; {shown}", file=sys.stderr)
    return extra


def translation_lines(model: Seq2Seq, data, n: int) -> list:
    """``source -> output`` lines for ``n`` validation pairs (training pairs without any),
    each marked with the target when the output differs."""
    pairs = (data.val_pairs or data.train_pairs)[:n]
    outputs = Translator(model, data.src_vocab, data.tgt_vocab).translate([s for s, _ in pairs])
    return [f"{s} -> {o.text}" + ("" if o.text == t else f"   (target {t})")
            for (s, t), o in zip(pairs, outputs)]


def final_report(model: Seq2Seq, data) -> str:
    """The exact match line printed when a run ends."""
    if not data.val_pairs:
        return "no validation pairs (--val-frac 0): exact match not measured"
    match, _ = exact_match(model, data, data.val_pairs, limit=len(data.val_pairs))
    return f"validation exact match: {match:.4f} ({len(data.val_pairs):,} pairs)"


__all__ = ["PAIRS_DEFAULTS", "PAIRS_STEPS", "apply_defaults", "build_model", "describe",
           "exact_match", "on_eval", "translation_lines", "final_report"]
