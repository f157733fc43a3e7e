"""Verdicts on synthetic result tables built so each claim is supported, contradicted,
inconclusive and not measured: the verdict must follow the numbers, not the claim."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from report_synth import NAN, frame, row, rows_from, steps_curve

from bench.report.claims import CLAIMS, evaluate_claims
from bench.report.data import normalize
from bench.report.evidence import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_MEASURED,
    SUPPORTED,
    combine,
    compare_means,
)

HIGH, LOW = [1000.0, 1050.0, 980.0], [100.0, 110.0, 95.0]  # clearly separated over 3 seeds
MID_A, MID_B = [100.0, 200.0, 150.0], [120.0, 180.0, 160.0]  # overlapping


def judge(claim_id: str, df: pd.DataFrame):
    claim = next(c for c in CLAIMS if c.claim_id == claim_id)
    [result] = evaluate_claims(normalize(df), [claim])
    return result


def ddpm(**cols):
    return {"steps_curve": [steps_curve(s) for s in range(3)], **cols}


CASES = {
    # claim id: {verdict: rows}
    "gan-faster-than-flow": {
        SUPPORTED: rows_from({"gan": {"samples_per_s": HIGH}, "flow": {"samples_per_s": LOW}}),
        CONTRADICTED: rows_from({"gan": {"samples_per_s": LOW}, "flow": {"samples_per_s": HIGH}}),
        INCONCLUSIVE: rows_from({"gan": {"samples_per_s": MID_A}, "flow": {"samples_per_s": MID_B}}),
        NOT_MEASURED: rows_from({"gan": {"samples_per_s": HIGH}}),
    },
    # on images the sample-quality claims are decided by FID (2-D: see test_2d_quality_...)
    "gan-no-bias-vs-vae": {
        SUPPORTED: rows_from({"gan": {"fid": LOW}, "vae": {"fid": HIGH}}, "digits"),
        CONTRADICTED: rows_from({"gan": {"fid": HIGH}, "vae": {"fid": LOW}}, "digits"),
        INCONCLUSIVE: rows_from({"gan": {"fid": HIGH[:1]}, "vae": {"fid": LOW}}, "digits"),  # one seed
        NOT_MEASURED: rows_from({"gan": {"fid": [NAN] * 3}, "vae": {"fid": LOW}}, "digits"),
    },
    # decided by the oscillation of each trial's quality trajectory, GAN vs the other families pooled
    "gan-nash-equilibrium-hard": {
        SUPPORTED: rows_from(
            {
                "gan": {"fid_oscillation": [4.0, 4.2, 3.9]},
                "vae": {"fid_oscillation": [0.5, 0.6, 0.55]},
                "flow": {"fid_oscillation": [0.45, 0.62, 0.5]},
            }
        ),
        CONTRADICTED: rows_from(
            {"gan": {"fid_oscillation": [0.5, 0.6, 0.55]}, "vae": {"fid_oscillation": [4.0, 4.2, 3.9]}}
        ),
        INCONCLUSIVE: rows_from({"gan": {"fid_oscillation": MID_A}, "vae": {"fid_oscillation": MID_B}}),
        NOT_MEASURED: rows_from({"gan": {"fid_oscillation": [4.0, 4.2, 3.9]}}),  # no other family
    },
    "vae-missing-data": {
        SUPPORTED: rows_from({"vae": {"impute_mse": [0.3, 0.31, 0.29], "impute_mse_baseline": [1.0, 1.02, 0.98]}}),
        CONTRADICTED: rows_from({"vae": {"impute_mse": [1.5, 1.6, 1.55], "impute_mse_baseline": [1.0, 1.02, 0.98]}}),
        INCONCLUSIVE: rows_from({"vae": {"impute_mse": [0.9, 1.1, 1.0], "impute_mse_baseline": [1.0, 1.0, 1.0]}}),
        NOT_MEASURED: rows_from({"vae": {"impute_mse": [NAN] * 3}, "gan": {"fid": LOW}}),
    },
    "vae-samples-blurred": {
        SUPPORTED: rows_from(
            {
                "vae": {"blur_index": [-0.9, -0.88, -0.93]},
                "gan": {"blur_index": [0.02, 0.05, -0.01]},
            },
            "digits",
        ),
        CONTRADICTED: rows_from(
            {
                "vae": {"blur_index": [0.02, 0.05, -0.01]},
                "gan": {"blur_index": [-0.9, -0.88, -0.93]},
            },
            "digits",
        ),
        INCONCLUSIVE: rows_from(
            {
                "vae": {"blur_index": [-0.5, 0.1, -0.2]},
                "gan": {"blur_index": [-0.3, -0.1, 0.0]},
            },
            "digits",
        ),
        # 2-D data has no blur index: the claim cannot be measured there
        NOT_MEASURED: rows_from({"vae": {"fid": HIGH}, "gan": {"fid": LOW}}, "8gaussians"),
    },
    "ddpm-complex-samples": {
        SUPPORTED: rows_from({"ddpm": {"fid": LOW}, "gan": {"fid": HIGH}, "vae": {"fid": HIGH}}, "digits"),
        CONTRADICTED: rows_from({"ddpm": {"fid": HIGH}, "gan": {"fid": LOW}}, "digits"),
        INCONCLUSIVE: rows_from({"ddpm": {"fid": MID_A}, "flow": {"fid": MID_B}}, "digits"),
        NOT_MEASURED: rows_from({"ddpm": {"fid": LOW}}, "digits"),
    },
    "ddpm-sampling-expensive": {
        SUPPORTED: rows_from({"ddpm": ddpm(samples_per_s=LOW), "flow": {"samples_per_s": HIGH}}),
        # DDPM fastest and no steps curve recorded: nothing supports the claim
        CONTRADICTED: rows_from({"ddpm": {"samples_per_s": HIGH}, "gan": {"samples_per_s": LOW}}),
        INCONCLUSIVE: rows_from({"ddpm": {"samples_per_s": MID_A}, "vae": {"samples_per_s": MID_B}}),
        NOT_MEASURED: rows_from({"gan": {"samples_per_s": HIGH}, "vae": {"samples_per_s": LOW}}),
    },
    "flow-exact-likelihood": {
        SUPPORTED: rows_from({"flow": {"density_mass": [1.0, 0.995, 1.004]}}),
        CONTRADICTED: rows_from({"flow": {"density_mass": [1.0, 1.2, 1.001]}}),  # > all mass
        # below 1 on the grid: the missing mass may lie beyond the grid
        INCONCLUSIVE: rows_from({"flow": {"density_mass": [1.0, 0.9, 0.7]}}),
        NOT_MEASURED: rows_from({"flow": {"nll": [1.1, 1.2, 1.15]}}, "digits"),  # no 2-D grid
    },
}


@pytest.mark.parametrize(
    ("claim_id", "expected"),
    [(cid, v) for cid, cases in CASES.items() for v in cases],
)
def test_verdict_follows_the_numbers(claim_id, expected):
    result = judge(claim_id, CASES[claim_id][expected])
    assert result.verdict == expected, result.reason
    assert result.reason  # every verdict says why
    if expected == NOT_MEASURED:
        assert not result.evidence


def test_every_registered_claim_has_all_four_cases():
    assert [c.claim_id for c in CLAIMS] == list(CASES)
    assert all(set(cases) == {SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED} for cases in CASES.values())


def test_inconclusive_reasons_name_the_rule():
    few = judge("gan-no-bias-vs-vae", CASES["gan-no-bias-vs-vae"][INCONCLUSIVE])
    assert "too few seeds" in few.reason
    overlap = judge("gan-faster-than-flow", CASES["gan-faster-than-flow"][INCONCLUSIVE])
    assert "p=" in overlap.reason and "significant" in overlap.reason


def test_overlapping_intervals_are_inconclusive_even_when_p_is_small():
    # 5 vs 5 seeds, means 2 apart, s = 1.19: Welch p = 0.0285 but the t-intervals overlap
    base = np.linspace(-1.5, 1.5, 5)
    ev = compare_means("ctx", "m", "a", base + 2.0, "b", base, "higher")
    assert ev.test == "Welch t" and ev.p_value == pytest.approx(0.0285, abs=1e-4)
    assert ev.a.stats.low < ev.b.stats.high
    assert ev.verdict == INCONCLUSIVE and "overlap" in ev.reason


def test_protocol_mismatch_is_not_compared():
    df = rows_from({"gan": {"samples_per_s": HIGH}, "flow": {"samples_per_s": LOW, "sample_batch": [250] * 3}})
    result = judge("gan-faster-than-flow", df)
    assert result.verdict == NOT_MEASURED and "sample_batch differs" in result.reason
    fid = rows_from({"gan": {"fid": LOW}, "vae": {"fid": HIGH, "n_fake": [500] * 3}})
    assert "n_fake differs" in judge("gan-no-bias-vs-vae", fid).reason


def test_models_are_compared_only_within_a_dataset_and_budget():
    df = pd.concat(
        [
            rows_from({"gan": {"samples_per_s": HIGH}}, budget="short"),
            rows_from({"flow": {"samples_per_s": LOW}}, budget="long"),
        ]
    )
    assert judge("gan-faster-than-flow", df).verdict == NOT_MEASURED


def test_divergence_rate_is_secondary_and_the_oscillation_decides():
    """Half the GAN trials diverged: the divergence and collapse rates (Fisher, 3/6 vs 0/6: two-sided
    p = 40/220) are secondary; the primary is fid_oscillation, here lower for the GAN: contradicted."""
    rows = [row("gan", seed=s, status="diverged", fid=NAN, collapsed=1.0) for s in range(3)]
    rows += [row("gan", seed=s + 3, fid_oscillation=v, collapsed=0.0) for s, v in enumerate([0.5, 0.6, 0.55])]
    rows += [row(f, seed=s, fid_oscillation=v, collapsed=0.0) for f in ("vae", "flow") for s, v in enumerate(HIGH[:3])]
    result = judge("gan-nash-equilibrium-hard", frame(rows))
    roles = {e.metric: e.role for e in result.evidence}
    assert roles == {
        "fid_oscillation": "primary",
        "divergence rate": "secondary",
        "collapse rate": "secondary",
        "fid seed spread (abs. log-FID deviation)": "secondary",
    }, roles
    [div] = [e for e in result.evidence if e.metric == "divergence rate"]
    [collapse] = [e for e in result.evidence if e.metric == "collapse rate"]
    assert div.p_value == pytest.approx(40 / 220) and div.a.stats.mean == 0.5 and collapse.a.stats.mean == 0.5
    assert result.verdict == CONTRADICTED, result.reason


def test_tuning_spread_and_collapse_are_secondary_comparisons():
    """Tuning rows give the GAN's spread of log val-FID across configurations and its collapse share
    against the others' (Lucic et al.), reported, never deciding: |log v − mean| by hand."""
    from bench.report.instability import TUNING_COLLAPSE, TUNING_SPREAD, deviations

    def config(family, i, v, collapsed):
        return dict(label=family, family=family, dataset="8gaussians", budget="b", seed=0, sample=i,
                    val_metric=v, metric="fid", status="ok", collapsed=collapsed)  # fmt: skip

    gan_fids, vae_fids = [0.1, 1.0, 10.0, 0.5], [0.2, 0.21, 0.19, 0.2]
    tuning = pd.DataFrame(
        [config("gan", i, v, i < 2) for i, v in enumerate(gan_fids)]
        + [config("vae", i, v, False) for i, v in enumerate(vae_fids)]
    )
    logs = np.log(gan_fids)
    assert deviations(tuning[tuning["family"] == "gan"]) == pytest.approx(np.abs(logs - logs.mean()))
    claim = next(c for c in CLAIMS if c.claim_id == "gan-nash-equilibrium-hard")
    df = CASES["gan-nash-equilibrium-hard"][SUPPORTED]
    [result] = evaluate_claims(normalize(df), [claim], tuning=tuning)
    found = {e.metric: e for e in result.evidence}
    assert found[TUNING_SPREAD].role == found[TUNING_COLLAPSE].role == "secondary"
    assert found[TUNING_COLLAPSE].a.stats.mean == 0.5 and found[TUNING_COLLAPSE].b.stats.mean == 0.0
    assert result.verdict == SUPPORTED  # the tuning comparisons leave the verdict to the primaries


def test_failed_trials_give_no_values():
    rows = [row("gan", seed=s, samples_per_s=v) for s, v in enumerate(HIGH)]
    rows += [row("flow", seed=s, status="failed", samples_per_s=v) for s, v in enumerate(LOW)]
    assert judge("gan-faster-than-flow", frame(rows)).verdict == NOT_MEASURED


def test_mixed_evidence_is_inconclusive_and_only_primaries_decide():
    # VAE beats mean imputation (the primary), and DDPM imputes clearly better than the VAE: that
    # comparison is secondary, reported with its own verdict, and does not move the claim's
    df = rows_from(
        {
            "vae": {"impute_mse": [0.3, 0.31, 0.29], "impute_mse_baseline": [1.0] * 3},
            "ddpm": {"impute_mse": [0.05, 0.051, 0.049]},
        }
    )
    result = judge("vae-missing-data", df)
    assert result.verdict == SUPPORTED, result.reason
    [better] = [e for e in result.evidence if e.b.name == "ddpm"]
    assert better.role == "secondary" and better.verdict == CONTRADICTED
    # DDPM faster than the GAN, yet its cost grows with the number of steps
    df = rows_from({"ddpm": ddpm(samples_per_s=HIGH), "gan": {"samples_per_s": LOW}})
    assert judge("ddpm-sampling-expensive", df).verdict == INCONCLUSIVE


