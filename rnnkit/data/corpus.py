"""From a text (a file, or a built-in corpus) to training and validation batch sources.

:func:`load_text_data` is the whole data pipeline of ``rnnkit train``: read the text, choose
lines or stream mode, build the vocabulary, hold out validation data, and wrap both parts in
batch sources (:mod:`rnnkit.data.sources`). The command line only passes its options here.
Stream-mode files too large to read whole are encoded block by block into a compact id file
(:mod:`rnnkit.data.encode`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .encode import ids_dtype, is_large_text, iter_text, load_encoded
from .lines import LinesDataset
from .pairs import is_pairs_text, load_pairs_data, parse_pairs
from .sources import LinesSource, StreamSource
from .splits import VAL_FRAC, split_stream, train_val_split
from .stream import StreamDataset
from .text import MAX_LINE_CHARS, check_line_lengths, detect_mode, dropped_chars, read_text, split_lines
from .vocab import BOUNDARY, Vocab

#: The values of ``rnnkit train --mode``.
MODES = ("auto", "lines", "stream", "pairs")


@dataclass
class TextData:
    """A text made ready for training (see :func:`load_text_data`)."""

    name: str                        # the corpus name or the file's stem (names runs/<name>)
    origin: str                      # the file path, or the built-in corpus name
    mode: str                        # "lines" or "stream"
    vocab: Vocab
    train: object                    # LinesSource | StreamSource
    val: object | None            # the same kind of source, or None
    summary: str                     # e.g. "4,647 train / 516 val lines"
    train_lines: list | None      # lines mode: the training lines (to mark new samples)


def text_fingerprint(path: str | os.PathLike) -> dict:
    """``{"path": absolute path, "size": bytes, "sha256": hex}`` of a text file: what
    ``rnnkit train`` saves so that ``--resume`` continues on the same text."""
    from ..io import sha256_file
    size, digest = sha256_file(path)
    return {"path": os.path.abspath(path), "size": size, "sha256": digest}


def resumed_text(saved_file: str, saved_text: dict | None, given: str | os.PathLike | None = None, *, run: str = "the run",
                 allow_other: bool = False) -> str:
    """The text file a resumed run reads: ``given`` (FILE on the command line) or the run's own
    ``saved_file``; ConfigError when it is not the text the run was trained on (its SHA-256
    differs from ``saved_text``, :func:`text_fingerprint` saved with the run) unless
    ``allow_other``. A run saved before the path was absolute (no ``saved_text``) reads a
    relative ``saved_file`` from the current directory, with a warning."""
    import warnings
    if given is None and not os.path.isabs(saved_file):
        warnings.warn(f"{run}: trainer.json records FILE as the relative path {saved_file!r} (a run "
                      f"from an older rnnkit); reading it from the current directory "
                      f"{os.getcwd()}.", stacklevel=2)
    path = os.path.abspath(given if given is not None else saved_file)
    if not isinstance(saved_text, dict) or not isinstance(saved_text.get("sha256"), str):
        if given is not None and path != os.path.abspath(saved_file) and not allow_other:
            raise ConfigError(f"FILE {path} differs from the text of {run} ({saved_file}); resuming "
                              f"continues the same run. Drop FILE, or pass --allow-other-text to "
                              f"continue on {path}.")
        return path
    try:
        now = text_fingerprint(path)
    except (OSError, ValueError):
        return path                          # the text reader names what is wrong with it
    if now["sha256"] == saved_text["sha256"] or allow_other:
        return path
    was = saved_text.get("path", saved_file)
    if path == was:
        raise ConfigError(f"FILE {path} changed since {run} was trained on it (its SHA-256 "
                          f"differs from the one saved with the run: {now['size']:,} bytes now, "
                          f"{saved_text.get('size', '?'):,} then). Restore the text, or pass "
                          f"--allow-other-text to continue on it as it is now.")
    raise ConfigError(f"FILE {path} is not the text {run} was trained on ({was}; the SHA-256 "
                      f"differs). Drop FILE to continue on {was}, or pass --allow-other-text to "
                      f"continue on {path}.")


def text_name(file: str | os.PathLike | None = None, dataset: str | None = None) -> str:
    """The name of a text (the file's stem, or the built-in corpus): ``runs/<name>``."""
    return (Path(file).stem or "text") if file else (dataset or "names")


def load_text_data(file: str | os.PathLike | None = None, dataset: object = None, *, mode: str = "auto", encoding: str = "utf-8",
                   val_frac: float = 0.1, seq_len: int = 100, batch_size: int = 64,
                   seed: int = 0, cache_dir: str | os.PathLike | None = None) -> TextData:
    """Read ``file`` (or take the text of ``dataset``, a built-in corpus such as
    ``rnnkit.datasets.corpus("names")``: an object with ``name``, ``mode`` and ``load()``; the
    data layer does not know the built-in data) and cut it into sources.

    * lines mode: the non-empty lines, a random ``val_frac`` of them held out (seeded);
      batches of ``batch_size`` padded lines (:class:`LinesSource`).
    * stream mode: the whole text as one id stream, the last ``val_frac`` held out; chunks of
      ``seq_len`` steps over ``batch_size`` tracks (:class:`StreamSource`).

    ``mode="auto"`` picks lines mode for files of many short lines
    (:func:`rnnkit.data.detect_mode`) and the built-in corpus's own mode otherwise.

    Pairs mode (a :class:`~rnnkit.data.PairsData` is returned instead, see
    :func:`~rnnkit.data.load_pairs_data`): ``mode="pairs"``, a built-in pair task (a corpus
    whose mode is ``"pairs"``: ``dates``, ``numbers``), or ``mode="auto"`` on a file in which every
    non-empty line has exactly one tab (:func:`~rnnkit.data.is_pairs_text`).

    A file of at least :data:`rnnkit.data.encode.STREAM_MIN_BYTES` in stream mode is never
    read whole: its ids are built in two streaming passes, into ``cache_dir`` (a memory-mapped
    id file, reused while the file is unchanged) or into memory without one; ``mode="auto"``
    looks at the whole file in one more streaming pass.

    Lines mode strips every line and skips blank lines (as makemore does); the summary says
    how many characters that drops (``"; 1,234 characters dropped ..."``).
    """
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}.")
    if VAL_FRAC.problem(val_frac):
        raise ConfigError(f"--val-frac: {VAL_FRAC.problem(val_frac)}.")
    if not file:
        if dataset is None or isinstance(dataset, str) or not callable(getattr(dataset, "load", None)):
            raise ConfigError(f"load_text_data: expected a FILE or a built-in corpus (an object with "
                              f"name, mode and load(), e.g. rnnkit.datasets.corpus('names')), got "
                              f"{dataset!r:.60}.")
        if dataset.mode == "pairs":
            if mode not in ("auto", "pairs"):
                raise ConfigError(f"--dataset {dataset.name} is a pair task; --mode {mode} does not "
                                  f"apply (drop it, or pass --mode pairs).")
            return load_pairs_data(dataset=dataset.name, pairs=dataset.load(), val_frac=val_frac,
                                   batch_size=batch_size, seed=seed)
    text = None
    if file and (mode == "pairs" or (mode == "auto" and not is_large_text(file))):
        text = read_text(file, encoding=encoding)
        if mode == "pairs" or is_pairs_text(text):
            return load_pairs_data(dataset=text_name(file), pairs=parse_pairs(text, str(file)),
                                   origin=str(file), val_frac=val_frac, batch_size=batch_size, seed=seed)
    if mode == "pairs":
        raise ConfigError(f"--mode pairs: expected a pairs FILE or a pair task as --dataset, got "
                          f"--dataset {dataset.name}.")
    if file:
        name, origin = text_name(file), str(file)
        if mode != "lines" and is_large_text(file):
            mode = mode if mode != "auto" else detect_mode(iter_text(file, encoding))
            if mode == "stream":
                vocab, ids = load_encoded(file, encoding, cache_dir)
                return _stream_sources(vocab, ids, name, origin, val_frac, seq_len, batch_size)
        if text is None:
            text = read_text(file, encoding=encoding)
        mode = mode if mode != "auto" else detect_mode(text)
    else:
        name = origin = dataset.name
        text = dataset.load()
        mode = mode if mode != "auto" else dataset.mode
    if mode == "lines":
        return _lines_data(text, name, origin, val_frac, batch_size, seed)
    return _stream_data(text, name, origin, val_frac, seq_len, batch_size)


