"""The report knows when it is stale: it records the rows it was built from, and `run` rebuilds it
whenever the folder's rows differ, and after a failed or killed report; a report that cannot be
written (full disk) is one line and exit 2 from `report` and `run`, its staging folder removed. No
Ray: every cell of the suite already has its row (as after `run --no-report`)."""

from __future__ import annotations

import errno
import os

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


def _full_disk(monkeypatch) -> None:
    """The report's writes fail as on a full disk (ENOSPC), once some of its files are staged."""

    def publish(stage, results_dir):
        assert any(stage.iterdir())  # the staging folder holds the half-published report
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(stage / "report.md"))

    monkeypatch.setattr(writer, "_publish", publish)


@pytest.mark.parametrize("command", ["report", "run"])
def test_a_full_disk_is_one_line_exit_2_and_no_staging_is_left(tmp_path, no_ray, monkeypatch, capsys, command):
    from bench import cli

    path = write_suite(tmp_path, "s", seeds=(0,))
    out = tmp_path / "results" / "s"
    _finished(load_suite(path), out)
    driver.run_suite(load_suite(path), tmp_path / "results", report=False)
    _full_disk(monkeypatch)
    capsys.readouterr()
    argv = ["report", str(out)] if command == "report" else ["run", str(path), "--results", str(tmp_path / "results")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "Traceback" not in err[0], err
    assert not (out / writer.STAGING).exists() and not writer.is_current(out)