def test_wrong_likelihood_kind_counts_against_the_flow_claim():
    # the flow's own likelihood is not exact: contradicted
    df = rows_from({"flow": {"nll_kind": ["elbo"] * 3}}, "digits")
    result = judge("flow-exact-likelihood", df)
    assert result.verdict == CONTRADICTED and "flow reports 'elbo'" in result.reason
    # normalised flow density, but the VAE claims an exact likelihood too ("unlike VAE" fails)
    df = rows_from({"flow": {"density_mass": [1.0, 0.999, 1.001]}, "vae": {"nll_kind": ["exact"] * 3}})
    result = judge("flow-exact-likelihood", df)
    assert result.verdict == INCONCLUSIVE and "vae reports 'exact'" in result.reason


def test_combine_rules():
    sup = compare_means("c", "m", "a", HIGH, "b", LOW, "higher")
    con = compare_means("c", "m", "a", HIGH, "b", LOW, "lower")
    inc = compare_means("c", "m", "a", MID_A, "b", MID_B, "higher")
    assert (sup.verdict, con.verdict, inc.verdict) == (SUPPORTED, CONTRADICTED, INCONCLUSIVE)
    assert combine([sup, sup], [])[0] == SUPPORTED
    assert combine([sup, inc], [])[0] == INCONCLUSIVE  # every primary must support
    assert combine([sup, replace(con, role="secondary")], [])[0] == SUPPORTED  # secondaries never decide
    assert combine([replace(sup, role="secondary")], [])[0] == NOT_MEASURED
    assert combine([con, inc], [])[0] == CONTRADICTED
    assert combine([sup, con], [])[0] == INCONCLUSIVE
    assert combine([inc], [])[0] == INCONCLUSIVE
    assert combine([], ["why"]) == (NOT_MEASURED, "why")


