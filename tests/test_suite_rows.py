"""Only this suite's rows: whatever the state of the table files, readers of a results folder take
exactly the rows of the suite's current cells (cells.json, recorded by `run`); rows of cells edited
out of the suite stay in rows/, counted in one line. No Ray: every current cell already has its row."""

from __future__ import annotations

import logging

import pytest
from tiny_suite import FLOW, write_suite

from bench.run import driver
from bench.store import TRIALS, load_results, trial_rows
from bench.store.folder import CELLS, read_cells
from bench.suite import load_suite
from bench.trial.run import identity_row


def _finished(suite, results_dir, nll: float) -> list[str]:
    """An ok row for every cell of `suite`, as its trials would have stored them."""
    for cell in suite.cells():
        row = identity_row(cell)
        row.update(status="ok", nll=nll, train_steps=cell.steps)
        trial_rows(results_dir).write_row(row)
    return [c.trial_id for c in suite.cells()]


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started: a cell had no finished row")

    monkeypatch.setattr(driver.cluster, "connect", refuse)


def test_a_damaged_table_and_an_edited_suite_read_only_the_current_cells(tmp_path, no_ray, caplog):
    out = tmp_path / "results" / "s"
    before = load_suite(write_suite(tmp_path, "s", seeds=(0, 1)))
    old = _finished(before, out, nll=1.0)
    wider = {**FLOW, "hparams": {**FLOW["hparams"], "hidden": 32}}  # edited: other hyper-parameters, one seed
    after = load_suite(write_suite(tmp_path, "s", seeds=(0,), models=[wider]))
    current = _finished(after, out, nll=2.0)
    assert not set(old) & set(current)

    driver.run_suite(after, tmp_path / "results", report=False)  # nothing to run: records the current cells
    assert read_cells(out) == current
    (out / TRIALS.table).write_bytes(b"PAR1 damaged")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        df = load_results(out)
    assert list(df["trial_id"]) == current and list(df["nll"]) == [2.0]  # not three "trials" averaged
    [line] = [r.getMessage() for r in caplog.records if "no longer in the suite" in r.getMessage()]
    assert "2 rows of cells no longer in the suite, kept" in line
    assert set(trial_rows(out).read_rows()) == set(old) | set(current)  # left alone


def test_a_table_a_killed_run_left_is_read_for_the_current_cells_only(tmp_path, no_ray):
    out = tmp_path / "results" / "s"
    before = load_suite(write_suite(tmp_path, "s", seeds=(0, 1)))
    _finished(before, out, nll=1.0)
    driver.run_suite(before, tmp_path / "results", report=False)  # the table holds both seeds
    (out / CELLS).write_text(f'["{before.cells()[1].trial_id}"]\n')  # the next run recorded its cells, then died
    assert list(load_results(out)["seed"]) == [1]
