"""The result store of one suite's results folder: one row per trial, never lost, never duplicated.

Layout of `results/<suite>/`:
    rows/<trial_id>.json   one finished trial's row, written by the trial (temp file + rename)
    rows/quarantine/       unreadable or foreign files found in rows/, moved aside at start-up
    trials.parquet/.csv    the table of the suite's cells, written from rows/ by the driver (atomic)
    weights/, samples/, cache/, ray/   weights, sample grids, metric caches, Ray Tune's own files

Why a file per row: a rename is atomic, so a SIGKILL at any moment leaves either the old row or the
new one, never half of one, and keying by trial_id makes a duplicate row impossible. The tables are
a derived view (`SuiteTable`): built from rows/ at start-up and at the end, updated in memory after
every finished trial and written out at a rate that keeps the cost per trial flat. Files are created
with mode 0666 minus the umask (0644 usually), like open() would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import DataError
from bench.store.schema import COLUMN_NAMES, COLUMNS

log = logging.getLogger(__name__)

ROWS_DIR = "rows"
QUARANTINE = "quarantine"  # under rows/: files that are not rows of this store, kept for inspection
TABLE = "trials.parquet"
CSV = "trials.csv"
FINISHED = ("ok", "diverged")  # statuses that are measurements; resume skips them ("failed" reruns)
# what --restart removes (results of earlier runs); reports are rewritten at the end of a run
OWNED = (ROWS_DIR, TABLE, CSV, "weights", "samples", "ray", "logs")
_PANDAS_DTYPE = {"str": "str", "json": "str", "int": "Int64", "float": "float64", "bool": "boolean"}


# --- atomic files -----------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp creates 0600
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
        os.chmod(tmp, file_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_mode() -> int:
    """0o666 minus the process umask: the mode open() would give a new file."""
    try:  # Linux >= 4.7 shows it; os.umask() would have to change it to read it (racy with threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


# --- rows -------------------------------------------------------------------------------------
def empty_row() -> dict[str, Any]:
    """Every schema column 'not applicable': NaN for floats, None for ints/bools, '' for text."""
    blank = {"float": math.nan, "int": None, "bool": None, "str": "", "json": ""}
    return {c.name: blank[c.dtype] for c in COLUMNS}


def normalize_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row in schema order with schema types (JSON columns as text); unknown keys rejected."""
    extra = sorted(set(row) - set(COLUMN_NAMES))
    if extra:
        raise ValueError(f"row has columns outside bench.store.schema: {', '.join(extra)}")
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
    write_row_file(path, row)
    return path


def write_row_file(path: Path, row: Mapping[str, Any]) -> None:
    """One row as a JSON file, atomically (json has no nan/inf: they are written as NaN/Infinity)."""
    atomic_write_bytes(path, (json.dumps(row, allow_nan=True) + "\n").encode())


