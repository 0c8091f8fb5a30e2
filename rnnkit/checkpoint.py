"""The checkpoint directory written by ``rnnkit train --out DIR``.

Layout::

    DIR/
      ckpt-000041/              previous complete version (kept as a fallback)
      ckpt-000042/              newest complete version  <- AUTHORITATIVE
        model.safetensors       weights: embedding.weight, rnn.weight_ih_l0, head.weight, ...
        config.json             model config: {"model": "CharLM", "hidden_size": 128, ...}
        vocab.json              optional JSON object (e.g. the character vocabulary)
        optimizer.safetensors   optional optimizer arrays; optimizer_meta as JSON in __metadata__
        trainer.json            optional trainer state (step, schedule, RNG state, history)
        trainer.safetensors     optional trainer arrays (the carried TBPTT state of a stream run)
        checkpoint.json         manifest: size + sha256 of every file above, written last
      LATEST                    text "ckpt-000042": a hint for people and tools
      model.safetensors         convenience copies of the newest version's model, config
      config.json               and vocab, for users and torch that read DIR/model.safetensors
      vocab.json                directly; the loader never reads them when versions exist
      metrics.jsonl             one JSON line per evaluation, appended (not versioned)
      best/                     optional: a checkpoint directory of its own (same layout)

Crash safety (survives SIGKILL at any instant; single writer per directory):

1. A save writes every file of the new version into a fresh hidden directory
   ``DIR/.tmp-ckpt-000042-<random>/``, each atomically and fsynced, the manifest last.
2. ``os.rename`` of that directory to ``DIR/ckpt-000042`` is the commit point: before it the
   version does not exist, after it it is complete. The directory is fsynced.
3. Only then are ``LATEST`` and the convenience copies replaced (each atomically) and older
   versions removed (renamed to a hidden name first, then deleted), keeping the newest two.
4. The loader takes the highest-numbered ``ckpt-*`` whose manifest verifies (sizes and
   sha256) and falls back to the next one with a warning, so a half-deleted, tampered or
   disk-damaged version is skipped. Hidden ``.tmp-*`` / ``.old-*`` leftovers of a killed save
   are ignored by the loader and removed by the next save.

A directory with no ``ckpt-*`` versions but a ``model.safetensors`` and ``config.json`` (a
"flat" checkpoint someone sent you, or one version directory itself) loads too, without the
manifest check.

Example::

    >>> from rnnkit import nn
    >>> model = nn.CharLM(nn.CharLMConfig(vocab_size=3, hidden_size=4), seed=0)
    >>> version = save_checkpoint("runs/a", model_state=model.state_dict(),
    ...                           config=model.config.to_dict(), vocab={"chars": "abc"},
    ...                           trainer_state={"step": 100})
    >>> ck = load_checkpoint("runs/a")
    >>> ck.trainer_state["step"], ck.config["model"]
    (100, 'CharLM')
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CheckpointError, ConfigError
from .io import (
    append_jsonl,
    atomic_copy,
    atomic_write_json,
    atomic_write_text,
    find_json_problem,
    fsync_dir,
    is_int,
    load_safetensors,
    load_safetensors_with_metadata,
    loads_json,
    read_json,
    read_jsonl,
    read_safetensors_header,
    save_safetensors,
    sha256_file,
)

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "has_checkpoint",
    "list_versions",
    "append_metrics",
    "read_metrics",
    "truncate_metrics",
    "clear_run",
    "check_not_inside_run",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer.json"
TRAINER_ARRAYS_FILE = "trainer.safetensors"
MANIFEST_FILE = "checkpoint.json"
METRICS_FILE = "metrics.jsonl"
LATEST_FILE = "LATEST"
BEST_DIR = "best"
_CONVENIENCE = (MODEL_FILE, CONFIG_FILE, VOCAB_FILE)
_ALL_FILES = (MODEL_FILE, CONFIG_FILE, VOCAB_FILE, OPTIMIZER_FILE, TRAINER_FILE, TRAINER_ARRAYS_FILE)
_FORMAT = "rnnkit-checkpoint"
_FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^ckpt-(\d{1,18})$")          # below 10**18: an int64
_MAX_VERSION = 10 ** 18 - 1
_OPT_META_KEY = "rnnkit.optimizer_meta"
_KEEP = 2

@dataclass
class Checkpoint:
    """Everything :func:`load_checkpoint` read from one checkpoint version.

    ``model_state``: name -> float32/float64 ndarray; ``config``: dict with a str ``"model"``;
    ``vocab``: dict or None; ``optimizer_state``: name -> ndarray or None; ``optimizer_meta``:
    JSON dict or None; ``trainer_state``: JSON dict or None; ``trainer_arrays``: name ->
    ndarray or None; ``path``: the version directory the data came from (e.g.
    ``DIR/ckpt-000042``).
    """

    model_state: dict
    config: dict
    vocab: dict | None = None
    optimizer_state: dict | None = None
    optimizer_meta: dict | None = None
    trainer_state: dict | None = None
    trainer_arrays: dict | None = None
    path: Path = field(default_factory=Path)


# ---------------------------------------------------------------------------------------------
# config checks
# ---------------------------------------------------------------------------------------------

def _check_model_config(config, source) -> dict:
    """The storage layer only checks that config.json names a model; the model's config class
    validates the rest (:func:`rnnkit.nn.registry.config_from_dict`) before anything is built."""
    if not isinstance(config, dict):
        raise CheckpointError(f"load_checkpoint: {source}: expected the config to be a JSON "
                              f"object, got {type(config).__name__}.")
    if not isinstance(config.get("model"), str) or not config["model"]:
        raise CheckpointError(f"load_checkpoint: {source}: expected a string \"model\" entry "
                              f"(e.g. \"CharLM\") in the config, got {config.get('model')!r:.100}.")
    return config


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------

def list_versions(directory: str | os.PathLike) -> list[Path]:
    """Committed version directories ``DIR/ckpt-N`` (complete or not), newest first."""
    directory = Path(directory)
    found = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for e in entries:
        m = _VERSION_RE.match(e.name)
        if m and e.is_dir(follow_symlinks=False):
            found.append((int(m.group(1)), Path(e.path)))
    return [p for _, p in sorted(found, reverse=True)]


def _own_versions(directory: str | os.PathLike) -> list[Path]:
    """The versions rnnkit committed (:func:`list_versions` whose manifest is rnnkit's and
    carries the directory's own number), newest first. Numbering and the keep-N rule count
    only these: a directory merely named ``ckpt-N`` (a stray copy, an output path) is neither
    numbered after nor deleted."""
    own = []
    for v in list_versions(directory):
        try:
            m = read_json(v / MANIFEST_FILE, what="checkpoint manifest")
        except CheckpointError:
            continue
        if isinstance(m, dict) and m.get("format") == _FORMAT and \
                m.get("version") == int(_VERSION_RE.match(v.name).group(1)):
            own.append(v)
    return own


def _check_state(who: str, name: str, state, floats_only: bool) -> dict:
    if not isinstance(state, dict) or (floats_only and not state):
        raise CheckpointError(f"{who}: expected {name} as a non-empty dict name -> np.ndarray, "
                              f"got {type(state).__name__}{'' if state else ' (empty)'}.")
    out = {}
    for k, v in state.items():
        if not isinstance(k, str) or not k:
            raise CheckpointError(f"{who}: expected {name} keys to be non-empty str, got {k!r}.")
        arr = np.asarray(v)
        if floats_only and arr.dtype not in (np.float32, np.float64):
            raise CheckpointError(f"{who}: expected {name}[{k!r}] as float32 or float64, got "
                                  f"{arr.dtype}. Convert it with .astype(np.float32).")
        out[k] = arr
    return out


def _check_json_dict(who: str, name: str, obj):
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{who}: expected {name} as a dict (JSON object) or None, got "
                              f"{type(obj).__name__}.")
    problem = find_json_problem(obj, name)
    if problem:
        raise CheckpointError(f"{who}: cannot store {name} as JSON: {problem[0]} is {problem[1]}. "
                              f"Use dicts with str keys, lists, str, int, finite float, bool, None.")
    return obj


def _remove_tree(path: Path) -> None:
    """Delete a version: rename it to a hidden name first so it stops being a version at once."""
    hidden = path.parent / f".old-{path.name}-{secrets.token_hex(4)}"
    try:
        os.rename(path, hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def _remove_debris(directory: Path) -> None:
    """Drop the leftovers of a killed save in ``directory``: hidden temporary or retired
    versions and temporary files. They are never versions, so this is safe (single writer)."""
    stale_files = tuple(f".{n}.tmp-" for n in (*_CONVENIENCE, LATEST_FILE, METRICS_FILE))
    for e in os.scandir(directory):
        if e.name.startswith((".tmp-ckpt-", ".old-ckpt-")) and e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        elif e.name.startswith(stale_files) and e.is_file(follow_symlinks=False):
            try:
                os.unlink(e.path)
            except OSError:
                pass


def save_checkpoint(directory: str | os.PathLike, *, model_state: dict, config: dict, vocab: dict | None = None,
                    optimizer_state: dict | None = None, optimizer_meta: dict | None = None,
                    trainer_state: dict | None = None, trainer_arrays: dict | None = None,
                    keep: int = _KEEP) -> Path:
    """Save a new checkpoint version under ``directory`` crash-safely; return its path.

    ``model_state``: name -> float32/float64 array (e.g. ``rnn.weight_ih_l0``); ``config``: JSON
    dict with a str ``"model"`` and its size fields; ``vocab``, ``optimizer_meta``,
    ``trainer_state``: JSON dicts or None; ``optimizer_state``: name -> array (any supported
    dtype, may be empty) or None; ``trainer_arrays``: name -> array, or None / empty for no
    ``trainer.safetensors``. ``keep`` (>= 1) newest versions
    are kept. The best-validation weights go in their own checkpoint directory:
    ``save_checkpoint(Path(DIR) / "best", model_state=..., config=..., vocab=...)``. See the module docstring
    for the scheme: the new version becomes visible all at once, by a directory rename, so a
    process killed at any instant leaves the previous version loadable. One writer at a time.
    """
    who = "save_checkpoint"
    directory = Path(directory)
    model_state = _check_state(who, "model_state", model_state, floats_only=True)
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise CheckpointError(f"{who}: expected config as a dict with a str \"model\" entry "
                              f"(e.g. {{\"model\": \"CharLM\", \"hidden_size\": 128}}), got "
                              f"{config!r:.200}.")
    _check_json_dict(who, "config", config)
    _check_json_dict(who, "vocab", vocab)
    _check_json_dict(who, "optimizer_meta", optimizer_meta)
    _check_json_dict(who, "trainer_state", trainer_state)
    if optimizer_state is not None:
        optimizer_state = _check_state(who, "optimizer_state", optimizer_state, floats_only=False)
    elif optimizer_meta is not None:
        optimizer_state = {}
    trainer_arrays = (_check_state(who, "trainer_arrays", trainer_arrays, floats_only=False)
                      if trainer_arrays else None)
    if not is_int(keep) or keep < 1:
        raise CheckpointError(f"{who}: expected keep >= 1, got {keep!r}.")

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"{who}: cannot create checkpoint directory {directory}: {e}.") from e
    if not directory.is_dir():
        raise CheckpointError(f"{who}: expected {directory} to be a directory, got a file.")

    # Leftovers of a killed save, here and in best/ (whose own save may be many steps away).
    _remove_debris(directory)
    if directory.name != BEST_DIR and (directory / BEST_DIR).is_dir() \
            and not (directory / BEST_DIR).is_symlink():
        _remove_debris(directory / BEST_DIR)

    versions = _own_versions(directory)
    number = int(_VERSION_RE.match(versions[0].name).group(1)) + 1 if versions else 1
    while os.path.lexists(directory / f"ckpt-{number:06d}"):     # a stray of that name
        number += 1
    if number > _MAX_VERSION:
        raise CheckpointError(f"{who}: the next version of {directory} would be number {number:,}, "
                              f"beyond the {_MAX_VERSION:,} rnnkit numbers; remove the stray "
                              f"ckpt-* directories there (or start a new run).")
    name = f"ckpt-{number:06d}"
    tmp = directory / f".tmp-{name}-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        save_safetensors(tmp / MODEL_FILE, model_state, metadata={"format": "np"})
        atomic_write_json(tmp / CONFIG_FILE, config)
        if vocab is not None:
            atomic_write_json(tmp / VOCAB_FILE, vocab)
        if optimizer_state is not None:
            meta = {"format": "np"}
            if optimizer_meta is not None:
                meta[_OPT_META_KEY] = json.dumps(optimizer_meta, sort_keys=True, allow_nan=False)
            save_safetensors(tmp / OPTIMIZER_FILE, optimizer_state, metadata=meta)
        if trainer_state is not None:
            atomic_write_json(tmp / TRAINER_FILE, trainer_state)
        if trainer_arrays is not None:
            save_safetensors(tmp / TRAINER_ARRAYS_FILE, trainer_arrays, metadata={"format": "np"})
        files = {}
        for fname in _ALL_FILES:
            if (tmp / fname).exists():
                size, digest = sha256_file(tmp / fname)
                files[fname] = {"size": size, "sha256": digest}
        atomic_write_json(tmp / MANIFEST_FILE, {"format": _FORMAT, "format_version": _FORMAT_VERSION,
                                                "version": number, "files": files})
        fsync_dir(tmp)
        final = directory / name
        os.rename(tmp, final)                         # <- commit point
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"{who}: cannot write checkpoint into {directory}: {e}.") from e
        raise
    fsync_dir(directory)

    # Everything below is convenience and cleanup; a crash here loses nothing.
    try:
        atomic_write_text(directory / LATEST_FILE, name + "\n")
        for fname in _CONVENIENCE:
            if (final / fname).exists():
                atomic_copy(final / fname, directory / fname, who)
            elif (directory / fname).exists():
                os.unlink(directory / fname)      # no stale vocab next to a new model
        fsync_dir(directory)
    except (OSError, CheckpointError) as e:
        raise CheckpointError(f"{who}: saved {final}, but could not update the convenience "
                              f"copies in {directory}: {e}.") from e
    for old in _own_versions(directory)[keep:]:
        _remove_tree(old)
    return final


#: Pictures ``rnnkit train`` / ``rnnkit plot`` draw into a run directory.
PICTURES = ("loss.png", "gates.png", "units.png")


def clear_run(directory: str | os.PathLike) -> list[str]:
    """Delete everything of a previous run that rnnkit wrote in ``directory`` - versions,
    ``best/``, ``LATEST``, the convenience copies, ``metrics.jsonl``, the pictures, the files of
    a flat checkpoint and leftovers of killed saves - so that nothing of it can be loaded,
    resumed or plotted any more (``rnnkit train --overwrite``). Files rnnkit does not write
    are left alone. Hold the run's :class:`~rnnkit.runlock.RunLock` while calling it.
    Versions disappear one at a time by a rename, so a crash midway leaves complete
    versions of the old run or none. Returns the names removed."""
    d = Path(directory)
    removed = []
    for version in list_versions(d):
        _remove_tree(version)
        removed.append(version.name)
    if (d / BEST_DIR).is_dir() and not (d / BEST_DIR).is_symlink():
        _remove_tree(d / BEST_DIR)
        removed.append(BEST_DIR + "/")
    names = (LATEST_FILE, *_CONVENIENCE, *_ALL_FILES, MANIFEST_FILE, METRICS_FILE, *PICTURES)
    for name in dict.fromkeys(names):
        p = d / name
        if p.is_file() or p.is_symlink():
            try:
                os.unlink(p)
            except OSError as e:
                raise CheckpointError(f"clear_run: cannot remove {p}: {e.strerror or e}.") from e
            removed.append(name)
    for e in os.scandir(d):
        if e.name.startswith((".tmp-ckpt-", ".old-ckpt-", ".old-best-")):
            shutil.rmtree(e.path, ignore_errors=True)
    left = [p.name for p in list_versions(d)] + ([BEST_DIR] if (d / BEST_DIR).exists() else [])
    if left:
        raise CheckpointError(f"clear_run: could not remove {', '.join(left)} from {d}; check "
                              f"the permissions and remove them by hand.")
    if removed:
        fsync_dir(d)
    return removed


def check_not_inside_run(path: str | os.PathLike, name: str = "path") -> None:
    """Refuse an output ``path`` (file or directory) that would write into a checkpoint
    version or ``best/`` of a run directory, or replace one of the files a run directory's
    loader reads (``model.safetensors``, ``config.json``, ``LATEST``, ...): a ConfigError
    naming ``name`` (``"--onnx"``). Every command that writes calls it before any work
    (``train --out``, ``export``, ``plot``, ``explore``); a path is refused whether or not
    the version directory exists yet (creating ``DIR/ckpt-000003/`` would make a fake
    version)."""
    p = Path(os.path.abspath(path))
    for a in (p, *p.parents):
        if (_VERSION_RE.match(a.name) or a.name == BEST_DIR) and a.parent != a and \
                has_checkpoint(a.parent):
            raise ConfigError(f"{name} {path}: that is inside {a}, a checkpoint of the run in "
                              f"{a.parent}; rnnkit never writes there (its files are verified by "
                              f"the manifest). Write beside it, in {a.parent}.")
    if p.name in (*_ALL_FILES, MANIFEST_FILE, LATEST_FILE, METRICS_FILE) and p.parent.is_dir() \
            and has_checkpoint(p.parent):
        raise ConfigError(f"{name} {path}: that would replace the run's own {p.name} in "
                          f"{p.parent}. Choose another file name, e.g. {p.parent / 'model.onnx'}.")


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------

def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a checkpoint version or a flat model + config."""
    d = Path(directory)
    return bool(list_versions(d)) or ((d / MODEL_FILE).is_file() and (d / CONFIG_FILE).is_file())


def _verify_manifest(version: Path) -> dict:
    manifest_path = version / MANIFEST_FILE
    manifest = read_json(manifest_path, what="checkpoint manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"load_checkpoint: {manifest_path}: expected a manifest with "
                              f"\"format\": \"{_FORMAT}\" and a \"files\" object, got "
                              f"{manifest!r:.200}.")
    if manifest.get("format_version") != _FORMAT_VERSION:
        raise CheckpointError(f"load_checkpoint: {manifest_path}: format_version "
                              f"{manifest.get('format_version')!r:.50} is not supported (this "
                              f"rnnkit reads {_FORMAT_VERSION}); upgrade rnnkit.")
    files = manifest["files"]
    for required in (MODEL_FILE, CONFIG_FILE):
        if required not in files:
            raise CheckpointError(f"load_checkpoint: {manifest_path}: the manifest does not "
                                  f"list {required}.")
    for fname, info in files.items():
        if fname not in _ALL_FILES:  # never follow a hostile name such as "../../etc/passwd"
            raise CheckpointError(f"load_checkpoint: {manifest_path}: unexpected file name "
                                  f"{fname!r:.100} in the manifest.")
        if not (isinstance(info, dict) and is_int(info.get("size"))
                and isinstance(info.get("sha256"), str)):
            raise CheckpointError(f"load_checkpoint: {manifest_path}: expected {{\"size\": int, "
                                  f"\"sha256\": str}} for {fname}, got {info!r:.200}.")
        path = version / fname
        if not path.exists():
            raise CheckpointError(f"load_checkpoint: {path} is missing (listed in the manifest).")
        size, digest = sha256_file(path, max_bytes=info["size"])
        if size != info["size"] or digest != info["sha256"]:
            raise CheckpointError(f"load_checkpoint: {path} does not match the manifest (size "
                                  f"{size} vs {info['size']}, sha256 differs: "
                                  f"{digest != info['sha256']}); the file is damaged or was "
                                  f"modified.")
    return files


def _load_version(version: Path, load_optimizer: bool, max_bytes, check_config=None) -> Checkpoint:
    cfg_path = version / CONFIG_FILE
    model_path = version / MODEL_FILE
    if not model_path.exists():
        raise CheckpointError(f"load_checkpoint: {model_path} is missing; the checkpoint is "
                              f"incomplete.")
    config = _check_model_config(read_json(cfg_path, what="config"), cfg_path)
    vocab = None
    vocab_path = version / VOCAB_FILE
    if vocab_path.exists() or vocab_path.is_symlink():
        vocab = read_json(vocab_path, what="vocab")
        if not isinstance(vocab, dict):
            raise CheckpointError(f"load_checkpoint: {vocab_path}: expected a JSON object, got "
                                  f"{type(vocab).__name__}.")
    specs, _ = read_safetensors_header(model_path, max_bytes=max_bytes)     # no data read yet
    if not specs:
        raise CheckpointError(f"load_checkpoint: {model_path} holds no tensors.")
    for k, (dtype, _) in specs.items():
        if dtype not in (np.float32, np.float64):
            raise CheckpointError(f"load_checkpoint: {model_path}: weight {k!r} has dtype "
                                  f"{dtype}; expected float32 or float64.")
    if check_config is not None:
        try:
            check_config(config, specs, version)
        except CheckpointError as e:
            raise _Mismatch(e) from None
    model_state = load_safetensors(model_path, max_bytes=max_bytes)
    trainer_state = None
    trainer_path = version / TRAINER_FILE
    if trainer_path.exists() or trainer_path.is_symlink():
        trainer_state = read_json(trainer_path, what="trainer state")
        if not isinstance(trainer_state, dict):
            raise CheckpointError(f"load_checkpoint: {trainer_path}: expected a JSON object, "
                                  f"got {type(trainer_state).__name__}.")
        _check_trainer_state(trainer_state, trainer_path)
    optimizer_state = optimizer_meta = None
    opt_path = version / OPTIMIZER_FILE
    if load_optimizer and (opt_path.exists() or opt_path.is_symlink()):
        optimizer_state, meta = load_safetensors_with_metadata(opt_path, max_bytes=max_bytes)
        if _OPT_META_KEY in meta:
            try:
                optimizer_meta = loads_json(meta[_OPT_META_KEY])
            except (ValueError, RecursionError) as e:
                raise CheckpointError(f"load_checkpoint: {opt_path}: optimizer metadata is not "
                                      f"valid JSON ({e}).") from None
            if not isinstance(optimizer_meta, dict):
                raise CheckpointError(f"load_checkpoint: {opt_path}: expected the optimizer "
                                      f"metadata to be a JSON object, got "
                                      f"{type(optimizer_meta).__name__}.")
    trainer_arrays = None
    arrays_path = version / TRAINER_ARRAYS_FILE
    if load_optimizer and (arrays_path.exists() or arrays_path.is_symlink()):
        trainer_arrays = load_safetensors(arrays_path, max_bytes=max_bytes)
    return Checkpoint(model_state=model_state, config=config, vocab=vocab,
                      optimizer_state=optimizer_state, optimizer_meta=optimizer_meta,
                      trainer_state=trainer_state, trainer_arrays=trainer_arrays, path=version)


#: Types of the trainer.json entries written by rnnkit.train.Trainer (checked when present):
#: "count" = integer >= 0, "loss?" = a finite number >= 0 (a loss) or null, "count?" =
#: integer >= 0 or null. (Numbers beyond float's range are refused by the JSON reader.)
TRAINER_STATE_TYPES = {
    "step": "count", "evals_since_best": "count", "tokens_seen": "count", "best_step": "count?",
    "best_val_loss": "loss?", "initial_loss": "loss?", "loss_ema": "loss?",
    "val_loss": "loss?", "history": list, "rng_states": dict, "extra": dict,
    "train_config": dict, "schedule": dict, "has_carry": bool,
}


def _check_trainer_state(state: dict, path) -> None:
    """Refuse a trainer.json whose known entries have the wrong type (CheckpointError)."""
    for key, kind in TRAINER_STATE_TYPES.items():
        if key not in state:
            continue
        v = state[key]
        if kind in ("count", "count?"):
            ok = (v is None and kind == "count?") or (is_int(v) and v >= 0)
            want = "an integer >= 0" + (" or null" if kind == "count?" else "")
        elif kind == "loss?":
            ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                               and math.isfinite(v) and v >= 0)
            want = "a finite number >= 0 (a loss) or null"
        else:
            ok = isinstance(v, kind)
            want = {list: "a list", dict: "a JSON object", bool: "true/false"}[kind]
        if not ok:
            raise CheckpointError(f"load_checkpoint: {path}: expected {key} to be {want}, got "
                                  f"{v!r:.80} ({type(v).__name__}). The file is damaged or was not "
                                  f"written by rnnkit.")
    if "history" in state and not all(isinstance(r, dict) for r in state["history"]):
        raise CheckpointError(f"load_checkpoint: {path}: expected history to be a list of JSON "
                              f"objects.")


