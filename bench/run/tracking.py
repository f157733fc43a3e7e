"""Opt-in experiment tracking (`genbench run --tracking tensorboard|mlflow`): Ray Tune's own logger
callbacks on every trial's reports (training loss, val_metric while tuning, the final row).

- tensorboard: `TBXLoggerCallback` writes event files next to each trial in
  <results>/<suite>/ray/<experiment>/<trial>/; watch with `tensorboard --logdir results/<suite>/ray`.
- mlflow: `MLflowLoggerCallback` into a local file store, <results>/<suite>/mlruns (no server);
  watch with `mlflow ui --backend-store-uri results/<suite>/mlruns`. $MLFLOW_TRACKING_URI overrides.

Both need the `tracking` extra (`pip install 'genbench[tracking]'`); a missing package is a one-line
error before anything runs.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from bench.errors import ConfigError


def _tensorboard(results_dir: Path):
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


def _mlflow(results_dir: Path):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (results_dir / "mlruns").resolve().as_uri()
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=results_dir.name)


# name -> (module the callback needs, its builder)
TRACKERS: dict[str, tuple[str, Callable]] = {
    "tensorboard": ("tensorboardX", _tensorboard),
    "mlflow": ("mlflow", _mlflow),
}


def check_tracking(name: str | None) -> None:
    """Raise a one-line ConfigError when the tracker is unknown or its package is missing."""
    if name is None:
        return
    if name not in TRACKERS:
        raise ConfigError(f"--tracking: unknown tracker {name!r}; expected one of: {', '.join(TRACKERS)}")
    module = TRACKERS[name][0]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"--tracking {name}: the {module} package is not installed (pip install 'genbench[tracking]')"
        )


def tracking_callbacks(name: str | None, results_dir: Path) -> list:
    """Ray Tune callbacks for `name` (none for None)."""
    check_tracking(name)
    return [] if name is None else [TRACKERS[name][1](Path(results_dir))]
