"""Built-in text corpora: US census first names, Python's pydoc topics, any text file.

Nothing is downloaded: the names come from the ``names`` package (a dependency of rnnkit),
the pydoc topics from the standard library.
"""

from __future__ import annotations

import os

import numpy as np

from ..data import read_text
from ..errors import ConfigError, DataError

NAMES_FILES = {"female": "dist.female.first", "male": "dist.male.first"}


def _names_file(sex: str) -> str:
    who = "rnnkit.datasets.names"
    try:
        import names as names_pkg  # the `names` PyPI package (Trey Hunner), ships census files
    except ImportError:
        raise DataError(f"{who}: expected the 'names' package (US census first names), but it is "
                        f"not installed. Install it with: pip install names") from None
    path = os.path.join(os.path.dirname(os.path.abspath(names_pkg.__file__)), NAMES_FILES[sex])
    if not os.path.isfile(path):
        raise DataError(f"{who}: expected the data file {path!r} of the 'names' package, got no "
                        f"such file. Reinstall it: pip install --force-reinstall names")
    return path


def _read_census(sex: str) -> list[str]:
    """Lowercased names of one census file, in file (rank) order.

    Each line is ``NAME freq cumfreq rank``."""
    path = _names_file(sex)
    out = []
    with open(path, encoding="ascii") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4 or not fields[0].isalpha():
                raise DataError(f"rnnkit.datasets.names: expected lines 'NAME freq cumfreq rank' in "
                                f"{path!r}, got line {lineno}: {line.rstrip()!r:.60}. The installed "
                                f"'names' package looks damaged; reinstall it.")
            out.append(fields[0].lower())
    return out


def names_by_sex() -> tuple[list[str], list[str]]:
    """``(female, male)``: the lowercased first names of the 1990 US census files shipped by
    the ``names`` package (4275 female, 1219 male), each in rank order."""
    return _read_census("female"), _read_census("male")


def names(sex: str = "all") -> list[str]:
    """Lowercased US census first names, one per item (a lines-mode corpus like makemore's
    names.txt).

    ``sex='female'`` or ``'male'`` gives one file; ``'all'`` (default) gives the female names
    then the male names not already listed (5163 distinct names).

    Example::

        >>> from rnnkit.datasets import names
        >>> names()[:3]
        ['mary', 'patricia', 'linda']
    """
    if sex not in ("all", "female", "male"):
        raise ConfigError(f"rnnkit.datasets.names: expected sex to be 'all', 'female' or 'male', "
                          f"got {sex!r}.")
    if sex != "all":
        return _read_census(sex)
    female, male = names_by_sex()
    seen = set(female)
    return female + [n for n in male if n not in seen]


def names_sex_dataset(drop_ambiguous: bool = True) -> tuple[list[str], np.ndarray]:
    """Names and labels for a name -> sex classifier: ``(names, labels)`` with labels an int64
    array, 0 = female, 1 = male; female names first, in rank order.

    With ``drop_ambiguous`` (default) names that appear in both census files (331 of them,
    e.g. 'james', 'mary') are removed, leaving 3944 female and 888 male names. Without it
    such names appear once with each label.
    """
    female, male = names_by_sex()
    if drop_ambiguous:
        both = set(female) & set(male)
        female = [n for n in female if n not in both]
        male = [n for n in male if n not in both]
    labels = np.concatenate([np.zeros(len(female), np.int64), np.ones(len(male), np.int64)])
    return female + male, labels


def pydoc_topics() -> str:
    """A prose corpus from the standard library: the help topics of ``pydoc_data.topics``
    (the Python language reference sections shown by ``help('if')``), concatenated in sorted
    key order with a newline between topics (~465 kB of English text)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("rnnkit.datasets.pydoc_topics: expected the standard-library module "
                        "pydoc_data.topics, but this Python installation lacks it (some Linux "
                        "distributions split it out). Install the full Python standard library "
                        "or use another corpus.") from None
    return "\n".join(topics[k] for k in sorted(topics))


def text_file(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The text of a file, via :func:`rnnkit.data.read_text` (clear errors for missing, empty
    or undecodable files; ``encoding='bytes'`` reads bytes as Latin-1 characters)."""
    return read_text(path, encoding=encoding)
