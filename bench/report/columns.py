"""What the report knows about each result column it reads: display header, which direction is
better, the range its values live in, and the scale it is averaged and compared on.

One registry (METRICS) serves the summary tables, the claims and the figures, so a range or a
direction is defined once. Columns written by newer versions of the harness may be absent from
an older results folder: `bench.report.data.normalize` adds them as NaN ("not measured").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.families import FAMILIES
from bench.report import stats
from bench.report.stats import Interval

INF = math.inf
HIGHER, LOWER = "higher", "lower"
# reference families (Family.baseline): they appear in comparisons but never decide a verdict
BASELINES = tuple(name for name in FAMILIES.names() if FAMILIES.get(name).baseline)
# median memorization_p (Meehan et al. 2020's C_T) over a model's seeds below which it is flagged as
# memorizing: 1 %, as C_T's null is calibrated over test sets, not given one (the controls use it too)
MEMORIZATION_ALPHA = 0.01
# every family outside the lecture's four (Family.lecture): the baselines and e.g. flow matching; shown as
# references wherever a claim compares a lecture family with "the other families", never deciding
REFERENCES = tuple(name for name in FAMILIES.names() if not FAMILIES.get(name).lecture)


@dataclass(frozen=True)
class MetricSpec:
    column: str  # result column (bench.store.schema)
    header: str  # short display header, unit included
    better: str | None  # "higher" | "lower" | None (not highlighted, no direction)
    low: float = -INF  # smallest valid value: intervals are clipped to [low, high]
    high: float = INF  # largest valid value
    log: bool = False  # positive quantity averaged and compared on the log scale (throughput)
    integer: bool = False  # shown as a whole number without an interval (e.g. params)


METRICS: dict[str, MetricSpec] = {
    m.column: m
    for m in (
        MetricSpec("nll", "NLL", LOWER),  # header gets the unit; estimators are exact or upper bounds
        MetricSpec("nll_gap_nats", "NLL gap [nats]", LOWER),  # model − truth on the scored examples
        MetricSpec("nll_ode", "ODE NLL", LOWER),  # header gets the unit; the ODE density (exact divergence on points)
        MetricSpec("fid", "FID ↓", LOWER, low=0.0),
        MetricSpec("kid_mean", "KID ↓", LOWER),  # unbiased estimator: may be slightly negative
        MetricSpec("precision", "prec. ↑", HIGHER, low=0.0, high=1.0),
        MetricSpec("recall", "recall ↑", HIGHER, low=0.0, high=1.0),
        MetricSpec("mode_coverage", "modes ↑", HIGHER, low=0.0, high=1.0),
        MetricSpec("c2st_accuracy", "C2ST acc. ↓", LOWER, low=0.0, high=1.0),  # 0.5 = indistinguishable
        MetricSpec("c2st_auc", "C2ST AUC ↓", LOWER, low=0.0, high=1.0),  # 0.5 = indistinguishable
        MetricSpec("c2st_p_value", "C2ST p", None, low=0.0, high=1.0),
        MetricSpec("memorization_p", "copying p", None, low=0.0, high=1.0),
        MetricSpec("blur_index", "blur index", None),  # < 0 blurred, > 0 noisy: no direction is better
        MetricSpec("copy_fraction", "copies", None, low=0.0, high=1.0),
        MetricSpec("sharpness_ratio", "sharpness", None, low=0.0),  # noise raises it too: not "better"
        MetricSpec("impute_mse", "impute MSE", LOWER, low=0.0),
        MetricSpec("impute_mse_baseline", "mean-impute MSE", LOWER, low=0.0),
        MetricSpec("samples_per_cpu_s", "samples/CPU-s ↑", HIGHER, low=0.0, log=True),
        MetricSpec("samples_per_s", "samples/s ↑", HIGHER, low=0.0, log=True),
        MetricSpec("speed_spread", "speed spread", None, low=0.0),  # (max − min) / median over timed calls
        MetricSpec("flops_per_sample", "FLOPs/sample ↓", LOWER, low=0.0),  # device-independent cost
        MetricSpec("train_s", "train [s] ↓", LOWER, low=0.0),
        MetricSpec("params", "params", None, integer=True),
        MetricSpec("density_mass", "mass", None, low=0.0),
        MetricSpec("fid_oscillation", "FID oscill. ↓", LOWER, low=0.0),  # 0 = only improving (trajectory)
        MetricSpec("fid_floor", "FID floor", None, low=0.0),  # a perfect sampler's FID at the curve's n
    )
}

# Columns of the summary tables, in display order.
SUMMARY_COLUMNS = (
    "nll",
    "nll_gap_nats",
    "nll_ode",
    "fid",
    "kid_mean",
    "precision",
    "recall",
    "mode_coverage",
    "c2st_auc",
    "copy_fraction",
    "samples_per_cpu_s",
    "samples_per_s",
    "flops_per_sample",
    "train_s",
    "params",
)
# Sample quality is decided by measures whose controls (bench.controls.readings) show they see an
# effect at the suite's n and seeds: on 2-D points precision (off-support mass), recall (a dropped
# mode) and the C2ST AUC (both); not FID (two fitted Gaussians: mode-blind), not mode coverage
# (constant over seeds, so no test can decide it), not C2ST accuracy (blind to a dropped mode). On
# images FID in the named extractor's features (blur) and the C2ST AUC (blur and noise).
POINT_QUALITY = ("precision", "recall", "c2st_auc")
IMAGE_QUALITY = ("fid", "c2st_auc")
THROUGHPUT = ("samples_per_cpu_s", "samples_per_s")  # CPU-time and wall-clock throughput
# speed_clock -> the column that clock's rate is stored in (bench.metrics.speed: the device's own clock)
CLOCK_COLUMN = {"cpu": "samples_per_cpu_s", "wall": "samples_per_s"}


def spec(column: str) -> MetricSpec:
    """The registered spec of a column; a column without one has no range and no direction."""
    return METRICS.get(column, MetricSpec(column, column, None))


def interval(values: Iterable[float], column: str) -> Interval:
    """95 % interval of the mean of a column's values over seeds, inside the column's range:
    on the log scale (geometric mean) for throughput, clipped to [low, high] otherwise."""
    m = spec(column)
    if m.log:
        return stats.log_t_interval(values)
    return stats.clip(stats.t_interval(values), m.low, m.high)


def is_points(rows: pd.DataFrame) -> bool:
    """Rows of 2-D point data (NLL in nats) rather than images (bits/dim)."""
    units = set(rows["nll_unit"]) - {""}
    return units == {"nats"}


def quality_columns(rows: pd.DataFrame) -> tuple[str, ...]:
    """The sample-quality columns that decide in this context (see POINT_QUALITY)."""
    return POINT_QUALITY if is_points(rows) else IMAGE_QUALITY


def throughput_column(rows: pd.DataFrame) -> str:
    """The throughput column of the rows' deciding clock (`speed_clock`: samples_per_cpu_s for "cpu",
    samples_per_s for "wall"). Mixed clocks read the wall clock, which every row measured (pairs on
    different clocks are then not compared: speed_clock is part of the speed protocol). Rows from
    before speed_clock existed: samples_per_cpu_s when any row measured it, else samples_per_s."""
    clocks = set(rows["speed_clock"]) - {""}
    if len(clocks) == 1:
        return CLOCK_COLUMN.get(clocks.pop(), CLOCK_COLUMN["wall"])
    if clocks:
        return CLOCK_COLUMN["wall"]
    x = rows[THROUGHPUT[0]].to_numpy(dtype=float)
    return THROUGHPUT[0] if np.isfinite(x).any() else THROUGHPUT[1]


def curve_rate_key(rows: pd.DataFrame) -> str:
    """The steps_curve entries' rate key of the rows' deciding clock, as throughput_column; rows from
    before speed_clock existed keep the wall-clock rate their curves were read by."""
    return throughput_column(rows) if set(rows["speed_clock"]) - {""} else CLOCK_COLUMN["wall"]


def flagged_copiers(rows: pd.DataFrame) -> dict[str, float]:
    """{label: median memorization_p} of the ok models whose median is below MEMORIZATION_ALPHA."""
    ok = rows[rows["status"] == "ok"]
    if "memorization_p" not in ok:
        return {}
    medians = ok.groupby("label", sort=True)["memorization_p"].median()
    return {str(k): float(v) for k, v in medians.items() if np.isfinite(v) and v < MEMORIZATION_ALPHA}
