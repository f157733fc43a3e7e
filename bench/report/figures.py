"""Figures of the report (seaborn on the Agg backend), each a small function of the result rows.

A figure function takes (rows, results_dir, out_dir) and returns the `Figure`s it drew, or one with
`path=None` and the reason when its data is absent — no data never raises. This module draws the
metric figures and holds the registry (`FIGURES`, `draw_all`); the sample figures live in
bench.report.sample_figures, what all figures share (colours, panels, PNG writing) in
bench.report.plotting. Aggregated error bars are 95 % bootstrap CIs over seeds (seaborn
errorbar=("ci", 95), fixed seed); error bars drawn by hand use the tables' t-interval.
"""

import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.report import columns
from bench.report.data import finite, parse_json
from bench.report.plotting import (
    BOOT_SEED,
    CI,
    Figure,
    FigureFn,
    finite_rows,
    grid,
    ok_rows,
    palette,
    save,
    skip,
)
from bench.report.sample_figures import sample_grids, scatter_2d
from bench.report.stats import Interval
from bench.report.tables import UNIT_NAMES

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- metric figures


def _fid_label(rows: pd.DataFrame) -> str:
    """FID axis label naming the feature extractor (FID values are only comparable within one)."""
    extractors = "/".join(sorted(set(rows["extractor"]) - {""})) or "unknown"
    return f"FID, {extractors} features (lower is better)"


def _speed(rows: pd.DataFrame) -> tuple[str, str]:
    col = columns.throughput_column(rows)
    return col, "samples per CPU-second (log)" if col == "samples_per_cpu_s" else "samples/s, wall clock (log)"


def _err(iv: Interval) -> list[list[float]]:
    """Asymmetric error bar of an interval (already inside its metric's range); none when undefined."""
    if not (np.isfinite(iv.low) and np.isfinite(iv.high)):
        return [[0.0], [0.0]]
    return [[iv.mean - iv.low], [iv.high - iv.mean]]


def _dataset_panels(rows: pd.DataFrame) -> tuple[plt.Figure, list[tuple[plt.Axes, str, pd.DataFrame]]]:
    """One panel per dataset (sorted, three to a line): the figure and (axes, dataset, its rows)."""
    datasets = sorted(rows["dataset"].unique())
    fig, axes = grid(len(datasets), 3)
    return fig, [(ax, ds, rows[rows["dataset"] == ds]) for ax, ds in zip(axes, datasets)]