def _lines_data(text, name, origin, val_frac, batch_size, seed) -> TextData:
    lines = split_lines(text)
    if max(map(len, lines), default=0) > MAX_LINE_CHARS:
        check_line_lengths(text, origin)                 # names the line
    if not lines:
        raise DataError(f"{origin}: no non-empty lines to train on.")
    vocab = Vocab.build(lines, specials=(BOUNDARY,))
    if val_frac > 0 and len(lines) >= 2:
        tr, va = train_val_split(lines, val_frac, np.random.default_rng(seed))
    else:
        tr, va = lines, []
    train = LinesSource(LinesDataset(tr, vocab), batch_size, seed=seed)
    val = LinesSource(LinesDataset(va, vocab), batch_size, seed=seed) if va else None
    dropped = dropped_chars(text, lines)
    summary = f"{len(tr):,} train / {len(va):,} val lines" + (
        f"; {dropped:,} characters dropped (lines mode strips every line and skips blank lines; "
        f"--mode stream keeps them)" if dropped else "")
    return TextData(name, origin, "lines", vocab, train, val, summary, tr)


def _stream_data(text, name, origin, val_frac, seq_len, batch_size) -> TextData:
    vocab = Vocab.build(text)
    ids = vocab.encode(text).astype(ids_dtype(len(vocab)))      # compact: 1 byte per character
    return _stream_sources(vocab, ids, name, origin, val_frac, seq_len, batch_size)


def _stream_sources(vocab, ids, name, origin, val_frac, seq_len, batch_size) -> TextData:
    if len(vocab) < 2:
        raise DataError(f"{origin}: the text has one distinct character ({vocab.chars[0]!r}); a "
                        f"language model needs at least 2 to have anything to predict.")
    tr_ids, va_ids = split_stream(ids, val_frac) if val_frac > 0 else (ids, ids[:0])
    T, B = seq_len, batch_size
    if (len(tr_ids) - 1) // B < T:
        raise DataError(f"{origin}: {len(tr_ids):,} training characters are too few for "
                        f"--batch-size {B} x --seq-len {T}; lower them (need at least "
                        f"{B * T + 1:,} characters).")
    train = StreamSource(StreamDataset(tr_ids, T, B))
    val = None
    if len(va_ids) > T + 1:
        vb = max(1, min(B, (len(va_ids) - 1) // T))
        val = StreamSource(StreamDataset(va_ids, T, vb))
    return TextData(name, origin, "stream", vocab, train, val,
                    f"{len(tr_ids):,} train / {len(va_ids):,} val characters", None)
