"""Small real time series shipped with rnnkit (files under ``rnnkit/datasets/data/``)."""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..errors import DataError

SUNSPOTS_FILE = "sunspots_yearly.csv"


def sunspots() -> tuple[np.ndarray, np.ndarray]:
    """Yearly mean sunspot numbers, 1700-2008 (309 values; public domain, the series that
    statsmodels ships as ``sunspots`` / ``SUNACTIVITY``, version-1 SILSO numbers).

    Returns ``(years, values)``: int64 (309,) and float64 (309,).

    Example::

        >>> years, values = sunspots()
        >>> int(years[0]), int(years[-1]), float(values[years == 1957][0])
        (1700, 2008, 190.2)
    """
    who = "rnnkit.datasets.sunspots"
    try:
        text = resources.files("rnnkit.datasets").joinpath("data", SUNSPOTS_FILE).read_text("ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{who}: expected the data file rnnkit/datasets/data/{SUNSPOTS_FILE}, "
                        f"could not read it ({e}). Reinstall rnnkit.") from None
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != "year,value":
        raise DataError(f"{who}: expected a CSV header 'year,value' in {SUNSPOTS_FILE}; the file "
                        f"is damaged. Reinstall rnnkit.")
    years, values = [], []
    for i, line in enumerate(lines[1:], 2):
        try:
            y, v = line.split(",")
            years.append(int(y))
            values.append(float(v))
        except ValueError:
            raise DataError(f"{who}: expected 'year,value' on line {i} of {SUNSPOTS_FILE}, got "
                            f"{line!r:.60}. Reinstall rnnkit.") from None
    return np.array(years, dtype=np.int64), np.array(values, dtype=np.float64)
