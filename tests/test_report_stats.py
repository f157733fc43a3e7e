"""Report statistics against scipy's reference implementations and closed forms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from bench.report import stats
from bench.report.claims import cost_exponent
from bench.report.tables import fmt_interval

SAMPLE = [2.1, 3.4, 1.9, 5.0, 4.2]  # mean 3.32, s = 1.3198...


def test_t_interval_matches_scipy():
    iv = stats.t_interval(SAMPLE)
    x = np.array(SAMPLE)
    low, high = sps.t.interval(0.95, df=len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert iv.n == 5
    assert iv.mean == pytest.approx(3.32, abs=1e-12)
    assert (iv.low, iv.high) == pytest.approx((low, high), rel=1e-12)
    # closed form: t_{0.975, 4} = 2.7764451... times s/sqrt(n)
    assert iv.half == pytest.approx(2.7764451052 * x.std(ddof=1) / math.sqrt(5), rel=1e-9)


def test_t_interval_other_level_and_edge_cases():
    iv = stats.t_interval(SAMPLE, confidence=0.9)
    x = np.array(SAMPLE)
    assert (iv.low, iv.high) == pytest.approx(sps.t.interval(0.9, df=4, loc=x.mean(), scale=sps.sem(x)), rel=1e-12)
    one = stats.t_interval([7.0, float("nan")])  # NaN is "not applicable", dropped
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.low) and math.isnan(one.high)
    none = stats.t_interval([float("nan")])
    assert none.n == 0 and math.isnan(none.mean)
    const = stats.t_interval([0.7, 0.7, 0.7])
    assert const.low == const.high == const.mean  # zero spread, not rounding noise
    assert fmt_interval(none) == "—" and fmt_interval(one) == "7 (n=1)"


def test_welch_matches_closed_form():
    a, b = np.array([1.0, 2.0, 4.0, 3.5]), np.array([5.0, 7.5, 6.0])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    res = stats.welch_test(a, b)
    assert res.statistic == pytest.approx(t, rel=1e-12)
    assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-10)
    assert math.isnan(stats.welch_test([1.0], b).p_value)  # one seed: no test
    assert stats.welch_test([2.0, 2.0], [3.0, 3.0]).p_value == 0.0  # constant and different


def test_permutation_test_exact_and_deterministic():
    # 3 vs 3 fully separated: 2 of the 20 relabelings are as extreme -> p = 0.1 exactly.
    res = stats.permutation_test([1.0, 2.0, 3.0], [10.0, 11.0, 12.0])
    assert res.p_value == pytest.approx(0.1, abs=1e-12)
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 40), rng.normal(0.3, 1, 40)  # Monte Carlo branch, fixed seed
    assert stats.permutation_test(a, b).p_value == stats.permutation_test(a, b).p_value
    # sign flips of 3 positive differences: 1 of 8 sign patterns each side -> p = 0.25
    assert stats.sign_flip_test([1.0, 2.0, 3.0]).p_value == pytest.approx(0.25)


def test_fisher_and_rate_interval_closed_forms():
    # 3/3 diverged vs 0/9: the observed table is the only one as extreme -> 1 / C(12, 3)
    assert stats.fisher_test(3, 3, 0, 9).p_value == pytest.approx(1 / 220, rel=1e-9)
    iv = stats.proportion_interval(0, 3)
    assert iv.mean == 0 and iv.low == 0
    assert iv.high == pytest.approx(1 - 0.025 ** (1 / 3), rel=1e-6)  # Clopper-Pearson, k = 0
    assert fmt_interval(iv).startswith("0 [0, 0.7076]")  # asymmetric: shown as [low, high]


def test_effect_sizes_and_paired_test():
    assert stats.cohen_d([1.0, 2.0, 3.0], [3.0, 4.0, 5.0]) == pytest.approx(-2.0)
    assert stats.cohen_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)
    a, b = [1.0, 2.0, 3.5], [1.5, 2.2, 4.4]
    assert stats.paired_t_test(a, b).p_value == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)
    assert math.isnan(stats.ratio(1.0, 0.0)) and stats.ratio(6.0, 3.0) == 2.0


def test_cost_exponent_of_linear_and_flat_curves():
    linear = [{"steps": s, "samples_per_s": 1.0 / (s * 2e-3)} for s in (10, 50, 200, 1000)]
    assert cost_exponent(json.dumps(linear)) == pytest.approx(1.0, abs=1e-12)
    flat = [{"steps": s, "samples_per_s": 5.0} for s in (10, 100)]
    assert cost_exponent(json.dumps(flat)) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(cost_exponent(json.dumps(linear[:1])))  # one step count: no slope
    assert math.isnan(cost_exponent(""))
    # read by the deciding clock's entry: flat on the wall clock, linear in CPU time
    both = [{"steps": s, "samples_per_s": 5.0, "samples_per_cpu_s": 1.0 / (s * 2e-3)} for s in (10, 50, 200)]
    assert cost_exponent(json.dumps(both), "samples_per_cpu_s") == pytest.approx(1.0, abs=1e-12)
    assert cost_exponent(json.dumps(both)) == pytest.approx(0.0, abs=1e-12)
