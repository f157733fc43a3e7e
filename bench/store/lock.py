"""A results folder used by one `run` at a time, and storage problems as one-line errors.

`results_lock(folder)` creates the folder, takes an exclusive lock on `folder/.genbench.lock`
(the `filelock` package: flock where the filesystem has it) and writes who holds it into
`.genbench.lock.json` (pid, host, start time). A second `run` on the same folder fails at once
with a StorageError naming the folder and that process. The kernel drops the lock of a killed
process, so a SIGKILLed run never blocks the next one; its stale owner file is overwritten.

`storage_errors(folder)` turns the OSErrors of folder work (a `--results` that is a file, no write
permission, a full disk) into StorageError: one line naming the path, exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from bench.errors import GenbenchError, StorageError
from bench.store.files import atomic_write_bytes

log = logging.getLogger(__name__)

# the flock'ed file; it stays after release (empty): deleting it would let a run that opened it just
# before lock a file no longer in the folder while a third run locks a new one
LOCK = ".genbench.lock"
OWNER = ".genbench.lock.json"  # the holder's pid, host and start time (removed on release)


@contextlib.contextmanager
def storage_errors(folder: Path) -> Iterator[None]:
    """OSError inside -> StorageError('<path>: <reason>'), one line (no traceback)."""
    try:
        yield
    except GenbenchError:  # already one line naming its input (a StorageError, a DataError)
        raise
    except OSError as exc:
        path = exc.filename or folder
        reason = exc.strerror or " ".join(str(exc).split())
        raise StorageError(f"{path}: {reason} (results folder {folder})") from None


@contextlib.contextmanager
def results_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the duration of the block; StorageError if it is taken."""
    folder = Path(folder)
    with storage_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise StorageError(f"{folder}: not a folder")
        lock = FileLock(folder / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise StorageError(
                f"{folder}: in use by another genbench run ({_holder(folder)}); "
                "wait for it to finish or pass another --results"
            ) from None
    try:
        with storage_errors(folder):  # the first bytes written: a full disk shows here
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            atomic_write_bytes(folder / OWNER, (json.dumps(owner) + "\n").encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            (folder / OWNER).unlink(missing_ok=True)
        lock.release()


def _holder(folder: Path) -> str:
    """'pid 123 on host, since ...' from the owner file, or why it is unknown."""
    try:
        owner = json.loads((folder / OWNER).read_text())
        return f"pid {owner['pid']} on {owner['host']}, since {owner['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"holder unknown: no readable {OWNER}"
