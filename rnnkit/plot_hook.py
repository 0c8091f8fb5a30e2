"""Write the loss-curve picture at the end of `rnnkit train` when matplotlib is installed."""

from __future__ import annotations


def maybe_plot(directory) -> str | None:
    try:
        import matplotlib  # noqa: F401
        from .plot import plot_losses
    except ImportError:
        return None
    from pathlib import Path
    try:
        return str(plot_losses(directory, Path(directory) / "loss.png"))
    except Exception:  # a picture must never break a finished training run
        return None
