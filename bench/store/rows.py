"""Row files of a results folder: one JSON file per row, never lost, never duplicated.

Layout of `results/<suite>/` (bench.store.schema names the folders and tables):
    rows/<trial_id>.json          one finished trial's row, written by the trial (temp file + rename)
    tuning_rows/<tuning_id>.json  one tuning trial's row, likewise
    <rows folder>/quarantine/     unreadable, foreign or mistyped files found there, moved aside by the driver
    trials.parquet/.csv, tuning.parquet/.csv   tables derived from the rows (bench.store.table)
    weights/, samples/, cache/, ray/           weights, sample grids, metric caches, Ray Tune's files

Why a file per row: a rename is atomic, so a SIGKILL at any moment leaves either the old row or the
new one, never half of one, and keying by the row's id makes a duplicate row impossible. A row is
typed here, once, at the store's boundary (`normalize_row`): every reader gets schema types.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.store.files import atomic_write_bytes
from bench.store.schema import TRIALS, TUNING, Schema

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"  # under a rows folder: files that are not rows of this store, kept for inspection
# "not applicable" per dtype: NaN for floats, None for ints/bools, '' for text (never 0)
BLANK: dict[str, Any] = {"float": math.nan, "int": None, "bool": None, "str": "", "json": ""}


# --- typing a row -------------------------------------------------------------------------------
def empty_row(schema: Schema = TRIALS) -> dict[str, Any]:
    """Every column of `schema` 'not applicable'."""
    return {c.name: BLANK[c.dtype] for c in schema.columns}


def normalize_row(row: Mapping[str, Any], schema: Schema = TRIALS) -> dict[str, Any]:
    """The row in schema order with schema types (JSON columns as text); unknown keys rejected."""
    extra = sorted(set(row) - set(schema.names))
    if extra:
        raise ValueError(f"row has columns outside bench.store.schema: {', '.join(extra)}")
    out = empty_row(schema)
    for c in schema.columns:
        if c.name in row:
            out[c.name] = _coerce(row[c.name], c.dtype)
    return out


def _coerce(value: Any, dtype: str) -> Any:
    if value is None:
        return BLANK[dtype]
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


def to_frame(rows: Iterable[Mapping[str, Any]], schema: Schema = TRIALS) -> pd.DataFrame:
    """Rows -> DataFrame with exactly the schema's columns, in order, with schema dtypes."""
    return typed_frame([normalize_row(r, schema) for r in rows], schema)


def typed_frame(normalized: list[dict[str, Any]], schema: Schema) -> pd.DataFrame:
    """Already normalized rows -> DataFrame with the schema's dtypes."""
    return pd.DataFrame(normalized, columns=list(schema.names)).astype(schema.pandas_dtypes)


# --- the store ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowStore:
    """The row files of one kind (`schema`) in one results folder."""

    schema: Schema
    results_dir: Path

    @property
    def folder(self) -> Path:
        return Path(self.results_dir) / self.schema.rows_dir

    def row_path(self, row_id: str) -> Path:
        return self.folder / f"{row_id}.json"

    def write_row(self, row: Mapping[str, Any]) -> Path:
        """Store one row atomically, replacing an earlier row of the same id (json has no nan/inf:
        they are written as NaN/Infinity)."""
        row = normalize_row(row, self.schema)
        if not row[self.schema.id_key]:
            raise ValueError(f"row has no {self.schema.id_key}")
        path = self.row_path(row[self.schema.id_key])
        atomic_write_bytes(path, (json.dumps(row, allow_nan=True) + "\n").encode())
        return path

    def read_rows(self, *, quarantine: bool = False) -> dict[str, dict[str, Any]]:
        """{id: row} of every stored row (temp files of interrupted writes are ignored).

        A file that is not a row of this store (unreadable, truncated, foreign JSON, an id other
        than its name) is skipped with a one-line warning naming it; with `quarantine` (the driver,
        holding the folder's lock) it is also moved to <rows folder>/quarantine/, so that the cell
        or sample simply runs again.
        """
        rows = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            row = self._good_row(path, quarantine)
            if row is not None:
                rows[row[self.schema.id_key]] = row
        return rows

    def read_stored_row(self, row_id: str, *, quarantine: bool = False) -> dict[str, Any] | None:
        """The stored row of one id, None when there is none or its file is not a row of this store
        (warned about, and with `quarantine` moved aside, as `read_rows` does)."""
        path = self.row_path(row_id)
        return self._good_row(path, quarantine) if path.exists() else None

    def finished_rows(self, rows: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Mapping[str, Any]]:
        """{id: row} of the rows (default: the stored ones) whose status is final."""
        rows = self.read_rows() if rows is None else rows
        return {i: r for i, r in rows.items() if r.get("status") in self.schema.finished}

    def _good_row(self, path: Path, quarantine: bool) -> dict[str, Any] | None:
        row, problem = self._checked_row(path)
        if problem is None:
            return row
        if quarantine:
            log.warning("%s: %s; moved to %s", path, problem, _quarantine(path))
        else:
            log.warning("%s: %s; skipped", path, problem)
        return None

    def _checked_row(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        """(row, None) for a row file of this store, else (None, what is wrong with it)."""
        id_key = self.schema.id_key
        try:
            row = read_row(path)
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return None, f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())})"
        if not isinstance(row, dict):
            return None, f"not a row file (JSON {type(row).__name__}, expected an object)"
        if row.get(id_key) != path.stem:
            return None, f"not a row file ({id_key} {row.get(id_key)!r} is not the file name)"
        extra = sorted(set(row) - set(self.schema.names))
        if extra or not isinstance(row.get("status"), str):
            return None, f"not a row file (columns outside its schema: {', '.join(extra) or 'no status'})"
        mistyped = _mistyped(row, self.schema)
        if mistyped:  # every reader types the row (normalize_row): one bad value would stop them all
            return None, f"not a row file ({mistyped})"
        return row, None


def _mistyped(row: Mapping[str, Any], schema: Schema) -> str | None:
    """What is wrong with the first value that does not have its column's type, or None."""
    for c in schema.columns:
        value = row.get(c.name)
        try:
            _coerce(value, c.dtype)
            if c.dtype == "json" and isinstance(value, str) and value:
                json.loads(value)  # JSON columns hold JSON text; the report parses them
        except (TypeError, ValueError, OverflowError):
            return f"column {c.name} holds {value!r:.60}, not {c.dtype}"
    return None


def trial_rows(results_dir: str | os.PathLike) -> RowStore:
    """The trial rows (rows/) of a results folder."""
    return RowStore(TRIALS, Path(results_dir))


def tuning_rows(results_dir: str | os.PathLike) -> RowStore:
    """The tuning rows (tuning_rows/) of a results folder."""
    return RowStore(TUNING, Path(results_dir))


def read_row(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _quarantine(path: Path) -> Path:
    """Move a bad file to <its folder>/quarantine/ (a free name: nothing there is ever overwritten)."""
    target_dir = path.parent / QUARANTINE
    target_dir.mkdir(exist_ok=True)
    target, n = target_dir / path.name, 1
    while target.exists():
        target, n = target_dir / f"{path.name}.{n}", n + 1
    os.replace(path, target)
    return target