class _Mismatch(Exception):
    """A version whose files are intact but do not belong together (``check_config``): it is
    reported, not skipped for an older version, like a damaged file would be."""

    def __init__(self, error: CheckpointError):
        super().__init__(error)
        self.error = error


def load_checkpoint(directory: str | os.PathLike, *, load_optimizer: bool = True, max_bytes: int | None = None,
                    check_config: Callable[[dict, dict, Path], None] | None = None) -> Checkpoint:
    """Load the newest complete checkpoint version in ``directory``.

    Accepts a run directory (``DIR`` with ``ckpt-*`` versions; the newest one whose manifest
    verifies wins, older ones are fallbacks with a :class:`UserWarning`), a single version
    directory, or a flat directory holding ``model.safetensors`` + ``config.json`` (+ optional
    ``vocab.json``, ``optimizer.safetensors``, ``trainer.json``, ``trainer.safetensors``).
    Checks: the directory exists, the files are present and uncorrupted, the config is a JSON
    object with a str ``"model"`` (its model class checks the rest), weights are
    float32/float64, vocab and trainer state are JSON objects. ``load_optimizer=False`` skips
    the files only resuming needs (``optimizer.safetensors``, ``trainer.safetensors``).
    ``max_bytes`` optionally bounds each safetensors file. ``check_config(config, specs,
    version)``, if given, is called with the config dict and the weights' header (name ->
    (dtype, shape), :func:`rnnkit.io.read_safetensors_header`) before any weight is read, and
    raises :class:`CheckpointError` when they do not belong together (:mod:`rnnkit.load` passes
    the model classes' check). Every problem raises :class:`CheckpointError` naming the file.
    """
    try:
        return _load_checkpoint(Path(directory), load_optimizer, max_bytes, check_config)
    except _Mismatch as e:
        raise e.error from None


