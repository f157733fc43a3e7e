"""What a run owns in a results folder: what --restart removes and what a killed writer leaves behind."""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from pathlib import Path

from bench.store.files import atomic_write_bytes
from bench.store.schema import TRIALS, TUNING

log = logging.getLogger(__name__)

LOGS_DIR = "logs"  # results/<suite>/logs/<trial_id>.log: failed trials' tracebacks
CELLS = "cells.json"  # the trial ids of the suite's current cells, in grid order (written by each run)
IDENTITY = ".genbench-id"  # the folder's random identity: names its prefix in a shared --storage (kept by --restart)
# what --restart removes (results of earlier runs, tuning trials included: phase 1 runs again);
# reports are rewritten at the end of a run
OWNED = (
    TRIALS.rows_dir,
    TRIALS.table,
    TRIALS.csv,
    TUNING.rows_dir,
    TUNING.table,
    TUNING.csv,
    "weights",
    "samples",
    "ray",
    LOGS_DIR,
)


def clean_temp_files(results_dir: Path) -> None:
    """Remove temp files left by a killed writer (they are never read)."""
    for rows_dir in (TRIALS.rows_dir, TUNING.rows_dir):
        for tmp in Path(results_dir).glob(f"{rows_dir}/.*.tmp"):
            tmp.unlink(missing_ok=True)
    for tmp in Path(results_dir).glob(".trials.*.tmp"):
        tmp.unlink(missing_ok=True)


def clear(results_dir: Path) -> None:
    """--restart: remove earlier rows (trials' and tuning trials'), tables, weights, samples and Ray
    files (caches and the folder's identity are kept)."""
    for name in OWNED:
        p = Path(results_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def identity(results_dir: Path) -> str:
    """The folder's identity, created on first use (the caller holds the folder's lock). Random, not
    a hash of the path: two machines' `results/quick` sharing one bucket must not share a prefix, and
    a folder that is moved or mounted elsewhere keeps its files."""
    known = read_identity(results_dir)
    if known is None:
        known = secrets.token_hex(6)
        atomic_write_bytes(Path(results_dir) / IDENTITY, f"{known}\n".encode())
    return known


def read_identity(results_dir: Path) -> str | None:
    """The folder's identity, None when it has none (never ran with this version) or it is unreadable."""
    try:
        text = (Path(results_dir) / IDENTITY).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text.isalnum() and len(text) <= 32 else None  # a path component, nothing more


def storage_prefix(results_dir: Path, ident: str) -> str:
    """The folder under a --storage root that holds this results folder's files: `<suite>-<identity>`."""
    return f"{Path(results_dir).name}-{ident}"


def write_cells(results_dir: Path, ids: list[str]) -> None:
    """Record the suite's current cells (a run that changes nothing writes nothing): readers of the
    folder then take exactly these rows, whatever the state of the tables."""
    if read_cells(results_dir) != ids:
        atomic_write_bytes(Path(results_dir) / CELLS, (json.dumps(ids) + "\n").encode())


def read_cells(results_dir: Path) -> list[str] | None:
    """The recorded current cells, None when no run recorded them (or the file is damaged: warned)."""
    path = Path(results_dir) / CELLS
    if not path.is_file():
        return None
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); every row is read", path, " ".join(str(exc).split()))
        return None
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        log.warning("%s: not a list of trial ids; every row is read", path)
        return None
    return ids


def note_other_rows(results_dir: Path, n: int) -> None:
    """The one line about rows of cells that are no longer in the suite (left alone, never read)."""
    if n:
        log.warning(
            "%s: %d rows of cells no longer in the suite, kept in %s/ (--restart removes them)",
            results_dir,
            n,
            TRIALS.rows_dir,
        )