def test_a_claims_verdict_does_not_move_when_another_claim_gains_comparisons():
    """Holm runs over the primaries only: secondary comparisons added to an unrelated claim (here a
    second, claim-less copy of the imputation claim's evidence) change nothing of the speed claim."""
    from bench.report.claims import Claim, Composite

    df = pd.concat(
        [
            rows_from({"gan": {"samples_per_s": HIGH}, "flow": {"samples_per_s": LOW}}),
            rows_from({"vae": {"impute_mse": [0.3, 0.31, 0.29], "impute_mse_baseline": [1.0] * 3}}, "digits"),
        ]
    )
    speed = next(c for c in CLAIMS if c.claim_id == "gan-faster-than-flow")
    impute = next(c for c in CLAIMS if c.claim_id == "vae-missing-data")

    def many(rows):
        found, notes = impute.test.evaluate(rows)
        extra = [replace(e, metric=f"{e.metric} #{i}") for i in range(20) for e in found]  # all secondary
        return found + extra, notes

    noisy = Claim("noisy", "vae", "x", "y", Composite("vae", "impute_mse", many), impute.primary)
    before = evaluate_claims(normalize(df), [speed, impute])
    after = evaluate_claims(normalize(df), [speed, noisy])
    assert before[0].verdict == after[0].verdict == SUPPORTED
    assert [e.p_adjusted for e in before[0].evidence] == [e.p_adjusted for e in after[0].evidence]
    assert sum(e.role == "secondary" for e in after[1].evidence) == 20 * len(before[1].evidence)


