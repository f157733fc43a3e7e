"""One trial in-process (no Ray): the row's columns, failures and divergences as rows, mixed
precision only for training, bit-identical CPU reruns."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from tiny_suite import TRIAL_EVAL, write_suite

from bench.families.base import Family
from bench.store import COLUMN_NAMES
from bench.suite import load_suite
from bench.trial.run import _accelerator, run_trial


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    toy = {"name": "8gaussians", "options": {"n_train": 1000, "n_test": 300}}
    path = write_suite(tmp_path_factory.mktemp("suite"), "unit", seeds=[3], datasets=[toy], steps=12, eval=TRIAL_EVAL)
    return load_suite(path).cells()[0]


def test_ok_row_has_every_column_and_relative_paths(cell, tmp_path):
    row = run_trial(cell, results_dir=tmp_path)
    assert list(row) == list(COLUMN_NAMES)
    assert row["status"] == "ok" and row["error"] == "" and row["warnings"] == ""
    assert (row["trial_id"], row["config_hash"]) == (cell.trial_id, cell.config_hash)
    assert row["seed"] == 3
    assert row["train_steps"] == 12 and row["diverged_step"] == -1 and math.isfinite(row["nll"])
    assert row["weights_evaluated"] == "ema" and row["mode_collapsed"] is None  # flow: no collapse detector
    assert row["n_fake"] == row["n_real"] == 100 and 0.4 < row["c2st_accuracy"] <= 1
    assert json.loads(row["hparams"])["hidden"] == 16 and json.loads(row["hparams"])["lr"] == 1e-3
    for key in ("weights_path", "samples_npy"):
        assert not row[key].startswith("/") and (tmp_path / row[key]).is_file()
    weights = torch.load(tmp_path / row["weights_path"], weights_only=True)
    modules = {name: m for name, m in weights.items() if name != "ema"}  # "ema": the weight average
    stored = sum(t.numel() for m in modules.values() for k, t in m.items() if t.is_floating_point())
    assert {k.split(".")[0] for k in weights["ema"]} == set(modules)
    assert stored >= row["params"] > 0


def test_cpu_rerun_is_bit_identical(cell, tmp_path):
    a = run_trial(cell, results_dir=tmp_path / "a")
    b = run_trial(cell, results_dir=tmp_path / "b")
    assert a["nll"] == b["nll"] and a["loss_curve"] == b["loss_curve"] and a["fid"] == b["fid"]
    other_seed = run_trial(dataclasses.replace(cell, seed=4), results_dir=tmp_path / "c")
    assert other_seed["nll"] != a["nll"]


def test_seconds_budget_stops_on_time(cell, tmp_path):
    row = run_trial(dataclasses.replace(cell, steps=None, seconds=0.5), results_dir=tmp_path)
    assert row["status"] == "ok" and 0.5 <= row["train_s"] < 5 and row["train_steps"] > 1


def test_exception_becomes_failed_row(cell, tmp_path):
    bad = dataclasses.replace(cell, dataset_options={"n_train": 1000, "n_test": 300, "nope": 1})
    row = run_trial(bad, results_dir=tmp_path)
    assert list(row) == list(COLUMN_NAMES)
    assert row["status"] == "failed" and "ConfigError" in row["error"] and "nope" in row["error"]
    assert "\n" not in row["error"] and math.isnan(row["nll"]) and row["train_steps"] is None


def test_divergence_stops_training_and_skips_evaluation(cell, tmp_path):
    hparams = dataclasses.replace(cell.hparams, lr=1e4, grad_clip=0.0)  # no clipping: the step explodes
    wild = dataclasses.replace(cell, hparams=hparams, steps=200)
    row = run_trial(wild, results_dir=tmp_path)
    assert row["status"] == "diverged" and "non-finite" in row["error"]
    assert 0 <= row["diverged_step"] < 200 and row["train_steps"] == row["diverged_step"] + 1
    assert math.isnan(row["nll"]) and math.isnan(row["fid"])


def test_a_gan_at_lr_1e3_is_diverged_not_ok(cell, tmp_path):
    """Exploding but finite losses (~1e34 before this rule) are a divergence under the one rule."""
    from bench.families import build_hparams

    gan = dataclasses.replace(cell, family="gan", hparams=build_hparams("gan", {"lr": 1e3, "hidden": 16}), steps=200)
    row = run_trial(gan, results_dir=tmp_path)
    assert row["status"] == "diverged" and ("beyond" in row["error"] or "non-finite" in row["error"]), row["error"]
    assert math.isnan(row["fid"]) and row["mode_collapsed"] in (True, False)


def test_fp16_on_cpu_falls_back_with_a_warning_on_the_row(cell, tmp_path):
    row = run_trial(dataclasses.replace(cell, mixed_precision="fp16"), results_dir=tmp_path)
    assert row["status"] == "ok" and row["mixed_precision"] == "no"
    assert "fp16" in row["warnings"] and "CPU" in row["warnings"]


class Probe(torch.nn.Module):
    """Records whether its forward ran under CPU autocast."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.autocast_seen: bool | None = None

    def forward(self, x):
        self.autocast_seen = torch.is_autocast_enabled("cpu")
        return self.lin(x)


class Holder:
    """The part of the Family protocol that Family.detach uses: modules(), optimizers(), _replace(), accelerator."""

    def __init__(self, net):
        self.net, self.accelerator = net, None

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {}

    def _replace(self, modules, optimizers):
        self.net = modules["net"]


def test_bf16_trains_under_autocast_and_evaluation_runs_without_it():
    warnings: list[str] = []
    accelerator, precision = _accelerator("bf16", warnings)
    assert precision == "bf16" and warnings == []
    probe = Probe()
    fam = Holder(accelerator.prepare(probe))
    fam.accelerator = accelerator
    fam.net(torch.randn(2, 4))
    assert probe.autocast_seen is True  # training: the prepared forward runs in bf16 autocast
    Family.detach(fam)
    fam.net(torch.randn(2, 4))
    assert probe.autocast_seen is False and fam.accelerator is None  # evaluation: fp32
    assert fam.net(torch.randn(2, 4)).dtype == torch.float32


def test_a_budget_that_allows_no_step_is_a_no_steps_row_not_an_ok_one(cell, tmp_path):
    """seconds = 1e-9 ends before the first optimizer step: the row says no-steps and why, and
    nothing is measured (an untrained model's numbers would otherwise pass as an ok trial)."""
    from bench.store import TRIALS
    from bench.store.schema import NO_STEPS

    row = run_trial(dataclasses.replace(cell, steps=None, seconds=1e-9), results_dir=tmp_path)
    assert row["status"] == NO_STEPS and row["train_steps"] == 0 and "before the first optimizer step" in row["error"]
    assert math.isnan(row["nll"]) and math.isnan(row["fid"]) and NO_STEPS in TRIALS.finished
