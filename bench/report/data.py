"""Loading a results folder into the report's DataFrame, and small accessors on result rows.

The rows follow bench.store.schema: one per trial, NaN / "" where a column does not apply, JSON columns
as JSON text. `normalize` makes every schema column present with its dtype so the report code can
index columns without guards, whatever wrote the file (runner, CSV mirror, a test).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.store import storage
from bench.store.schema import COLUMNS, TRIALS
from bench.store.table import load_results

log = logging.getLogger(__name__)

IDENTITY = ("dataset", "budget", "family", "label", "seed", "trial_id")  # sort key for determinism


def load(results_dir: Path) -> pd.DataFrame:
    """The results folder's trials as a normalized DataFrame (through bench.store.rows)."""
    return normalize(load_results(Path(results_dir)))


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Every schema column present and typed (float/int/bool as float, str/json as str, "" if
    missing); rows sorted by identity so every aggregate sums in the same order on a rerun."""
    out = df.copy()
    for name, dtype in ((col.name, col.dtype) for col in COLUMNS):
        if dtype in ("str", "json"):
            values = out[name] if name in out else pd.Series("", index=out.index)
            out[name] = [_as_text(v) for v in values]
        else:
            values = out[name] if name in out else pd.Series(np.nan, index=out.index)
            out[name] = pd.to_numeric(values, errors="coerce").astype(float)
    out["tuned"] = out["tuned"].fillna(0.0) != 0  # results from before tuning existed: not tuned
    for key in ("dataset", "budget", "family", "label", "status"):
        out[key] = out[key].astype(str)
    out["label"] = out["label"].where(out["label"] != "", out["family"])
    return out.sort_values(list(IDENTITY), kind="stable").reset_index(drop=True)


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, dict)):  # a loader that already parsed the JSON text
        return json.dumps(value, sort_keys=True)
    return str(value)


def parse_json(text: str) -> Any:
    """A JSON column's value, or None for "" / invalid text (logged, never raised)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        log.warning("unparseable JSON cell ignored: %.60s", text)
        return None


def finite(rows: pd.DataFrame, col: str) -> np.ndarray:
    """Finite values of a numeric column, in row order."""
    x = rows[col].to_numpy(dtype=float)
    return x[np.isfinite(x)]


def resolve_asset(results_dir: Path, row: pd.Series, col: str) -> Path | None:
    """Existing file named by a path column (relative to the results folder, or to its suite
    subfolder when the report is run on the parent folder; a run's --storage: an absolute path or
    an object-store URI, fetched); None when absent or outside that folder and its storage prefix
    (bench.store.confine: refused with a warning naming the row, the report goes on without it)."""
    rel = row[col]
    if not rel:
        return None
    sub = results_dir / str(row["suite"])
    own = row["suite"] and ((sub / TRIALS.rows_dir).is_dir() or (sub / TRIALS.table).is_file())
    folder = sub if own else results_dir  # the row's own results folder
    return storage.fetch(rel, folder, row=f"row {row['trial_id']} ({col})")
