"""Run a suite's grid with Ray Tune: one trial per cell, rows into the result store, resume.

`run_suite(suite, results_root)`:
1. results/<suite>/ is the suite's results folder; --restart clears it first (caches are kept).
2. Cells that already have a finished row (ok / diverged) are skipped: that is the resume, done on
   the row store rather than Tune's experiment state so that it survives edits of the suite and a
   SIGKILLed driver (Tune's `Tuner.restore` cannot change the trial set).
3. The other cells run as one Tune experiment on the Ray that bench.run.cluster joins (--address,
   $RAY_ADDRESS, else a private local one): `tune.with_resources` from [resources],
   `FailureConfig(max_failures=...)` re-runs a trial whose process died, concurrency up to the
   cluster's slots (or resources.max_concurrent). The trials run bench.run.worker (the worker
   side): each reports as it trains, saves checkpoints through `ray.tune.report`, continues from
   `tune.get_checkpoint()` (Tune's retry) or else from the most advanced complete checkpoint of
   its cell that this run or an earlier run of the folder stored (bench.trial.checkpoint), writes its
   own row (bench.store.rows, atomic) and reports it last. The driver keeps the table in memory
   (SuiteTable: rewritten at a rate that keeps the cost per trial flat) and shows done /
   running / failed counts. Cells reach Tune one at a time (bench.run.cell_feed), not as a grid.
   Weights, samples and Tune's files go to the run's storage (bench.store.storage: the results folder,
   or --storage).
4. A trial still errored after its retries gets a "failed" row written by the driver.
5. One run per results folder (bench.store.lock); storage problems are one-line errors (exit 2).
   SIGINT / SIGTERM (bench.run.signals, installed by the CLI) stop the trials cleanly.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from bench.datasets import make_dataset
from bench.errors import StorageError
from bench.metrics.extractors import resolve_extractor
from bench.run import cluster, tuning
from bench.run.cell_feed import CellFeed
from bench.run.experiment import ROW_KEY, experiment_name, run_experiment, timestamped
from bench.run.progress import ProgressBar
from bench.run.signals import StopOnSignal
from bench.run.tracking import tracking_callbacks
from bench.run.worker import LOG_KEY, STORED_KEY, cell_trainable
from bench.store import TRIALS, SuiteTable, atomic_write_bytes, clean_temp_files, clear, storage, trial_rows
from bench.store.lock import results_lock, storage_errors
from bench.suite.model import Cell, Suite
from bench.trial import checkpoint
from bench.trial.run import identity_row

log = logging.getLogger(__name__)

LOGS_DIR = "logs"  # results/<suite>/logs/<trial_id>.log: failed trials' tracebacks


@dataclass
class RunSummary:
    results_dir: Path
    total: int  # cells in the suite
    skipped: int  # cells with a finished row from an earlier run
    statuses: Counter = field(default_factory=Counter)  # status -> count over the suite's rows
    report_path: Path | None = None
    interrupted: int | None = None  # the signal that stopped the run (None: it ran to the end)

    @property
    def failed(self) -> int:
        return self.statuses.get("failed", 0)

    def describe(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "no rows"
        missing = self.total - sum(self.statuses.values())
        extra = f", {missing} without a row" if missing else ""
        return (
            f"{self.total} trials: {counts}{extra} ({self.skipped} skipped as already "
            f"finished); table: {self.results_dir / TRIALS.table}"
        )


def run_suite(
    suite: Suite,
    results_root: str | os.PathLike,
    *,
    address: str | None = None,
    storage_uri: str | None = None,
    restart: bool = False,
    report: bool = True,
    stop: StopOnSignal | None = None,
    tracking: str | None = None,
) -> RunSummary:
    """Run every cell of `suite` without a finished row; returns the counts of the suite's rows.

    address: --address (else $RAY_ADDRESS, else a private local Ray); storage_uri: --storage (else
    the results folder). stop: the CLI's signal handlers; a signal ends the run early (summary.interrupted, no report).
    A suite with [tune] first tunes (bench.run.tuning, phase 1); its cells then carry the chosen
    configurations. tracking: "tensorboard" | "mlflow" attaches Ray Tune's logger callbacks.
    """
    address = cluster.resolve_address(address)
    if address:  # a cluster: join it and check the trial size against it before writing any file
        cluster.connect(address)
        cluster.trial_resources(suite, address)
    results_dir = (Path(results_root) / suite.name).resolve()
    store = storage.open_storage(storage_uri, results_dir)  # an unwritable --storage fails here, in one line
    callbacks = tracking_callbacks(tracking, results_dir)
    with results_lock(results_dir):
        return _run_locked(suite, store, address, restart, report, stop, callbacks)


def _run_locked(
    suite: Suite,
    store: storage.Storage,
    address: str | None,
    restart: bool,
    report: bool,
    stop: StopOnSignal | None,
    callbacks: list,
) -> RunSummary:
    results_dir = store.results_dir
    with storage_errors(results_dir):  # a read-only folder or a full disk: one line, exit 2
        if restart:
            log.info("--restart: clearing earlier results in %s", results_dir)
            clear(results_dir)
            if not store.is_results_folder:
                store.clear()
        clean_temp_files(results_dir)
    cells = suite.cells() if suite.tune is None else tuned_cells(suite, results_dir, address, callbacks, stop, store)
    if cells is None:  # a signal during tuning: the final runs wait for the next run
        return RunSummary(results_dir=results_dir, total=len(suite.cells()), skipped=0, interrupted=stop.signum)
    with storage_errors(results_dir):
        ids = [c.trial_id for c in cells]
        stored = trial_rows(results_dir).read_rows(quarantine=True)
        table = SuiteTable(results_dir, stored, ids)
        table.write(only_if_changed=True)  # rows a killed run wrote after its last table write
    stale = set(stored) - set(ids)
    if stale:
        log.warning(
            "%s holds %d rows of cells that are not in this suite (edited suite?); they "
            "stay in %s/ but not in %s; --restart removes them",
            results_dir,
            len(stale),
            TRIALS.rows_dir,
            TRIALS.table,
        )
    done = table.finished_ids()
    todo = [c for c in cells if c.trial_id not in done]
    summary = RunSummary(results_dir=results_dir, total=len(cells), skipped=len(cells) - len(todo))
    log.info("%s; %d to run, %d already finished", suite.describe(), len(todo), summary.skipped)

    if todo:
        # Ray's start-up mostly waits on its processes, extractor preparation computes: overlap them
        with ThreadPoolExecutor(1) as pool:
            prepared = pool.submit(prepare_extractors, todo, store.cache_dir(suite.name))
            cluster.connect(address)
            prepared.result()
        _fit(suite, todo, table, store, address, stop, callbacks)
        table = SuiteTable.load(results_dir, ids)  # full rebuild: rows/ is the truth
        table.write(only_if_changed=True)
    summary.statuses = Counter(table.frame()["status"].tolist())
    summary.interrupted = stop.signum if stop else None
    if summary.interrupted:
        log.warning("run interrupted: no report written (the next run resumes; or: genbench report %s)", results_dir)
    elif report and (todo or not _report_exists(results_dir)):  # nothing changed: the report stands
        summary.report_path = write_report(results_dir)
    return summary


def tuned_cells(
    suite: Suite, results_dir: Path, address: str | None, callbacks=(), stop=None, store: storage.Storage | None = None
) -> list[Cell] | None:
    """A [tune] suite: its missing tuning trials (bench.run.tuning, phase 1), then the phase-2 cells
    (None when a stop signal ended phase 1). store: the run's storage (None: the results folder)."""
    store = store or storage.Storage(results_dir=results_dir)
    plan = tuning.Plan.of(suite)  # the searches, expanded and hashed once
    if tuning.pending(plan, results_dir):
        cluster.connect(address)
        cpus, gpus = cluster.trial_resources(suite, address)
        prepare_extractors(suite.cells(), store.cache_dir(suite.name))  # before tuning trials race to build them
        available = ray.cluster_resources()
        slots = min(available.get("CPU", 0) // cpus, available.get("GPU", 0) // gpus if gpus else math.inf)
        slots = suite.resources.max_concurrent or max(1, int(slots))
        resources = {"cpu": cpus, "gpu": gpus}
        tuning.tune_phase(suite, plan, store, slots=slots, resources=resources, callbacks=callbacks, stop=stop)
        if stop is not None and stop.signum is not None:
            return None
    return tuning.final_cells(suite, plan, results_dir)


def _report_exists(results_dir: Path) -> bool:
    from bench.report import OUTPUTS

    return all((results_dir / name).exists() for name in OUTPUTS)


def prepare_extractors(cells, cache_dir: Path) -> None:
    """Build each dataset's feature extractor once, here, before any trial starts.

    The offline classifier extractor is trained on first use and cached; done inside a trial, its
    one-off training would be charged to that trial's metrics_s (and parallel trials would wait on
    its lock). Trials then find it in the cache.
    """
    seen = set()
    for cell in cells:
        key = (cell.dataset, repr(cell.dataset_options), repr(cell.eval))
        if key in seen:
            continue
        seen.add(key)
        try:
            extractor = resolve_extractor(make_dataset(cell.dataset, cell.dataset_options), cell.eval, cache_dir)
        except Exception as exc:  # the trials meet the same error and record it on their rows
            log.warning("no feature extractor prepared for %s: %s", cell.dataset, exc)
            continue
        log.info("feature extractor for %s: %s %s", cell.dataset, extractor.name, extractor.hash)


def write_report(results_dir: Path) -> Path | None:
    """bench.report's report of the folder; logged, not raised, when it fails (rows are safe),
    except a folder that cannot take the files (full, read-only): one line, exit 2."""
    from bench.report import write_report as _write

    try:
        return _write(results_dir)
    except StorageError as exc:
        raise StorageError(
            f"{exc}; the rows are kept (once the folder can take files again: genbench report {results_dir})"
        ) from None
    except Exception:
        log.exception(
            "writing the report failed; the rows are in %s (retry: genbench report %s)", results_dir, results_dir
        )
        return None


# --- Ray --------------------------------------------------------------------------------------
def _fit(
    suite: Suite,
    todo: list[Cell],
    table: SuiteTable,
    store: storage.Storage,
    address: str | None,
    stop,
    callbacks=(),
) -> None:
    results_dir = table.results_dir
    cluster.connect(address)
    cpus, gpus = cluster.trial_resources(suite, address)
    stored = _stored_checkpoints(store, todo)
    name = experiment_name(store, timestamped("run"))
    trainable = tune.with_parameters(
        cell_trainable, results_dir=str(results_dir), storage_uri=store.uri, experiment=name, stored=stored
    )
    by_id = {c.trial_id: c for c in todo}
    progress = _Progress(table, by_id)
    tune_config = tune.TuneConfig(
        search_alg=CellFeed([c.to_dict() for c in todo]),  # one trial per cell, in grid order
        num_samples=len(todo),
        max_concurrent_trials=suite.resources.max_concurrent or None,
        trial_name_creator=lambda t: by_id[_cell_id(t)].name,
        trial_dirname_creator=_cell_id,
        # one worker process runs trial after trial: imports and start-up (~5 s) paid once per
        # slot; run_trial resets what a trial sets (seeds, Accelerate state, threads, peak memory)
        reuse_actors=True,
    )
    try:
        run_experiment(
            trainable,
            store=store,
            name=name,
            resources={"cpu": cpus, "gpu": gpus},
            tune_config=tune_config,
            max_retries=suite.resources.max_retries,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # the latest may be cut short by a kill
            callback=progress,
            tracking=callbacks,
            stop=stop,
        )
    finally:
        progress.close()


def _stored_checkpoints(store: storage.Storage, todo: list[Cell]) -> dict[str, tuple[str, int]]:
    """trial_id -> (path, step) of the most advanced checkpoint an earlier run of this folder stored
    for that cell."""
    found = checkpoint.find_stored(store.fs, f"{store.root}/ray", [c.trial_id for c in todo])
    if found:
        log.info("%d of %d cells resume from checkpoints of an earlier run", len(found), len(todo))
    return found


class _Progress(tune.Callback):
    """Driver side: the table, failed rows for crashed trials, failed trials' logs, the display."""

    def __init__(self, table: SuiteTable, cells: dict[str, Cell]):
        self.results_dir = table.results_dir
        self.table = table
        self.cells = cells
        budgets = {tid: (c.steps, c.seconds) for tid, c in cells.items()}
        self.display = ProgressBar(budgets, {tid: c.name for tid, c in cells.items()})

    def __getstate__(self):  # Tune pickles its callbacks with the experiment
        return {**self.__dict__, "table": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if ROW_KEY not in result:  # a report while the trial trains
            self.display.report(_cell_id(trial), result)
            return
        row = json.loads(result[ROW_KEY])
        # a worker on a node without the shared results folder could not store it itself; and a
        # Tune retry that restarted from step 0 (no checkpoint yet) is an attempt only Tune counted
        missing = trial_rows(self.results_dir).read_stored_row(row["trial_id"], quarantine=True) is None
        recount = not result.get(STORED_KEY) and _count_retries(row, trial.num_failures)
        if missing or recount:
            trial_rows(self.results_dir).write_row(row)
        if result.get(LOG_KEY):
            _write_log(self.results_dir, row["trial_id"], result[LOG_KEY])
        self._finished(row)

    def on_trial_error(self, iteration, trials, trial, **info):
        # the driver holds the folder's lock: a damaged row file is moved aside, as at start-up
        stored = trial_rows(self.results_dir).read_stored_row(_cell_id(trial), quarantine=True)
        if stored is not None and stored["status"] in TRIALS.finished:
            self._finished(stored)  # died after storing its row: keep it
            return
        row = identity_row(self.cells[_cell_id(trial)])
        row.update(
            status="failed",
            error=f"trial process died ({trial.num_failures} attempts): {_last_line(trial.error_file)}",
            attempts=trial.num_failures,
        )
        trial_rows(self.results_dir).write_row(row)
        _write_log(self.results_dir, row["trial_id"], _read(trial.error_file) or row["error"])
        self._finished(row)

    def on_step_end(self, iteration, trials, **info):
        self.display.pending(sum(t.status == "PENDING" for t in trials))
        self.display.tick()  # Tune's loop runs often: the clock keeps moving while trials train

    def _finished(self, row: dict[str, Any]) -> None:
        self.table.put(row)
        msg = f"{row['status']:8s} {self.cells[row['trial_id']].name}"
        if row["status"] != "ok":
            msg += f": {row['error']}"
        if row["status"] == "failed":
            msg += f" (log: {_log_path(self.results_dir, row['trial_id'])})"
        self.display.finish(row["trial_id"], row["status"], msg)

    def close(self) -> None:
        self.display.close()


def _count_retries(row: dict[str, Any], failures: int) -> bool:
    """Raise the row's attempts (resumes from checkpoints) to this run's Tune attempts; True if raised."""
    if row.get("attempts") is None or row["attempts"] >= failures + 1:
        return False
    row["attempts"] = failures + 1
    return True


def _log_path(results_dir: Path, trial_id: str) -> Path:
    return results_dir / LOGS_DIR / f"{trial_id}.log"


def _write_log(results_dir: Path, trial_id: str, text: str) -> None:
    """A failed trial's traceback next to the rows (Ray keeps its copy in its session folder)."""
    atomic_write_bytes(_log_path(results_dir, trial_id), text.encode())


def _cell_id(trial) -> str:
    return trial.config["cell"]["trial_id"]


def _read(path: str | None) -> str:
    try:
        return Path(path).read_text() if path else ""
    except OSError:
        return ""


def _last_line(error_file: str | None) -> str:
    """The last line of Tune's error file (the exception), or a note that there is none."""
    text = _read(error_file)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no error file"
