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

from pathlib import Path
from typing import NamedTuple, Optional

from .checkpoint import BEST_DIR, Checkpoint, load_checkpoint
from .data import Vocab
from .errors import CheckpointError, RnnkitError
from .nn.models import config_from_dict, model_from_state


class LoadedModel(NamedTuple):
    model: object                    # in eval mode
    vocab: Optional[Vocab]
    checkpoint: Checkpoint
    path: Path                       # the directory the weights came from (DIR or DIR/best)


def load_model(directory, *, latest: bool = False, need_charlm: bool = True) -> LoadedModel:
    """The model of a training run. ``DIR/best`` (the best validation weights) is used when it
    exists, unless ``latest``; ``need_charlm`` refuses other models and a missing vocabulary."""
    d = Path(directory)
    use = d / BEST_DIR if not latest and (d / BEST_DIR).is_dir() else d
    ck = load_checkpoint(use, load_optimizer=False)
    model, vocab = checked_model(ck, str(use), need_charlm)
    model.eval()
    return LoadedModel(model, vocab, ck, use)


def checked_model(ck: Checkpoint, src: str, need_charlm: bool = False):
    """``(model, vocab or None)`` of a loaded checkpoint, after checking that config.json,
    model.safetensors and vocab.json belong together."""
    try:
        cfg = config_from_dict(ck.config)
    except RnnkitError as e:
        raise CheckpointError(f"{src}/config.json: {e}") from None
    if need_charlm and cfg.model != "CharLM":
        raise CheckpointError(f"{src}: holds a {cfg.model} model; this command needs a CharLM.")
    if need_charlm and ck.vocab is None:
        raise CheckpointError(f"{src}: vocab.json is missing; it is needed to turn ids into text.")
    vocab = None
    if ck.vocab is not None:
        try:
            vocab = Vocab.from_json(ck.vocab)
        except RnnkitError as e:
            raise CheckpointError(f"{src}/vocab.json: {e}") from None
        size = getattr(cfg, "vocab_size", 0)
        if size and len(vocab) != size:
            raise CheckpointError(f"{src}: vocab.json has {len(vocab)} entries but config.json says "
                                  f"vocab_size={size}; the files do not belong together.")
    try:
        model = model_from_state(ck.config, ck.model_state)
    except RnnkitError as e:
        raise CheckpointError(f"{src}/model.safetensors does not match config.json: {e}") from None
    return model, vocab
