"""The driver's Tune callback without Ray: a trial that errored after its retries gets a failed row, also
when the stored row file of its cell is damaged (moved aside like at start-up, never a crashed run)."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from bench import store as results
from bench.run.driver import LOGS_DIR, _Progress
from bench.run.experiment import ROW_KEY
from bench.run.worker import STORED_KEY
from bench.suite import load_suite
from bench.trial.run import identity_row

SUITE = """
name = "cb"
seeds = [0, 1]
[[datasets]]
name = "8gaussians"
[[models]]
family = "flow"
[[budgets]]
name = "tiny"
steps = 10
"""
DAMAGED = {
    "truncated": b'{"trial_id": "',
    "not utf-8": b"\xff\xfe\x00",
    "foreign json": b"[1, 2, 3]",
    "another cell's row": None,  # filled in with a valid row of the other cell
}


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "cb.toml"
    path.write_text(SUITE)
    cells = {c.trial_id: c for c in load_suite(path).cells()}
    folder = tmp_path / "results"
    table = results.SuiteTable(folder, {}, list(cells))
    progress = _Progress(table, cells)
    progress.display.file = io.StringIO()  # the bar draws into this instead of stderr
    return folder, cells, progress


def fake_trial(tmp_path, trial_id: str, failures: int = 3) -> SimpleNamespace:
    """What the callback reads of Tune's Trial."""
    error_file = tmp_path / f"error-{trial_id}.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\nray.exceptions.WorkerCrashedError: boom\n")
    return SimpleNamespace(config={"cell": {"trial_id": trial_id}}, num_failures=failures, error_file=str(error_file))


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_row_file_is_moved_aside_and_the_failed_row_written(setup, tmp_path, damage):
    folder, cells, progress = setup
    tid, other = list(cells)
    content = DAMAGED[damage] or json.dumps(results.normalize_row(identity_row(cells[other]))).encode()
    path = results.trial_rows(folder).row_path(tid)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    progress.on_trial_error(0, [], fake_trial(tmp_path, tid))

    row = results.read_row(path)
    assert (row["trial_id"], row["status"], row["attempts"]) == (tid, "failed", 3)
    assert row["error"] == "trial process died (3 attempts): ray.exceptions.WorkerCrashedError: boom"
    (aside,) = (folder / results.TRIALS.rows_dir / results.QUARANTINE).iterdir()
    assert aside.read_bytes() == content  # kept for inspection, byte for byte
    assert "WorkerCrashedError: boom" in (folder / LOGS_DIR / f"{tid}.log").read_text()
    assert progress.table.rows[tid]["status"] == "failed" and set(results.trial_rows(folder).read_rows()) == {tid}


def test_a_finished_row_stored_before_the_worker_died_is_kept(setup, tmp_path):
    folder, cells, progress = setup
    tid = next(iter(cells))
    stored = {**identity_row(cells[tid]), "status": "ok", "attempts": 1}
    results.trial_rows(folder).write_row(stored)
    progress.on_trial_error(0, [], fake_trial(tmp_path, tid))
    row = results.read_row(results.trial_rows(folder).row_path(tid))
    assert (row["status"], row["attempts"]) == ("ok", 1) and progress.table.rows[tid]["status"] == "ok"
    assert not (folder / LOGS_DIR).exists()


def test_a_reported_row_replaces_a_damaged_row_file(setup, tmp_path):
    folder, cells, progress = setup
    tid = next(iter(cells))
    path = results.trial_rows(folder).row_path(tid)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{")
    reported = results.normalize_row({**identity_row(cells[tid]), "status": "ok", "attempts": 2})
    trial = SimpleNamespace(config={"cell": {"trial_id": tid}}, num_failures=0)
    progress.on_trial_result(0, [], trial, {ROW_KEY: json.dumps(reported)})
    assert results.read_row(path)["attempts"] == 2 and results.read_row(path)["status"] == "ok"
    assert len(list((folder / results.TRIALS.rows_dir / results.QUARANTINE).iterdir())) == 1


def _finished_row(cell, attempts: int) -> dict:
    row = results.normalize_row(identity_row(cell))
    row.update(status="ok", attempts=attempts, train_steps=10, train_s=1.0)
    return row


@pytest.mark.parametrize(
    ("attempts", "failures", "stored", "expected"),
    [
        (1, 0, False, 1),  # no retry
        (1, 2, False, 3),  # two Tune retries that started over from step 0: only Tune counted them
        (3, 1, False, 3),  # resumes from checkpoints (also of earlier runs) already counted
        (1, 1, True, 1),  # the retry found the row its first attempt stored: nothing trained again
    ],
)
def test_a_finished_row_counts_the_retries_tune_made(setup, tmp_path, attempts, failures, stored, expected):
    folder, cells, progress = setup
    tid = next(iter(cells))
    row = _finished_row(cells[tid], attempts)
    results.trial_rows(folder).write_row(row)  # the worker stores its row before reporting it
    result = {ROW_KEY: json.dumps(row), **({STORED_KEY: True} if stored else {})}
    progress.on_trial_result(0, [], fake_trial(tmp_path, tid, failures=failures), result)
    assert results.read_row(results.trial_rows(folder).row_path(tid))["attempts"] == expected
    assert progress.table.frame().set_index("trial_id").loc[tid, "attempts"] == expected
