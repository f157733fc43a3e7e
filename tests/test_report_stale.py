"""The report knows when it is stale: it records the rows it was built from, and `run` rebuilds it
whenever the folder's rows differ, and after a failed or killed report. No Ray: every cell of the
suite already has its row (as after `run --no-report`)."""

from __future__ import annotations

import pandas as pd
import pytest
from tiny_suite import write_suite

from bench.report import writer
from bench.run import driver
from bench.store import trial_rows
from bench.suite import load_suite
from bench.trial.run import identity_row


def _finished(suite, results_dir) -> None:
    for cell in suite.cells():
        if trial_rows(results_dir).read_stored_row(cell.trial_id) is None:
            row = identity_row(cell)
            row.update(status="ok", nll=2.0 + cell.seed, train_steps=cell.steps)
            trial_rows(results_dir).write_row(row)


def _trials_in_report(out) -> int:
    return int(pd.read_csv(out / "summary.csv")["n_trials"].sum())


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started: a cell had no finished row")

    monkeypatch.setattr(driver.cluster, "connect", refuse)


def test_a_seed_added_without_a_report_is_in_the_next_runs_report(tmp_path, no_ray):
    out = tmp_path / "results" / "s"
    one = load_suite(write_suite(tmp_path, "s", seeds=(0,)))
    _finished(one, out)
    assert driver.run_suite(one, tmp_path / "results").report_path is not None
    assert _trials_in_report(out) == 1 and writer.is_current(out)

    two = load_suite(write_suite(tmp_path, "s", seeds=(0, 1)))
    _finished(two, out)  # `run --no-report` ran the new seed
    driver.run_suite(two, tmp_path / "results", report=False)
    assert not writer.is_current(out)
    summary = driver.run_suite(two, tmp_path / "results")  # "0 to run"
    assert summary.skipped == 2 and summary.report_path is not None
    assert _trials_in_report(out) == 2 and writer.is_current(out)
    before = (out / "report.md").stat().st_mtime_ns
    assert driver.run_suite(two, tmp_path / "results").report_path is None  # current: it stands
    assert (out / "report.md").stat().st_mtime_ns == before


def test_a_changed_row_or_a_failed_report_makes_the_report_stale(tmp_path, no_ray, monkeypatch):
    out = tmp_path / "results" / "s"
    suite = load_suite(write_suite(tmp_path, "s", seeds=(0,)))
    _finished(suite, out)
    driver.run_suite(suite, tmp_path / "results")
    assert writer.is_current(out)
    (tid,) = [c.trial_id for c in suite.cells()]
    row = trial_rows(out).read_stored_row(tid)
    trial_rows(out).write_row({**row, "nll": 9.0})  # the same ids, another content
    driver.run_suite(suite, tmp_path / "results", report=False)  # the table follows the rows
    assert not writer.is_current(out)

    def broken(*args, **kwargs):
        raise RuntimeError("report killed")

    monkeypatch.setattr(writer, "_publish", broken)
    assert driver.run_suite(suite, tmp_path / "results").report_path is None  # failed: logged, rows safe
    monkeypatch.undo()
    monkeypatch.setattr(driver.cluster, "connect", lambda *a, **k: pytest.fail("Ray started"))
    trial_rows(out).write_row(row)  # back to the rows of the report on disk, which was not replaced
    driver.run_suite(suite, tmp_path / "results", report=False)
    assert not writer.is_current(out)  # a failed report leaves no record: the next run rebuilds
    assert driver.run_suite(suite, tmp_path / "results").report_path is not None and writer.is_current(out)
