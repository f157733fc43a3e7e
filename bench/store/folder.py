"""What a run owns in a results folder: what --restart removes and what a killed writer leaves behind."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.store.schema import TRIALS

LOGS_DIR = "logs"  # results/<suite>/logs/<trial_id>.log: failed trials' tracebacks
# what --restart removes (results of earlier runs); reports are rewritten at the end of a run
OWNED = (TRIALS.rows_dir, TRIALS.table, TRIALS.csv, "weights", "samples", "ray", LOGS_DIR)


def clean_temp_files(results_dir: Path) -> None:
    """Remove temp files left by a killed writer (they are never read)."""
    for tmp in Path(results_dir).glob(f"{TRIALS.rows_dir}/.*.tmp"):
        tmp.unlink(missing_ok=True)
    for tmp in Path(results_dir).glob(".trials.*.tmp"):
        tmp.unlink(missing_ok=True)


def clear(results_dir: Path) -> None:
    """--restart: remove earlier rows, tables, weights, samples and Ray files (caches are kept)."""
    for name in OWNED:
        p = Path(results_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
