"""The store of phase-1 tuning trials: one row per sampled configuration, never run twice.

Layout inside a suite's results folder:
    tuning_rows/<tuning_id>.json   one tuning trial's row (temp file + rename, like rows/)
    tuning.parquet / tuning.csv    the table of the suite's tuning trials, rebuilt by the driver

`tuning_id` is a stable hash of (model label, dataset, budget, tuning seed, sample index) and of
what makes the search (the model's base configuration, its space, the metric, search and
scheduler), so an edited space or metric starts a new search instead of mixing two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.store.rows import _atomic_write_with, read_row_file, read_row_folder, write_row_file

ROWS_DIR = "tuning_rows"
TABLE = "tuning.parquet"
CSV = "tuning.csv"
# a finished tuning trial is never rerun: it ran the budget (ok), was stopped early by the
# scheduler (stopped) or diverged; "failed" trials (exceptions, dead processes) run again
FINISHED = ("ok", "stopped", "diverged")

# (name, dtype, meaning with unit); dtypes as in bench.store.schema
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("label", "str", "model label from the suite"),
    ("family", "str", "registered family name"),
    ("dataset", "str", "registered dataset name"),
    ("budget", "str", "budget name from the suite"),
    ("seed", "int", "tuning seed (one search of `samples` configurations per seed)"),
    ("sample", "int", "0-based index of the configuration within its search"),
    ("config", "json", "the sampled hyper-parameter values"),
    ("val_metric", "float", "last validation metric reported (lower is better; inf when diverged)"),
    ("metric", "str", "name of the validation metric: nll (in the row's NLL unit) | fid"),
    ("stopped_step", "int", "optimizer step the trial ended at (below the budget when stopped early)"),
    ("budget_steps", "int", "optimizer steps of the budget (empty for time-only budgets)"),
    ("status", "str", "ok | stopped (early, by the scheduler) | diverged | failed"),
    ("train_s", "float", "training wall time in seconds, validation excluded"),
    ("error", "str", "error text of a failed/diverged trial, else ''"),
    ("tuning_id", "str", "stable hash of the search and the sample index"),
)
COLUMN_NAMES = tuple(c[0] for c in COLUMNS)
_PANDAS_DTYPE = {"str": "str", "json": "str", "int": "Int64", "float": "float64"}


def row_path(results_dir: Path, tuning_id: str) -> Path:
    return Path(results_dir) / ROWS_DIR / f"{tuning_id}.json"


def normalize(row: Mapping[str, Any]) -> dict[str, Any]:
    extra = sorted(set(row) - set(COLUMN_NAMES))
    if extra:
        raise ValueError(f"tuning row has unknown columns: {', '.join(extra)}")
    out: dict[str, Any] = {}
    for name, dtype, _ in COLUMNS:
        v = row.get(name)
        if dtype == "json":
            out[name] = v if isinstance(v, str) else json.dumps(v or {}, sort_keys=True)
        elif dtype == "float":
            out[name] = math.nan if v is None else float(v)
        elif dtype == "int":
            out[name] = None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
        else:
            out[name] = "" if v is None else str(v)
    return out


def write_row(results_dir: Path, row: Mapping[str, Any]) -> Path:
    """Store one tuning trial's row atomically (json has no inf: it is written as Infinity)."""
    row = normalize(row)
    path = row_path(results_dir, row["tuning_id"])
    write_row_file(path, row)
    return path


def read_rows(results_dir: Path, *, quarantine: bool = False) -> dict[str, dict[str, Any]]:
    """{tuning_id: row} of every stored tuning row; a damaged or foreign file is skipped with a
    warning (and with `quarantine`, moved to tuning_rows/quarantine/: that sample runs again)."""
    return read_row_folder(
        Path(results_dir) / ROWS_DIR, id_key="tuning_id", columns=COLUMN_NAMES, quarantine=quarantine
    )


def read_stored_row(results_dir: Path, tuning_id: str, *, quarantine: bool = False) -> dict[str, Any] | None:
    """One sample's stored tuning row, None when there is none or its file is damaged (as read_rows)."""
    path = row_path(results_dir, tuning_id)
    return read_row_file(path, id_key="tuning_id", columns=COLUMN_NAMES, quarantine=quarantine)


def finished(results_dir: Path) -> dict[str, dict[str, Any]]:
    return {t: r for t, r in read_rows(results_dir).items() if r["status"] in FINISHED}


def to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame([normalize(r) for r in rows], columns=list(COLUMN_NAMES))
    return df.astype({name: _PANDAS_DTYPE[dtype] for name, dtype, _ in COLUMNS})


def rebuild_tables(results_dir: Path, tuning_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Rewrite tuning.parquet and tuning.csv from the stored rows (those of `tuning_ids`, in
    their order; None: every stored row, sorted by model, dataset, budget, seed, sample)."""
    results_dir = Path(results_dir)
    stored = read_rows(results_dir)
    if tuning_ids is None:
        ids = sorted(
            stored, key=lambda t: tuple(stored[t][k] for k in ("label", "dataset", "budget", "seed", "sample"))
        )
    else:
        ids = [t for t in tuning_ids if t in stored]
    df = to_frame(stored[t] for t in ids)
    _atomic_write_with(results_dir / TABLE, lambda p: df.to_parquet(p, index=False))
    _atomic_write_with(results_dir / CSV, lambda p: df.to_csv(p, index=False))
    return df


def load_tuning(results_dir: str | Path) -> pd.DataFrame | None:
    """tuning.parquet of a results folder, or None for a suite that was not tuned."""
    table = Path(results_dir) / TABLE
    if not table.is_file():
        return None
    df = pd.read_parquet(table)
    return df.astype({name: _PANDAS_DTYPE[dtype] for name, dtype, _ in COLUMNS})
