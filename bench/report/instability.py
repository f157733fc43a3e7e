"""The GAN-instability claim's measures. Inside each trial (`gan_training_unstable`): the quality
trajectory's oscillation (primary), the FID spread over seeds, the divergence and collapse rates.
Across tuning configurations (Lucic et al. 2018; `gan_tuning_unstable`): how much the tuning
objective moves from one sampled configuration to the next, and how many configurations collapsed.

Per model × dataset × budget of a tuning table (bench.store.schema TUNING), over the configurations
that ran their whole budget with a finite score: the spread of the validation metric, on the log
scale for FID (|log v − mean log v|, so the spread is relative and comparable across families) and in
the metric's own unit for an NLL (which may be negative); and the share of configurations
`collapsed` under the trials' rule (bench.metrics.trajectory), over every configuration that
recorded it (diverged ones count as collapsed).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from bench.report import evidence as ev
from bench.report.columns import REFERENCES
from bench.report.data import finite
from bench.report.evidence import HIGHER
from bench.report.pairwise import Outcome, contexts, models, ok_rows

KEYS = ["label", "dataset", "budget"]
TUNING_SPREAD = "tuning spread (abs. deviation of the validation metric across configurations; log for fid)"
TUNING_COLLAPSE = "collapse rate of tuning configurations"
OTHERS = "others"  # the pooled other families of the claim
SPREAD = "fid seed spread (abs. log-FID deviation)"  # secondary measures inside the trials
OSCILLATION = "fid_oscillation"  # the primary: the quality trajectory inside each trial
COLLAPSE = "collapse rate"
DIVERGENCE = "divergence rate"


def _log_spread(rows: pd.DataFrame) -> np.ndarray:
    """|log FID − mean log FID| per seed: the Levene transform on the log scale, so the spread
    is relative (≈ coefficient of variation) and comparable across families. Empty for < 2 seeds."""
    x = finite(rows, "fid")
    x = np.log(x[x > 0])
    return np.abs(x - x.mean()) if len(x) >= 2 else np.empty(0)


def _cv(rows: pd.DataFrame) -> str:
    x = finite(rows, "fid")
    return f"{np.std(x, ddof=1) / np.mean(x):.3g}" if len(x) >= 2 and np.mean(x) > 0 else "n/a"


def gan_training_unstable(df: pd.DataFrame) -> Outcome:
    """Per context, each GAN model against the other (non-baseline) families pooled, all predicted
    higher for the GAN: the primary is fid_oscillation, the quality trajectory inside each trial
    (bench.metrics.trajectory); secondary are the FID spread over seeds, the divergence rate and the
    collapse rate (one rule for every family). Loss oscillation is left out: even offset- and
    scale-free, it compares different quantities (a discriminator loss, an MSE, a bound)."""
    found, notes = [], []
    for ctx, rows in contexts(df):
        ran = rows[rows["status"].isin(["ok", "diverged"]) & ~rows["family"].isin(REFERENCES)]
        others = ran[ran["family"] != "gan"]
        if others.empty:
            continue
        other_models = models(ok_rows(others), sorted(others["family"].unique()))
        o_name = f"{OTHERS} (" + ", ".join(sorted(others["label"].unique())) + ")"
        for g_name, g_rows in models(ran, ["gan"]):
            g_ok = ok_rows(g_rows)
            o_osc = np.concatenate([finite(m, OSCILLATION) for _, m in other_models] or [np.empty(0)])
            if len(finite(g_ok, OSCILLATION)) and len(o_osc):
                found.append(
                    ev.compare_means(ctx, OSCILLATION, g_name, finite(g_ok, OSCILLATION), o_name, o_osc, HIGHER)
                )
            if len(finite(g_ok, "fid")) and any(len(finite(m, "fid")) for _, m in other_models):
                spread = [_log_spread(m) for _, m in other_models]
                cvs = ", ".join(f"{n} {_cv(m)}" for n, m in [(g_name, g_ok), *other_models])
                found.append(
                    ev.compare_means(
                        ctx,
                        SPREAD,
                        g_name,
                        _log_spread(g_ok),
                        o_name,
                        np.concatenate(spread),
                        HIGHER,
                        note=f"FID CV over seeds: {cvs}",
                    )
                )
            n_div, o_div = int((g_rows["status"] == "diverged").sum()), int((others["status"] == "diverged").sum())
            found.append(
                ev.compare_rates(ctx, DIVERGENCE, g_name, n_div, len(g_rows), o_name, o_div, len(others), HIGHER)
            )
            g_known, o_known = g_rows["collapsed"].dropna(), others["collapsed"].dropna()
            if len(g_known) and len(o_known):
                k_g, k_o = int(g_known.astype(bool).sum()), int(o_known.astype(bool).sum())
                found.append(
                    ev.compare_rates(ctx, COLLAPSE, g_name, k_g, len(g_known), o_name, k_o, len(o_known), HIGHER)
                )
    if not found:
        notes.append("needs ok/diverged gan trials and another family in one dataset/budget")
    return [replace(e, b_family=OTHERS) for e in found], notes


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
        rows = rows[~rows["family"].isin(REFERENCES)]
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