def test_instability_decides_on_2d_data_only_where_its_control_runs():
    """The instability controls run on the suite's 2-D data: on images fid_oscillation is reported
    as a secondary comparison and cannot decide the claim either way."""
    values = {"gan": {"fid_oscillation": [0.01, 0.02, 0.015]}, "vae": {"fid_oscillation": [4.0, 4.2, 3.9]}}
    result = judge("gan-nash-equilibrium-hard", rows_from(values, "digits"))
    osc = [e for e in result.evidence if e.metric == "fid_oscillation"]
    assert osc and all(e.role == "secondary" for e in osc) and osc[0].verdict == CONTRADICTED
    assert result.verdict == NOT_MEASURED
    assert judge("gan-nash-equilibrium-hard", rows_from(values)).verdict == CONTRADICTED  # 8gaussians decides


def test_a_measure_whose_control_missed_cannot_decide(tmp_path):
    """controls.csv says fid_oscillation missed its control on 8gaussians: the GAN's large
    oscillation there is shown as secondary and the claim is no longer decided by it."""
    from bench.report import controls_section

    values = {"gan": {"fid_oscillation": [4.0, 4.2, 3.9]}, "vae": {"fid_oscillation": [0.5, 0.6, 0.55]}}
    df = normalize(rows_from(values))
    claim = [c for c in CLAIMS if c.claim_id == "gan-nash-equilibrium-hard"]
    assert evaluate_claims(df, claim)[0].verdict == SUPPORTED
    pd.DataFrame(
        {
            "measure": ["fid_oscillation", "fid_oscillation", "c2st_auc"],
            "dataset": ["8gaussians", "digits", "8gaussians"],
            "detected": [False, True, False],
        }
    ).to_csv(tmp_path / "controls.csv", index=False)
    blind = controls_section.blind_measures(tmp_path)
    assert blind == {("fid_oscillation", "8gaussians"), ("c2st_auc", "8gaussians")}
    (result,) = evaluate_claims(df, claim, blind=blind)
    osc = [e for e in result.evidence if e.metric == "fid_oscillation"]
    assert result.verdict == NOT_MEASURED and all(e.role == "secondary" for e in osc)
    assert "control was not detected" in osc[0].reason