def _load_checkpoint(d: Path, load_optimizer: bool, max_bytes, check_config) -> Checkpoint:
    if not d.is_dir():
        what = "a file, not a directory" if d.exists() else "nothing there"
        raise CheckpointError(f"load_checkpoint: no checkpoint at {d} ({what}); run "
                              f"`rnnkit train --out {d}` first, or pass the directory it wrote.")
    versions = list_versions(d)
    if not versions:
        if (d / MANIFEST_FILE).exists():          # a version directory itself
            _verify_manifest(d)
            return _load_version(d, load_optimizer, max_bytes, check_config)
        if (d / MODEL_FILE).exists() or (d / CONFIG_FILE).exists():
            return _load_version(d, load_optimizer, max_bytes, check_config)
        raise CheckpointError(f"load_checkpoint: no checkpoint at {d} (no ckpt-* version and no "
                              f"{MODEL_FILE}); run `rnnkit train --out {d}` first.")
    problems = []
    for version in versions:
        try:
            _verify_manifest(version)
            ck = _load_version(version, load_optimizer, max_bytes, check_config)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        if problems:
            warnings.warn(f"load_checkpoint: skipped {len(problems)} damaged or incomplete newer "
                          f"version(s) in {d} and loaded {version.name}: " + " | ".join(problems[:3])
                          + (f" | ... ({len(problems)} in all)" if len(problems) > 3 else ""),
                          UserWarning, stacklevel=3)
        return ck
    raise CheckpointError(f"load_checkpoint: no loadable checkpoint version in {d}; every "
                          f"version is damaged: " + " | ".join(problems[:3])
                          + (f" | ... ({len(problems)} in all)" if len(problems) > 3 else ""))


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------