def fid_vs_speed(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "fid_vs_speed"
    caption = "FID vs throughput (log x) per model: the quality/speed trade-off"
    ok = ok_rows(df)
    x_col, x_label = _speed(ok)
    rows = finite_rows(ok, "fid", x_col)
    rows = rows[rows[x_col] > 0]
    if rows.empty:
        return skip(name, caption, f"no ok trial with both fid and {x_col}")
    pal = palette(df)
    fig, panels = _dataset_panels(rows)
    for ax, ds, sub in panels:
        points = dict(hue="label", palette=pal, alpha=0.45, ax=ax, legend=False)
        sns.scatterplot(data=sub, x=x_col, y="fid", **points)
        for (label, _budget), g in sub.groupby(["label", "budget"], sort=True):
            x, y = columns.interval(g[x_col], x_col), columns.interval(g["fid"], "fid")
            bars = dict(xerr=_err(x), yerr=_err(y), fmt="o", capsize=3)
            ax.errorbar(x.mean, y.mean, color=pal[label], label=label, **bars)
        ax.set_xscale("log")
        # a decade around the seeds: 2-seed intervals on a log axis can span 20 decades
        ax.set_xlim(sub[x_col].min() / 10, sub[x_col].max() * 10)
        ax.set(title=ds, xlabel=x_label, ylabel=_fid_label(sub))
        ax.legend(fontsize=7)
    return [save(fig, out_dir, name, caption + "; points: seeds, bars: mean with 95 % interval")]


def nll_per_family(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "nll"
    caption = "Test NLL per model and dataset (95 % CI over seeds); dashed: true entropy where known"
    ok = ok_rows(df)
    rows = finite_rows(ok, "nll")
    if rows.empty:
        return skip(name, caption, "no ok trial reports an NLL")
    pal = palette(df)
    fig, panels = _dataset_panels(rows)
    for ax, ds, sub in panels:
        order = sorted(sub["label"].unique())
        sns.pointplot(
            data=sub,
            x="label",
            y="nll",
            hue="label",
            order=order,
            palette=pal,
            errorbar=CI,
            seed=BOOT_SEED,
            linestyle="none",
            capsize=0.2,
            ax=ax,
            legend=False,
        )
        units = sorted(set(sub["nll_unit"]) - {""})
        truth = finite(sub, "true_nll_nats")
        if len(truth) and units == ["nats"]:  # the entropy is in nats; only comparable then
            ax.axhline(float(truth.mean()), ls="--", color="k", label="true entropy")
            ax.legend(fontsize=7)
        kinds = sub.groupby("label")["nll_kind"].first()
        ax.set_xticks(range(len(order)), [f"{lab}\n{kinds[lab]}" for lab in order])
        without = sorted(set(ok.loc[ok["dataset"] == ds, "label"]) - set(order))
        title = ds + (f"  (no likelihood: {', '.join(without)})" if without else "")
        ax.set(
            title=title,
            xlabel="",
            ylabel=f"NLL [{'/'.join(UNIT_NAMES.get(u, u) for u in units)}] (lower is better)",
        )
    return [save(fig, out_dir, name, caption)]


def _steps_rows(df: pd.DataFrame, rate: str) -> pd.DataFrame:
    """One record per steps_curve point of the ok rows; its speed is the curve's `rate` entry."""
    records = []
    for _, r in ok_rows(df).iterrows():
        for p in parse_json(r["steps_curve"]) or []:
            if isinstance(p, dict) and p.get("steps"):
                records.append(
                    {
                        "label": r["label"],
                        "dataset": r["dataset"],
                        "seed": r["seed"],
                        "steps": float(p["steps"]),
                        "speed": float(p.get(rate) or np.nan),
                        "fid": float(p.get("fid") if p.get("fid") is not None else np.nan),
                    }
                )
    return pd.DataFrame(records, columns=["label", "dataset", "seed", "steps", "speed", "fid"])


def ddpm_steps(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name, caption = "ddpm_steps", "DDPM: FID and samples/s vs sampling steps (95 % CI over seeds)"
    rate = columns.curve_rate_key(ok_rows(df))
    rows = _steps_rows(df, rate)
    speed_label = "samples per CPU-second" if rate == "samples_per_cpu_s" else "samples/s, wall clock"
    if rows.empty:
        return skip(name, caption, "no ok trial has a steps_curve")
    pal = palette(df)
    datasets = sorted(rows["dataset"].unique())
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.5 * len(datasets), 6.4), squeeze=False)
    for j, ds in enumerate(datasets):
        sub = rows[rows["dataset"] == ds]
        for i, (col, ylabel) in enumerate((("fid", "FID"), ("speed", speed_label))):
            ax = axes[i, j]
            data = sub[np.isfinite(sub[col].to_numpy(dtype=float))]
            if data.empty:
                ax.set_visible(False)
                continue
            sns.lineplot(
                data=data,
                x="steps",
                y=col,
                hue="label",
                palette=pal,
                marker="o",
                errorbar=CI,
                seed=BOOT_SEED,
                ax=ax,
            )
            ax.set_xscale("log")
            if col == "speed":
                ax.set_yscale("log")
            ylabel = _fid_label(ok_rows(df)[ok_rows(df)["dataset"] == ds]) if col == "fid" else ylabel
            ax.set(title=ds, xlabel="sampling steps (log)", ylabel=ylabel)
    return [save(fig, out_dir, name, caption)]


def loss_curves(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name, caption = "loss_curves", "Training losses per model and dataset (one line per seed)"
    records = []
    for _, r in df[df["status"].isin(["ok", "diverged"])].iterrows():
        curves = parse_json(r["loss_curve"])
        for loss, points in curves.items() if isinstance(curves, dict) else ():
            for step, value in points or ():
                if value is None:  # non-finite losses are stored as null
                    continue
                records.append(
                    {
                        "panel": f"{r['dataset']} / {r['label']}",
                        "loss": loss,
                        "run": f"{r['budget']}/{int(r['seed'])}",
                        "step": float(step),
                        "value": float(value),
                    }
                )
    rows = pd.DataFrame(records, columns=["panel", "loss", "run", "step", "value"])
    rows = rows[np.isfinite(rows["value"].to_numpy(dtype=float))]
    if rows.empty:
        return skip(name, caption, "no trial has a loss_curve")
    panels = sorted(rows["panel"].unique())
    fig, axes = grid(len(panels), 4, 3.6, 2.8)
    for ax, panel in zip(axes, panels):
        # Seeds drawn separately (units=run): steps of different seeds need not line up.
        sns.lineplot(
            data=rows[rows["panel"] == panel],
            x="step",
            y="value",
            hue="loss",
            units="run",
            estimator=None,
            lw=0.8,
            ax=ax,
        )
        ax.set(title=panel, xlabel="optimizer step", ylabel="loss")
        ax.legend(fontsize=6)
    return [save(fig, out_dir, name, caption)]


def _cv_text(fid: pd.Series) -> str:
    """Coefficient of variation over seeds, or the seed count when it is undefined (never 'nan')."""
    x = fid.to_numpy(dtype=float)
    return f"CV {x.std(ddof=1) / x.mean():.2f}" if len(x) > 1 and x.mean() > 0 else f"n={len(x)}"


def seed_spread(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "seed_spread"
    caption = "FID of each seed per model (GAN stability); bars: mean with 95 % CI; CV under the name"
    rows = finite_rows(ok_rows(df), "fid")
    if rows.empty:
        return skip(name, caption, "no ok trial reports an FID")
    pal = palette(df)
    fig, panels = _dataset_panels(rows)
    for ax, ds, sub in panels:
        order = sorted(sub["label"].unique())
        sns.stripplot(
            data=sub,
            x="label",
            y="fid",
            hue="label",
            order=order,
            palette=pal,
            size=6,
            jitter=0.1,
            ax=ax,
            legend=False,
        )
        sns.pointplot(
            data=sub,
            x="label",
            y="fid",
            order=order,
            color="k",
            errorbar=CI,
            seed=BOOT_SEED,
            linestyle="none",
            marker="_",
            capsize=0.25,
            ax=ax,
        )
        ax.set_xticks(range(len(order)), [f"{lab}\n{_cv_text(sub[sub['label'] == lab]['fid'])}" for lab in order])
        ax.set(title=ds, xlabel="", ylabel=_fid_label(sub))
    return [save(fig, out_dir, name, caption)]


FIGURES: tuple[tuple[str, FigureFn], ...] = (
    ("fid_vs_speed", fid_vs_speed),
    ("nll", nll_per_family),
    ("ddpm_steps", ddpm_steps),
    ("loss_curves", loss_curves),
    ("seed_spread", seed_spread),
    ("samples", sample_grids),
    ("scatter", scatter_2d),
)


def draw_all(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    """Draw every registered figure into out_dir (its old PNGs removed first). A figure that
    fails on unexpected data is logged and listed as skipped: the report is still written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(out_dir.glob("*.png")):
        old.unlink()
    drawn: list[Figure] = []
    with sns.axes_style("whitegrid"):
        for name, fn in FIGURES:
            try:
                drawn.extend(fn(df, results_dir, out_dir))
            except Exception as exc:  # one broken figure must not cost the whole report
                log.warning("figure %s skipped: %s", name, exc, exc_info=True)
                plt.close("all")
                drawn.append(Figure(name, name, None, f"error: {exc}"))
    return drawn
