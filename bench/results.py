"""The result store of one suite's results folder: one row per trial, never lost, never duplicated.

Layout of `results/<suite>/`:
    rows/<trial_id>.json   one finished trial's row, written by the trial (temp file + rename)
    trials.parquet/.csv    the table of the suite's cells, rebuilt from rows/ by the driver (atomic)
    weights/, samples/, cache/, ray/   weights, sample grids, metric caches, Ray Tune's own files

Why a file per row: a rename is atomic, so a SIGKILL at any moment leaves either the old row or the
new one, never half of one, and keying by trial_id makes a duplicate row impossible. The tables are
a derived view that the driver regenerates at start-up and after every finished trial.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import DataError
from bench.schema import COLUMN_NAMES, COLUMNS

log = logging.getLogger(__name__)

ROWS_DIR = "rows"
TABLE = "trials.parquet"
CSV = "trials.csv"
FINISHED = ("ok", "diverged")  # statuses that are measurements; resume skips them ("failed" reruns)
# what --restart removes (results of earlier runs); reports are rewritten at the end of a run
OWNED = (ROWS_DIR, TABLE, CSV, "weights", "samples", "ray")
_PANDAS_DTYPE = {"str": "str", "json": "str", "int": "Int64", "float": "float64", "bool": "boolean"}


# --- atomic files -----------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_with(path: Path, writer) -> None:
    """Like atomic_write_bytes for writers that want a path (pandas)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- rows -------------------------------------------------------------------------------------
def empty_row() -> dict[str, Any]:
    """Every schema column 'not applicable': NaN for floats, None for ints/bools, '' for text."""
    blank = {"float": math.nan, "int": None, "bool": None, "str": "", "json": ""}
    return {c.name: blank[c.dtype] for c in COLUMNS}


def normalize_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row in schema order with schema types (JSON columns as text); unknown keys rejected."""
    extra = sorted(set(row) - set(COLUMN_NAMES))
    if extra:
        raise ValueError(f"row has columns outside bench.schema: {', '.join(extra)}")
    out = empty_row()
    for c in COLUMNS:
        if c.name in row:
            out[c.name] = _coerce(row[c.name], c.dtype)
    return out


def _coerce(value: Any, dtype: str) -> Any:
    if value is None:
        return math.nan if dtype == "float" else ("" if dtype in ("str", "json") else None)
    if dtype == "float":
        return float(value)
    if dtype == "int":
        return None if isinstance(value, float) and math.isnan(value) else int(value)
    if dtype == "bool":
        return bool(value)
    if dtype == "json":
        if isinstance(value, str):
            return value
        return json.dumps(value, sort_keys=True, default=_jsonable)
    return str(value)


def _jsonable(obj: Any) -> Any:
    """numpy / torch scalars and arrays inside JSON columns."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


def row_path(results_dir: Path, trial_id: str) -> Path:
    return Path(results_dir) / ROWS_DIR / f"{trial_id}.json"


def write_row(results_dir: Path, row: Mapping[str, Any]) -> Path:
    """Store one trial's row atomically (replacing an earlier row of the same cell)."""
    row = normalize_row(row)
    if not row["trial_id"]:
        raise ValueError("row has no trial_id")
    path = row_path(results_dir, row["trial_id"])
    atomic_write_bytes(path, (json.dumps(row, allow_nan=True) + "\n").encode())
    return path


def read_row(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_rows(results_dir: Path) -> dict[str, dict[str, Any]]:
    """{trial_id: row} of every stored row (temp files of interrupted writes are ignored)."""
    folder = Path(results_dir) / ROWS_DIR
    rows = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        row = read_row(path)
        rows[row["trial_id"]] = row
    return rows


def finished_ids(results_dir: Path) -> set[str]:
    """trial_ids that have a finished row (ok or diverged): a resumed run skips these cells."""
    return {tid for tid, row in read_rows(results_dir).items() if row.get("status") in FINISHED}


def clean_temp_files(results_dir: Path) -> None:
    """Remove temp files left by a killed writer (they are never read)."""
    for tmp in Path(results_dir).glob(f"{ROWS_DIR}/.*.tmp"):
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


# --- tables -----------------------------------------------------------------------------------
def to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with exactly the schema's columns, in order, with schema dtypes."""
    df = pd.DataFrame([normalize_row(r) for r in rows], columns=list(COLUMN_NAMES))
    return df.astype({c.name: _PANDAS_DTYPE[c.dtype] for c in COLUMNS})


def rebuild_tables(results_dir: Path, trial_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Rewrite trials.parquet and trials.csv (atomically) from the stored rows.

    `trial_ids` (the current suite's cells, in grid order) selects and orders the rows; rows of
    cells no longer in the suite stay in rows/ but are left out of the tables. None: every row.
    """
    results_dir = Path(results_dir)
    stored = read_rows(results_dir)
    if trial_ids is None:

        def identity(t: str) -> tuple:
            r = stored[t]
            return r["label"], r["dataset"], r["budget"], r["seed"], t

        ids = sorted(stored, key=identity)
    else:
        ids = [t for t in trial_ids if t in stored]
    df = to_frame(stored[t] for t in ids)
    _atomic_write_with(results_dir / TABLE, lambda p: df.to_parquet(p, index=False))
    _atomic_write_with(results_dir / CSV, lambda p: df.to_csv(p, index=False))
    return df


def load_results(results_dir: str | os.PathLike) -> pd.DataFrame:
    """A suite's results folder (results/<suite>) as a DataFrame with the schema's columns.

    Reads trials.parquet; a folder with rows but no table yet (a run killed before its first
    rebuild) is read from its row files.
    """
    results_dir = Path(results_dir)
    table = results_dir / TABLE
    if table.is_file():
        rows = list((results_dir / ROWS_DIR).glob("*.json"))
        newer = [p for p in rows if p.stat().st_mtime > table.stat().st_mtime]
        if newer:  # a driver killed between a trial's row and the table's rebuild
            log.warning(
                "%s: %d row files are newer than %s; `genbench run` on the suite rebuilds it",
                results_dir,
                len(newer),
                TABLE,
            )
        df = pd.read_parquet(table)
        return df.astype({c.name: _PANDAS_DTYPE[c.dtype] for c in COLUMNS})
    if (results_dir / ROWS_DIR).is_dir():
        return to_frame(read_rows(results_dir).values())
    raise DataError(f"{results_dir}: not a results folder (no {TABLE} and no {ROWS_DIR}/); pass results/<suite name>")
