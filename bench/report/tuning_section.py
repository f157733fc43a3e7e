"""The report's Tuning section, for results folders of suites with a `[tune]` table.

`section(results_dir, frame)` -> (Markdown body, [figure paths]), or None for an untuned suite (no
tuning.parquet and no tuned rows); the report writer puts it under a "Tuning" heading and copies the
figure into the report's figures/. It reads the tuning table (one row per tuning trial, see
bench.store.tuning_rows) and shows, per model × dataset × budget: the chosen configuration (lowest final
validation metric among the trials that ran their whole budget, the rule the tuning run used), its
score, how many configurations were tried (and how many the scheduler stopped early) and their
total training time; and figures/tuning.png, the best-of-k curve: the best validation metric
found after k configurations, one line per model per dataset, non-increasing by construction.
A curve still falling at its last point says the tuning budget was not enough.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report import instability  # noqa: E402
from bench.store import TUNING, load_tuning  # noqa: E402

FIGURE = "tuning.png"
FIGURE_DIR = "tuning_figures"  # inside the results folder; the report's own figures/ is rewritten whole
DPI = 100
KEYS = ["label", "dataset", "budget"]


def best_so_far(tuning: pd.DataFrame) -> pd.DataFrame:
    """Per model × dataset × budget, in the order tried (seed, then sample): `tried` (1..n) and
    `best` (lowest validation metric among full-budget trials so far; NaN before the first)."""
    out = []
    for key, g in tuning.sort_values(["seed", "sample"], kind="stable").groupby(KEYS, sort=True):
        score = np.where(g["status"].to_numpy() == "ok", g["val_metric"].to_numpy(dtype=float), np.nan)
        score = np.where(np.isfinite(score), score, np.nan)
        best = np.fmin.accumulate(score)  # fmin ignores NaN: the running best carries over them
        frame = pd.DataFrame({"tried": np.arange(1, len(g) + 1), "best": best, "metric": g["metric"].iloc[0]})
        out.append(frame.assign(**dict(zip(KEYS, key))))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[*KEYS, "tried", "best", "metric"])


def chosen(tuning: pd.DataFrame) -> pd.DataFrame:
    """One row per model × dataset × budget: the chosen configuration and the search's totals."""
    rows = []
    for key, g in tuning.groupby(KEYS, sort=True):
        ok = g[(g["status"] == "ok") & np.isfinite(g["val_metric"].to_numpy(dtype=float))]
        best = ok.sort_values(["val_metric", "seed", "sample"], kind="stable").head(1)
        rows.append(
            {
                **dict(zip(KEYS, key)),
                "family": g["family"].iloc[0],
                "best configuration": _config_text(best["config"].iloc[0]) if len(best) else "none",
                "validation": _metric_text(best["val_metric"].iloc[0], g["metric"].iloc[0]) if len(best) else "—",
                "tried": len(g),
                "stopped early": int((g["status"] == "stopped").sum()),
                "failed": int((g["status"] == "failed").sum()),
                "train time (s)": f"{g['train_s'].sum(skipna=True):.1f}",
            }
        )
    return pd.DataFrame(rows)


def _config_text(text: str) -> str:
    config = json.loads(text) if text else {}
    return ", ".join(f"{k} = {_num(v)}" for k, v in sorted(config.items())) or "(fixed hparams only)"


