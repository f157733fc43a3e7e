"""A row names only its results folder's own files: anything outside the folder and its storage
prefix (symlinks resolved) is refused with a warning naming the row, and the report goes on."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from PIL import Image
from report_synth import frame, row

from bench.report import sample_figures
from bench.report.data import load, resolve_asset
from bench.store import confine, folder, storage


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def results(tmp_path):
    """results/synth with one legit sample grid, and files outside it a row could point at."""
    out = tmp_path / "results" / "synth"
    _png(out / "samples" / "ok" / "samples.png")
    _png(tmp_path / "secret.png")
    (out / "samples" / "link").mkdir(parents=True)
    os.symlink(tmp_path / "secret.png", out / "samples" / "link" / "samples.png")
    return out


@pytest.mark.parametrize(
    "name",
    [
        "{tmp}/secret.png",
        "../../secret.png",
        "samples/../../../secret.png",
        "samples/link/samples.png",
        "file://{tmp}/secret.png",
    ],
)
def test_names_outside_the_results_folder_are_refused_with_the_row_named(results, tmp_path, caplog, name):
    name = name.format(tmp=tmp_path)
    with caplog.at_level(logging.WARNING):
        assert storage.fetch(name, results, row="row t7 (samples_png)") is None
    assert any("row t7 (samples_png)" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


def test_names_inside_the_folder_are_read(results):
    assert storage.fetch("samples/ok/samples.png", results) == (results / "samples/ok/samples.png").resolve()
    assert storage.fetch("samples/none.png", results) is None  # inside but missing: no warning needed


def test_absolute_names_only_inside_this_folders_storage_prefix(results, tmp_path):
    store = storage.open_storage(str(tmp_path / "nfs"), results, folder.identity(results))
    mine = _png(tmp_path / "nfs" / f"synth-{folder.read_identity(results)}" / "samples" / "t" / "samples.png")
    assert storage.fetch(str(mine), results) == mine.resolve() and store.root == str(mine.parents[2])
    other = _png(tmp_path / "nfs" / "synth-0123456789ab" / "samples" / "t" / "samples.png")  # another folder's prefix
    os.symlink(tmp_path / "secret.png", mine.parent / "escape.png")  # a link out of the prefix
    for name in (str(other), str(mine.parent / "escape.png"), f"{mine.parents[1]}/../../../secret.png"):
        with pytest.raises(confine.Outside):
            confine.local_path(name, results)


def test_object_store_names_only_inside_this_folders_prefix(results):
    prefix = f"synth-{folder.identity(results)}"
    confine.check_uri(f"s3://b/base/{prefix}/samples/t/samples.png?endpoint_override=h:1", results)
    for uri in (
        "s3://b/base/secrets/key.png",
        f"s3://b/base/{prefix}/other/t.png",  # not weights/ or samples/
        f"s3://b/base/{prefix}/samples/../../../x.png",
        f"s3://AK:SK@b/{prefix}/samples/t/samples.png",
        "s3://b/base/synth-0123456789ab/samples/t/samples.png",
    ):
        with pytest.raises(confine.Outside):
            confine.check_uri(uri, results)


def test_the_report_draws_only_the_rows_files_inside_and_goes_on(results, tmp_path, caplog, monkeypatch):
    rows = [
        row("vae", "digits", samples_png="samples/ok/samples.png", trial_id="inside"),
        row("gan", "digits", samples_png=str(tmp_path / "secret.png"), trial_id="absolute"),
        row("flow", "digits", samples_png="../../secret.png", trial_id="dotdot"),
        row("ddpm", "digits", samples_png="samples/link/samples.png", trial_id="link"),
    ]
    df = frame(rows)
    df.to_parquet(results / "trials.parquet", index=False)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(sample_figures.Image, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    (tmp_path / "figures").mkdir()
    with caplog.at_level(logging.WARNING):
        figures = sample_figures.sample_grids(load(results), results, tmp_path / "figures")
    assert [f.path is not None for f in figures] == [True]
    assert [os.path.realpath(p) for p in opened] == [str((results / "samples/ok/samples.png").resolve())]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert all(f"row {t} (samples_png)" in warned for t in ("absolute", "dotdot", "link"))
    df_loaded = load(results)
    assert resolve_asset(results, df_loaded[df_loaded.trial_id == "inside"].iloc[0], "samples_png") is not None
