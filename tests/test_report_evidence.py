"""Which measure decides each claim, and the statistics rules behind a verdict: 2-D sample quality
without FID, loss offsets that cannot move a verdict, baselines that are flagged and never decide,
Holm across the table, no-spread sides, log-scale throughput, intervals inside their range."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from report_synth import frame, quick_like, row, rows_from
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from bench.report import columns, stats, tables
from bench.report.claims import CLAIMS, evaluate_claims
from bench.report.data import normalize
from bench.report.evidence import CONTRADICTED, INCONCLUSIVE, SUPPORTED, compare_means

RNG = np.random.default_rng(7)


def noisy(mean: float, sd: float, n: int = 3) -> list[float]:
    return list(mean + sd * RNG.standard_normal(n))


def verdicts(df) -> dict[str, str]:
    return {r.claim.claim_id: r.verdict for r in evaluate_claims(normalize(df))}


def result(df, claim_id: str):
    return next(r for r in evaluate_claims(normalize(df)) if r.claim.claim_id == claim_id)


def test_2d_single_gaussian_loses_to_a_perfect_sampler_although_its_fid_is_lower():
    # FID on raw 2-D points: a single Gaussian with the data's moments scores 0.008, a perfect
    # sampler 0.022; mode coverage, precision/recall and the C2ST see the difference.
    perfect = dict(
        fid=noisy(0.022, 0.002),
        mode_coverage=[1.0, 1.0, 0.875],
        precision=noisy(0.95, 0.01),
        recall=noisy(0.95, 0.01),
        c2st_accuracy=noisy(0.51, 0.01),
        c2st_auc=noisy(0.51, 0.01),
    )
    gaussian = dict(
        fid=noisy(0.008, 0.001),
        mode_coverage=[0.0, 0.125, 0.0],
        precision=noisy(0.35, 0.02),
        recall=noisy(0.80, 0.02),
        c2st_accuracy=noisy(0.78, 0.01),
        c2st_auc=noisy(0.85, 0.01),
    )
    df = rows_from({"ddpm": perfect, "gan": gaussian, "vae": gaussian})
    r = result(df, "ddpm-complex-samples")
    assert r.verdict == SUPPORTED, r.reason
    assert {e.metric for e in r.evidence} == set(columns.POINT_QUALITY)  # FID does not decide on 2-D
    assert result(df, "gan-no-bias-vs-vae").verdict == INCONCLUSIVE  # same sampler on both sides
    fid_only = rows_from({"ddpm": {"fid": perfect["fid"]}, "gan": {"fid": gaussian["fid"]}})
    assert (
        result(fid_only.assign(precision=np.nan, recall=np.nan, c2st_auc=np.nan), "ddpm-complex-samples").verdict
        != SUPPORTED
    )


def test_adding_a_constant_to_a_family_loss_changes_no_verdict():
    df = quick_like()
    shifted = df.copy()
    gan = shifted["family"] == "gan"
    offset = 1000.0  # e.g. a −D·log Δ constant: std unchanged, |mean| grows, std/|mean| shrinks
    curves = [json.loads(c) for c in shifted.loc[gan, "loss_curve"]]
    shifted.loc[gan, "loss_curve"] = [
        json.dumps({k: [[s, None if v is None else v + offset] for s, v in pts] for k, pts in c.items()})
        for c in curves
    ]
    shifted.loc[gan, "loss_oscillation"] = shifted.loc[gan, "loss_oscillation"] * 2.0 / (2.0 + offset)
    assert verdicts(shifted) == verdicts(df)


def test_copy_baseline_is_flagged_and_never_decides():
    df = rows_from(
        {
            "ddpm": {"fid": [2.0, 2.2, 1.9], "memorization_p": [0.4, 0.005, 0.7]},  # one small p: median 0.4
            "gan": {"fid": [9.0, 10.0, 9.5], "memorization_p": [0.2, 0.9, 0.5]},
            "copy": {"fid": [0.1, 0.11, 0.09], "memorization_p": [1e-30, 1e-25, 0.02]},
        },
        "digits",
    )
    flagged = columns.flagged_copiers(normalize(df))
    assert flagged == {"copy": 1e-25}
    r = result(df, "ddpm-complex-samples")
    assert r.verdict == SUPPORTED, r.reason  # the copy baseline beats DDPM, but only as a reference
    refs = [e for e in r.evidence if e.reference]
    assert [e.b.name for e in refs] == ["copy"] and refs[0].verdict == CONTRADICTED
    cells = tables.summary_tables(tables.summarize(normalize(df)), normalize(df))[0].cells
    assert [m for m in cells["model"] if tables.COPY_MARK in m] == [f"copy {tables.COPY_MARK}"]


def test_holm_adjusted_p_values_match_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005, 0.2, float("nan"), 0.04]
    ours = stats.holm(p)
    finite = [x for x in p if not math.isnan(x)]
    ref = multipletests(finite, method="holm")[1]
    assert math.isnan(ours[5])
    assert np.delete(ours, 5) == pytest.approx(ref, rel=1e-12)


def test_verdicts_use_the_holm_adjusted_p_across_the_table():
    results = evaluate_claims(normalize(quick_like()), CLAIMS)
    deciding = [e for r in results for e in r.evidence if e.role == "primary" and math.isfinite(e.p_value)]
    secondary = [e for r in results for e in r.evidence if e.role == "secondary"]
    assert secondary and all(math.isnan(e.p_adjusted) or e.p_adjusted == e.p_value for e in secondary)
    expected = multipletests([e.p_value for e in deciding], method="holm")[1]
    assert [e.p_adjusted for e in deciding] == pytest.approx(list(expected), rel=1e-12)
    assert len(deciding) > 5
    # a comparison significant on its own but not after the correction is inconclusive
    borderline = [e for e in deciding if e.p_value < 0.05 <= e.p_adjusted]
    assert all(e.verdict == INCONCLUSIVE for e in borderline)


def test_sides_without_spread_are_inconclusive():
    e = compare_means("ctx", "fid", "a", [3.0, 3.0, 3.0], "b", [1.0, 1.0, 1.0], "higher")
    assert e.verdict == INCONCLUSIVE and "no spread" in e.reason
    one_side = compare_means("ctx", "fid", "a", [3.0, 3.0, 3.0], "b", [1.0, 1.2, 0.9], "higher")
    assert one_side.verdict == INCONCLUSIVE
    # 2 seeds per model: the FID seed-spread indicator gives both seeds the same deviation
    df = rows_from({"gan": {"fid": [4.0, 9.0]}, "vae": {"fid": [5.0, 5.5]}, "flow": {"fid": [6.0, 6.1]}})
    spread = [e for e in result(df, "gan-nash-equilibrium-hard").evidence if e.metric.startswith("fid seed")]
    assert spread and spread[0].verdict == INCONCLUSIVE and "no spread" in spread[0].reason


def test_detectable_difference_closed_form_and_in_the_reason():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([2.0, 3.0, 3.5, 5.0])
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    expected = (sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * math.sqrt(va + vb)
    assert stats.detectable_difference(a, b) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(stats.detectable_difference([1.0], b))
    # the reason states the rule's own 80 % point (simulated: bench.report.power), above the bare t-test's
    from bench.report import power
    from bench.report.evidence import holm_adjust

    (e,) = holm_adjust([compare_means("ctx", "fid", "a", a, "b", b, "lower")])
    simulated = power.detectable_effect(3, 4, alpha_step=0.05) * stats.pooled_sd(a, b)
    assert e.verdict == INCONCLUSIVE and f"detectable difference {simulated:.3g}" in e.reason
    assert simulated > expected


def test_throughput_is_compared_on_the_log_scale_and_prefers_cpu_time():
    # 1000x apart, but the fast side's raw spread is huge: raw Welch p ≈ 0.15, log Welch p < 0.01
    fast, slow = [2e5, 5e4, 3.5e5], [70.0, 75.0, 80.0]
    assert sps.ttest_ind(fast, slow, equal_var=False).pvalue > 0.1
    df = rows_from({"ddpm": {"samples_per_s": slow}, "gan": {"samples_per_s": fast}})
    r = result(df, "ddpm-sampling-expensive")
    assert r.verdict == SUPPORTED, r.reason
    [e] = r.evidence
    assert e.ratio == pytest.approx(math.exp(np.mean(np.log(slow)) - np.mean(np.log(fast))))
    assert "log" in e.test
    # CPU-time throughput decides when measured: here it reverses the wall-clock order
    cpu = df.assign(samples_per_cpu_s=[10.0, 11.0, 12.0, 1.0, 1.1, 0.9])
    [e] = result(cpu, "ddpm-sampling-expensive").evidence
    assert e.metric == "samples_per_cpu_s" and e.verdict == CONTRADICTED


def test_throughput_reads_the_rows_deciding_clock():
    """Wall clock and CPU time rank ddpm and gan oppositely: the comparison reads the column of the
    rows' speed_clock; rows without one keep CPU time when measured; mixed clocks are not compared."""
    fast, slow = [1.0e4, 1.1e4, 0.9e4], [10.0, 11.0, 9.0]

    def rows(ddpm_clock, gan_clock):
        return rows_from(
            {
                "ddpm": {"samples_per_s": slow, "samples_per_cpu_s": fast, "speed_clock": [ddpm_clock] * 3},
                "gan": {"samples_per_s": fast, "samples_per_cpu_s": slow, "speed_clock": [gan_clock] * 3},
            }
        )

    for clock, metric, verdict in (
        ("wall", "samples_per_s", SUPPORTED),
        ("cpu", "samples_per_cpu_s", CONTRADICTED),
        ("", "samples_per_cpu_s", CONTRADICTED),  # older rows: today's rule
    ):
        [e] = result(rows(clock, clock), "ddpm-sampling-expensive").evidence
        assert (e.metric, e.verdict) == (metric, verdict), clock
        assert columns.throughput_column(normalize(rows(clock, clock))) == metric
    mixed = result(rows("cpu", "wall"), "ddpm-sampling-expensive")
    assert columns.throughput_column(normalize(rows("cpu", "wall"))) == "samples_per_s"
    assert not mixed.evidence and "speed_clock differs (cpu vs wall)" in mixed.reason
    curve = normalize(rows("cpu", "cpu"))
    assert columns.curve_rate_key(curve) == "samples_per_cpu_s"
    assert columns.curve_rate_key(normalize(rows("", ""))) == "samples_per_s"  # old curves: wall clock


