"""One Ray Tune experiment, built the same way for the final runs (bench.run.driver) and for each
tuning search (bench.run.tuning): resources, the run's storage, retries, our callbacks, the stop
signal, Tune's own console output off, and the keys its trials report their rows under.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from bench.run.signals import SignalStop, StopOnSignal
from bench.store.storage import Storage

ROW_KEY = "genbench_row"  # a trial's last report: its row as JSON (Tune reserves "trial_id")


def tune_environment() -> None:
    """The process-wide settings Tune reads from the environment, set once here (users may override
    the first three)."""
    # Tune's own console tables and per-trial loggers duplicate our bar and rows
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new engine has a banner at verbose=0
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard; JSON/CSV
    # Tune's rule for its own grid generator: a custom searcher would get one pending trial only
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(200, int(ray.cluster_resources().get("CPU", 1) * 1.1))))
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # bench.run.signals handles SIGINT (and SIGTERM)


def experiment_name(store: Storage, base: str) -> str:
    """`base`, made unique within the run's storage (Tune would mix two runs' files otherwise)."""
    name, n = base, 1
    while store.exists(f"ray/{name}"):
        n += 1
        name = f"{base}-{n}"
    return name


def timestamped(prefix: str) -> str:
    return time.strftime(f"{prefix}-%Y%m%d-%H%M%S")


def run_experiment(
    trainable,
    *,
    store: Storage,
    name: str,
    resources: dict[str, float],
    tune_config: tune.TuneConfig,
    max_retries: int,
    callback: tune.Callback,
    tracking: Sequence[tune.Callback],
    stop: StopOnSignal | None,
    param_space: dict[str, Any] | None = None,
    checkpoint_config: tune.CheckpointConfig | None = None,
) -> None:
    """Fit one experiment of `trainable` (its parameters bound) with `resources` per trial; its files
    and checkpoints go to the run's storage (<storage>/ray/<name>). `callback` is the driver's own (rows,
    progress), `tracking` the --tracking loggers. A stop signal ends the experiment cleanly."""
    tune_environment()  # before the Tuner: it reads some of them when built
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            **store.tune_run_config(),
            failure_config=tune.FailureConfig(max_failures=max_retries),  # re-runs a trial whose process died
            checkpoint_config=checkpoint_config,
            callbacks=[callback, JsonLoggerCallback(), CSVLoggerCallback(), *tracking],
            stop=SignalStop(stop) if stop else None,
            verbose=0,  # our progress bar replaces Tune's tables
        ),
    )
    with stop.graceful() if stop else contextlib.nullcontext():
        tuner.fit()
