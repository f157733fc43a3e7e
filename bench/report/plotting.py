"""What every report figure shares: the headless backend, the `Figure` record, the colours, the grid
of panels and the PNG writing (byte-identical on a rerun).

Colours follow the model label and are the same in every figure. Aggregated error bars are 95 %
bootstrap CIs over seeds (seaborn errorbar=("ci", 95), fixed seed).
"""

from __future__ import annotations

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

CI = ("ci", 95)  # seaborn error bars: 95 % bootstrap CI over seeds
BOOT_SEED = 0  # fixed bootstrap seed so a rerun draws the same bars
DPI = 100


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under figures/
    caption: str
    path: Path | None  # None when skipped
    skipped: str = ""  # why it was not drawn


FigureFn = Callable[[pd.DataFrame, Path, Path], list[Figure]]


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def finite_rows(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    for c in cols:
        keep &= np.isfinite(df[c].to_numpy(dtype=float))
    return df[keep]


def palette(df: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    labels = sorted(df["label"].unique())
    return dict(zip(labels, sns.color_palette("tab10", max(len(labels), 1))))


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def save(fig: plt.Figure, out_dir: Path, name: str, caption: str) -> Figure:
    path = out_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)
    return Figure(name, caption, path)


def skip(name: str, caption: str, why: str) -> list[Figure]:
    return [Figure(name, caption, None, why)]


def grid(n: int, ncols: int, w: float = 4.2, h: float = 3.4) -> tuple[plt.Figure, np.ndarray]:
    ncols = max(1, min(n, ncols))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat
