"""The decision rule's power, simulated as applied (bench.report.power), checked against reference
loops written here with scipy's tests, and end to end through bench.report.evidence."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as sps

from bench.report import power, stats
from bench.report.evidence import HIGHER, SUPPORTED, compare_means, holm_adjust

REF_SIMS = 2000  # standard error of a power near 0.8: 0.009


def reference_power(effect, n_a, n_b, alpha, *, seed=1, interval_rule=True):
    """The rule by hand: scipy's Welch test, the two t-intervals, the direction; independent draws."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(REF_SIMS):
        x, y = rng.standard_normal(n_a) + effect, rng.standard_normal(n_b)
        p = sps.ttest_ind(x, y, equal_var=False).pvalue
        ha = sps.t.ppf(0.975, n_a - 1) * x.std(ddof=1) / math.sqrt(n_a)
        hb = sps.t.ppf(0.975, n_b - 1) * y.std(ddof=1) / math.sqrt(n_b)
        disjoint = x.mean() - ha > y.mean() + hb
        hits += p < alpha and x.mean() > y.mean() and (disjoint or not interval_rule)
    return hits / REF_SIMS


@pytest.mark.parametrize(("n", "alpha"), [(3, 0.05), (5, 0.05 / 8)])
def test_the_detectable_effect_has_80_percent_power_under_an_independent_simulation(n, alpha):
    assert not power.uses_permutation(n, n)
    d = power.detectable_effect(n, n, alpha_step=alpha)
    assert reference_power(d, n, n, alpha) == pytest.approx(0.80, abs=0.03)


def exact_permutation_p(x, y):
    """Two-sided p of the difference of means over every split of the pooled values, by hand."""
    z, n = np.concatenate([x, y]), len(x)
    splits = np.array(list(itertools.combinations(range(len(z)), n)))
    a = z[splits].mean(1)
    d = np.abs(a - (z.sum() - a * n) / len(y))
    return np.mean(d >= abs(x.mean() - y.mean()) - 1e-12)


def reference_permutation_power(effect, n, alpha, *, sims=2000, seed=5):
    """The permutation rule by hand: the exact permutation test (checked against scipy's below),
    the two t-intervals, the direction; independent draws."""
    rng, hits = np.random.default_rng(seed), 0
    for _ in range(sims):
        x, y = rng.standard_normal(n) + effect, rng.standard_normal(n)
        p = exact_permutation_p(x, y)
        ha = sps.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)
        hb = sps.t.ppf(0.975, n - 1) * y.std(ddof=1) / math.sqrt(n)
        hits += p < alpha and x.mean() - ha > y.mean() + hb
    return hits / sims


def test_at_six_seeds_or_more_the_permutation_test_decides_and_its_power_is_simulated_as_applied():
    """7 vs 7 seeds: scipy enumerates all 3 432 splits; the simulated 80 % point of the permutation
    rule at a Holm step of 0.05/4 has 80 ± 3 % power under scipy's own test (1 000 experiments)."""
    assert power.uses_permutation(7, 7) and not power.uses_permutation(5, 7)
    x, y = np.random.default_rng(0).standard_normal((2, 7))
    assert exact_permutation_p(x + 1, y) == pytest.approx(stats.permutation_test(x + 1, y).p_value)
    d = power.detectable_effect(7, 7, alpha_step=0.05 / 4)
    assert reference_permutation_power(d, 7, 0.05 / 4) == pytest.approx(0.80, abs=0.03)


def test_the_permutation_tests_smallest_p_caps_power_at_a_strict_holm_step():
    """6 vs 6: 924 splits, so no two-sided p below 2/924 = 0.0022: at Holm's first step of 25
    comparisons (0.002) the rule cannot decide at any effect, and the power simulation knows it; a
    seventh seed (3 432 splits, p >= 0.00058) restores it. Paired at 6: 64 sign flips, p >= 1/32."""
    assert stats.permutation_test(np.arange(6.0) + 100, np.arange(6.0)).p_value == pytest.approx(2 / 924)
    assert power.rule_power(50.0, 6, 6, alpha_step=0.05 / 25) == 0.0
    assert power.detectable_effect(6, 6, alpha_step=0.05 / 25) == math.inf
    assert power.rule_power(50.0, 7, 7, alpha_step=0.05 / 25) == 1.0
    assert power.rule_power(50.0, 6, 0, alpha_step=0.05, paired=True, test="permutation") == 1.0  # 1/32 < 0.05
    assert power.rule_power(50.0, 6, 0, alpha_step=0.02, paired=True, test="permutation") == 0.0
    # which is why paired comparisons keep the t test at any n: more pairs never lose a decision
    assert not power.uses_permutation(7, 7, paired=True)
    assert power.rule_power(50.0, 7, 0, alpha_step=0.02, paired=True) == 1.0


