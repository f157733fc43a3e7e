"""Ray integration: a tiny real grid on 2 CPUs, a raising trial, resume, a SIGKILLed driver, CPU
determinism. One session-wide Ray (conftest.ray_cluster); every trial is tiny (steps, eval)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_suite import RUN_EVAL, eval_toml

from bench import store as results
from bench.run.driver import run_suite
from bench.store import COLUMN_NAMES, load_results
from bench.suite import load_suite

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]

TINY_EVAL = eval_toml(RUN_EVAL)
DATASETS = """
[[datasets]]
name = "8gaussians"
options = { n_train = 2000, n_test = 500 }

[[datasets]]
name = "digits"
"""
FLOW = (
    '[[models]]\nfamily = "flow"\n'
    "hparams = { coupling_layers = 4, hidden = 32, width = 8, blocks = 1, batch_size = 64 }\n"
)
VAE = '[[models]]\nfamily = "vae"\nhparams = { hidden = 32, width = 8, batch_size = 64 }\n'
# 2**40 examples per batch: the trial runs out of memory drawing its first batch, a real failure
BROKEN = '[[models]]\nfamily = "vae"\nlabel = "vae-oom"\nhparams = { batch_size = 1099511627776 }\n'


def suite_file(
    folder: Path, name: str, models: str, *, datasets: str = DATASETS, seeds: str = "[0]", steps: int = 15
) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nseeds = {seeds}\n{datasets}\n{models}\n'
        f'[[budgets]]\nname = "tiny"\nsteps = {steps}\n{TINY_EVAL}'
    )
    return path


@pytest.fixture(scope="module")
def grid(ray_cluster, tmp_path_factory):
    """flow, vae × 8gaussians, digits (ok) + a model whose trials raise; run once for the module."""
    folder = tmp_path_factory.mktemp("grid")
    suite = load_suite(suite_file(folder, "grid", FLOW + "\n" + VAE + "\n" + BROKEN))
    summary = run_suite(suite, folder / "results", report=False)
    return suite, summary, folder / "results" / "grid"


def test_tiny_grid_gives_one_ok_row_per_cell_with_finite_measurements(grid):
    suite, summary, out = grid
    df = load_results(out)
    schema = list(df.columns[: len(COLUMN_NAMES)])
    assert schema == list(COLUMN_NAMES)  # the schema's columns in order, then one hp_<name> per hyper-parameter
    assert all(c.startswith("hp_") for c in df.columns[len(COLUMN_NAMES) :])
    assert sorted(df["trial_id"]) == sorted(c.trial_id for c in suite.cells())  # one row per cell
    ok = df[df["label"] != "vae-oom"]
    assert len(ok) == 4 and set(ok["status"]) == {"ok"}, ok[["label", "dataset", "status", "error"]]
    for col in ("nll", "fid", "kid_mean", "samples_per_s", "train_s", "examples_per_s", "eval_s"):
        assert ok[col].map(math.isfinite).all(), (col, ok[col].tolist())
    assert (ok["train_steps"] == 15).all() and (ok["params"] > 0).all()
    units = dict(zip(ok["dataset"], ok["nll_unit"]))
    assert units == {"8gaussians": "nats", "digits": "bits_per_dim"}
    flow = ok[ok.family == "flow"]
    assert dict(zip(flow["dataset"], flow["nll_kind"])) == {"8gaussians": "exact", "digits": "dequantized"}
    assert (ok["n_fake"] == ok["n_real"]).all()  # equal protocols for every ok row
    assert set(ok[ok.family == "vae"]["nll_kind"]) == {"iwae-4"}
    assert set(ok["device"]) == {"cpu"} and set(ok["mixed_precision"]) == {"no"}
    for _, row in ok.iterrows():
        assert (out / row["weights_path"]).is_file() and (out / row["samples_npy"]).is_file()
        assert (row["dataset"] == "digits") == bool(row["samples_png"])
    # the parquet table and its CSV mirror hold the same rows
    import pandas as pd

    csv = pd.read_csv(out / results.TRIALS.csv)
    assert list(csv["trial_id"]) == list(df["trial_id"])
    assert summary.total == 6 and summary.skipped == 0


def test_a_raising_trial_is_a_failed_row_and_the_others_finish(grid):
    _, summary, out = grid
    df = load_results(out)
    broken = df[df["label"] == "vae-oom"]
    assert len(broken) == 2 and set(broken["status"]) == {"failed"}
    assert broken["error"].str.contains("allocate memory").all(), broken["error"].tolist()
    assert broken["nll"].isna().all() and summary.failed == 2
    assert summary.statuses["ok"] == 4


def test_rerun_skips_finished_cells_and_reruns_failed_ones(grid):
    suite, _, out = grid
    ok_files = {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((out / "rows").glob("*.json"))
        if json.loads(p.read_text())["status"] == "ok"
    }
    summary = run_suite(suite, out.parent, report=False)
    assert summary.skipped == 4 and summary.failed == 2
    for p, (data, mtime) in ok_files.items():
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtime
    df = load_results(out)
    assert len(df) == 6 and df["trial_id"].is_unique


def test_same_suite_and_seed_gives_identical_nll_on_cpu(grid, tmp_path):
    """A second run of the flow × 8gaussians cell (another suite file and folder, same config)."""
    suite, _, out = grid
    again = load_suite(suite_file(tmp_path, "again", FLOW, datasets=DATASETS.split("\n\n")[0]))
    (cell,) = again.cells()
    run_suite(again, tmp_path / "results", report=False)
    first = load_results(out).set_index("trial_id").loc[cell.trial_id]
    second = load_results(tmp_path / "results" / "again").set_index("trial_id").loc[cell.trial_id]
    assert second["status"] == "ok" and math.isfinite(second["nll"])
    assert second["nll"] == first["nll"] and second["nll_estimates"] == first["nll_estimates"]
    assert second["loss_curve"] == first["loss_curve"]


def test_sigkilled_driver_loses_no_row_and_duplicates_none(ray_cluster, tmp_path):
    suite_path = suite_file(tmp_path, "kill", FLOW, datasets=DATASETS.split("\n\n")[0], seeds="[0, 1, 2, 3]", steps=300)
    out = tmp_path / "results" / "kill"
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_bench.py"),
            "run",
            str(suite_path),
            "--results",
            str(tmp_path / "results"),
            "--address",
            ray_cluster,
            "--no-report",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while not list((out / "rows").glob("*.json")):
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no row landed in time"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    landed = {p.name: p.read_bytes() for p in (out / "rows").glob("*.json")}
    suite = load_suite(suite_path)
    assert 1 <= len(landed) < len(suite.cells()), "the kill should come mid-suite"

    summary = run_suite(suite, tmp_path / "results", report=False)
    df = load_results(out)
    assert sorted(df["trial_id"]) == sorted(c.trial_id for c in suite.cells())  # each cell once
    assert set(df["status"]) == {"ok"} and summary.skipped >= len(landed)
    for name, data in landed.items():  # no finished row lost or rewritten
        assert (out / "rows" / name).read_bytes() == data
        row = json.loads(data)
        assert df.set_index("trial_id").loc[row["trial_id"], "nll"] == row["nll"]


def test_report_on_a_tiny_real_run_writes_every_file(grid):
    """Issue 6: the report command on a real results folder (the grid above, incl. failed rows)."""
    import io
    import re

    from PIL import Image

    from bench.cli import main as cli_main
    from bench.report import OUTPUTS

    _, _, out = grid
    assert cli_main(["report", str(out)]) == 0
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    figures = sorted((out / "figures").glob("*.png"))
    assert {p.stem for p in figures} >= {"fid_vs_speed", "nll", "loss_curves", "samples_digits"}
    for path in figures:  # every figure a valid PNG
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    html = (out / "report.html").read_text(encoding="utf-8")
    for ref in re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html):  # embedded or existing
        assert ref.startswith(("data:", "#", "http")) or (out / ref).exists(), ref
    claims = (out / "claims.csv").read_text(encoding="utf-8")
    assert "not measured" in claims  # no GAN / DDPM trial in this grid: said so, not guessed
    # the flow's exact likelihood is checked by its density mass on the 2-D grid
    df = load_results(out)
    flow_mass = df[(df.family == "flow") & (df.dataset == "8gaussians")]["density_mass"]
    assert flow_mass.map(math.isfinite).all()


def test_a_failed_trials_traceback_is_copied_into_the_logs_folder(grid):
    _, _, out = grid
    df = load_results(out)
    failed = df[df["status"] == "failed"]
    assert sorted(p.stem for p in (out / "logs").glob("*.log")) == sorted(failed["trial_id"])  # ok ones: none
    for _, row in failed.iterrows():
        text = (out / "logs" / f"{row['trial_id']}.log").read_text()
        exc_type = row["error"].split(":")[0]  # e.g. RuntimeError, from the row's one-line error
        assert "Traceback (most recent call last)" in text and f"{exc_type}:" in text, text[-2000:]
