"""A trained model back from its checkpoint directory: the one loader behind ``rnnkit sample``,
``eval``, ``info``, ``export``, ``plot`` and ``explore``.

:func:`load_model` reads a checkpoint (:mod:`rnnkit.checkpoint`), checks that its files belong
together - the config is valid for its model class, the weights have exactly the names and
shapes that config describes (compared before the model is built), the vocabulary fits - and
builds the model without drawing random weights. Every mismatch is one
:class:`~rnnkit.errors.CheckpointError` naming the file.

Example::

    >>> loaded = load_model("runs/names")                     # doctest: +SKIP
    >>> loaded.model, loaded.vocab, loaded.path               # doctest: +SKIP
    (CharLM(...), Vocab(size=27, ...), PosixPath('runs/names/best'))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .checkpoint import BEST_DIR, CONFIG_FILE, MODEL_FILE, Checkpoint, load_checkpoint
from .data import BOUNDARY, Vocab
from .errors import CheckpointError, RnnkitError
from .nn.module import Module
from .nn.registry import built_with, config_from_dict
from .ops import LN2


class LoadedModel(NamedTuple):
    model: object                    # in eval mode
    vocab: Vocab | None
    checkpoint: Checkpoint
    path: Path                       # the directory the weights came from (DIR or DIR/best)


def load_model(directory: str | os.PathLike, *, latest: bool = False, need_charlm: bool = True) -> LoadedModel:
    """The model of a training run. ``DIR/best`` (the best validation weights) is used when it
    exists, unless ``latest``; ``need_charlm`` refuses other models and a missing vocabulary."""
    d = Path(directory)
    use = d / BEST_DIR if not latest and (d / BEST_DIR).is_dir() else d
    ck, model, vocab = load_checked(use, need_charlm=need_charlm)
    model.eval()
    return LoadedModel(model, vocab, ck, use)


def load_checked(directory: str | os.PathLike, *, need_charlm: bool = False) -> tuple[Checkpoint, Module, object]:
    """``(checkpoint, model, vocab or None)`` of the checkpoint in ``directory``: the config is
    validated by its class and compared with the weights' safetensors header (names, shapes,
    dtypes) before any weight is read, then the model is built from the weights without
    random initialisation (:func:`checked_model`)."""
    checked = {}                      # version -> its config object, validated once

    def check(config, specs, version):
        cfg = _config(config, version)
        if need_charlm and cfg.model != "CharLM":
            raise CheckpointError(f"{version}: holds a {cfg.model} model; this command needs a "
                                  f"CharLM.{_other_command(cfg.model)}")
        _check_shapes(cfg, {k: shape for k, (_, shape) in specs.items()}, version)
        checked[str(version)] = cfg
    ck = load_checkpoint(directory, load_optimizer=False, check_config=check)
    model, vocab = checked_model(ck, str(ck.path), need_charlm, checked.get(str(ck.path)))
    return ck, model, vocab


def checkpoint_info(directory: str | os.PathLike) -> dict:
    """What ``rnnkit info`` shows of the checkpoint in ``directory`` (its files checked to
    belong together, :func:`load_checked`): path, config, vocabulary size(s), number of
    parameters, steps trained, best validation loss (and in bits per character) and its step,
    the run's mode; None where the run did not record it."""
    ck, _, vocab = load_checked(directory, need_charlm=False)
    ts = ck.trainer_state or {}
    info = {
        "path": str(Path(directory)),
        "config": ck.config,
        "vocab_size": (None if vocab is None else [len(v) for v in vocab] if isinstance(vocab, tuple)
                       else len(vocab)),
        "parameters": int(sum(int(np.prod(v.shape)) for v in ck.model_state.values())),
        "steps_trained": ts.get("step"),
        "best_val_loss": ts.get("best_val_loss"),
        "best_step": ts.get("best_step"),
        "mode": ((ts.get("extra") or {}).get("cli") or {}).get("mode"),
    }
    if info["best_val_loss"] is not None:
        info["best_val_bits_per_char"] = info["best_val_loss"] / LN2
    return info