def read_row(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_rows(results_dir: Path, *, quarantine: bool = False) -> dict[str, dict[str, Any]]:
    """{trial_id: row} of every stored row (temp files of interrupted writes are ignored).

    A file in rows/ that is not a row of this store (unreadable, truncated, foreign JSON, a trial_id
    other than its name) is skipped with a one-line warning naming it; with `quarantine` (the
    driver at start-up, holding the folder's lock) it is also moved to rows/quarantine/, so that
    the cell simply runs again.
    """
    return read_row_folder(Path(results_dir) / ROWS_DIR, quarantine=quarantine)


def read_row_folder(
    folder: Path, *, id_key: str = "trial_id", columns: Iterable[str] = COLUMN_NAMES, quarantine: bool = False
) -> dict[str, dict[str, Any]]:
    """{id: row} of the row files in `folder` whose `id_key` is their name and whose keys are
    `columns` (trial rows by default; bench.store.tuning_rows passes its own); bad files as in read_rows."""
    rows, columns = {}, frozenset(columns)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        row = _good_row(path, quarantine, id_key, columns)
        if row is not None:
            rows[row[id_key]] = row
    return rows


def read_stored_row(results_dir: Path, trial_id: str, *, quarantine: bool = False) -> dict[str, Any] | None:
    """The stored row of one cell, None when there is none or its file is not a row of this store
    (warned about, and with `quarantine` moved aside, as `read_rows` does)."""
    return read_row_file(row_path(results_dir, trial_id), quarantine=quarantine)


def read_row_file(
    path: Path, *, id_key: str = "trial_id", columns: Iterable[str] = COLUMN_NAMES, quarantine: bool = False
) -> dict[str, Any] | None:
    """One row file as read_row_folder reads it; None when it is missing or bad."""
    return _good_row(path, quarantine, id_key, frozenset(columns)) if path.exists() else None


def _good_row(path: Path, quarantine: bool, id_key: str, columns: frozenset[str]) -> dict[str, Any] | None:
    row, problem = _checked_row(path, id_key, columns)
    if problem is None:
        return row
    if quarantine:
        log.warning("%s: %s; moved to %s", path, problem, _quarantine(path))
    else:
        log.warning("%s: %s; skipped", path, problem)
    return None


def _checked_row(path: Path, id_key: str, columns: frozenset[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) for a row file of this store, else (None, what is wrong with it)."""
    try:
        row = read_row(path)
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())})"
    if not isinstance(row, dict):
        return None, f"not a row file (JSON {type(row).__name__}, expected an object)"
    if row.get(id_key) != path.stem:
        return None, f"not a row file ({id_key} {row.get(id_key)!r} is not the file name)"
    extra = sorted(set(row) - columns)
    if extra or not isinstance(row.get("status"), str):
        return None, f"not a row file (columns outside its schema: {', '.join(extra) or 'no status'})"
    return row, None


def _quarantine(path: Path) -> Path:
    """Move a bad file to rows/quarantine/ (a free name: nothing there is ever overwritten)."""
    target_dir = path.parent / QUARANTINE
    target_dir.mkdir(exist_ok=True)
    target, n = target_dir / path.name, 1
    while target.exists():
        target, n = target_dir / f"{path.name}.{n}", n + 1
    os.replace(path, target)
    return target


def finished_ids(results_dir: Path) -> set[str]:
    """trial_ids that have a finished row (ok or diverged): a resumed run skips these cells."""
    return finished(read_rows(results_dir))


def finished(rows: Mapping[str, Mapping[str, Any]]) -> set[str]:
    return {tid for tid, row in rows.items() if row.get("status") in FINISHED}


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
    return _frame([normalize_row(r) for r in rows])


def _frame(normalized: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(normalized, columns=list(COLUMN_NAMES))
    return df.astype({c.name: _PANDAS_DTYPE[c.dtype] for c in COLUMNS})


class SuiteTable:
    """The suite's table (trials.parquet / trials.csv), held in memory by the driver.

    Built from rows/ at start-up and at the end of a run; in between, `put` replaces one cell's
    row in memory (O(1)) and the files are rewritten only when `FLUSH_SHARE` of the table is new or
    `FLUSH_S` seconds have passed. A rewrite costs O(n), so the cost per trial stays flat at any
    suite size instead of growing with it (a rewrite per trial made a suite quadratic). rows/ stays
    the source of truth: a killed driver loses no row, only a table that the next start rebuilds.
    """

    FLUSH_SHARE = 0.01  # rewrite once new rows amount to 1% of the table (every trial below 100 rows)
    FLUSH_S = 30.0  # ... or when the files are this many seconds behind

    def __init__(self, results_dir: Path, rows: Mapping[str, Mapping[str, Any]], trial_ids: Iterable[str] | None):
        """`trial_ids` (the suite's cells, in grid order) selects and orders the rows; rows of cells
        no longer in the suite stay in rows/ but are left out. None: every row, by identity."""
        self.results_dir = Path(results_dir)
        normalized = {t: normalize_row(r) for t, r in rows.items()}
        if trial_ids is None:
            trial_ids = sorted(normalized, key=lambda t: _identity(normalized[t]))
        self.order = {t: i for i, t in enumerate(trial_ids)}
        self.rows = {t: normalized[t] for t in self.order if t in normalized}
        self._unwritten = 0
        self._written_at = time.monotonic()

    @classmethod
    def load(cls, results_dir: Path, trial_ids: Iterable[str] | None = None, *, quarantine: bool = False):
        return cls(results_dir, read_rows(results_dir, quarantine=quarantine), trial_ids)

    def put(self, row: Mapping[str, Any]) -> None:
        """One finished trial's row (already stored in rows/); the files follow when due."""
        row = normalize_row(row)
        if row["trial_id"] not in self.order:
            return
        self.rows[row["trial_id"]] = row
        self._unwritten += 1
        due = self._unwritten >= max(1.0, self.FLUSH_SHARE * len(self.rows))
        if due or time.monotonic() - self._written_at >= self.FLUSH_S:
            self.write()

    def finished_ids(self) -> set[str]:
        return finished(self.rows)

    def frame(self) -> pd.DataFrame:
        return _frame(sorted(self.rows.values(), key=lambda r: self.order[r["trial_id"]]))

    def write(self, *, only_if_changed: bool = False) -> pd.DataFrame:
        """Rewrite trials.parquet and trials.csv (atomically); with `only_if_changed`, files that
        already hold exactly this table are left untouched (a rerun that changes nothing writes nothing)."""
        df = self.frame()
        if not (only_if_changed and self._on_disk(df)):
            _atomic_write_with(self.results_dir / TABLE, lambda p: df.to_parquet(p, index=False))
            _atomic_write_with(self.results_dir / CSV, lambda p: df.to_csv(p, index=False))
        self._unwritten = 0
        self._written_at = time.monotonic()
        return df

    def _on_disk(self, df: pd.DataFrame) -> bool:
        if not (self.results_dir / CSV).is_file():
            return False
        try:
            return _read_table(self.results_dir / TABLE).equals(df)
        except Exception:  # unreadable or foreign: rewrite it
            return False


def _identity(row: Mapping[str, Any]) -> tuple:
    return row["label"], row["dataset"], row["budget"], row["seed"], row["trial_id"]


def rebuild_tables(results_dir: Path, trial_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Rewrite trials.parquet and trials.csv (atomically) from the stored rows; see SuiteTable."""
    return SuiteTable.load(results_dir, trial_ids).write()


def _read_table(path: Path) -> pd.DataFrame:
    """trials.parquet with the schema's columns and dtypes (columns added since it was written: NA)."""
    df = pd.read_parquet(path)
    if "trial_id" not in df.columns or "status" not in df.columns:
        raise ValueError("not a genbench table (no trial_id / status column)")
    missing = [c.name for c in COLUMNS if c.name not in df.columns]
    df = df.reindex(columns=list(COLUMN_NAMES))
    for name in missing:  # typed "not measured"
        df[name] = _frame([empty_row()])[name].iloc[0]
    return df.astype({c.name: _PANDAS_DTYPE[c.dtype] for c in COLUMNS})


def load_results(results_dir: str | os.PathLike) -> pd.DataFrame:
    """A suite's results folder (results/<suite>) as a DataFrame with the schema's columns, plus
    one `hp_<name>` column per hyper-parameter found in `hparams` (missing for other families).

    Reads trials.parquet; a folder with rows but no readable table (a run killed before its first
    write, a damaged file) is read from its row files.
    """
    return hparam_columns(_load_results(Path(results_dir)))


def hparam_columns(df: pd.DataFrame) -> pd.DataFrame:
    """df with `hp_<name>` columns unpacked from the JSON `hparams` column (None where absent)."""
    parsed = [json.loads(text) if text else {} for text in df["hparams"].fillna("")]
    names = sorted({name for hp in parsed for name in hp})
    columns = {f"hp_{name}": pd.Series([hp.get(name) for hp in parsed], index=df.index) for name in names}
    return pd.concat([df, pd.DataFrame(columns, index=df.index)], axis=1) if columns else df


def _load_results(results_dir: Path) -> pd.DataFrame:
    results_dir = Path(results_dir)
    table = results_dir / TABLE
    has_rows = (results_dir / ROWS_DIR).is_dir()
    if table.is_file():
        try:
            df = _read_table(table)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            if not has_rows:
                raise DataError(f"{table}: unreadable ({reason}) and no {ROWS_DIR}/ to read instead") from None
            log.warning("%s: unreadable (%s); reading the rows in %s/ instead", table, reason, ROWS_DIR)
        else:
            _warn_if_stale(results_dir, table)
            return df
    if has_rows:
        return to_frame(read_rows(results_dir).values())
    raise DataError(f"{results_dir}: not a results folder (no {TABLE} and no {ROWS_DIR}/); pass results/<suite name>")


def _warn_if_stale(results_dir: Path, table: Path) -> None:
    newer = [p for p in (results_dir / ROWS_DIR).glob("*.json") if p.stat().st_mtime > table.stat().st_mtime]
    if newer:  # a driver killed (or still running) between a trial's row and the table's next write
        log.warning(
            "%s: %d row files are newer than %s; `genbench run` on the suite rebuilds it",
            results_dir,
            len(newer),
            TABLE,
        )
