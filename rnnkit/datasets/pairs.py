"""Generated translation tasks (source -> target string pairs) for sequence-to-sequence models.

Nothing is downloaded: every pair comes from the standard library (``random``, ``datetime``)
and a seed, so the same call gives the same pairs on every machine.

* :func:`dates` - human-readable dates in many formats -> ISO ``YYYY-MM-DD`` (the machine
  translation exercise of the deep-learning courses)::

      "3 May 1979", "05/03/79", "Thursday, May 3, 1979", "3rd of may 1979", "1979 may 3"
      -> "1979-05-03"

* :func:`number_words` - English number words -> digits
  (``"four thousand and twelve" -> "4012"``), a second task with its own lengths and
  vocabularies.

Example::

    >>> from rnnkit.datasets import dates
    >>> pairs = dates(n=3, seed=0)
    >>> all(len(t) == 10 and t[4] == "-" for _, t in pairs)
    True
"""

from __future__ import annotations

import datetime
import random

from .._validate import check_int

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Years of :func:`dates`: a two-digit year ``yy`` means 19yy for yy >= 50, else 20yy.
FIRST_YEAR, LAST_YEAR = 1950, 2049


def _ordinal(d: int) -> str:
    suffix = "th" if 11 <= d % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


def _formats(day: datetime.date) -> list:
    """Every human rendering of ``day`` that :func:`dates` draws from (unambiguous: slashes
    are month/day/year as in the US, dots and dashes day.month.year)."""
    d, m, y = day.day, day.month, day.year
    mon, wd = MONTHS[m - 1], WEEKDAYS[day.weekday()]
    yy = f"{y % 100:02d}"
    return [
        f"{d} {mon} {y}",                          # 3 May 1979
        f"{d:02d} {mon} {y}",                      # 03 May 1979
        f"{m:02d}/{d:02d}/{yy}",                   # 05/03/79
        f"{m}/{d}/{y}",                            # 5/3/1979
        f"{m:02d}/{d:02d}/{y}",                    # 05/03/1979
        f"{wd}, {mon} {d}, {y}",                   # Thursday, May 3, 1979
        f"{_ordinal(d)} of {mon.lower()} {y}",     # 3rd of may 1979
        f"the {_ordinal(d)} of {mon} {y}",         # the 3rd of May 1979
        f"{y} {mon.lower()} {d}",                  # 1979 may 3
        f"{mon} {d}, {y}",                         # May 3, 1979
        f"{mon[:3]} {_ordinal(d)}, {y}",           # May 3rd, 1979
        f"{d} {mon[:3].upper()} {yy}",             # 3 MAY 79
        f"{d:02d}.{m:02d}.{y}",                    # 03.05.1979
        f"{d}.{m}.{yy}",                           # 3.5.79
        f"{d:02d}-{mon[:3]}-{y}",                  # 03-May-1979
        f"{wd[:3]} {d} {mon[:3].lower()} {y}",     # Thu 3 may 1979
        f"{wd.lower()} {d} {mon.lower()} {y}",     # thursday 3 may 1979
        f"{mon.upper()} {d} {y}",                  # MAY 3 1979
        f"{y}/{m:02d}/{d:02d}",                    # 1979/05/03
        f"{d} {mon[:3]}. {y}",                     # 3 May. 1979
    ]


#: How many formats :func:`dates` draws from.
NUM_DATE_FORMATS = len(_formats(datetime.date(2000, 1, 1)))


def date_formats(day: datetime.date) -> list:
    """The human renderings of ``day`` (a ``datetime.date`` between 1950 and 2049) that
    :func:`dates` draws from, in a fixed order."""
    return _formats(day)


def _unique_pairs(who, n, seed, draw) -> list:
    n = check_int(who, "n", n, 1, 1_000_000)
    seed = check_int(who, "seed", seed, 0)
    rng = random.Random(seed)
    seen, out = set(), []
    for _ in range(50 * n):
        src, tgt = draw(rng)
        if src not in seen:
            seen.add(src)
            out.append((src, tgt))
            if len(out) == n:
                return out
    return out


def dates(n: int = 20000, seed: int = 0) -> list:
    """``n`` distinct (human date, ISO date) pairs, drawn with ``random.Random(seed)``.

    Each pair picks a day uniformly from 1950-01-01 .. 2049-12-31 and one of
    :data:`NUM_DATE_FORMATS` formats uniformly (:func:`date_formats`); sources are distinct
    (a repeated draw is skipped), so a random split holds out strings never seen in training.
    Targets are ``day.isoformat()`` (``"1979-05-03"``)."""
    first = datetime.date(FIRST_YEAR, 1, 1).toordinal()
    last = datetime.date(LAST_YEAR, 12, 31).toordinal()

    def draw(rng):
        day = datetime.date.fromordinal(rng.randint(first, last))
        forms = _formats(day)
        return forms[rng.randrange(len(forms))], day.isoformat()

    return _unique_pairs("rnnkit.datasets.dates", n, seed, draw)


_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _below_thousand(k: int) -> str:
    hundreds, rest = divmod(k, 100)
    words = []
    if hundreds:
        words.append(f"{_ONES[hundreds]} hundred")
    if rest:
        if hundreds:
            words.append("and")
        if rest < 20:
            words.append(_ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    return " ".join(words)


def spell_number(k: int) -> str:
    """British English words of ``0 <= k < 1,000,000``: ``4012 -> "four thousand and twelve"``."""
    k = check_int("rnnkit.datasets.spell_number", "k", k, 0, 999_999)
    if k == 0:
        return "zero"
    thousands, rest = divmod(k, 1000)
    words = []
    if thousands:
        words.append(f"{_below_thousand(thousands)} thousand")
    if rest:
        if thousands and rest < 100:
            words.append("and")
        words.append(_below_thousand(rest))
    return " ".join(words)


def number_words(n: int = 20000, seed: int = 0) -> list:
    """``n`` distinct (English words, digits) pairs: ``("four thousand and twelve", "4012")``.

    The number's digit count is drawn uniformly from 1..6, then the number uniformly among
    those with that many digits (so short and long numbers are equally common), with
    ``random.Random(seed)``; see :func:`spell_number`."""
    def draw(rng):
        digits = rng.randint(1, 6)
        k = rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)
        return spell_number(k), str(k)

    return _unique_pairs("rnnkit.datasets.number_words", n, seed, draw)
