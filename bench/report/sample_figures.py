"""The report's sample figures: image sample grids and 2-D scatters over the real test points,
each from the first ok trial (budget, seed order) per model whose saved file exists and reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from bench.errors import GenbenchError
from bench.report.data import resolve_asset
from bench.report.plotting import Figure, grid, ok_rows, safe_name, save, skip

log = logging.getLogger(__name__)

REAL_POINTS = 2000  # real test points drawn under each 2-D scatter


def _first_assets(df: pd.DataFrame, results_dir: Path, col: str, read: Callable[[Path], Any]) -> dict[str, list]:
    """dataset -> [(panel title, content)] for the first ok trial (budget, seed order) per label
    whose file in `col` exists and `read` can read (None: not for this figure). An unreadable file
    (truncated, not an image) is skipped with a warning naming the row, and the next seed is used."""
    found: dict[str, list[tuple[str, Any]]] = {}
    ok = ok_rows(df).sort_values(["dataset", "label", "budget", "seed"], kind="stable")
    for (ds, label), g in ok.groupby(["dataset", "label"], sort=True):
        for _, r in g.iterrows():
            path = resolve_asset(results_dir, r, col)
            if path is None:
                continue
            try:
                content = read(path)
            except (OSError, ValueError, EOFError) as exc:  # Pillow and numpy on a damaged file
                log.warning("row %s (%s): %s is unreadable (%s); skipped", r["trial_id"], col, path, exc)
                continue
            if content is not None:
                found.setdefault(ds, []).append((f"{label} ({r['budget']}, seed {int(r['seed'])})", content))
                break
    return found


def _read_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sample_grids(df: pd.DataFrame, results_dir: Path, out_dir: Path) -> list[Figure]:
    name, caption = "samples", "Samples per model (image datasets; first seed with a sample grid)"
    figures = []
    for ds, panels in _first_assets(df, results_dir, "samples_png", _read_image).items():
        fig, axes = grid(len(panels), 4, 3.2, 3.4)
        for ax, (title, pixels) in zip(axes, panels):
            ax.imshow(pixels)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        figures.append(save(fig, out_dir, f"samples_{safe_name(ds)}", f"{caption}: {ds}"))
    return figures or skip(name, caption, "no samples_png file found")


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
    for ds, points in _first_assets(df, results_dir, "samples_npy", _load_points).items():
        real = _real_points(ds)
        allx = np.concatenate([x for _, x in points] + ([real] if real is not None else []))
        allx = allx[np.isfinite(allx).all(axis=1)]
        lo, hi = np.percentile(allx, [0.5, 99.5], axis=0)  # shared limits, robust to outliers
        fig, axes = grid(len(points), 4, 3.2, 3.2)
        for ax, (title, x) in zip(axes, points):
            if real is not None:
                ax.scatter(real[:, 0], real[:, 1], s=1, c="0.75", alpha=0.5, label="real")
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, c="tab:blue", label="generated")
            ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
            ax.set_title(title, fontsize=8)
            ax.legend(fontsize=6, loc="upper right", markerscale=3)
        figures.append(save(fig, out_dir, f"scatter_{safe_name(ds)}", f"{caption}: {ds}"))
    return figures or skip(name, caption, "no 2-D samples_npy file found")