def test_intervals_stay_inside_their_metric_range():
    df = normalize(
        rows_from({"gan": {"precision": [0.99, 0.9, 1.0], "recall": [0.01, 0.1, 0.0], "fid": [0.01, 0.5, 0.02]}})
    )
    s = tables.summarize(df).iloc[0]
    raw = stats.t_interval([0.99, 0.9, 1.0])
    assert raw.high > 1 and s["precision_ci_high"] == 1.0 and s["precision_ci_low"] == pytest.approx(raw.low)
    assert s["recall_ci_low"] == 0.0 and s["fid_ci_low"] == 0.0
    speed = columns.interval([100.0, 1000.0, 10000.0], "samples_per_s")
    assert speed.mean == pytest.approx(1000.0) and speed.low > 0  # geometric mean, positive interval


def test_nll_gap_interval_of_one_seed_uses_its_per_example_stderr():
    df = normalize(frame([row("flow", nll_gap_nats=0.05, nll_gap_stderr_nats=0.01)]))
    s = tables.summarize(df).iloc[0]
    assert (s["nll_gap_nats_ci_low"], s["nll_gap_nats_ci_high"]) == pytest.approx(
        (0.05 - 1.959964 * 0.01, 0.05 + 1.959964 * 0.01), rel=1e-6
    )


NEWER_COLUMNS = ("c2st_accuracy", "copy_fraction", "nll_gap_nats", "nll_gap_stderr_nats", "mode_collapsed", "tuned")


def test_columns_a_harness_did_not_write_are_not_measured():
    old = rows_from({"gan": {"fid": [1.0, 2.0, 3.0]}, "vae": {"fid": [2.0, 3.0, 4.0]}}, "digits")
    old = old.drop(columns=[c for c in NEWER_COLUMNS if c in old.columns])  # rows of an older harness
    assert "c2st_accuracy" not in old.columns and "tuned" not in old.columns
    df = normalize(old)
    assert df["c2st_accuracy"].isna().all() and not df["tuned"].any()
    [table] = tables.summary_tables(tables.summarize(df), df)
    assert not {"C2ST acc. ↓", "copies", "NLL gap [nats]", "collapsed"} & set(table.cells.columns)
    collapsed = normalize(old.assign(mode_collapsed=[1.0, 0.0, 0.0, np.nan, np.nan, np.nan]))
    [table] = tables.summary_tables(tables.summarize(collapsed), collapsed)
    assert list(table.cells["collapsed"]) == ["1", "—"]
