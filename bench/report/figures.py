"""Figures of the report (seaborn on the Agg backend), each a small function of the result rows.

A figure function takes (rows, results_dir, out_dir) and returns the `Figure`s it drew, or one with
`path=None` and the reason when its data is absent — no data never raises. Colours follow the model
label and are the same in every figure. Aggregated error bars are 95 % bootstrap CIs over seeds
(seaborn errorbar=("ci", 95), fixed seed); error bars drawn by hand use the tables' t-interval.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is written on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image  # noqa: E402

from bench.errors import GenbenchError  # noqa: E402
from bench.report import metrics  # noqa: E402
from bench.report.data import finite, parse_json, resolve_asset  # noqa: E402
from bench.report.stats import Interval  # noqa: E402
from bench.report.tables import UNIT_NAMES  # noqa: E402

log = logging.getLogger(__name__)

CI = ("ci", 95)  # seaborn error bars: 95 % bootstrap CI over seeds
BOOT_SEED = 0  # fixed bootstrap seed so a rerun draws the same bars
DPI = 100
REAL_POINTS = 2000  # real test points drawn under each 2-D scatter


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under figures/
    caption: str
    path: Path | None  # None when skipped
    skipped: str = ""  # why it was not drawn


FigureFn = Callable[[pd.DataFrame, Path, Path], list[Figure]]


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def _finite_rows(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    for c in cols:
        keep &= np.isfinite(df[c].to_numpy(dtype=float))
    return df[keep]


def _palette(df: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    labels = sorted(df["label"].unique())
    return dict(zip(labels, sns.color_palette("tab10", max(len(labels), 1))))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _save(fig: plt.Figure, out_dir: Path, name: str, caption: str) -> Figure:
    path = out_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)
    return Figure(name, caption, path)


def _skip(name: str, caption: str, why: str) -> list[Figure]:
    return [Figure(name, caption, None, why)]


def _grid(n: int, ncols: int, w: float = 4.2, h: float = 3.4) -> tuple[plt.Figure, np.ndarray]:
    ncols = max(1, min(n, ncols))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


# ---------------------------------------------------------------- metric figures


def _fid_label(rows: pd.DataFrame) -> str:
    """FID axis label naming the feature extractor (FID values are only comparable within one)."""
    extractors = "/".join(sorted(set(rows["extractor"]) - {""})) or "unknown"
    return f"FID, {extractors} features (lower is better)"


def _speed(rows: pd.DataFrame) -> tuple[str, str]:
    col = metrics.throughput_column(rows)
    return col, "samples per CPU-second (log)" if col == "samples_per_cpu_s" else "samples/s, wall clock (log)"


def _err(iv: Interval) -> list[list[float]]:
    """Asymmetric error bar of an interval (already inside its metric's range); none when undefined."""
    if not (np.isfinite(iv.low) and np.isfinite(iv.high)):
        return [[0.0], [0.0]]
    return [[iv.mean - iv.low], [iv.high - iv.mean]]


def fid_vs_speed(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "fid_vs_speed"
    caption = "FID vs throughput (log x) per model: the quality/speed trade-off"
    ok = _ok(df)
    x_col, x_label = _speed(ok)
    rows = _finite_rows(ok, "fid", x_col)
    rows = rows[rows[x_col] > 0]
    if rows.empty:
        return _skip(name, caption, f"no ok trial with both fid and {x_col}")
    pal = _palette(df)
    datasets = sorted(rows["dataset"].unique())
    fig, axes = _grid(len(datasets), 3)
    for ax, ds in zip(axes, datasets):
        sub = rows[rows["dataset"] == ds]
        points = dict(hue="label", palette=pal, alpha=0.45, ax=ax, legend=False)
        sns.scatterplot(data=sub, x=x_col, y="fid", **points)
        for (label, _budget), g in sub.groupby(["label", "budget"], sort=True):
            x, y = metrics.interval(g[x_col], x_col), metrics.interval(g["fid"], "fid")
            bars = dict(xerr=_err(x), yerr=_err(y), fmt="o", capsize=3)
            ax.errorbar(x.mean, y.mean, color=pal[label], label=label, **bars)
        ax.set_xscale("log")
        # a decade around the seeds: 2-seed intervals on a log axis can span 20 decades
        ax.set_xlim(sub[x_col].min() / 10, sub[x_col].max() * 10)
        ax.set(title=ds, xlabel=x_label, ylabel=_fid_label(sub))
        ax.legend(fontsize=7)
    return [_save(fig, out_dir, name, caption + "; points: seeds, bars: mean with 95 % interval")]


def nll_per_family(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "nll"
    caption = "Test NLL per model and dataset (95 % CI over seeds); dashed: true entropy where known"
    ok = _ok(df)
    rows = _finite_rows(ok, "nll")
    if rows.empty:
        return _skip(name, caption, "no ok trial reports an NLL")
    pal = _palette(df)
    datasets = sorted(rows["dataset"].unique())
    fig, axes = _grid(len(datasets), 3)
    for ax, ds in zip(axes, datasets):
        sub = rows[rows["dataset"] == ds]
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
    return [_save(fig, out_dir, name, caption)]


def _steps_rows(df: pd.DataFrame) -> pd.DataFrame:
    records = []
    for _, r in _ok(df).iterrows():
        for p in parse_json(r["steps_curve"]) or []:
            if isinstance(p, dict) and p.get("steps"):
                records.append(
                    {
                        "label": r["label"],
                        "dataset": r["dataset"],
                        "seed": r["seed"],
                        "steps": float(p["steps"]),
                        "samples_per_s": float(p.get("samples_per_s") or np.nan),
                        "fid": float(p.get("fid") if p.get("fid") is not None else np.nan),
                    }
                )
    return pd.DataFrame(records, columns=["label", "dataset", "seed", "steps", "samples_per_s", "fid"])


def ddpm_steps(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name, caption = "ddpm_steps", "DDPM: FID and samples/s vs sampling steps (95 % CI over seeds)"
    rows = _steps_rows(df)
    if rows.empty:
        return _skip(name, caption, "no ok trial has a steps_curve")
    pal = _palette(df)
    datasets = sorted(rows["dataset"].unique())
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.5 * len(datasets), 6.4), squeeze=False)
    for j, ds in enumerate(datasets):
        sub = rows[rows["dataset"] == ds]
        for i, (col, ylabel) in enumerate((("fid", "FID"), ("samples_per_s", "samples/s"))):
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
            if col == "samples_per_s":
                ax.set_yscale("log")
            ylabel = _fid_label(_ok(df)[_ok(df)["dataset"] == ds]) if col == "fid" else ylabel
            ax.set(title=ds, xlabel="sampling steps (log)", ylabel=ylabel)
    return [_save(fig, out_dir, name, caption)]


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
        return _skip(name, caption, "no trial has a loss_curve")
    panels = sorted(rows["panel"].unique())
    fig, axes = _grid(len(panels), 4, 3.6, 2.8)
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
    return [_save(fig, out_dir, name, caption)]


def _cv_text(fid: pd.Series) -> str:
    """Coefficient of variation over seeds, or the seed count when it is undefined (never 'nan')."""
    x = fid.to_numpy(dtype=float)
    return f"CV {x.std(ddof=1) / x.mean():.2f}" if len(x) > 1 and x.mean() > 0 else f"n={len(x)}"


def seed_spread(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "seed_spread"
    caption = "FID of each seed per model (GAN stability); bars: mean with 95 % CI; CV under the name"
    rows = _finite_rows(_ok(df), "fid")
    if rows.empty:
        return _skip(name, caption, "no ok trial reports an FID")
    pal = _palette(df)
    datasets = sorted(rows["dataset"].unique())
    fig, axes = _grid(len(datasets), 3)
    for ax, ds in zip(axes, datasets):
        sub = rows[rows["dataset"] == ds]
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
    return [_save(fig, out_dir, name, caption)]


# ---------------------------------------------------------------- sample figures


def _first_assets(df: pd.DataFrame, results_dir: Path, col: str) -> dict[str, list[tuple[str, Path]]]:
    """dataset -> [(panel title, file)] for the first ok trial (budget, seed order) per label
    whose file in `col` exists."""
    found: dict[str, list[tuple[str, Path]]] = {}
    ok = _ok(df).sort_values(["dataset", "label", "budget", "seed"], kind="stable")
    for (ds, label), g in ok.groupby(["dataset", "label"], sort=True):
        for _, r in g.iterrows():
            path = resolve_asset(results_dir, r, col)
            if path is not None:
                found.setdefault(ds, []).append((f"{label} ({r['budget']}, seed {int(r['seed'])})", path))
                break
    return found


def sample_grids(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name, caption = "samples", "Samples per model (image datasets; first seed with a sample grid)"
    figures = []
    for ds, panels in _first_assets(df, results_dir, "samples_png").items():
        fig, axes = _grid(len(panels), 4, 3.2, 3.4)
        for ax, (title, path) in zip(axes, panels):
            with Image.open(path) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        figures.append(_save(fig, out_dir, f"samples_{_safe(ds)}", f"{caption}: {ds}"))
    return figures or _skip(name, caption, "no samples_png file found")


def _load_points(path: Path) -> np.ndarray | None:
    x = np.load(path, allow_pickle=False)
    return x if x.ndim == 2 and x.shape[1] == 2 else None  # images are not scatter-plotted


def _real_points(dataset: str) -> np.ndarray | None:
    """Test points of a registered 2-D dataset with its default options (the overlay only shows
    the shape of the data); None for other or unknown datasets."""
    from bench.datasets import make_dataset  # imports torch: only paid when a 2-D scatter is drawn

    try:
        data = make_dataset(dataset)
    except GenbenchError as exc:
        log.info("no real-data overlay for %s: %s", dataset, exc)
        return None
    if data.spec.kind != "points":
        return None
    return data.test()[:REAL_POINTS].numpy()


def scatter_2d(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name = "scatter"
    caption = "Samples per model on 2-D data (first seed with saved samples) over the real test points (grey)"
    figures = []
    for ds, panels in _first_assets(df, results_dir, "samples_npy").items():
        points = [(t, x) for t, p in panels if (x := _load_points(p)) is not None]
        if not points:
            continue
        real = _real_points(ds)
        allx = np.concatenate([x for _, x in points] + ([real] if real is not None else []))
        allx = allx[np.isfinite(allx).all(axis=1)]
        lo, hi = np.percentile(allx, [0.5, 99.5], axis=0)  # shared limits, robust to outliers
        fig, axes = _grid(len(points), 4, 3.2, 3.2)
        for ax, (title, x) in zip(axes, points):
            if real is not None:
                ax.scatter(real[:, 0], real[:, 1], s=1, c="0.75", alpha=0.5, label="real")
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, c="tab:blue", label="generated")
            ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
            ax.set_title(title, fontsize=8)
            ax.legend(fontsize=6, loc="upper right", markerscale=3)
        figures.append(_save(fig, out_dir, f"scatter_{_safe(ds)}", f"{caption}: {ds}"))
    return figures or _skip(name, caption, "no 2-D samples_npy file found")


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
