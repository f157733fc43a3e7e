"""The worker side of a run: the Ray Tune function trainable that turns one cell into one row.

`cell_trainable` runs inside a Ray worker process (bench.run.driver hands it to Tune): it measures the cell
with bench.trial, reporting while it trains and passing checkpoints to Tune (`tune.report`, which copies
the folder to `<storage>/ray/<experiment>/<trial_id>/checkpoint_<n>/`), and reports the row last
(`ROW_KEY`, with the trial's log under `LOG_KEY` when it failed); the driver's callback in bench.run.driver
reads both. Where a trial continues from: `tune.get_checkpoint()` (Tune's retry), else `resume_point`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from bench.run.experiment import ROW_KEY
from bench.store import TRIALS, storage, trial_rows
from bench.suite.model import Cell
from bench.trial import checkpoint
from bench.trial.run import Lifecycle, run_trial

log = logging.getLogger(__name__)

LOG_KEY = "genbench_log"  # reported with a failed row: the trial's log (its traceback)
STORED_KEY = "genbench_stored_row"  # reported when the row is one an earlier attempt stored (nothing trained)


def resume_point(
    store: storage.Storage, experiment: str, trial_id: str, stored: dict[str, tuple[str, int]]
) -> tuple[str, int] | None:
    """(path, step) a trial that Tune hands no checkpoint continues from, None for step 0: the more
    advanced of the newest complete checkpoint in its folder of this run's experiment and `stored`
    (earlier runs', looked up once at the start of the run).

    Tune's retry gets None from `tune.get_checkpoint()` when the worker died after copying a
    checkpoint to storage but before the driver registered it; the copy is in that folder. One listing."""
    here = checkpoint.newest_in(store.fs, f"{store.root}/ray/{experiment}/{trial_id}", trial_id)
    return max((c for c in (here, stored.get(trial_id)) if c is not None), key=lambda c: c[1], default=None)


def cell_trainable(
    config: dict[str, Any],
    results_dir: str,
    storage_uri: str | None,
    experiment: str,
    stored: dict[str, tuple[str, int]],
) -> None:
    """Tune function trainable: one cell -> one row, reported to the driver (with the trial's log
    when it failed: the driver copies it to logs/<trial_id>.log)."""
    cell = Cell.from_dict(config["cell"])
    store = storage.Storage(results_dir=Path(results_dir), uri=storage_uri)
    with _trial_log() as trial_log:
        row, trained = _measure(cell, store, experiment, stored)
    report = {"status": row["status"], "step": row["train_steps"], "train_s": row["train_s"], ROW_KEY: json.dumps(row)}
    if not trained:
        report[STORED_KEY] = True
    if row["status"] == "failed":
        report[LOG_KEY] = trial_log.getvalue()
    tune.report({**report, "node_id": _node_id()})


def _measure(
    cell: Cell, store: storage.Storage, experiment: str, stored: dict[str, tuple[str, int]]
) -> tuple[dict[str, Any], bool]:
    """(The cell's row, whether this process trained it): trained from its latest checkpoint (this
    run's retry, else an earlier run), or the finished row a previous attempt stored.

    Storage = the results folder: the trial stores its row there itself. With --storage elsewhere
    (this node may not even have the results folder) it writes into a scratch folder, copies weights
    and samples to the storage and leaves the row to the driver, which gets it through Tune."""
    folder = store.results_dir
    if store.is_results_folder:
        row = trial_rows(folder).read_stored_row(cell.trial_id)  # an unreadable one is rewritten below
        if row is not None and row["status"] in TRIALS.finished:
            return row, False  # a retry after the row was stored: never measure a cell twice
    resume = tune.get_checkpoint()
    if resume is None and (found := resume_point(store, experiment, cell.trial_id, stored)) is not None:
        log.info("trial %s continues from the stored checkpoint %s (step %d)", cell.name, *found)
        resume = tune.Checkpoint(found[0], filesystem=store.fs)
    with resume.as_directory() if resume is not None else contextlib.nullcontext() as local:
        lifecycle = Lifecycle(reporter=_report_to_tune, resume=Path(local) if local else None)
        if store.is_results_folder:
            row = run_trial(cell, results_dir=folder, lifecycle=lifecycle)
            trial_rows(folder).write_row(row)
            return row, True
        with tempfile.TemporaryDirectory(prefix="genbench-trial-") as scratch:
            row = run_trial(cell, results_dir=Path(scratch), cache_dir=store.cache_dir(cell.suite), lifecycle=lifecycle)
            return store.publish(Path(scratch), row), True


def _report_to_tune(metrics: dict[str, Any], folder: Path | None) -> None:
    """bench.trial's reporter: Tune copies the checkpoint folder to its storage before returning."""
    checkpoint_ = tune.Checkpoint.from_directory(str(folder)) if folder else None
    tune.report({**metrics, "node_id": _node_id()}, checkpoint=checkpoint_)


def _node_id() -> str:
    """The Ray node running this trial, on every report (Tune's results show where each ran)."""
    return ray.get_runtime_context().get_node_id()


@contextlib.contextmanager
def _trial_log():
    """The trial's log records (bench.* loggers, tracebacks included) collected in memory."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("bench")
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