def append_metrics(directory: str | os.PathLike, record: dict) -> None:
    """Append one evaluation record (a JSON dict, e.g. ``{"step": 100, "val_loss": 1.9}``) to
    ``DIR/metrics.jsonl`` durably (flush + fsync)."""
    if not isinstance(record, dict):
        raise CheckpointError(f"append_metrics: expected record as a dict, got "
                              f"{type(record).__name__}.")
    Path(directory).mkdir(parents=True, exist_ok=True)
    append_jsonl(Path(directory) / METRICS_FILE, record)


def read_metrics(directory: str | os.PathLike) -> list[dict]:
    """Return the records of ``DIR/metrics.jsonl`` in order (``[]`` when there is none).

    A torn last line (the trainer was killed mid-append) is skipped; records that are not JSON
    objects are dropped. A trainer killed after an evaluation but before the next checkpoint
    leaves records newer than the checkpoint; call :func:`truncate_metrics` when resuming.
    """
    return [r for r in read_jsonl(Path(directory) / METRICS_FILE, what="metrics")
            if isinstance(r, dict)]


def truncate_metrics(directory: str | os.PathLike, max_step: int) -> int:
    """Drop the records of ``DIR/metrics.jsonl`` whose ``"step"`` exceeds ``max_step``.

    Call it when resuming from a checkpoint at step ``max_step`` so evaluations done after that
    checkpoint (and lost with the killed process) are not recorded twice. The file is rewritten
    atomically (torn lines disappear too); records without an integer ``"step"`` are kept.
    Returns the number of records dropped.
    """
    path = Path(directory) / METRICS_FILE
    if not path.exists():
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torn lines are exactly what we are cleaning up
        records = read_metrics(directory)
    kept = [r for r in records if not (is_int(r.get("step")) and r["step"] > max_step)]
    text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in kept)
    atomic_write_text(path, text)
    return len(records) - len(kept)
