"""Controls: each measure, on inputs with a known answer made from the suite's own data, reads the
answer; `genbench controls` writes controls.csv for the quick suite with every control detected,
and the report says what each measure can see."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from report_synth import quick_like, write_folder

from bench import cli
from bench.controls import inputs
from bench.controls.instability import FAST_GAN, PERFECT, instability_controls
from bench.controls.run import COLUMNS, _record, imputation_controls, likelihood_controls
from bench.datasets import make_dataset
from bench.metrics.quality import blur_index
from bench.metrics.twosample import c2st_test, memorization_test
from bench.report import write_report
from bench.report.columns import MEMORIZATION_ALPHA
from bench.suite import load_suite

N = 1000  # the quick suite's n on 8gaussians
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gaussians():
    return make_dataset("8gaussians", {"n_train": 20000, "n_test": 2000})  # as suites/quick.toml


@pytest.fixture(scope="module")
def digits():
    return make_dataset("digits")


def draw(control, dataset, n, seed=0):
    return control(dataset, n, torch.Generator().manual_seed(seed))


def test_dropped_mode_is_detected_per_trial_and_true_samples_are_not(gaussians):
    """A perfect sampler and the data are exchangeable (p uniform); one of 8 modes missing moves
    1/8 of the mass, which the C2ST's AUC against its permutation null sees at n = 1000."""
    real = gaussians.test()[:N]
    dropped = c2st_test(real, draw(inputs.dropped_mode, gaussians, N), seed=0)
    perfect = c2st_test(real, draw(inputs.true_points, gaussians, N, seed=1), seed=0)
    assert dropped.p_value < 0.05 and dropped.auc > 0.53, dropped
    assert perfect.p_value >= 0.05 and abs(perfect.auc - 0.5) < 0.04, perfect
    assert len(draw(inputs.dropped_mode, gaussians, N)) == N


def test_c2st_rejects_a_perfect_sampler_at_about_its_level(gaussians):
    """Calibration: over 20 fresh perfect samplers the test rejects at 0.05 at most a few times
    (the binomial null of the accuracy, which cross-fitting breaks, rejected 25 %)."""
    real = gaussians.test()[:N]
    p = [c2st_test(real, draw(inputs.true_points, gaussians, N, seed=s), seed=s).p_value for s in range(20)]
    assert sum(v < 0.05 for v in p) <= 3, p


def test_blur_index_tells_blur_from_noise(digits):
    """Blur removes high frequencies (index < 0), noise adds them (> 0); real images read ≈ 0, while
    the old sharpness ratio read noise as 'sharper', i.e. better."""
    real = digits.test()
    blurred, noisy = draw(inputs.blurred, digits, len(real)), draw(inputs.noisy, digits, len(real))
    assert blur_index(blurred, real) < -1.0
    assert 0.1 < blur_index(noisy, real)
    assert abs(blur_index(draw(inputs.train_images, digits, len(real)), real)) < 0.1
    assert blur_index(real, real) == 0.0


@pytest.mark.parametrize("kind", ["points", "image"])
def test_copies_and_noisy_copies_are_flagged_and_unseen_data_is_not(kind, gaussians, digits):
    """Copies sit closer to the training set than held-out data do (C_T << 0); fresh samples do not."""
    if kind == "points":
        ds, n, fresh, copies, noisy = gaussians, N, inputs.true_points, inputs.point_copies, inputs.point_noisy_copies
    else:
        ds, n, fresh, copies, noisy = (
            digits,
            len(digits.test()),
            inputs.test_images,
            inputs.image_copies,
            inputs.image_noisy_copies,
        )
    test, train = ds.test().flatten(1), ds.train().flatten(1)
    for make in (copies, noisy):
        assert memorization_test(train, test, draw(make, ds, n).flatten(1)).p_value < MEMORIZATION_ALPHA, make.__name__
    assert memorization_test(train, test, draw(fresh, ds, n, seed=2).flatten(1)).p_value >= MEMORIZATION_ALPHA


