"""Characters <-> integer ids: the :class:`Vocab` of a character-level model.

``Vocab.build(text)`` numbers the characters in code-point order after the special tokens;
lines mode uses one special token, :data:`BOUNDARY` (``<eos>``, id 0), as both start and end of
a line. ``to_json`` / ``from_json`` store it in a checkpoint's ``vocab.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import CheckpointError, ConfigError, DataError, DTypeError, ShapeError

#: The reserved boundary token of lines mode: id 0, used as both start (BOS) and end (EOS).
BOUNDARY = "<eos>"
#: Format tag written by :meth:`Vocab.to_json`.
VOCAB_FORMAT = "rnnkit.vocab"
VOCAB_VERSION = 1
#: :meth:`Vocab.encode` works on slices of this many characters (bounded temporary memory).
ENCODE_CHUNK = 1 << 20


def _preview(chars, limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f", ... ({len(chars)} in all)" if len(chars) > limit else "")


def _codepoints(text: str) -> np.ndarray:
    """Code points of ``text`` as a uint32 array (lone surrogates allowed)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class Vocab:
    """Characters <-> integer ids.

    Ids ``0 .. len(specials)-1`` are the special tokens (in the order given), then one id per
    character in sorted (code point) order, so the same text always gives the same ids. For
    lines mode pass ``specials=(BOUNDARY,)``: ``<eos>`` gets id 0 and serves as both start and
    end of a line (:attr:`bos_id` == :attr:`eos_id` == 0).

    Special tokens are strings of two or more characters (``"<eos>"``); :meth:`encode` never
    produces them from text, it maps every character to its own id.

    Example::

        >>> v = Vocab.build("hello", specials=(BOUNDARY,))
        >>> v.itos
        ['<eos>', 'e', 'h', 'l', 'o']
        >>> v.encode("hell").tolist()
        [2, 1, 3, 3]
        >>> v.decode([0, 2, 1, 0], skip_specials=True)
        'he'
    """

    def __init__(self, chars: Iterable[str], specials: Sequence[str] = ()):
        who = "Vocab"
        specials = tuple(specials)
        chars = list(chars)
        for s in specials:
            if not isinstance(s, str) or len(s) < 2:
                raise ConfigError(f"{who}: expected special tokens as strings of 2 or more "
                                  f"characters (like {BOUNDARY!r}), got {s!r}. A 1-character "
                                  f"special would collide with the text's characters.")
        if len(set(specials)) != len(specials):
            raise ConfigError(f"{who}: expected distinct special tokens, got {list(specials)!r}.")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ConfigError(f"{who}: expected single characters, got {c!r}.")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ConfigError(f"{who}: expected distinct characters, got duplicates {_preview(dup)}.")
        self.specials: tuple[str, ...] = specials
        self.chars: tuple[str, ...] = tuple(chars)
        self.itos: list[str] = list(specials) + list(chars)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        # Lookup table for vectorized encode: sorted code points -> ids.
        cps = np.array([ord(c) for c in chars], dtype=np.uint32)
        order = np.argsort(cps, kind="stable")
        self._cps = cps[order]                                              # (C,)
        self._ids = (order + len(specials)).astype(np.int64)                # (C,)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, text_or_lines: str | Iterable[str], specials: Sequence[str] = ()) -> Vocab:
        """Vocabulary of every character in a string or in an iterable of strings (sorted).

        ``Vocab.build(lines, specials=(BOUNDARY,))`` is the lines-mode vocabulary.
        """
        if isinstance(text_or_lines, str):
            chars = set(text_or_lines)
        else:
            chars = set()
            try:
                items = iter(text_or_lines)
            except TypeError:
                raise DataError(f"Vocab.build: expected a string or an iterable of strings, got "
                                f"{type(text_or_lines).__name__}.") from None
            for i, line in enumerate(items):
                if not isinstance(line, str):
                    raise DataError(f"Vocab.build: expected an iterable of strings, got item {i} "
                                    f"of type {type(line).__name__} ({line!r:.40}).")
                chars.update(line)
        if not chars:
            raise DataError("Vocab.build: expected some text, got no characters at all. "
                            "Check that the data file or list of lines is not empty.")
        return cls(sorted(chars), specials)

    # -- properties --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token) -> bool:
        return token in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos and self.specials == other.specials

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self.specials)!r}, chars={''.join(self.chars)!r:.60})"

    @property
    def bos_id(self) -> int | None:
        """Id of the :data:`BOUNDARY` token (start of a line), or None if absent."""
        return self.stoi.get(BOUNDARY)

    @property
    def eos_id(self) -> int | None:
        """Id of the :data:`BOUNDARY` token (end of a line); the same token as :attr:`bos_id`."""
        return self.stoi.get(BOUNDARY)

    # -- encode / decode ---------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text``: int64 array of shape ``(len(text),)``.

        Long texts are encoded in slices of :data:`ENCODE_CHUNK` characters, so the memory
        needed beyond the result is bounded. Raises :class:`DataError` naming the characters
        that are not in the vocabulary.
        """
        if not isinstance(text, str):
            raise DataError(f"Vocab.encode: expected a str, got {type(text).__name__}.")
        out = np.empty(len(text), dtype=np.int64)
        for start in range(0, len(text), ENCODE_CHUNK):
            self._encode_into(text[start:start + ENCODE_CHUNK], out[start:start + ENCODE_CHUNK], start)
        return out

    def _encode_into(self, text: str, out: np.ndarray, offset: int) -> None:
        cp = _codepoints(text)                                              # (L,)
        if self._cps.size == 0:
            pos = np.zeros(cp.shape, dtype=np.intp)
            found = np.zeros(cp.shape, dtype=bool)
        else:
            pos = np.searchsorted(self._cps, cp)                            # (L,)
            np.minimum(pos, self._cps.size - 1, out=pos)
            found = self._cps[pos] == cp
        if not found.all():
            unknown = sorted({chr(c) for c in np.unique(cp[~found]).tolist()})
            first = offset + int(np.argmin(found))
            raise DataError(f"Vocab.encode: expected only characters of the vocabulary "
                            f"({len(self.chars)} characters), got {len(unknown)} unknown "
                            f"character(s): {_preview(unknown)} (first at position {first}). "
                            f"Rebuild the vocabulary with Vocab.build on text that contains them, "
                            f"or remove/replace those characters in the text.")
        np.take(self._ids, pos, out=out)

    def decode(self, ids: ArrayLike, skip_specials: bool = False) -> str:
        """Text of a sequence of ids; special tokens are written out as their names
        (``"<eos>"``) unless ``skip_specials``."""
        return self._join(self._check_ids("Vocab.decode", ids).reshape(-1).tolist(), skip_specials)

    def decode_rows(self, ids: ArrayLike, lengths: ArrayLike | None, skip_specials: bool = False) -> list[str]:
        """Texts of the rows of ``ids`` (N, T), row ``i`` cut at ``lengths[i]`` (0..T): one
        check for the whole batch (the samplers decode hundreds of lines at once). Ids past a
        row's length are not read."""
        who = "Vocab.decode_rows"
        try:
            arr = np.asarray(ids)
            n = np.asarray(lengths)
        except (ValueError, TypeError):     # ragged nesting
            raise DTypeError(f"{who}: expected ids (N, T) and lengths (N,) of integers, got "
                             f"ragged input.") from None
        if arr.ndim != 2:
            raise ShapeError(f"{who}: expected ids of shape (N, T), got shape {arr.shape}.")
        if n.shape != (arr.shape[0],) or (n.size and n.dtype.kind not in "iu"):
            raise ShapeError(f"{who}: expected lengths, one integer per row ({arr.shape[0]}), "
                             f"got {n.dtype} of shape {n.shape}.")
        if n.size and (n.min() < 0 or n.max() > arr.shape[1]):
            raise DataError(f"{who}: expected lengths in [0, {arr.shape[1]}], got "
                            f"{n[(n < 0) | (n > arr.shape[1])][:5].tolist()}.")
        used = np.arange(arr.shape[1]) < n[:, None]
        self._check_ids(who, arr[used])
        return [self._join(row[:k], skip_specials) for row, k in zip(arr.tolist(), n.tolist())]

    def _join(self, ids: list, skip_specials: bool) -> str:
        """The text of checked ids (a list of ints)."""
        itos = self.itos
        if skip_specials:
            n_sp = len(self.specials)
            return "".join([itos[i] for i in ids if i >= n_sp])
        return "".join([itos[i] for i in ids])

    def _check_ids(self, who: str, ids) -> np.ndarray:
        try:
            arr = np.asarray(ids)
        except (ValueError, TypeError):     # ragged nesting
            raise DTypeError(f"{who}: expected integer ids, got a ragged "
                             f"{type(ids).__name__}.") from None
        if arr.size == 0:
            return arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise DTypeError(f"{who}: expected integer ids, got dtype {arr.dtype}.")
        bad = (arr < 0) | (arr >= len(self.itos))
        if bad.any():
            raise DataError(f"{who}: expected ids in [0, {len(self.itos) - 1}], got "
                            f"{arr[bad][:5].tolist()}. Decode with the vocabulary the model "
                            f"was trained with.")
        return arr

    # -- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """JSON-ready dict: ``{"format", "version", "specials": [...], "chars": [...]}``."""
        return {"format": VOCAB_FORMAT, "version": VOCAB_VERSION,
                "specials": list(self.specials), "chars": list(self.chars)}

    @classmethod
    def from_json(cls, obj: dict) -> Vocab:
        """Inverse of :meth:`to_json`. Validates everything; a damaged or hostile dict raises
        :class:`CheckpointError` saying what is wrong. Ids keep the stored order."""
        who = "Vocab.from_json"
        fix = "The vocab.json file is damaged or was not written by rnnkit; re-save the checkpoint."
        if not isinstance(obj, dict):
            raise CheckpointError(f"{who}: expected a JSON object (dict), got "
                                  f"{type(obj).__name__}. {fix}")
        if obj.get("format") != VOCAB_FORMAT:
            raise CheckpointError(f"{who}: expected format {VOCAB_FORMAT!r}, got "
                                  f"{obj.get('format')!r:.60}. {fix}")
        version = obj.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version != VOCAB_VERSION:
            raise CheckpointError(f"{who}: expected version {VOCAB_VERSION}, got {version!r:.60}. "
                                  f"Upgrade rnnkit or re-save the checkpoint.")
        extra = set(obj) - {"format", "version", "specials", "chars"}
        if extra:
            raise CheckpointError(f"{who}: expected keys format, version, specials, chars, got "
                                  f"unexpected {sorted(map(str, extra))!r:.100}. {fix}")
        out = {}
        for key in ("specials", "chars"):
            val = obj.get(key)
            if not isinstance(val, list):
                raise CheckpointError(f"{who}: expected {key!r} to be a list of strings, got "
                                      f"{type(val).__name__}. {fix}")
            for i, s in enumerate(val):
                if not isinstance(s, str):
                    raise CheckpointError(f"{who}: expected {key}[{i}] to be a string, got "
                                          f"{type(s).__name__} ({s!r:.40}). {fix}")
            out[key] = val
        for i, c in enumerate(out["chars"]):
            if len(c) != 1:
                raise CheckpointError(f"{who}: expected chars[{i}] to be exactly one character, "
                                      f"got {c!r:.40} (length {len(c)}). {fix}")
        for i, s in enumerate(out["specials"]):
            if len(s) < 2:
                raise CheckpointError(f"{who}: expected specials[{i}] to have 2 or more "
                                      f"characters, got {s!r}. {fix}")
        for key in ("specials", "chars"):
            seen, dup = set(), []
            for s in out[key]:
                if s in seen:
                    dup.append(s)
                seen.add(s)
            if dup:
                raise CheckpointError(f"{who}: expected distinct {key}, got duplicate(s) "
                                      f"{_preview(sorted(set(dup)))}. {fix}")
        if not out["chars"]:
            raise CheckpointError(f"{who}: expected at least one character, got none. {fix}")
        return cls(out["chars"], out["specials"])
