"""Instability across tuning configurations (Lucic et al. 2018): how much the tuning objective moves
from one sampled configuration to the next, and how many configurations collapsed.

Per model × dataset × budget of a tuning table (bench.store.schema TUNING), over the configurations
that ran their whole budget with a finite score: the spread of the validation metric, on the log
scale for FID (|log v − mean log v|, so the spread is relative and comparable across families) and in
the metric's own unit for an NLL (which may be negative); and the share of configurations
`collapsed` under the trials' rule (bench.metrics.trajectory), over every configuration that
recorded it (diverged ones count as collapsed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report import evidence as ev
from bench.report.columns import BASELINES
from bench.report.evidence import HIGHER

KEYS = ["label", "dataset", "budget"]
TUNING_SPREAD = "tuning spread (abs. deviation of the validation metric across configurations; log for fid)"
TUNING_COLLAPSE = "collapse rate of tuning configurations"
OTHERS = "others"


def deviations(rows: pd.DataFrame) -> np.ndarray:
    """|log v − mean log v| (fid) or |v − mean v| (nll) over the full-budget configurations' scores."""
    ran = rows[rows["status"] == "ok"]
    v = ran["val_metric"].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if (ran["metric"] == "fid").all():
        v = np.log(v[v > 0])
    return np.abs(v - v.mean()) if len(v) >= 2 else np.empty(0)


def collapse_counts(rows: pd.DataFrame) -> tuple[int, int]:
    """(collapsed, configurations that recorded the rule) of a group of tuning rows."""
    if "collapsed" not in rows:
        return 0, 0
    known = rows["collapsed"].dropna()
    return int(known.astype(bool).sum()), len(known)


def summary(tuning: pd.DataFrame) -> pd.DataFrame:
    """One row per model × dataset × budget: the spread of the objective and the collapse share."""
    out = []
    for key, g in tuning.groupby(KEYS, sort=True):
        dev = deviations(g)
        k, n = collapse_counts(g)
        scale = "log " if (g["metric"] == "fid").all() else ""
        out.append(
            {
                **dict(zip(KEYS, key)),
                f"spread of the objective ({scale}mean abs. deviation)": f"{dev.mean():.3g}" if len(dev) else "—",
                "collapsed": f"{k} of {n}" if n else "—",
            }
        )
    return pd.DataFrame(out)


def gan_tuning_unstable(tuning: pd.DataFrame) -> list[ev.Evidence]:
    """Per dataset × budget: the GAN's spread across configurations and its collapse rate against
    the other non-baseline families' pooled (both predicted higher); secondary evidence."""
    found = []
    for (dataset, budget), rows in tuning.groupby(["dataset", "budget"], sort=True):
        rows = rows[~rows["family"].isin(BASELINES)]
        gans, others = rows[rows["family"] == "gan"], rows[rows["family"] != "gan"]
        if gans.empty or others.empty:
            continue
        ctx = f"{dataset}/{budget} (tuning)"
        o_name = f"{OTHERS} (" + ", ".join(sorted(others["label"].unique())) + ")"
        o_dev = np.concatenate([deviations(g) for _, g in others.groupby("label", sort=True)])
        o_k, o_n = collapse_counts(others)
        for label, g in gans.groupby("label", sort=True):
            found.append(ev.compare_means(ctx, TUNING_SPREAD, label, deviations(g), o_name, o_dev, HIGHER))
            k, n = collapse_counts(g)
            if n and o_n:
                found.append(ev.compare_rates(ctx, TUNING_COLLAPSE, label, k, n, o_name, o_k, o_n, HIGHER))
    return found
