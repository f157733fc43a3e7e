"""A damaged sample file costs its own panel only: the figure takes the model's next seed, and a
warning names the row (before, one truncated .npy dropped the whole scatter figure)."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image
from report_synth import frame, row

from bench.report import sample_figures
from bench.report.data import load


def test_a_truncated_npy_or_a_text_png_is_skipped_for_the_next_seed(tmp_path, caplog):
    out = tmp_path / "synth"
    (out / "samples").mkdir(parents=True)
    points = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    np.save(out / "samples" / "good.npy", points)
    (out / "samples" / "cut.npy").write_bytes((out / "samples" / "good.npy").read_bytes()[:70])
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(out / "samples" / "good.png")
    (out / "samples" / "text.png").write_text("not an image")
    rows = [
        row("gan", seed=0, trial_id="gan-0", samples_npy="samples/cut.npy"),
        row("gan", seed=1, trial_id="gan-1", samples_npy="samples/good.npy"),
        row("vae", seed=0, trial_id="vae-0", samples_npy="samples/good.npy"),
        row("vae", "digits", seed=0, trial_id="img-0", samples_png="samples/text.png", samples_npy=""),
        row("vae", "digits", seed=1, trial_id="img-1", samples_png="samples/good.png", samples_npy=""),
    ]
    frame(rows).to_parquet(out / "trials.parquet", index=False)
    df = load(out)
    with caplog.at_level(logging.WARNING):
        assets = sample_figures._first_assets(df, out, "samples_npy", sample_figures._load_points)
        grids = sample_figures._first_assets(df, out, "samples_png", sample_figures._read_image)
    assert [t for t, _ in assets["8gaussians"]] == ["gan (short, seed 1)", "vae (short, seed 0)"]
    assert np.array_equal(assets["8gaussians"][0][1], points)
    assert [t for t, _ in grids["digits"]] == ["vae (short, seed 1)"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and any("row gan-0 (samples_npy)" in m for m in warned)
    assert any("row img-0 (samples_png)" in m for m in warned)
    (tmp_path / "figures").mkdir()
    [scatter] = sample_figures.scatter_2d(df, out, tmp_path / "figures")
    assert scatter.path is not None and scatter.path.is_file()
