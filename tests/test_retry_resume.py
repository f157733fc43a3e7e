"""Where a trial that Tune hands no checkpoint resumes (no Ray): the more advanced of the newest complete
checkpoint in its folder of the running experiment (a worker killed between copying a checkpoint and
Tune registering it) and the one an earlier run stored; the resumed row counts every attempt."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from tiny_suite import TRIAL_EVAL, write_suite

from bench.run.worker import resume_point
from bench.store import storage
from bench.suite import load_suite
from bench.trial.run import Lifecycle, checkpoint, run_trial

TID = "aaa"


def make(folder: Path, step: int, *, trial_id: str = TID, attempts: int = 1, damage: str = "") -> Path:
    """A checkpoint folder written by bench.trial.checkpoint; `damage` imitates a copy cut short."""
    folder.mkdir(parents=True)
    checkpoint.save(folder, {"step": step, "attempts": attempts, "x": torch.arange(1000)}, trial_id=trial_id)
    if damage == "truncated":  # state.pt copied in part
        data = (folder / checkpoint.STATE).read_bytes()
        (folder / checkpoint.STATE).write_bytes(data[: len(data) // 2])
    elif damage == "no-meta":  # killed before meta.json (written last) arrived
        (folder / checkpoint.META).unlink()
    return folder


def lookup(store: storage.Storage, stored: dict) -> tuple[str, int] | None:
    return resume_point(store, "run-2", TID, stored)


def test_the_more_advanced_of_this_runs_unregistered_and_an_earlier_runs_checkpoint(tmp_path):
    store = storage.Storage(results_dir=tmp_path)
    ray = tmp_path / "ray"
    assert lookup(store, {}) is None  # nothing anywhere (and no ray/ folder): step 0
    make(ray / "run-1" / TID / "checkpoint_000000", 20)
    earlier = make(ray / "run-1" / TID / "checkpoint_000001", 40)
    stored = checkpoint.find_stored(store.fs, f"{store.root}/ray", [TID])  # what the driver finds at the start
    assert stored == {TID: (str(earlier), 40)}
    assert lookup(store, stored) == (str(earlier), 40)  # this run has written nothing yet

    this_run = ray / "run-2" / TID
    make(this_run / "checkpoint_000000", 30)  # behind the earlier run's: that one is kept
    assert lookup(store, stored) == (str(earlier), 40)
    newest = make(this_run / "checkpoint_000001", 60)
    make(this_run / "checkpoint_000002", 80, damage="truncated")
    make(this_run / "checkpoint_000003", 100, damage="no-meta")
    make(this_run / "checkpoint_000004", 120, trial_id="bbb")  # another trial's files: never resumed
    (this_run / "not_a_checkpoint").mkdir()
    assert lookup(store, stored) == (str(newest), 60)
    assert lookup(store, {}) == (str(newest), 60)  # a cell without an earlier run's checkpoint


TOY_1000 = {"name": "8gaussians", "options": {"n_train": 1000, "n_test": 300}}
RESOURCES = {"report_every_steps": 5, "checkpoint_every_steps": 10}
COMPARED = ("status", "nll", "nll_estimates", "fid", "kid_mean", "precision", "recall", "loss_curve", "train_steps")


class Killed(Exception):
    """The worker process dying right after Tune copied a checkpoint, before the driver registered it."""


def copy_then_die(trial_folder: Path, die_at: int):
    """A reporter that stores checkpoints like Tune does (checkpoint_<n> under the trial's folder)."""

    def reporter(metrics, folder):
        if folder is None:
            return
        index = len(list(trial_folder.glob("checkpoint_*"))) if trial_folder.is_dir() else 0
        shutil.copytree(folder, trial_folder / f"checkpoint_{index:06d}")
        if metrics["step"] == die_at:
            raise Killed

    return reporter


def test_a_retry_resumes_an_unregistered_checkpoint_and_counts_every_attempt(tmp_path):
    path = write_suite(
        tmp_path, "retry", seeds=(3,), datasets=(TOY_1000,), steps=30, resources=RESOURCES, eval=TRIAL_EVAL
    )
    (cell,) = load_suite(path).cells()
    store = storage.Storage(results_dir=tmp_path / "results")
    plain = run_trial(cell, results_dir=tmp_path / "plain")

    # run 1: the driver was killed after the checkpoint at step 10 was stored
    run1 = Path(store.root) / "ray" / "run-1" / cell.trial_id
    with pytest.raises(Killed):
        run_trial(cell, results_dir=tmp_path / "a", lifecycle=Lifecycle(reporter=copy_then_die(run1, 10)))
    stored = checkpoint.find_stored(store.fs, f"{store.root}/ray", [cell.trial_id])
    assert stored[cell.trial_id][1] == 10

    # run 2, first attempt: resumes run 1's checkpoint, its worker dies after copying step 20's
    run2 = Path(store.root) / "ray" / "run-2" / cell.trial_id
    found = resume_point(store, "run-2", cell.trial_id, stored)
    assert found == stored[cell.trial_id]
    with pytest.raises(Killed):
        lifecycle = Lifecycle(reporter=copy_then_die(run2, 20), resume=Path(found[0]))
        run_trial(cell, results_dir=tmp_path / "b", lifecycle=lifecycle)

    # run 2, Tune's retry (tune.get_checkpoint() is None): continues from step 20 of this run
    found = resume_point(store, "run-2", cell.trial_id, stored)
    assert found == (str(run2 / "checkpoint_000000"), 20)
    row = run_trial(
        cell, results_dir=tmp_path / "c", lifecycle=Lifecycle(reporter=lambda m, f: None, resume=Path(found[0]))
    )
    assert (row["attempts"], row["resumed_from_step"]) == (3, 20)  # run 1, run 2, its retry
    for key in COMPARED:
        a, b = row[key], plain[key]
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (key, a, b)
