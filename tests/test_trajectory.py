"""The quality trajectory inside a trial: the oscillation statistic and the collapse rule against
hand-computed curves, its evenly spaced points, and a trial's final row unchanged by measuring it."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from tiny_suite import TRIAL_EVAL, write_suite

from bench.families import build_hparams
from bench.metrics import EvalConfig
from bench.metrics.trajectory import FLOOR_OFFSET, Trajectory, collapsed, fid_oscillation
from bench.suite import load_suite
from bench.trial.run import run_trial

E = math.e
NEW = {"quality_curve", "fid_oscillation", "fid_floor", "collapsed"}
TIMING = {"train_s", "examples_per_s", "eval_s", "sample_s", "metrics_s", "nll_s", "samples_per_s"}
TIMING |= {"samples_per_cpu_s", "peak_mem_mb", "unique_mem_mb", "train_mem_growth_mb"}


def test_a_monotone_improving_curve_does_not_oscillate():
    assert fid_oscillation([9.0, 5.0, 2.0, 2.0, 0.3]) == pytest.approx(0.0, abs=1e-12)
    assert fid_oscillation([9.0, 5.0, 2.0], floor=0.7) == pytest.approx(0.0, abs=1e-12)


def test_zig_zag_and_worsening_curves_read_their_known_values():
    # log FID 2, 1, 2, 1: total variation 3, net decrease 1
    assert fid_oscillation([E**2, E, E**2, E]) == pytest.approx(2.0)
    # only worsening, log FID 0 -> 2: variation 2 and a net increase of 2
    assert fid_oscillation([1.0, E, E**2]) == pytest.approx(4.0)
    # the floor enters as log(FID + 2 floor): 0.5, 2.5, 0.5 with floor 0.25 -> log 1, log 3, log 1
    assert FLOOR_OFFSET == 2.0
    assert fid_oscillation([0.5, 2.5, 0.5], floor=0.25) == pytest.approx(2 * math.log(3.0))
    # non-finite points are left out; fewer than two points: undefined
    assert fid_oscillation([E**2, None, E, float("nan"), E**2]) == pytest.approx(2.0)
    assert math.isnan(fid_oscillation([3.0])) and math.isnan(fid_oscillation([]))


def test_the_collapse_rule():
    best, floor = 1.0, 0.5  # threshold: 2 × (1 + 0.5) = 3
    assert collapsed([4.0, best, 3.01], floor, diverged=False) is True
    assert collapsed([4.0, best, 2.99], floor, diverged=False) is False
    assert collapsed([4.0, best, None], floor, diverged=False) is True  # non-finite final FID
    assert collapsed([4.0, best, 1.0], floor, diverged=True) is True  # a non-finite loss
    assert collapsed([], floor, diverged=False) is None and collapsed([], floor, diverged=True) is True
    # noise at the floor does not collapse: a perfect sampler's 0.002 then 0.03 (floor 0.015)
    assert collapsed([0.002, 0.03], 0.015, diverged=False) is False


def test_points_are_evenly_spaced_over_steps_or_time():
    cfg = EvalConfig(trajectory_points=4)
    by_steps = Trajectory(None, cfg, cache_dir=None, seed=0, steps=10, seconds=None)
    due = []
    for step in range(1, 11):
        if by_steps.due(step, 0.0):
            due.append(step)
            by_steps.curve.append({"step": step, "fid": 1.0})
    assert due == [3, 5, 8, 10]  # the first step at or past k/4 of the budget
    by_time = Trajectory(None, cfg, cache_dir=None, seed=0, steps=None, seconds=2.0)
    assert not by_time.due(7, 0.49) and by_time.due(7, 0.5)


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    toy = {"name": "8gaussians", "options": {"n_train": 1000, "n_test": 300}}
    eval_cfg = {**TRIAL_EVAL, "trajectory_points": 4, "trajectory_samples": 200}
    path = write_suite(tmp_path_factory.mktemp("suite"), "traj", seeds=[3], datasets=[toy], steps=40, eval=eval_cfg)
    return load_suite(path).cells()[0]


@pytest.mark.parametrize("family", ["flow", "gan"])
def test_the_final_row_is_the_same_with_the_trajectory_on_and_off(cell, tmp_path, family):
    """The curve is measured on the weight average with the generators saved and restored: every
    column but the new ones and the timings is identical, bit for bit (CPU)."""
    if family == "gan":
        cell = dataclasses.replace(cell, family="gan", hparams=build_hparams("gan", {"hidden": 16, "batch_size": 32}))
    on = run_trial(cell, results_dir=tmp_path / "on")
    off = run_trial(dataclasses.replace(cell, eval=dataclasses.replace(cell.eval, trajectory_points=0)),
                    results_dir=tmp_path / "off")  # fmt: skip
    assert on["status"] == off["status"] == "ok"
    differ = [k for k in on if k not in NEW | TIMING | {"config_hash", "trial_id", "weights_path", "samples_npy"}
              and on[k] != off[k] and not (on[k] != on[k] and off[k] != off[k])]  # fmt: skip
    assert differ == []
    curve = json.loads(on["quality_curve"])
    assert [p["step"] for p in curve] == [10, 20, 30, 40] and all(p["fid"] > 0 for p in curve)
    fids = np.log(np.array([p["fid"] for p in curve]) + FLOOR_OFFSET * on["fid_floor"])
    assert on["fid_oscillation"] == pytest.approx(np.abs(np.diff(fids)).sum() - (fids[0] - fids[-1]))
    assert on["collapsed"] in (True, False) and on["fid_floor"] > 0
    assert off["quality_curve"] == "" and math.isnan(off["fid_oscillation"]) and off["collapsed"] is None


def test_a_tuning_row_takes_the_curve_from_the_last_report_and_a_divergence_collapses(cell):
    from bench.run.tuning_worker import tuning_row

    last = {"val_metric": 0.3, "step": 40, "train_s": 1.0, "fid_oscillation": 1.25, "collapsed": False}
    ok = tuning_row(cell, 0, {"lr": 1e-3}, "fid", last, status="ok")
    assert (ok["fid_oscillation"], ok["collapsed"]) == (1.25, False)
    assert tuning_row(cell, 1, {"lr": 1.0}, "fid", last, status="diverged")["collapsed"] is True
