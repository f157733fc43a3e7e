"""Synthetic result rows for the report tests: every bench.store.schema column, realistic values.

`row(...)` builds one trial row (family defaults + overrides); `rows_from(...)` builds the rows of a
table given per-family lists of metric values over seeds; `quick_like()` imitates the quick suite
(4 families × 8gaussians/digits × 3 seeds, one failed and one diverged trial) and `write_folder`
writes it as a results folder with sample PNG/NPY files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench.families import FAMILIES, Family
from bench.store import COLUMN_NAMES, COLUMNS

NAN = math.nan
IMAGE_DATASETS = {"digits"}
IWAE_K = 64  # the VAE rows' importance samples


def nll_kind(family: str, image: bool) -> str:
    """The label a row of `family` carries: the family's declared estimator on that kind of data."""
    kind = FAMILIES.get(family).nll_kinds["image" if image else "points"]
    return "none" if kind is None else f"{kind}-{IWAE_K}" if kind == "iwae" else kind


def _empty_row() -> dict:
    return {c.name: ("" if c.dtype in ("str", "json") else NAN) for c in COLUMNS}


def row(
    family: str,
    dataset: str = "8gaussians",
    seed: int = 0,
    budget: str = "short",
    label: str = "",
    **over,
) -> dict:
    """One ok trial of `family` with plausible values; keyword overrides win."""
    image = dataset in IMAGE_DATASETS
    r = _empty_row()
    r.update(
        suite="synth",
        trial_id=f"{label or family}-{dataset}-{budget}-{seed}",
        family=family,
        label=label or family,
        dataset=dataset,
        budget=budget,
        seed=seed,
        status="ok",
        hparams=json.dumps({"batch_size": 128, "lr": 1e-3}),
        nll_unit="bits_per_dim" if image else "nats",
        nll_kind=nll_kind(family, image),
        true_nll_nats=NAN if image else 2.83,
        fid=5.0,
        kid_mean=0.01,
        kid_std=0.002,
        precision=0.7,
        recall=0.6,
        samples_per_s=1000.0,
        sample_batch=500,
        nfe=1,
        train_s=30.0,
        train_steps=2000,
        examples_per_s=8000.0,
        params=12345,
        peak_mem_mb=50.0,
        diverged_step=-1,
        loss_oscillation=0.05,
        eval_s=3.0,
        n_real=1000,
        n_fake=1000,
        extractor="lenet-digits" if image else "raw-2d",
        extractor_hash="abcdef0123456789" if image else "",
        device="cpu",
        mixed_precision="no",
        versions=json.dumps({"torch": "2.15.0", "genbench": "0.1.0"}),
        # a non-finite loss is stored as null by the TrainMonitor
        loss_curve=json.dumps(
            {"loss": [[s, 2.0 / (1 + s / 100) + 0.01 * seed] for s in range(0, 2000, 100)] + [[2000, None]]}
        ),
    )
    cls = FAMILIES.get(family)  # what the family measures comes from its class, as in a real row
    if r["nll_kind"] != "none":
        r["nll"] = 1.2 if image else 2.9
        r["nll_stderr"] = 0.01
        r["nll_estimates"] = json.dumps({r["nll_kind"]: r["nll"]})
    if r["nll_kind"] == "exact" and not image:  # bench.metrics.evaluate integrates 2-D exact densities
        r["density_mass"] = 0.998
    if cls.impute is not Family.impute:
        r["impute_mse"], r["impute_mse_baseline"] = 0.3, 1.0
    if image:
        r["sharpness_ratio"], r["blur_index"] = 0.9, -0.05
    r.update(over)
    return r


def rows_from(values: dict[str, dict[str, list[float]]], dataset: str = "8gaussians", **common) -> pd.DataFrame:
    """values = {family: {column: [value per seed]}}: one row per seed, other columns default."""
    out = []
    for family, cols in values.items():
        n = max(len(v) for v in cols.values())
        for seed in range(n):
            over = {c: v[seed] for c, v in cols.items() if seed < len(v)}
            out.append(row(family, dataset, seed, **{**common, **over}))
    return frame(out)


def frame(rows: list[dict]) -> pd.DataFrame:
    """Schema columns first, then any other column the rows carry (columns a newer harness adds)."""
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in COLUMN_NAMES]
    return pd.DataFrame(rows, columns=[*COLUMN_NAMES, *extra])


