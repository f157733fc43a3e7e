"""Tables derived from a results folder's row files: trials.parquet/.csv and tuning.parquet/.csv.

The row files are the source of truth; a table is a view (`SuiteTable`): built from the rows at
start-up and at the end of a run, updated in memory after every finished trial and written out at a
rate that keeps the cost per trial flat. `load_results` is how readers (the report) get a suite's
trials, typed by the schema.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import DataError
from bench.store.files import atomic_write_with
from bench.store.folder import note_other_rows, read_cells
from bench.store.rows import RowStore, empty_row, normalize_row, typed_frame
from bench.store.schema import TRIALS, TUNING, Schema

log = logging.getLogger(__name__)


class SuiteTable:
    """The table of one kind of row (trials by default), held in memory by the driver.

    Built from the row files at start-up and at the end of a run; in between, `put` replaces one
    row in memory (O(1)) and the files are rewritten only when `FLUSH_SHARE` of the table is new or
    `FLUSH_S` seconds have passed. A rewrite costs O(n), so the cost per trial stays flat at any
    suite size instead of growing with it (a rewrite per trial made a suite quadratic). The rows
    stay the source of truth: a killed driver loses no row, only a table that the next start rebuilds.
    """

    FLUSH_SHARE = 0.01  # rewrite once new rows amount to 1% of the table (every trial below 100 rows)
    FLUSH_S = 30.0  # ... or when the files are this many seconds behind

    def __init__(
        self,
        results_dir: Path,
        rows: Mapping[str, Mapping[str, Any]],
        ids: Iterable[str] | None,
        schema: Schema = TRIALS,
    ):
        """`ids` (the suite's cells, in grid order) selects and orders the rows; rows of cells no
        longer in the suite stay in their folder but are left out. None: every row, by identity."""
        self.results_dir = Path(results_dir)
        self.schema = schema
        normalized = {t: normalize_row(r, schema) for t, r in rows.items()}
        if ids is None:
            ids = sorted(normalized, key=lambda t: tuple(normalized[t][k] for k in schema.order))
        self.order = {t: i for i, t in enumerate(ids)}
        self.rows = {t: normalized[t] for t in self.order if t in normalized}
        self._unwritten = 0
        self._written_at = time.monotonic()

    @classmethod
    def load(
        cls,
        results_dir: Path,
        ids: Iterable[str] | None = None,
        *,
        quarantine: bool = False,
        schema: Schema = TRIALS,
    ) -> SuiteTable:
        rows = RowStore(schema, Path(results_dir)).read_rows(quarantine=quarantine)
        return cls(results_dir, rows, ids, schema)

    def put(self, row: Mapping[str, Any]) -> None:
        """One finished row (already stored in its file); the table files follow when due."""
        row = normalize_row(row, self.schema)
        row_id = row[self.schema.id_key]
        if row_id not in self.order:
            return
        self.rows[row_id] = row
        self._unwritten += 1
        due = self._unwritten >= max(1.0, self.FLUSH_SHARE * len(self.rows))
        if due or time.monotonic() - self._written_at >= self.FLUSH_S:
            self.write()

    def finished_ids(self) -> set[str]:
        return {t for t, r in self.rows.items() if r["status"] in self.schema.finished}

    def frame(self) -> pd.DataFrame:
        rows = sorted(self.rows.values(), key=lambda r: self.order[r[self.schema.id_key]])
        return typed_frame(rows, self.schema)

    def write(self, *, only_if_changed: bool = False) -> pd.DataFrame:
        """Rewrite the parquet and CSV tables (atomically); with `only_if_changed`, files that
        already hold exactly this table are left untouched (a rerun that changes nothing writes nothing)."""
        df = self.frame()
        if not (only_if_changed and self._on_disk(df)):
            atomic_write_with(self.results_dir / self.schema.table, lambda p: df.to_parquet(p, index=False))
            atomic_write_with(self.results_dir / self.schema.csv, lambda p: df.to_csv(p, index=False))
        self._unwritten = 0
        self._written_at = time.monotonic()
        return df

    def _on_disk(self, df: pd.DataFrame) -> bool:
        if not (self.results_dir / self.schema.csv).is_file():
            return False
        try:
            return read_table(self.results_dir / self.schema.table, self.schema).equals(df)
        except Exception:  # unreadable or foreign: rewrite it
            return False


def rebuild_tables(results_dir: Path, ids: Iterable[str] | None = None, schema: Schema = TRIALS) -> pd.DataFrame:
    """Rewrite the schema's parquet and CSV tables (atomically) from the stored rows; see SuiteTable."""
    return SuiteTable.load(results_dir, ids, schema=schema).write()


def read_table(path: Path, schema: Schema = TRIALS) -> pd.DataFrame:
    """A parquet table with the schema's columns and dtypes (columns added since it was written: NA)."""
    df = pd.read_parquet(path)
    if schema.id_key not in df.columns or "status" not in df.columns:
        raise ValueError(f"not a genbench table (no {schema.id_key} / status column)")
    missing = [name for name in schema.names if name not in df.columns]
    df = df.reindex(columns=list(schema.names))
    blank = typed_frame([empty_row(schema)], schema)
    for name in missing:  # typed "not measured"
        df[name] = blank[name].iloc[0]
    return df.astype(schema.pandas_dtypes)


def row_digests(df: pd.DataFrame, schema: Schema = TRIALS) -> dict[str, str]:
    """{row id: hash of its schema columns' values}: what a set of rows is, to tell whether a report
    built from one set still describes the rows (the same on a table and on the rows it came from)."""
    records = df[list(schema.names)].astype(object).to_dict("records")
    return {str(r[schema.id_key]): _digest(r) for r in records}


def _digest(record: Mapping[str, Any]) -> str:
    plain = {
        k: None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v for k, v in record.items()
    }
    text = json.dumps(plain, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_tuning(results_dir: str | os.PathLike) -> pd.DataFrame | None:
    """tuning.parquet of a results folder, or None for a suite that was not tuned."""
    table = Path(results_dir) / TUNING.table
    return read_table(table, TUNING) if table.is_file() else None


def load_results(results_dir: str | os.PathLike) -> pd.DataFrame:
    """A suite's results folder (results/<suite>) as a DataFrame with the schema's columns, plus
    one `hp_<name>` column per hyper-parameter found in `hparams` (missing for other families).

    Reads trials.parquet; a folder with rows but no readable table (a run killed before its first
    write, a damaged file) is read from its row files. Either way only the rows of the suite's
    current cells (cells.json, recorded by `run`) are read; others are counted in one warning.
    """
    return hparam_columns(_load_results(Path(results_dir)))


def hparam_columns(df: pd.DataFrame) -> pd.DataFrame:
    """df with `hp_<name>` columns unpacked from the JSON `hparams` column (None where absent)."""
    parsed = [json.loads(text) if text else {} for text in df["hparams"].fillna("")]
    names = sorted({name for hp in parsed for name in hp})
    columns = {f"hp_{name}": pd.Series([hp.get(name) for hp in parsed], index=df.index) for name in names}
    return pd.concat([df, pd.DataFrame(columns, index=df.index)], axis=1) if columns else df


def _load_results(results_dir: Path) -> pd.DataFrame:
    store = RowStore(TRIALS, results_dir)
    table = results_dir / TRIALS.table
    has_rows = store.folder.is_dir()
    ids = read_cells(results_dir)  # the suite's current cells (None: a folder from before they were recorded)
    if table.is_file():
        try:
            df = read_table(table)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            if not has_rows:
                raise DataError(f"{table}: unreadable ({reason}) and no {TRIALS.rows_dir}/ to read instead") from None
            log.warning("%s: unreadable (%s); reading the rows in %s/ instead", table, reason, TRIALS.rows_dir)
        else:
            _warn_if_stale(store, table)
            return _current(df, ids, results_dir)
    if has_rows:
        rows = store.read_rows()
        note_other_rows(results_dir, len(set(rows) - set(ids)) if ids is not None else 0)
        return SuiteTable(results_dir, rows, ids).frame()
    raise DataError(
        f"{results_dir}: not a results folder (no {TRIALS.table} and no {TRIALS.rows_dir}/); pass results/<suite name>"
    )


def _current(df: pd.DataFrame, ids: list[str] | None, results_dir: Path) -> pd.DataFrame:
    """The table's rows of the current cells (a table a killed run left may hold others)."""
    if ids is None:
        return df
    keep = df[TRIALS.id_key].isin(ids)
    note_other_rows(results_dir, int((~keep).sum()))
    return df[keep].reset_index(drop=True)


def _warn_if_stale(store: RowStore, table: Path) -> None:
    newer = [p for p in store.folder.glob("*.json") if p.stat().st_mtime > table.stat().st_mtime]
    if newer:  # a driver killed (or still running) between a trial's row and the table's next write
        log.warning(
            "%s: %d row files are newer than %s; `genbench run` on the suite rebuilds it",
            store.results_dir,
            len(newer),
            TRIALS.table,
        )
