"""One tuning trial, in its Ray worker: train a sampled configuration on the tuning split, report
the validation metric as it trains, store its tuning row (bench.run.tuning runs the searches; this is
the worker side, as bench.run.worker is for the final runs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray import tune

from bench.errors import GenbenchError
from bench.run.experiment import ROW_KEY
from bench.store import tuning_rows
from bench.store.storage import Storage
from bench.suite.model import Cell, digest, with_values
from bench.trial.run import Lifecycle, run_trial

METRIC = "val_metric"  # the reported key every searcher and scheduler minimises


def plain_value(value: Any) -> Any:
    """numpy scalars from the samplers -> Python values (typed hparams reject numpy types)."""
    return value.item() if hasattr(value, "item") else value


def tuning_id(search_key: str, sample: int) -> str:
    """Stable id of one tuning trial: the search's key and the sample index."""
    return digest({"search": search_key, "sample": sample})


def sample_of(trial_name: str) -> int:
    return int(trial_name.rsplit("-", 1)[1])


def tuning_trainable(
    config: dict[str, Any], results_dir: str, storage_uri: str | None, keys: tuple[str, ...], metric: str, key: str
) -> None:
    """One tuning trial: train the sampled configuration, report val_metric, store the row (with
    --storage elsewhere this node may lack the results folder: the driver's _Recorder stores it)."""
    store = Storage(results_dir=Path(results_dir), uri=storage_uri)
    base = Cell.from_dict(config["cell"])
    sampled = {k: plain_value(config[k]) for k in keys}
    sample = sample_of(tune.get_context().get_trial_name())
    last: dict[str, Any] = {}

    def report(metrics: dict[str, Any], folder=None) -> None:  # checkpoints: a retry starts afresh
        last.update(metrics)
        tune.report(metrics)

    try:  # a sampled value the family rejects (e.g. lr below its lr_min) is a failed row, not a crash
        cell = with_values(base, sampled, tuned=False)
    except GenbenchError as exc:
        row = {"status": "failed", "error": str(exc), "train_s": math.nan}
    else:
        lifecycle = Lifecycle(reporter=report)
        cache = store.cache_dir(cell.suite)
        row = run_trial(cell, results_dir=store.results_dir, cache_dir=cache, lifecycle=lifecycle, validation=metric)
    out = tuning_row(base, sample, sampled, metric, last, status=row["status"], error=row["error"])
    out["train_s"] = row["train_s"]
    out["tuning_id"] = tuning_id(key, sample)
    if store.is_results_folder:
        tuning_rows(store.results_dir).write_row(out)
    tune.report({**last, METRIC: out["val_metric"], ROW_KEY: json.dumps(out)})


def tuning_row(cell: Cell, sample: int, sampled: dict, metric: str, last: dict, *, status: str, error: str = ""):
    return {
        "label": cell.label,
        "family": cell.family,
        "dataset": cell.dataset,
        "budget": cell.budget,
        "seed": cell.seed,
        "sample": sample,
        "config": json.dumps(sampled, sort_keys=True),
        "val_metric": last.get(METRIC, math.nan) if status != "diverged" else math.inf,
        "metric": metric,
        "stopped_step": last.get("step"),
        "budget_steps": cell.steps,
        "status": status,
        "train_s": last.get("train_s", math.nan),
        # the quality trajectory so far, as the trial's last report carried it (bench.metrics.trajectory)
        "fid_oscillation": last.get("fid_oscillation", math.nan),
        "collapsed": True if status == "diverged" else last.get("collapsed"),
        "error": error,
    }
