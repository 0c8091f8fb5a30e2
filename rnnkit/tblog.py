"""Training curves for TensorBoard: ``metrics.jsonl`` mirrored as TensorBoard event files.

:class:`rnnkit.train.Trainer` writes one record per evaluation to ``metrics.jsonl`` (see
:func:`rnnkit.checkpoint.append_metrics`). Given a directory
(``Checkpointing(..., tensorboard=DIR)``, or ``rnnkit train --tensorboard DIR``), it also
writes each record's numbers there as TensorBoard scalars, one tag per key of the record
(``train_loss``, ``val_loss``, ``val_bpc``, ``lr``, ``grad_norm``, ``tokens_per_s``,
``tokens``) at the record's ``step``. Watch them with ``tensorboard --logdir DIR``.

The writer is `tensorboardX <https://github.com/lanpa/tensorboardX>`_ (the ``tensorboard``
extra: ``pip install 'rnnkit[tensorboard]'``); reading the curves back in TensorBoard needs
the ``tensorboard`` package itself, which rnnkit never imports.

Resuming continues the curves without duplicates. The event files are append-only, so when a
run is opened at step ``c`` (0 for a new run, the checkpoint's step after ``--resume``),
:class:`TensorBoardLog` first reads what the directory already holds (:func:`read_scalars`):

* steps up to ``c`` already there are not written again; records of ``metrics.jsonl`` up to
  ``c`` that are missing (the earlier part of the run was trained without ``--tensorboard``)
  are written now, so the curves are whole;
* steps after ``c`` can be there when a trainer was killed after an evaluation but before the
  checkpoint that follows it (the trainer writes ``metrics.jsonl``, then the events, then the
  checkpoint). ``metrics.jsonl`` drops such records on resume
  (:func:`rnnkit.checkpoint.truncate_metrics`); here the new event file starts with
  TensorBoard's own restart marker (a ``SessionLog.START`` event at step ``c + 1``), which
  makes TensorBoard's reader discard every earlier event from step ``c + 1`` on, and the
  resumed run writes those steps again.

So what TensorBoard shows equals ``metrics.jsonl`` after any interruption (tests/test_tblog.py
reads it back with TensorBoard's own ``EventAccumulator``).
"""

from __future__ import annotations

import math
import os
import struct
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import ConfigError

__all__ = ["TensorBoardLog", "check_logdir", "read_scalars", "scalars_of", "event_files", "INSTALL"]

#: How to install the writer (the ``tensorboard`` extra).
INSTALL = "pip install 'rnnkit[tensorboard]'"

_PREFIX = "events.out.tfevents."


def _tensorboardx():
    """Import tensorboardX. It imports PyTorch at import time when PyTorch is installed (about
    10 s on a busy 2-core machine), only to accept torch tensors, which rnnkit never passes; so
    unless torch is loaded already, the import runs with ``import torch`` failing."""
    block = "torch" not in sys.modules and "tensorboardX" not in sys.modules
    if block:
        sys.modules["torch"] = None          # makes `import torch` raise ImportError
    try:
        import tensorboardX
        from tensorboardX.proto import event_pb2
    except ImportError as e:
        raise ImportError(f"rnnkit.tblog: TensorBoard logs need the optional 'tensorboardX' package, "
                          f"but it is not installed. Install it with: {INSTALL}") from e
    finally:
        if block and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return tensorboardX, event_pb2


def check_logdir(path, name: str = "tensorboard") -> Path:
    """Check, before any work starts, that ``path`` can take event files (see
    :func:`rnnkit.io.check_output_dir`) and that the writer is installed; returns
    ``Path(path)``. ``name`` is what the user called it (``"--tensorboard"``)."""
    from .io import check_output_dir
    p = check_output_dir(path, name)
    _tensorboardx()
    return p


