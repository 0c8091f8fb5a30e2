"""One writer per run directory: the lock ``rnnkit train`` holds for the whole run.

A run directory (:mod:`rnnkit.checkpoint`) is crash-safe for one writer. Two trainers writing
the same directory (two ``rnnkit train --resume DIR``, or two ``--overwrite`` runs) would
interleave their versions and metrics, so ``rnnkit train`` holds :class:`RunLock` on
``DIR/.lock`` from before it reads or clears anything until it exits:

* the lock is an operating-system lock (``flock`` through the ``filelock`` package) on
  ``DIR/.lock``: it disappears with the process, so a trainer killed with SIGKILL, a crash or
  a power cut leaves no stale lock behind (the ``.lock`` file stays; it is not the lock);
* after acquiring it, the holder writes ``DIR/.lock.json`` (pid, host, start time, command)
  so that a refused process can say who holds the run; it is removed on release (a stale one
  left by a killed holder is overwritten by the next one);
* readers (``rnnkit sample``, ``eval``, ``info``, ``export``, ``plot``) never take it: a
  checkpoint version is complete before it becomes visible, so reading during a run is safe.

Example::

    >>> with RunLock("runs/names", command="my training script"):   # doctest: +SKIP
    ...     trainer.fit()
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import time
from pathlib import Path

from .errors import CheckpointError, RunLockedError
from .io import atomic_write_json, read_json

__all__ = ["RunLock", "lock_holder", "LOCK_FILE", "HOLDER_FILE"]

#: The file in a run directory that the OS lock is taken on.
LOCK_FILE = ".lock"
#: The JSON file beside it naming the process that holds the lock (pid, host, command).
HOLDER_FILE = ".lock.json"


def lock_holder(directory) -> dict | None:
    """What ``DIR/.lock.json`` says about the process holding the run (pid, host, started,
    command), or None when there is no readable record."""
    path = Path(directory) / HOLDER_FILE
    try:
        info = read_json(path, what="run lock", max_bytes=64 * 1024)
    except CheckpointError:
        return None
    return info if isinstance(info, dict) else None


def _current_holder(directory, tries: int = 40) -> dict | None:
    """The holder's record; the holder writes it right after taking the lock, and a record
    naming a process of this host that no longer exists is a killed holder's, so wait up to
    ``tries`` x 50 ms for the new one."""
    info = None
    for _ in range(tries):
        info = lock_holder(directory)
        if info is not None and (info.get("host") != socket.gethostname() or _alive(info.get("pid"))):
            return info
        time.sleep(0.05)
    return info


def _alive(pid) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _describe(info: dict | None) -> str:
    if not info:
        return "another process (it has not recorded itself yet)"
    parts = [f"pid {info.get('pid')!s:.20}"]
    if info.get("host"):
        parts.append(f"on {info['host']!s:.80}")
    if info.get("started"):
        parts.append(f"since {info['started']!s:.40}")
    text = "process " + " ".join(parts)
    if info.get("command"):
        text += f" (`{info['command']!s:.200}`)"
    return text


class RunLock:
    """Exclusive, non-blocking lock of run directory ``directory`` (which must exist).

    ``acquire()`` raises :class:`~rnnkit.errors.RunLockedError` naming the holder when
    another process holds the run; ``release()`` (or leaving the ``with`` block) lets it go.
    ``command`` is recorded for the refusal message of others (default: this process's
    command line).
    """

    def __init__(self, directory, command: str | None = None):
        self.directory = Path(directory)
        self.command = command if command is not None else " ".join(
            [Path(sys.argv[0]).name or "python", *sys.argv[1:]])
        self._lock = None

    def acquire(self) -> RunLock:
        from filelock import FileLock, Timeout
        d = self.directory
        if not d.is_dir():
            raise CheckpointError(f"RunLock: expected a run directory at {d}, got "
                                  f"{'a file' if d.exists() else 'nothing'}.")
        lock = FileLock(str(d / LOCK_FILE), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            info = _current_holder(d)
            raise RunLockedError(f"{d} is in use by {_describe(info)}: only one "
                                 f"`rnnkit train` may write a run directory. Wait for it to "
                                 f"finish (or stop it; it saves on Ctrl-C), or use another "
                                 f"--out.") from None
        except OSError as e:
            raise CheckpointError(f"RunLock: cannot lock {d / LOCK_FILE}: {e.strerror or e}. "
                                  f"Check the directory's permissions.") from None
        self._lock = lock
        try:
            atomic_write_json(d / HOLDER_FILE, {
                "pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": self.command[:1000].encode("utf-8", "replace").decode("utf-8")})
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            info = lock_holder(self.directory)
            if info is not None and info.get("pid") == os.getpid():
                os.unlink(self.directory / HOLDER_FILE)
        except OSError:
            pass
        finally:
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
