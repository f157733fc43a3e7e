"""The decision rule's power, simulated as applied (bench.report.power), checked against reference
loops written here with scipy's tests, and end to end through bench.report.evidence."""

from __future__ import annotations

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


@pytest.mark.parametrize(("n", "alpha"), [(3, 0.05), (8, 0.05 / 8)])
def test_the_detectable_effect_has_80_percent_power_under_an_independent_simulation(n, alpha):
    d = power.detectable_effect(n, n, alpha_step=alpha)
    assert reference_power(d, n, n, alpha) == pytest.approx(0.80, abs=0.03)


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
