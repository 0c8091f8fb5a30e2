"""Every rnnkit model by name, and the model a saved config describes.

:func:`config_from_dict` validates a ``config.to_dict()`` dict (a checkpoint's config.json)
with its class; :func:`model_from_config` builds a fresh model; :func:`model_from_state` builds
one holding given weights (names and shapes compared with the config first, no random
initialisation). The registry sits above the model modules (:mod:`rnnkit.nn.models`,
:mod:`rnnkit.nn.seq2seq`), so none of them imports another's registry entry.
"""

from __future__ import annotations

import numpy as np

from .._mode import no_init
from ..errors import ConfigError
from .models import (
    CharLM,
    CharLMConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    SequenceRegressor,
    SequenceRegressorConfig,
)
from .module import Module
from .seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = ["MODELS", "config_from_dict", "model_from_config", "model_from_state", "built_with"]

#: Every model class by its config's ``model`` name: (model class, config class).
MODELS = {"CharLM": (CharLM, CharLMConfig),
          "SequenceClassifier": (SequenceClassifier, SequenceClassifierConfig),
          "SequenceRegressor": (SequenceRegressor, SequenceRegressorConfig),
          "Seq2Seq": (Seq2Seq, Seq2SeqConfig)}



def config_from_dict(config: dict) -> object:
    """The validated config object of a ``config.to_dict()`` dict (e.g. a checkpoint's
    config.json): types, ranges and the total size are checked before anything is built."""
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise ConfigError("expected a model config: a dict with a string 'model' entry, "
                          f"got {type(config).__name__}.")
    name = config["model"]
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODELS)}.")
    return MODELS[name][1].from_dict(config)


def model_from_config(config: dict, seed: int | None = None) -> Module:
    """Build a freshly initialised model from ``config.to_dict()`` output."""
    cfg = config_from_dict(config)
    return MODELS[cfg.model][0](cfg, seed=seed)


def model_from_state(config: dict, state_dict: dict) -> Module:
    """The model ``config`` describes, holding the weights of ``state_dict``.

    The names and shapes of ``state_dict`` are compared with the config first (nothing is
    allocated for a mismatch), and the model is built without drawing random weights that
    would only be overwritten.
    """
    cfg = config_from_dict(config)
    cfg.check_shapes({k: np.shape(v) for k, v in state_dict.items()})
    return built_with(cfg, state_dict)


def built_with(cfg: object, state_dict: dict) -> Module:
    """The model of the validated config object ``cfg`` holding ``state_dict``, whose names and
    shapes the caller has compared with ``cfg.check_shapes`` (``rnnkit.load`` does it once,
    against the safetensors header, before any weight is read): built without random
    initialisation, the values copied without comparing names and shapes again (NaN/inf
    and values beyond the dtype are refused, as ``load_state_dict`` does)."""
    with no_init():
        model = MODELS[cfg.model][0](cfg)
    model._copy_values(f"{type(model).__name__}.load_state_dict", model.parameters(), state_dict,
                       shapes_checked=True)
    return model
