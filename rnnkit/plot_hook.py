"""Write the loss-curve picture at the end of `rnnkit train` when matplotlib is installed."""

from __future__ import annotations


def maybe_plot(directory) -> str | None:
    """Draw ``directory/loss.png`` from its ``metrics.jsonl`` (:func:`rnnkit.plot.plot_losses`)
    when matplotlib is installed, as ``rnnkit train`` does at the end of a run. Returns the
    picture's path, or None without matplotlib or when drawing failed (a warning on stderr):
    a picture never fails a finished run."""
    try:
        import matplotlib  # noqa: F401

        from .plot import plot_losses
    except ImportError:
        return None
    from pathlib import Path
    try:
        return str(plot_losses(directory, Path(directory) / "loss.png"))
    except Exception as e:  # a picture must never break a finished training run
        import sys
        print(f"rnnkit: warning: could not draw {directory}/loss.png ({type(e).__name__}: {e})",
              file=sys.stderr)
        return None
