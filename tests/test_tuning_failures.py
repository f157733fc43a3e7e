"""Tuning failures are failures: a model whose tuning trials all failed gets failed final rows that
say why (never an untuned run in their place), `run` exits with the failed count, the report's
tuning wording is counted from the rows, and --restart clears the tuning rows too. No Ray: phase 1
is replaced by its stored rows."""

from __future__ import annotations

import pandas as pd
import pytest

from bench import cli
from bench.report import tuning_section
from bench.run import driver, tuning
from bench.run.tuning_worker import tuning_row
from bench.store import TUNING, clear, load_results, load_tuning, rebuild_tables, tuning_rows
from bench.suite import load_suite

SUITE = """name = "allfail"
seeds = [0, 1]
[[datasets]]
name = "8gaussians"
options = { n_train = 500, n_test = 200 }
[[models]]
family = "flow"
hparams = { coupling_layers = 2, hidden = 16, batch_size = 32 }
space = { lr = { loguniform = [1e-4, 1e-2] } }
[[budgets]]
name = "tiny"
steps = 10
[tune]
metric = "nll"
samples = 2
"""
ERROR = "1 training examples leave none after validation"


def _failed_phase_1(suite, results_dir):
    """Every tuning trial of the suite stored as failed, as phase 1 leaves them."""
    plan = tuning.Plan.of(suite)
    for search in plan.searches:
        for sample in range(plan.samples):
            row = tuning_row(search.cell, sample, {"lr": 1e-3}, "nll", {}, status="failed", error=ERROR)
            row["tuning_id"] = search.tuning_id(sample)
            tuning_rows(results_dir).write_row(row)
    rebuild_tables(results_dir, plan.ids, schema=TUNING)
    return plan


@pytest.fixture
def no_trials(monkeypatch):
    """Phase 1 already ran (its rows are stored) and nothing may train: a call to Ray fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a trial was started")

    monkeypatch.setattr(driver.tuning, "pending", lambda plan, results_dir: False)
    monkeypatch.setattr(driver, "_fit", refuse)
    monkeypatch.setattr(driver.cluster, "connect", refuse)


def test_all_failed_tuning_gives_failed_rows_that_say_why_and_the_failed_exit_status(tmp_path, no_trials):
    path = tmp_path / "allfail.toml"
    path.write_text(SUITE)
    out = tmp_path / "results" / "allfail"
    _failed_phase_1(load_suite(path), out)

    code = cli.main(["run", str(path), "--results", str(tmp_path / "results"), "--no-report"])

    assert code == cli.EXIT_FAILED_TRIALS + 2  # both seeds' cells failed, none ran untuned
    rows = load_results(out)
    assert sorted(rows["seed"]) == [0, 1] and set(rows["status"]) == {"failed"}
    assert not rows["tuned"].any() and rows["train_steps"].isna().all()  # nothing was trained
    for error in rows["error"]:
        assert error.startswith("tuning failed") and "2 failed" in error and ERROR in error


def test_the_tuning_headline_is_counted_from_the_rows(tmp_path):
    suite = load_suite(_write(tmp_path))
    _failed_phase_1(suite, tmp_path)
    tuned = load_tuning(tmp_path)
    frame = pd.DataFrame(
        {"label": ["flow", "flow", "vae"], "status": ["ok", "ok", "failed"], "tuned": [True, True, False]}
    )
    partial = tuning_section.headline(tuned, frame)
    assert not partial.startswith("Every verdict") and "Only 2 of 3 trials" in partial and "vae: 1 failed" in partial
    assert tuning_section.headline(tuned, frame[frame["tuned"]]).startswith("Every verdict")


def test_restart_clears_the_tuning_rows_and_tables(tmp_path):
    suite = load_suite(_write(tmp_path))
    plan = _failed_phase_1(suite, tmp_path / "r")
    assert tuning.pending(plan, tmp_path / "r") and (tmp_path / "r" / TUNING.table).is_file()
    (tmp_path / "r" / "cache").mkdir()
    clear(tmp_path / "r")
    assert not tuning_rows(tmp_path / "r").read_rows() and sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "cache"
    ]


def _write(folder):
    path = folder / "allfail.toml"
    path.write_text(SUITE)
    return path


@pytest.mark.ray
@pytest.mark.slow
def test_under_ray_a_suite_whose_tuning_trials_all_fail_runs_nothing_untuned(ray_cluster, tmp_path):
    """n_train = 1 leaves no validation example: both tuning trials fail for real."""
    path = tmp_path / "allfail.toml"
    path.write_text(SUITE.replace("n_train = 500", "n_train = 1").replace("seeds = [0, 1]", "seeds = [0]"))
    summary = driver.run_suite(load_suite(path), tmp_path / "results", report=False)
    out = tmp_path / "results" / "allfail"
    tuned = load_tuning(out)
    assert len(tuned) == 2 and set(tuned["status"]) == {"failed"}
    rows = load_results(out)
    assert summary.failed == 1 and list(rows["status"]) == ["failed"] and not rows["tuned"].any()
    assert rows["error"].iloc[0].startswith("tuning failed") and rows["train_steps"].isna().all()