def scalars_of(record: dict) -> dict:
    """The TensorBoard scalars of one ``metrics.jsonl`` record: every finite number except
    ``step`` (booleans and text are left out), under the record's own key.

    >>> scalars_of({"step": 100, "train_loss": 2.25, "val_loss": 2.5, "note": "x", "tokens": 6400})
    {'train_loss': 2.25, 'val_loss': 2.5, 'tokens': 6400.0}
    """
    out = {}
    for key, value in record.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def _records(path: Path):
    """The serialized events of one event file, in order; stops at a torn or damaged record
    (a writer killed mid-record leaves one at the end)."""
    from tensorboardX.record_writer import masked_crc32c
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        end = pos + 12 + length + 4
        if hcrc != masked_crc32c(header) or end > len(data):
            return
        body = data[pos + 12:pos + 12 + length]
        (bcrc,) = struct.unpack("<I", data[end - 4:end])
        if bcrc != masked_crc32c(body):
            return
        yield body
        pos = end


def event_files(logdir) -> list:
    """The TensorBoard event files directly in ``logdir``, in the order TensorBoard reads them
    (by name)."""
    d = Path(logdir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.name.startswith(_PREFIX) and p.is_file())


def read_scalars(logdir) -> dict:
    """The scalars that TensorBoard shows for the event files in ``logdir``:
    ``{tag: {step: value}}``, after applying the restart markers (a ``SessionLog.START`` event
    at step ``s`` discards every earlier event at a step ``>= s``, as TensorBoard's reader
    does). A later event at the same step replaces an earlier one. Needs ``tensorboardX``."""
    _, event_pb2 = _tensorboardx()
    scalars: dict = {}
    for path in event_files(logdir):
        for body in _records(path):
            ev = event_pb2.Event.FromString(body)
            if ev.HasField("session_log") and ev.session_log.status == event_pb2.SessionLog.START:
                for steps in scalars.values():
                    for s in [s for s in steps if s >= ev.step]:
                        del steps[s]
            elif ev.HasField("summary"):
                for v in ev.summary.value:
                    if v.HasField("simple_value"):
                        scalars.setdefault(v.tag, {})[int(ev.step)] = float(v.simple_value)
    return {tag: steps for tag, steps in scalars.items() if steps}


class TensorBoardLog:
    """Write ``metrics.jsonl`` records to TensorBoard event files in ``logdir``.

    ``records``: the records already in ``metrics.jsonl`` (after
    :func:`~rnnkit.checkpoint.truncate_metrics`); ``step``: the step the run continues from.
    Opening reads ``logdir`` (:func:`read_scalars`), writes the records up to ``step`` it
    lacks and, when it holds steps after ``step`` (a killed run), a restart marker at
    ``step + 1`` (see the module's docstring). Then :meth:`write` adds one record, flushed to
    the file at once; ``log`` gets one-line notes.

    >>> import tempfile
    >>> logdir = tempfile.mkdtemp()
    >>> with TensorBoardLog(logdir) as tb:
    ...     tb.write({"step": 10, "train_loss": 2.5, "lr": 0.25})
    >>> read_scalars(logdir)
    {'train_loss': {10: 2.5}, 'lr': {10: 0.25}}
    """

    def __init__(self, logdir, records: Iterable[dict] = (), step: int = 0,
                 log: Callable | None = None):
        tensorboardX, _ = _tensorboardx()
        self.logdir = check_logdir(logdir, "TensorBoardLog")
        have = read_scalars(self.logdir)
        written = set().union(*have.values()) if have else set()
        later = sorted(s for s in written if s > step)
        if later and log is not None:
            log(f"note: {self.logdir} holds TensorBoard events after step {step} (up to step "
                f"{later[-1]}) from a run that stopped before its next checkpoint; TensorBoard "
                f"hides them, and this run writes those steps again")
        try:
            self._writer = tensorboardX.SummaryWriter(
                str(self.logdir), purge_step=step + 1 if later else None, flush_secs=5,
                filename_suffix=f".{time.time_ns()}.{os.getpid()}")
        except OSError as e:
            raise ConfigError(f"TensorBoardLog: cannot write event files in {self.logdir}: "
                              f"{e.strerror or e}.") from None
        self._step = step
        for record in records:
            s = record.get("step")
            if isinstance(s, int) and not isinstance(s, bool) and s <= step and s not in written:
                self._add(record)
        self._writer.flush()

    def _add(self, record: dict) -> None:
        for tag, value in scalars_of(record).items():
            self._writer.add_scalar(tag, value, global_step=int(record["step"]))

    def write(self, record: dict) -> None:
        """Add one evaluation record (its ``step`` and numbers) and flush it to the file."""
        self._add(record)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