def steps_curve(seed: int, steps=(10, 50, 200), per_step_s: float = 1e-3) -> str:
    """DDPM cost linear in steps: samples/s = 1 / (steps · per_step_s), FID falling with steps."""
    jitter = np.random.default_rng(seed).normal(0.0, 0.03, len(steps))  # timing noise
    return json.dumps(
        [
            {
                "steps": s,
                "nfe": s,
                "samples_per_s": 1.0 / (s * per_step_s) * (1 + j),
                "fid": 20.0 / math.sqrt(s) + 0.1 * seed,
            }
            for s, j in zip(steps, jitter)
        ]
    )


def quick_like() -> pd.DataFrame:
    """4 families × 2 datasets × 3 seeds; the GAN diverges once on digits, one VAE trial fails."""
    rng = np.random.default_rng(0)
    speed = {"gan": 2e5, "vae": 1.5e5, "flow": 2e4, "ddpm": 300.0}
    fid = {"gan": 3.0, "vae": 6.0, "flow": 4.0, "ddpm": 2.0}
    out = []
    for dataset in ("8gaussians", "digits"):
        for family in ("gan", "vae", "flow", "ddpm"):
            for seed in range(3):
                over = dict(
                    samples_per_s=speed[family] * (1 + 0.05 * rng.standard_normal()),
                    fid=fid[family] * (1 + (0.4 if family == "gan" else 0.05) * rng.standard_normal()),
                    loss_oscillation=(0.4 if family == "gan" else 0.03) * (1 + 0.1 * rng.standard_normal()),
                    samples_png=f"samples/{family}-{dataset}-{seed}.png" if dataset == "digits" else "",
                    samples_npy=f"samples/{family}-{dataset}-{seed}.npy",
                )
                if dataset == "8gaussians":  # 2-D sample quality: DDPM covers the modes best
                    q = {"gan": 0.8, "vae": 0.6, "flow": 0.85, "ddpm": 0.97}[family]
                    over.update(
                        precision=q * (1 + 0.02 * rng.standard_normal()),
                        recall=q * (1 + 0.02 * rng.standard_normal()),
                        mode_coverage=min(1.0, q + 0.05 * rng.standard_normal()),
                        c2st_accuracy=1.5 - q + 0.01 * rng.standard_normal(),
                        c2st_auc=1.5 - q + 0.01 * rng.standard_normal(),
                    )
                else:
                    over["sharpness_ratio"] = 0.9 + 0.02 * rng.standard_normal()
                    over["blur_index"] = -0.05 + 0.02 * rng.standard_normal()
                    over["c2st_auc"] = 0.5 + 0.05 * fid[family] + 0.01 * rng.standard_normal()
                if family == "ddpm":
                    over.update(nfe=200, steps_curve=steps_curve(seed))
                if family == "vae":
                    over["impute_mse"] = 0.3 + 0.01 * rng.standard_normal()
                    over["sharpness_ratio"] = 0.4 + 0.02 * rng.standard_normal()
                    over["blur_index"] = -0.9 + 0.02 * rng.standard_normal()
                if family != "gan":
                    over["nll"] = (1.3 if dataset == "digits" else 2.95) + 0.02 * rng.standard_normal()
                out.append(row(family, dataset, seed, **over))
    out.append(
        row(
            "gan",
            "digits",
            3,
            status="diverged",
            error="discriminator loss collapsed",
            fid=NAN,
            diverged_step=700,
        )
    )
    out.append(
        row(
            "vae",
            "digits",
            3,
            status="failed",
            error="RuntimeError: boom\ntraceback...",
            fid=NAN,
            nll=NAN,
            samples_per_s=NAN,
        )
    )
    return frame(out)


def write_folder(results_dir: Path, df: pd.DataFrame) -> Path:
    """trials.parquet plus the sample files named by samples_png / samples_npy."""
    results_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for _, r in df.iterrows():
        if r["samples_png"]:
            path = results_dir / r["samples_png"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(path)
        if r["samples_npy"]:
            path = results_dir / r["samples_npy"]
            path.parent.mkdir(parents=True, exist_ok=True)
            shape = (200, 2) if r["dataset"] not in IMAGE_DATASETS else (8, 1, 8, 8)
            np.save(path, rng.standard_normal(shape).astype(np.float32))
    df.to_parquet(results_dir / "trials.parquet", index=False)
    return results_dir