def test_the_comparison_names_the_test_that_decided_it():
    rng = np.random.default_rng(2)
    x3, y3, x7, y7 = rng.normal(1, 1, 3), rng.normal(0, 1, 3), rng.normal(3, 1, 7), rng.normal(0, 1, 7)
    few = compare_means("ctx", "m", "a", x3, "b", y3, HIGHER)
    many = compare_means("ctx", "m", "a", x7, "b", y7, HIGHER)
    large = compare_means("ctx", "m", "a", rng.normal(3, 1, 9), "b", rng.normal(0, 1, 9), HIGHER)
    assert few.test == "Welch t" and few.p_value == pytest.approx(sps.ttest_ind(x3, y3, equal_var=False).pvalue)
    assert many.test == "exact permutation" and many.p_value == many.p_perm
    assert many.p_value == pytest.approx(sps.permutation_test((x7, y7), lambda a, b: a.mean() - b.mean()).pvalue)
    assert large.test == f"permutation ({stats.PERMUTATION_RESAMPLES} draws)"


def test_the_textbook_detectable_difference_overstates_the_rules_power():
    """At 3 vs 3 seeds the bare Welch 80 % point is ~3 σ; the interval rule cuts its power to ~23 %
    and Holm's first step of 39 comparisons to ~4 % (the figures the report used to ignore)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    textbook = stats.detectable_difference(a, b) / stats.pooled_sd(a, b)  # σ units of this draw
    assert 2 < textbook < 6
    assert power.rule_power(3.03, 3, 3, interval_rule=False) == pytest.approx(0.68, abs=0.03)
    assert power.rule_power(3.03, 3, 3) == pytest.approx(0.23, abs=0.03)
    assert power.rule_power(3.03, 3, 3, alpha_step=0.05 / 39) == pytest.approx(0.04, abs=0.02)
    assert reference_power(3.03, 3, 3, 0.05) == pytest.approx(power.rule_power(3.03, 3, 3), abs=0.03)


def test_power_is_the_level_at_no_effect_and_grows_with_effect_and_seeds():
    assert power.rule_power(0.0, 5, 5) <= 0.025 + 0.01  # one direction of a two-sided test
    assert power.rule_power(-2.0, 5, 5) == 0.0
    grid = [power.rule_power(e, 4, 4) for e in (0.5, 1, 2, 3, 4)]
    assert grid == sorted(grid) and grid[-1] > 0.8
    assert power.rule_power(2.0, 3, 3) < power.rule_power(2.0, 6, 6) < power.rule_power(2.0, 12, 12)
    assert power.detectable_effect(2, 2, alpha_step=0.05 / 39) == math.inf or power.detectable_effect(2, 2) > 5


def test_seeds_needed_is_the_first_n_with_80_percent():
    for effect in (1.0, 2.0, 3.5):
        n = power.seeds_needed(effect)
        assert power.rule_power(effect, n, n) >= 0.8 > power.rule_power(effect, n - 1, n - 1)
    assert power.seeds_needed(0.0) is None and power.seeds_needed(0.05) is None  # beyond 64 seeds


def test_paired_power_matches_a_reference_with_scipys_paired_test():
    rng, n, effect, hits = np.random.default_rng(3), 5, 1.5, 0
    for _ in range(REF_SIMS):
        d = rng.standard_normal(n) + effect
        p = sps.ttest_rel(d, np.zeros(n)).pvalue
        low = d.mean() - sps.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
        hits += p < 0.05 and low > 0
    assert hits / REF_SIMS == pytest.approx(power.rule_power(effect, n, 0, paired=True), abs=0.03)


def test_holm_steps_follow_the_order_of_the_p_values():
    assert power.holm_steps([0.04, 0.001, 0.2], 0.05) == pytest.approx([0.05 / 2, 0.05 / 3, 0.05])


def test_the_reported_detectable_difference_has_80_percent_power_end_to_end():
    """Through the report's own code: a comparison's reported `detectable` difference (its σ from the
    seeds), taken as the true difference at that σ, is supported 80 ± 3 % of the time."""
    rng = np.random.default_rng(7)
    a, b = 10 + rng.standard_normal(3), 10 + rng.standard_normal(3)
    (e,) = holm_adjust([compare_means("ctx", "m", "a", a, "b", b, HIGHER)])
    d, sigma = float(e.detectable), e.sigma
    sims = np.random.default_rng(11)
    wins = 0
    for _ in range(1000):
        x, y = 10 + d + sigma * sims.standard_normal(3), 10 + sigma * sims.standard_normal(3)
        wins += compare_means("ctx", "m", "a", x, "b", y, HIGHER).verdict == SUPPORTED
    assert wins / 1000 == pytest.approx(0.80, abs=0.03)
    assert 0 <= e.power_at_effect <= 1 and (math.isnan(e.seeds_needed) or e.seeds_needed >= 2)
