"""Built-in data sets. Nothing is downloaded: data come from code, the standard library, the
``names`` package, or small files shipped in ``rnnkit/datasets/data/``.

=================  ==============================================  ==========================
name               returns                                         kind
=================  ==============================================  ==========================
``names``          list of lowercased US census first names        lines (char LM)
``names_sex``      (names, labels 0=female 1=male)                 classification
``pydoc_topics``   str, Python's help topics (~465 kB prose)       stream (char LM)
``text_file``      str, any text file (``path=``, ``encoding=``)   char LM
``adding``         X (T, N, 2), y (N, 1)                           many-to-one regression
``copy_memory``    X (T, N) ids, Y (T, N) ids                      many-to-many classification
``noisy_sine``     X (T, N, 1), Y (T, N, 1)                        many-to-many regression
``sunspots``       (years (309,), values (309,)) 1700-2008         time series
``dates``          [(human date, ISO date)] pairs                  sequence to sequence
``number_words``   [(English number words, digits)] pairs          sequence to sequence
=================  ==============================================  ==========================

Example::

    >>> from rnnkit import datasets
    >>> X, y = datasets.load("adding", n=8, seq_len=20, rng=0)
    >>> X.shape, y.shape
    ((20, 8, 2), (8, 1))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from .pairs import dates, number_words
from .series import sunspots
from .synthetic import adding_problem, copy_memory, noisy_sine
from .text import names, names_by_sex, names_sex_dataset, pydoc_topics, text_file

#: The built-in data sets by name: each value is the function that returns it.
REGISTRY = {
    "names": names,
    "names_sex": names_sex_dataset,
    "pydoc_topics": pydoc_topics,
    "text_file": text_file,
    "adding": adding_problem,
    "copy_memory": copy_memory,
    "noisy_sine": noisy_sine,
    "sunspots": sunspots,
    "dates": dates,
    "number_words": number_words,
}


@dataclass(frozen=True)
class Corpus:
    """A built-in corpus of ``rnnkit train --dataset NAME``: its ``name``, the ``mode`` it
    trains in (``"lines"``, ``"stream"`` or ``"pairs"``) and ``load()``, which returns its text
    (a str) or, for ``"pairs"``, its list of (source, target) pairs. The data pipeline
    (:func:`rnnkit.data.load_text_data`) takes one; it does not know the built-in data."""

    name: str
    mode: str
    load: Callable


#: The built-in corpora of ``rnnkit train --dataset NAME``, by name.
CORPORA = {c.name: c for c in (
    Corpus("names", "lines", lambda: "\n".join(names())),
    Corpus("pydoc", "stream", pydoc_topics),
    Corpus("dates", "pairs", lambda: dates(seed=0)),
    Corpus("numbers", "pairs", lambda: number_words(seed=0)),
)}


def corpus(name: str) -> Corpus:
    """The built-in corpus ``name`` (see :data:`CORPORA`); ConfigError naming the choices."""
    if name not in CORPORA:
        raise ConfigError(f"--dataset: expected one of {', '.join(CORPORA)}, got {name!r}.")
    return CORPORA[name]


def available() -> list[str]:
    """Sorted names accepted by :func:`load`."""
    return sorted(REGISTRY)


def load(name: str, **kw: object) -> object:
    """Load the built-in data set ``name`` (see :func:`available`); keyword arguments go to
    its function, e.g. ``load("adding", n=1000, seq_len=50, rng=0)``."""
    if name not in REGISTRY:
        raise ConfigError(f"rnnkit.datasets.load: expected a data set name, one of "
                          f"{', '.join(repr(k) for k in available())}, got {name!r}.")
    return REGISTRY[name](**kw)


__all__ = ["load", "available", "REGISTRY", "Corpus", "CORPORA", "corpus", "names", "names_by_sex", "names_sex_dataset",
           "pydoc_topics", "text_file", "adding_problem", "copy_memory", "noisy_sine", "sunspots",
           "dates", "number_words"]