def test_noisy_point_copies_stay_closer_to_their_original_than_unseen_points(gaussians):
    """The noise is half the training set's nearest-neighbour spacing: a copy, by distance."""
    spacing = inputs.nn_spacing(gaussians.train())
    assert 0.003 < spacing < 0.03  # 20 000 points of 8gaussians
    assert inputs.POINT_COPY_SPACING * spacing < spacing


def test_likelihood_and_imputation_controls_read_their_known_answers(gaussians):
    """Every family with a likelihood on points: 'exact' families pass the exactness check (spread 0,
    mass 1), estimates (IWAE-K) and bounds (VLB) fail it; the imputation scores treat a sampler's
    M-draw mean like the conditional mean and rank the true conditional first."""
    from bench.metrics import EvalConfig

    rows = likelihood_controls(gaussians, EvalConfig(iwae_k=16)) + imputation_controls(gaussians, seed=0)
    assert rows and all(r["detected"] for r in rows), [r for r in rows if not r["detected"]]
    kinds = {r["control"].split(" ")[1] for r in rows if r["measure"] == "nll exactness"}
    assert {"(exact);", "(iwae);"} <= kinds


def test_instability_reads_a_perfect_sampler_at_the_floor_and_a_gan_at_10x_lr_above_it(gaussians, tmp_path):
    """The acceptance line, at the quick suite's [eval] and seeds: a perfect sampler's fid_oscillation
    is not above a second perfect sampler's and it never collapses; a GAN at 10x its learning rate
    oscillates more (Welch t over the 3 seeds, intervals disjoint); a curve ending with every sample
    at one mode collapses. At 3 seeds the GAN's reading is marginal: seeds 0-2 detect it, other
    triples of seeds need not (docs/design.md)."""
    suite = load_suite(ROOT / "suites" / "quick.toml")
    rows = instability_controls(gaussians, suite.eval, suite.seeds, tmp_path, _record)
    assert [r["measure"] for r in rows] == ["fid_oscillation", "fid_oscillation", "collapsed", "collapsed"]
    assert all(r["detected"] for r in rows), [r for r in rows if not r["detected"]]
    value = {r["control"]: r["value"] for r in rows if r["measure"] == "fid_oscillation"}
    assert value[FAST_GAN] > value[PERFECT] > 0


@pytest.mark.slow
def test_quick_suite_controls_are_all_detected_and_the_report_shows_them(tmp_path):
    """`genbench controls` on suites/quick.toml: controls.csv with its columns, every control read as
    expected at the suite's n and seeds (exit 0); a report of that folder has the section."""
    out = tmp_path / "quick"
    assert cli.main(["-q", "controls", "--suite", str(ROOT / "suites" / "quick.toml"), "--out", str(out)]) == 0
    df = pd.read_csv(out / "controls.csv")
    assert list(df.columns) == list(COLUMNS)
    assert df["detected"].all(), df[~df["detected"]]
    suite = load_suite(ROOT / "suites" / "quick.toml")
    assert set(df["dataset"]) == {d.name for d in suite.datasets} and set(df["seeds"]) <= {len(suite.seeds), 1}
    assert {"c2st_p_value", "memorization_p", "blur_index", "nll exactness", "impute_energy"} <= set(df["measure"])
    write_folder(out, quick_like())
    text = write_report(out).read_text()
    assert "## What each measure can see" in text and f"{len(df)} of {len(df)} controls read as expected" in text


def test_the_report_without_controls_says_how_to_get_them(tmp_path):
    folder = write_folder(tmp_path / "synth", quick_like())
    text = write_report(folder).read_text()
    assert "## What each measure can see" in text and "genbench controls --suite" in text


def test_a_missed_control_is_named_in_the_report(tmp_path):
    folder = write_folder(tmp_path / "synth", quick_like())
    rows = [
        dict(measure="fid", control="noise", expected="higher", value=3.9, p_value=0.013, detected=False),
        dict(measure="fid", control="blur", expected="higher", value=27.0, p_value=3e-4, detected=True),
    ]
    pd.DataFrame([{**r, "dataset": "digits", "n": 360, "seeds": 3} for r in rows]).to_csv(folder / "controls.csv")
    text = write_report(folder).read_text()
    assert "1 of 2 controls read as expected" in text and "**Not detected**: fid on noise (digits)" in text