def _check_shapes(cfg, shapes: dict, src) -> None:
    try:
        cfg.check_shapes(shapes)
    except RnnkitError as e:
        raise CheckpointError(f"{src}/{MODEL_FILE} does not match {CONFIG_FILE}: {e}") from None


def _config(config: dict, src):
    try:
        return config_from_dict(config)
    except RnnkitError as e:
        raise CheckpointError(f"{src}/{CONFIG_FILE}: {e}") from None


def checked_model(ck: Checkpoint, src: str, need_charlm: bool = False, cfg: object = None) -> tuple[Module, object]:
    """``(model, vocab or None)`` of a loaded checkpoint, after checking that config.json,
    model.safetensors and vocab.json belong together. ``cfg``: the config object already
    validated and compared with the weights' header (:func:`load_checked`); without it both
    checks are made here."""
    header_checked = cfg is not None
    if cfg is None:
        cfg = _config(ck.config, src)
    if need_charlm and cfg.model != "CharLM":
        raise CheckpointError(f"{src}: holds a {cfg.model} model; this command needs a "
                              f"CharLM.{_other_command(cfg.model)}")
    if need_charlm and ck.vocab is None:
        raise CheckpointError(f"{src}: vocab.json is missing; it is needed to turn ids into text.")
    vocab = None
    if ck.vocab is not None and cfg.model == "Seq2Seq":
        vocab = _pair_vocabs(ck.vocab, cfg, src)
    elif ck.vocab is not None:
        try:
            vocab = Vocab.from_json(ck.vocab)
        except RnnkitError as e:
            raise CheckpointError(f"{src}/vocab.json: {e}") from None
        size = getattr(cfg, "vocab_size", 0)
        if size and len(vocab) != size:
            raise CheckpointError(f"{src}: vocab.json has {len(vocab)} entries but config.json says "
                                  f"vocab_size={size}; the files do not belong together.")
        _check_vocab_mode(vocab, ck, src)
    if not header_checked:
        _check_shapes(cfg, {k: v.shape for k, v in ck.model_state.items()}, src)
    try:
        model = built_with(cfg, ck.model_state)
    except RnnkitError as e:
        raise CheckpointError(f"{src}/{MODEL_FILE}: {e} The file is damaged.") from None
    return model, vocab


def _other_command(model: str) -> str:
    """A hint naming the command that fits a model of another kind."""
    return (" It was trained on pairs: use `rnnkit translate DIR` (or `rnnkit eval DIR "
            "pairs.tsv`)." if model == "Seq2Seq" else "")


def _pair_vocabs(obj, cfg, src: str):
    """The source and target vocabularies of a seq2seq checkpoint, checked against its config."""
    from .data import PairVocabs
    try:
        vocabs = PairVocabs.from_json(obj)
    except RnnkitError as e:
        raise CheckpointError(f"{src}/vocab.json: {e}") from None
    for side, v, size in (("source", vocabs.source, cfg.src_vocab_size),
                          ("target", vocabs.target, cfg.tgt_vocab_size)):
        if len(v) != size or v.eos_id is None:
            raise CheckpointError(f"{src}: the {side} vocabulary in vocab.json has {len(v)} entries "
                                  f"but config.json says {size} (with {BOUNDARY!r}); the files do "
                                  f"not belong together.")
    return vocabs


def _check_vocab_mode(vocab: Vocab, ck: Checkpoint, src: str) -> None:
    """A run's mode (saved by `rnnkit train` in trainer.json) fixes whether its vocabulary has
    the boundary token: a hand-edited vocab.json that adds or drops it would silently turn a
    lines model into a stream model or back."""
    mode = (((ck.trainer_state or {}).get("extra") or {}).get("cli") or {}).get("mode")
    has = vocab.bos_id is not None
    if mode in ("lines", "stream") and has != (mode == "lines"):
        raise CheckpointError(f"{src}/vocab.json: the run was trained in {mode} mode, but its "
                              f"vocabulary {'has' if has else 'lacks'} the boundary token "
                              f"{BOUNDARY!r}; the file was edited or does not belong to this run.")