def _num(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _metric_text(value: float, metric: str) -> str:
    return f"{metric} {value:.4g}" if math.isfinite(value) else "—"


def draw(curves: pd.DataFrame, path: Path) -> dict[tuple[str, str, str], np.ndarray]:
    """figures/tuning.png: one panel per dataset (and budget), one line per model; returns the
    plotted y values per (label, dataset, budget)."""
    panels = curves[["dataset", "budget"]].drop_duplicates().sort_values(["dataset", "budget"])
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.4), squeeze=False)
    plotted = {}
    for ax, (_, panel) in zip(axes[0], panels.iterrows()):
        here = curves[(curves["dataset"] == panel["dataset"]) & (curves["budget"] == panel["budget"])]
        for label, g in here.groupby("label", sort=True):
            ax.plot(g["tried"], g["best"], marker="o", markersize=3, label=label)
            plotted[(label, panel["dataset"], panel["budget"])] = g["best"].to_numpy()
        ax.set_title(f"{panel['dataset']} / {panel['budget']}")
        ax.set_xlabel("configurations tried")
        ax.set_ylabel(f"best validation {', '.join(sorted(set(here['metric'])))}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)
    return plotted


def headline(tuning: pd.DataFrame, frame: pd.DataFrame | None = None) -> str:
    """One sentence for the report's headline: which trials' results come from tuned configurations,
    counted from the trial rows (`frame`, the report's; None: the search alone is described)."""
    per = tuning.groupby(KEYS).size()
    budgets = ", ".join(sorted(set(tuning["budget"])))
    metrics = ", ".join(sorted(set(tuning["metric"])))
    search = (
        f"each model's best of {int(per.min())}{'' if per.min() == per.max() else f'–{int(per.max())}'} "
        f"configurations on the validation split ({metrics}), each trained with budget {budgets}, retrained "
        f"with every suite seed and measured on the test split"
    )
    if frame is None or not len(frame):
        return f"Tuning: {search}."
    tuned = frame["tuned"].astype(bool)
    if tuned.all():
        return f"Every verdict and summary value comes from tuned configurations: {search}."
    others = "; ".join(
        f"{label}: {', '.join(f'{n} {s}' for s, n in sorted(g['status'].value_counts().items()))}"
        for label, g in frame[~tuned].groupby("label", sort=True)
    )
    return (
        f"Only {int(tuned.sum())} of {len(frame)} trials ran tuned configurations ({search}); the other "
        f"{int((~tuned).sum())} did not ({others}), and nothing measured on them comes from tuning."
    )


def section(results_dir: Path, frame: pd.DataFrame | None = None) -> tuple[str, list[Path]] | None:
    """The Tuning section (markdown) and its figure paths; None for an untuned results folder."""
    tuning = load_tuning(results_dir)
    if tuning is None or tuning.empty:
        tuned = frame[frame["tuned"]] if frame is not None and "tuned" in frame else []
        if not len(tuned):
            return None  # an untuned suite
        labels = ", ".join(sorted(set(tuned["label"])))
        return (
            f"{len(tuned)} of {len(frame)} trials ran with tuned hyper-parameters ({labels}); this results "
            f"folder holds no {TUNING.table}, so the search itself is not shown.",
            [],
        )
    path = Path(results_dir) / FIGURE_DIR / FIGURE  # the writer copies it into the report's figures/
    draw(best_so_far(tuning), path)
    table = chosen(tuning)
    lines = [
        headline(tuning, frame),
        "",
        "Configurations were tried on the tuning split (the training split minus a fixed validation "
        "share) and scored on the validation split; the test split was not read while tuning. The "
        "chosen configuration has the lowest validation score among the trials that ran their whole "
        "budget; trials the scheduler stopped early count as tried. Train time sums the tuning trials.",
        "",
        table.to_markdown(index=False),
        "",
        f"{FIGURE}: the best validation score found after k configurations (lower is better), one line "
        "per model; a line still falling at its right end says more configurations would have helped.",
        "",
        "Instability across configurations (Lucic et al. 2018): the spread of the validation score over "
        "the configurations that ran their whole budget (FID on the log scale), and how many "
        "configurations collapsed under the trials' rule (diverged, or the final FID of the quality "
        "trajectory above twice its best plus the noise floor). The claims show both as secondary "
        "comparisons of the GAN against the other families.",
        "",
        instability.summary(tuning).to_markdown(index=False),
    ]
    return "\n".join(lines), [path]
