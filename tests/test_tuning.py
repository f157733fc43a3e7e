"""Tuning: validation split, validation hook, phase 1 (Ray Tune search / ASHA), phase 2 (tuned rows),
resume after a killed driver, tuning table and figure, hp_* columns.

Pure tests first (no Ray); Ray tests share one session cluster and keep every trial tiny.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_suite import RUN_EVAL, eval_toml

from bench.datasets import DATASETS
from bench.datasets.toy import EightGaussians
from bench.errors import ConfigError
from bench.run import tuning
from bench.run.tracking import check_tracking
from bench.store import TUNING, hparam_columns, load_results, load_tuning, rebuild_tables, tuning_rows
from bench.suite import load_suite
from bench.trial.run import Lifecycle, run_trial
from bench.trial.validation import HiddenSplitError, TuningView

ROOT = Path(__file__).resolve().parents[1]

TINY_EVAL = eval_toml(RUN_EVAL)
MODELS = {
    "flow": "coupling_layers = 2, hidden = 16, width = 8, blocks = 1, batch_size = 64",
    "vae": "hidden = 16, width = 8, batch_size = 64",
}


def suite_text(
    name: str,
    *,
    family: str = "flow",
    dataset: str = "8gaussians",
    seeds: str = "[0, 1]",
    steps: int = 40,
    tune: str = "",
    space: str = "",
    resources: str = "",
) -> str:
    space = f"space = {space}\n" if space else ""
    return (
        f'name = "{name}"\nseeds = {seeds}\n'
        f'[[datasets]]\nname = "{dataset}"\noptions = {{ n_train = 2000, n_test = 500 }}\n'
        f'[[models]]\nfamily = "{family}"\nhparams = {{ {MODELS[family]} }}\n{space}'
        f'[[budgets]]\nname = "tiny"\nsteps = {steps}\n{tune}\n'
        f"[resources]\nreport_every_steps = {max(1, steps // 8)}\ncheckpoint_every_steps = 0\n{resources}{TINY_EVAL}"
    )


def tune_table(samples: int, search: str = "random", scheduler: str = "fifo", seeds: str = "[0]") -> str:
    return (
        f'[tune]\nmetric = "nll"\nsamples = {samples}\nsearch = "{search}"\n'
        f'scheduler = "{scheduler}"\nseeds = {seeds}\n'
    )


def write_suite(folder: Path, name: str, **kw) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(suite_text(name, **kw))
    return path


# --- tuning rows store (pure) ---------------------------------------------------------------------
def test_damaged_tuning_row_files_are_skipped_or_quarantined_and_never_crash_a_reader(tmp_path, caplog):
    tuning_rows(tmp_path).write_row({"tuning_id": "good", "status": "ok", "val_metric": 1.5})
    folder = tmp_path / TUNING.rows_dir
    bad = {
        "truncated.json": '{"tuning_id": "truncated", "status": "o',
        "foreign.json": '{"theme": "dark"}',
        "renamed.json": (folder / "good.json").read_text(),  # tuning_id is not its name
        "latin1.json": b'{"tuning_id": "latin1", "status": "\xe9"}',
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    with caplog.at_level(logging.WARNING):
        assert set(tuning_rows(tmp_path).read_rows()) == {"good"}
        assert tuning_rows(tmp_path).read_stored_row("truncated") is None
    assert sorted(p.name for p in folder.glob("*.json")) == sorted([*bad, "good.json"])  # nothing moved
    assert set(tuning_rows(tmp_path).read_rows(quarantine=True)) == {"good"}
    moved = folder / "quarantine"
    assert sorted(p.name for p in moved.iterdir()) == sorted(bad)
    assert all((moved / name).read_bytes() == (d if isinstance(d, bytes) else d.encode()) for name, d in bad.items())
    assert tuning_rows(tmp_path).read_stored_row("good")["val_metric"] == 1.5


# --- validation split (pure) ----------------------------------------------------------------------
def test_validation_split_is_a_fixed_disjoint_share_of_train_and_leaves_train_unchanged():
    ds = EightGaussians(EightGaussians.Options(n_train=2000, n_test=100))
    train = ds.train().clone()
    val_idx, rest_idx = ds.val_indices()
    assert len(val_idx) == round(ds.VAL_FRACTION * 2000) and len(rest_idx) == 2000 - len(val_idx)
    assert set(val_idx.tolist()).isdisjoint(rest_idx.tolist())
    assert sorted(val_idx.tolist() + rest_idx.tolist()) == list(range(2000))
    assert torch.equal(ds.val(), train[val_idx]) and torch.equal(ds.tuning_train(), train[rest_idx])
    assert torch.equal(ds.train(), train)  # untuned suites train on exactly what they did before
    again = EightGaussians(EightGaussians.Options(n_train=2000, n_test=100))
    assert torch.equal(again.val(), ds.val())  # the same examples in every trial


def test_tuning_view_hides_the_test_split():
    view = TuningView(EightGaussians(EightGaussians.Options(n_train=500, n_test=100)))
    assert len(view.train()) == 450
    with pytest.raises(HiddenSplitError):
        view.test()


class NoTestGaussians(EightGaussians):
    """8gaussians whose test split raises: whatever reads it during tuning fails the trial."""

    name = "8gaussians"

    def test(self):
        raise AssertionError("the test split was read")


@pytest.fixture
def no_test_dataset():
    DATASETS.register("no-test", NoTestGaussians)
    try:
        yield "no-test"
    finally:
        DATASETS._entries.pop("no-test")


def test_tuning_trial_reports_validation_nll_and_never_reads_the_test_split(tmp_path, no_test_dataset):
    suite = load_suite(write_suite(tmp_path, "nt", dataset=no_test_dataset, steps=16))
    cell = suite.cells()[0]
    reports: list[dict] = []
    lifecycle = Lifecycle(reporter=lambda metrics, folder: reports.append(metrics))
    row = run_trial(cell, results_dir=tmp_path / "r", lifecycle=lifecycle, validation="nll")
    assert row["status"] == "ok", row["error"]
    assert [r["step"] for r in reports] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert all(math.isfinite(r["val_metric"]) and r["val_nll"] == r["val_metric"] for r in reports)
    assert not (tmp_path / "r" / "weights").exists()  # no final evaluation, no weights
    untuned = run_trial(cell, results_dir=tmp_path / "r2")  # evaluation does read it: the guard is real
    assert untuned["status"] == "failed" and "the test split was read" in untuned["error"]


def test_validation_nll_is_the_headline_nll_of_the_validation_examples(tmp_path):
    """The hook's value equals the flow's exact NLL averaged over the first validation examples."""
    from bench.families import make_family
    from bench.metrics import EvalConfig
    from bench.trial.validation import VAL_NLL_EXAMPLES, ValidationHook

    ds = EightGaussians(EightGaussians.Options(n_train=3000, n_test=100))
    family = make_family("flow", ds.spec, {"coupling_layers": 2, "hidden": 16})
    hook = ValidationHook("nll", ds, EvalConfig(), tmp_path, seed=0)
    family.train(False)
    value = hook(family)["val_metric"]
    with torch.no_grad():
        expected = family.nll(ds.val()[:VAL_NLL_EXAMPLES])["exact"].double().mean().item()
    assert value == pytest.approx(expected, rel=1e-5)


# --- search spaces, choosing, tables (pure) -------------------------------------------------------
def test_search_space_maps_each_distribution_to_ray_tune():
    from ray.tune.search.sample import Categorical, Float, Integer

    class D:
        def __init__(self, kind, args):
            self.kind, self.args = kind, args

    space = tuning.search_space(
        {
            "a": D("uniform", (0.0, 1.0)),
            "b": D("loguniform", (1e-4, 1e-2)),
            "c": D("randint", (1, 5)),
            "d": D("choice", (16, 32)),
        }
    )
    assert isinstance(space["a"], Float) and (space["a"].lower, space["a"].upper) == (0.0, 1.0)
    assert isinstance(space["b"], Float) and "LogUniform" in type(space["b"].sampler).__name__
    assert isinstance(space["c"], Integer) and (space["c"].lower, space["c"].upper) == (1, 5)
    assert isinstance(space["d"], Categorical) and space["d"].categories == [16, 32]


def test_hparam_columns_unpack_the_json_column():
    df = pd.DataFrame({"hparams": [json.dumps({"lr": 1e-3, "hidden": 64}), json.dumps({"lr": 2e-3}), ""]})
    out = hparam_columns(df)
    assert out["hp_lr"].tolist()[:2] == [1e-3, 2e-3] and out["hp_hidden"].tolist()[0] == 64
    assert pd.isna(out["hp_hidden"].iloc[1]) and pd.isna(out["hp_lr"].iloc[2])


def test_tracking_errors_are_one_line_before_anything_runs(monkeypatch):
    with pytest.raises(ConfigError, match="unknown tracker"):
        check_tracking("wandb")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a))
    with pytest.raises(ConfigError, match=r"mlflow package is not installed \(pip install 'genbench\[tracking\]'\)"):
        check_tracking("mlflow")
    check_tracking(None)


def _synthetic_tuning(folder: Path) -> list[dict]:
    """Two models × one dataset, 6 configurations each, one stopped early and one failed."""
    rng = np.random.default_rng(0)
    rows = []
    for label in ("flow", "vae"):
        for sample in range(6):
            status = "stopped" if sample == 2 else "failed" if sample == 4 else "ok"
            rows.append(
                {
                    "label": label, "family": label, "dataset": "8gaussians", "budget": "b", "seed": 0,
                    "sample": sample, "config": json.dumps({"lr": float(10 ** rng.uniform(-4, -2))}),
                    "val_metric": float(rng.uniform(2.8, 4.0)) if status != "failed" else math.nan, "metric": "nll",
                    "stopped_step": 10 if status == "stopped" else 40, "budget_steps": 40, "status": status,
                    "train_s": 1.5, "error": "", "tuning_id": f"{label}{sample}",
                }
            )  # fmt: skip
    for r in rows:
        tuning_rows(folder).write_row(r)
    rebuild_tables(folder, schema=TUNING)
    return rows


def test_tuning_section_shows_the_chosen_configuration_and_a_non_increasing_best_of_k_curve(tmp_path):
    from PIL import Image

    from bench.report import tuning_section as report_tuning

    rows = _synthetic_tuning(tmp_path)
    assert report_tuning.section(tmp_path / "nothing-here", None) is None  # untuned folder: no section
    body, paths = report_tuning.section(tmp_path, None)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(paths[0]).size[0] > 100
    curves = report_tuning.best_so_far(load_tuning(tmp_path))
    plotted = report_tuning.draw(curves, tmp_path / "again.png")
    for label in ("flow", "vae"):
        mine = [r for r in rows if r["label"] == label]
        ok = [r["val_metric"] if r["status"] == "ok" else math.inf for r in mine]
        expected = np.minimum.accumulate(ok)  # the running minimum over full-budget trials
        y = plotted[(label, "8gaussians", "b")]
        assert np.allclose(y, expected) and np.all(np.diff(y) <= 0)
        best = min((r for r in mine if r["status"] == "ok"), key=lambda r: r["val_metric"])
        assert f"lr = {json.loads(best['config'])['lr']:.3g}" in body and f"nll {best['val_metric']:.4g}" in body
    assert "| 6 |" in body.replace("|      6 |", "| 6 |") or " 6 " in body  # configurations tried
    assert "budget b" in body


# --- under Ray -------------------------------------------------------------------------------------
SPACE = "{ lr = { loguniform = [1e-4, 1e-2] } }"


def _tuning_frame(results_dir: Path) -> pd.DataFrame:
    return pd.read_csv(results_dir / "tuning.csv")


@pytest.fixture(scope="module")
def tuned_run(ray_cluster, tmp_path_factory):
    """A flow on 8gaussians, 3 random configurations (fifo), then retrained with seeds 0 and 1;
    with --tracking tensorboard."""
    from bench.run.driver import run_suite

    folder = tmp_path_factory.mktemp("tuned")
    path = write_suite(folder, "tuned", space=SPACE, tune=tune_table(3))
    run_suite(load_suite(path), folder / "results", report=False, tracking="tensorboard")
    return folder / "results" / "tuned"


@pytest.mark.ray
@pytest.mark.slow
def test_tuning_rows_then_final_rows_with_the_best_configuration(tuned_run):
    tuning = _tuning_frame(tuned_run)
    assert len(tuning) == 3 and sorted(tuning["sample"]) == [0, 1, 2]  # exactly `samples` rows
    assert set(tuning["status"]) == {"ok"} and (tuning["stopped_step"] == 40).all()
    assert (tuning["metric"] == "nll").all() and np.isfinite(tuning["val_metric"]).all()
    assert len({json.loads(c)["lr"] for c in tuning["config"]}) == 3  # three distinct draws
    assert pd.read_parquet(tuned_run / "tuning.parquet")["config"].tolist() == tuning["config"].tolist()
    best = json.loads(tuning.sort_values("val_metric")["config"].iloc[0])

    df = load_results(tuned_run)
    assert sorted(df["seed"]) == [0, 1] and (df["status"] == "ok").all() and df["tuned"].all()
    for text in df["hparams"]:
        hp = json.loads(text)
        assert hp["lr"] == best["lr"]  # the chosen configuration ...
        assert (hp["coupling_layers"], hp["hidden"], hp["width"]) == (2, 16, 8)  # ... plus the fixed hparams
    assert (df["hp_lr"] == best["lr"]).all() and (df["hp_hidden"] == 16).all()  # hp_* columns
    assert np.isfinite(df["nll"]).all()  # measured on the test split as usual


@pytest.mark.ray
@pytest.mark.slow
def test_tracking_tensorboard_writes_event_files_for_tuning_and_final_trials(tuned_run):
    experiments = {p.parent.parent.name.split("-")[0] for p in (tuned_run / "ray").rglob("events.out.tfevents.*")}
    assert experiments == {"tune", "run"}  # phase 1 (tune-...) and phase 2 (run-...) trials


@pytest.mark.ray
@pytest.mark.slow
def test_untuned_suites_write_tuned_false_and_no_tuning_table(ray_cluster, tmp_path):
    from bench.run.driver import run_suite

    run_suite(load_suite(write_suite(tmp_path, "plain", seeds="[0]", steps=10)), tmp_path / "r", report=False)
    df = load_results(tmp_path / "r" / "plain")
    assert df["tuned"].tolist() == [False] and not (tmp_path / "r" / "plain" / "tuning.csv").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_asha_stops_hopeless_configurations_early(ray_cluster, tmp_path):
    """Half the choices cannot learn in the budget (lr 1e-7): ASHA stops some before the budget."""
    from bench.run.driver import tuned_cells
    from bench.run.tuning import best_configs

    space = "{ lr = { choice = [1e-7, 1e-2] } }"  # the VAE's validation NLL falls fast at 1e-2
    path = write_suite(tmp_path, "asha", family="vae", space=space, steps=48, tune=tune_table(6, "optuna", "asha"))
    suite = load_suite(path)
    tuned_cells(suite, tmp_path / "asha", address=None)  # phase 1, then the phase-2 cells (not run)
    tuning = _tuning_frame(tmp_path / "asha")
    assert len(tuning) == 6
    stopped = tuning[tuning["status"] == "stopped"]
    assert len(stopped) >= 1 and (stopped["stopped_step"] < 48).all()
    assert all(json.loads(c)["lr"] == 1e-7 for c in stopped["config"])  # only hopeless ones stop
    assert best_configs(suite, tmp_path / "asha")[("vae", "8gaussians", "tiny")] == {"lr": 1e-2}


@pytest.mark.ray
@pytest.mark.slow
def test_killed_driver_during_tuning_resumes_without_rerunning_finished_trials(ray_cluster, tmp_path):
    from bench.run.driver import run_suite

    # one tuning trial at a time, each a few seconds: the kill lands after the first, before the last
    path = write_suite(
        tmp_path,
        "killed",
        seeds="[0]",
        steps=400,
        space=SPACE,
        tune=tune_table(3, "optuna"),
        resources="max_concurrent = 1\n",
    )
    out = tmp_path / "results" / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--results", str(tmp_path / "results")]
    driver = subprocess.Popen([*cmd, "--address", ray_cluster, "--no-report"], env=env, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "tuning_rows").glob("*.json"))) < 1:
        assert driver.poll() is None, "the driver ended before the first tuning trial finished"
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {p.name: p.read_bytes() for p in (out / "tuning_rows").glob("*.json")}
    done = [json.loads(b)["sample"] for b in before.values() if json.loads(b)["status"] == "ok"]
    assert 1 <= len(done) < 3

    run_suite(load_suite(path), tmp_path / "results", report=False)
    after = {p.name: p.read_bytes() for p in (out / "tuning_rows").glob("*.json")}
    assert all(after[name] == blob for name, blob in before.items())  # finished rows untouched
    tuning = _tuning_frame(out)
    assert sorted(tuning["sample"]) == [0, 1, 2] and set(tuning["status"]) == {"ok"}
    # the rerun's Tune experiment ran only the missing samples
    experiments = sorted((out / "ray").glob("tune-flow-8gaussians-tiny-seed0*"), key=lambda p: p.stat().st_mtime)
    rerun = {p.name.split("_")[0] for p in experiments[-1].glob("sample-*")}
    assert rerun == {f"sample-{i}" for i in range(3) if i not in done}
    assert load_results(out)["tuned"].all()


@pytest.mark.ray
@pytest.mark.slow
def test_tuning_figure_from_a_real_run_is_a_png_with_non_increasing_values(tuned_run):
    from PIL import Image

    from bench.report import tuning_section as report_tuning

    body, paths = report_tuning.section(tuned_run, load_results(tuned_run))
    assert Image.open(paths[0]).format == "PNG"
    plotted = report_tuning.draw(report_tuning.best_so_far(load_tuning(tuned_run)), tuned_run / "c.png")
    (y,) = plotted.values()
    assert np.all(np.diff(y) <= 0) and y[-1] == pytest.approx(_tuning_frame(tuned_run)["val_metric"].min())

    from bench.report import write_report

    report = write_report(tuned_run).read_text()  # the writer places the section and copies the figure
    assert Image.open(tuned_run / "figures" / "tuning.png").format == "PNG"
    tuning_part = report.split("## Tuning", 1)[1]
    assert "from tuned configurations" in tuning_part and "budget tiny" in tuning_part
