"""A trial's lifecycle without Ray: reports while it trains, checkpoints, and a resume that is
bit-identical to the uninterrupted run on CPU; the stored-checkpoint lookup of a rerun."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil

import numpy as np
import pytest
import torch
from conftest import family_names
from pyarrow import fs as pafs

from bench.suite import load_suite
from bench.trial.run import Lifecycle, checkpoint, run_trial

SUITE = """
name = "life"
seeds = [5]
[[datasets]]
name = "8gaussians"
options = { n_train = 1000, n_test = 300 }
{models}
[[budgets]]
name = "tiny"
steps = 30
[resources]
report_every_steps = 5
checkpoint_every_steps = 10
[eval]
n_samples = 100
n_real = 100
sample_batch = 50
speed_batches = [50]
speed_repeats = 1
nll_examples = 100
iwae_k = 4
kid_subset_size = 20
kid_subsets = 3
impute_examples = 20
"""
COMPARED = ("status", "nll", "nll_estimates", "fid", "kid_mean", "precision", "recall", "impute_mse", "loss_curve")


def _inline(hparams) -> str:
    """A TOML inline table: the family's tiny hyper-parameters (they exercise its LR schedule, KL
    warm-up, EMA and step counters, two optimizers: all of its extra state)."""
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in {**hparams, "batch_size": 32}.items()) + " }"


@pytest.fixture(scope="module")
def cells(tmp_path_factory, request):
    from bench.families import FAMILIES

    names = family_names(request.module, baseline=False)
    models = "\n".join(
        f'[[models]]\nfamily = "{f}"\nhparams = {_inline(FAMILIES.get(f).tiny_hparams)}\n' for f in names
    )
    path = tmp_path_factory.mktemp("suite") / "life.toml"
    path.write_text(SUITE.replace("{models}", models))
    return {c.family: c for c in load_suite(path).cells()}


class Interrupt(Exception):
    """What a killed process would do to the trial: it stops, here right after a checkpoint."""


def same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.families(baseline=False)
def test_resumed_trial_equals_the_uninterrupted_one_bit_for_bit(cells, family, tmp_path):
    cell = cells[family]
    plain = run_trial(cell, results_dir=tmp_path / "plain")  # no reporter: no checkpoints at all
    saved = tmp_path / "checkpoint"

    def stop_after_first_checkpoint(metrics, folder):
        if folder is not None:
            shutil.copytree(folder, saved)
            raise Interrupt

    with pytest.raises(Interrupt):  # the reporter's exception leaves run_trial, not a failed row
        run_trial(cell, results_dir=tmp_path / "killed", lifecycle=Lifecycle(reporter=stop_after_first_checkpoint))
    state = checkpoint.load(saved, trial_id=cell.trial_id)
    assert state["step"] == 10 and state["attempts"] == 1

    resumed = run_trial(
        cell, results_dir=tmp_path / "resumed", lifecycle=Lifecycle(reporter=lambda m, f: None, resume=saved)
    )
    assert plain["status"] == "ok" and (plain["attempts"], plain["resumed_from_step"]) == (1, -1)
    assert (resumed["attempts"], resumed["resumed_from_step"]) == (2, 10)
    for key in COMPARED:
        assert same(resumed[key], plain[key]), (key, resumed[key], plain[key])
    assert resumed["train_steps"] == plain["train_steps"] == 30
    assert resumed["train_s"] > state["monitor"]["train_s"] > 0  # both attempts' training time
    npy = [(tmp_path / run / row["samples_npy"]).read_bytes() for run, row in (("plain", plain), ("resumed", resumed))]
    assert npy[0] == npy[1]
    weights = [torch.load(tmp_path / r / row["weights_path"]) for r, row in (("plain", plain), ("resumed", resumed))]
    for name, tensors in weights[0].items():
        for key, t in tensors.items():
            assert torch.equal(t, weights[1][name][key]), (name, key)


def test_reports_carry_step_budget_time_window_loss_and_hook_metrics(cells, tmp_path):
    cell = cells["gan"]  # main loss "loss_d": the report's `loss` follows the family's main loss
    plain = run_trial(cell, results_dir=tmp_path / "plain")
    reports = []

    def greedy_hook(family, dataset):  # draws from every global generator: must not change the trial
        assert not torch.is_grad_enabled()
        return {"val_metric": float(torch.randn(())) + np.random.rand() + random.random()}

    row = run_trial(
        cell,
        results_dir=tmp_path / "reported",
        lifecycle=Lifecycle(reporter=lambda m, f: reports.append((m, f is not None)), report_hook=greedy_hook),
    )
    assert [m["step"] for m, _ in reports] == [5, 10, 15, 20, 25, 30]
    assert [saved for _, saved in reports] == [False, True, False, True, False, True]
    for key in COMPARED:
        assert same(row[key], plain[key]), key
    curve = dict((s, v) for s, v in json.loads(row["loss_curve"])["loss_d"])  # step index -> loss_d
    train_s = [m["train_s"] for m, _ in reports]
    assert train_s == sorted(train_s) and 0 < train_s[-1] <= row["train_s"]
    for m, _ in reports:
        assert (m["budget_steps"], m["budget_s"]) == (30, None) and math.isfinite(m["val_metric"])
        window = [curve[s] for s in range(m["step"] - 5, m["step"])]
        assert m["loss"] == pytest.approx(sum(window) / 5, rel=1e-12)
        assert m["losses"]["loss_d"] == curve[m["step"] - 1] and set(m["losses"]) >= {"loss_g", "loss_d"}


def test_no_checkpoints_when_off_and_a_final_one_at_a_step_off_the_grid(cells, tmp_path):
    cell = dataclasses.replace(cells["flow"], checkpoint_every_steps=0, steps=12)
    reports = []
    run_trial(cell, results_dir=tmp_path / "a", lifecycle=Lifecycle(reporter=lambda m, f: reports.append((m, f))))
    assert [(m["step"], f) for m, f in reports] == [(5, None), (10, None), (12, None)]
    cell = dataclasses.replace(cell, checkpoint_every_steps=7)
    steps = []

    def keep(metrics, folder):
        if folder is not None:
            steps.append(checkpoint.load(folder, trial_id=cell.trial_id)["step"])

    run_trial(cell, results_dir=tmp_path / "b", lifecycle=Lifecycle(reporter=keep))
    assert steps == [7, 12]  # the grid, then the end of training


def test_find_stored_picks_the_most_advanced_complete_checkpoint(tmp_path):
    def make(path, trial_id, step, truncate=False):
        path.mkdir(parents=True)
        checkpoint.save(path, {"step": step, "attempts": 1, "x": torch.arange(1000)}, trial_id=trial_id)
        if truncate:  # a copy cut short by a kill
            data = (path / checkpoint.STATE).read_bytes()
            (path / checkpoint.STATE).write_bytes(data[: len(data) // 2])

    root = tmp_path / "ray"
    make(root / "run-1" / "aaa" / "checkpoint_000000", "aaa", 100)
    make(root / "run-1" / "aaa" / "checkpoint_000001", "aaa", 200)
    make(root / "run-2" / "aaa" / "checkpoint_000000", "aaa", 300, truncate=True)
    make(root / "run-2" / "bbb" / "checkpoint_000004", "bbb", 50)
    make(root / "run-2" / "ccc" / "checkpoint_000000", "ddd", 70)  # another trial's files: ignored
    fs, path = checkpoint.filesystem_for(str(root))
    found = checkpoint.find_stored(fs, path, ["aaa", "bbb", "ccc", "eee"])
    assert found == {"aaa": (str(root / "run-1" / "aaa" / "checkpoint_000001"), 200), "bbb": (found["bbb"][0], 50)}
    assert checkpoint.find_stored(pafs.LocalFileSystem(), str(tmp_path / "missing"), ["aaa"]) == {}
    with pytest.raises(ValueError, match="incomplete"):
        checkpoint.load(root / "run-2" / "aaa" / "checkpoint_000000", trial_id="aaa")


def test_a_checkpoint_that_cannot_be_resumed_is_a_failed_row_naming_the_way_out(cells, tmp_path):
    cell = cells["gan"]
    checkpoint.save(tmp_path, {"step": 10, "attempts": 1}, trial_id="other-trial")
    row = run_trial(cell, results_dir=tmp_path / "out", lifecycle=Lifecycle(resume=tmp_path))
    assert row["status"] == "failed" and "cannot resume" in row["error"] and "other-trial" in row["error"]
    assert "--restart" in row["error"] and row["train_steps"] is None
