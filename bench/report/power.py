"""The decision rule's power, simulated for the rule as applied (not the t-test's textbook power).

A comparison supports its claim when three things hold at once (bench.report.evidence): the
two-sided p of its decision test is below the comparison's Holm threshold (Welch t, paired: paired t;
where both independent sides have PERMUTATION_MIN_SEEDS seeds or more, the permutation test of the
difference of means, exact where the arrangements can be enumerated), the two 95 %
t-intervals of the means are disjoint (paired: the interval of the mean difference excludes 0),
and the observed direction is the predicted one. The interval rule and the Holm threshold both
cost power that the analytic "detectable difference" of a bare t-test ignores: at 3 vs 3 seeds and
its 3.03 σ, Welch alone has 68 % power, with the interval rule 23 %, at Holm's first step of 39
comparisons 4 %.

Everything is in units of σ, the per-seed standard deviation (both sides the same σ; paired: σ of
the per-trial differences). Simulations draw standard normal seeds once per (n_a, n_b) from a fixed
seed and shift them by the effect (common random numbers), so power is reproducible and monotone
in the effect, and the 80 % point is found by bisection. Permutation tests are simulated with the
arrangements the test itself uses (all of them where it enumerates them; where it draws
PERMUTATION_RESAMPLES at random, as many fixed random ones: fewer would coarsen the p-values exactly
where Holm's thresholds sit) on PERMUTATION_SIMS experiments. The discreteness is real: with
6 vs 6 seeds no p falls below 2/924 = 0.0022, so a comparison held to a Holm threshold under that
has no power at any effect, and the simulation says so.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats

from bench.report.stats import PERMUTATION_RESAMPLES, relabelings

ALPHA = 0.05  # the default level; bench.report.evidence passes its own (the same) with each Holm step
POWER = 0.80  # the power a detectable effect is defined at
SIMS = 4000  # simulated experiments per power evaluation: standard error of a power near 0.8 is 0.006
SEED = 20_240_607
MAX_EFFECT = 64.0  # σ: beyond this an effect counts as undetectable at these n
MAX_SEEDS = 64  # seeds_needed looks no further
Test = Literal["as applied", "t", "permutation"]
PERMUTATION_MIN_SEEDS = 6  # every side at least this many seeds: a permutation test decides instead of t
PERMUTATION_SIMS = 2000  # experiments per power evaluation of a permutation rule (standard error 0.009)
SIM_RESAMPLES = PERMUTATION_RESAMPLES  # as many random arrangements as the test draws: its p's resolution


def uses_permutation(n_a: int, n_b: int, *, paired: bool = False) -> bool:
    """The rule's choice of decision test: the permutation test where both independent sides have
    enough seeds. Paired and one-sample comparisons keep the t test: the sign-flip test's smallest
    p is 2 / 2^n (0.0156 at 7 pairs), above Holm's thresholds until about 11 pairs, so switching
    to it would make added seeds lose decisions (its p is reported as p_perm)."""
    return not paired and min(n_a, n_b) >= PERMUTATION_MIN_SEEDS


@lru_cache(maxsize=256)
def _draws(n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([SEED, n_a, n_b])
    return rng.standard_normal((SIMS, n_a)), rng.standard_normal((SIMS, max(n_b, 1)))


def rule_power(
    effect_sd: float,
    n_a: int,
    n_b: int,
    *,
    alpha_step: float = ALPHA,
    paired: bool = False,
    interval_rule: bool = True,
    test: Test = "as applied",
) -> float:
    """P(the rule supports a true difference of effect_sd σ in the predicted direction) with n_a and
    n_b seeds (paired: n_a differences; n_b ignored) at Holm threshold `alpha_step`. `test` forces
    the t test or the permutation test instead of the one the rule applies at these n."""
    if min(n_a, n_a if paired else n_b) < 2:
        return 0.0
    return _power(round(effect_sd, 12), n_a, n_b, alpha_step, paired, interval_rule, test)


@lru_cache(maxsize=4096)  # the report asks the same question of several comparisons
def _power(effect_sd, n_a, n_b, alpha_step, paired, interval_rule, test) -> float:
    auto = uses_permutation(n_a, n_b, paired=paired)
    permutation = {"as applied": auto, "t": False, "permutation": True}[test]
    za, zb = _draws(n_a, 0 if paired else n_b)
    if permutation:
        za, zb = za[:PERMUTATION_SIMS], zb[:PERMUTATION_SIMS]
    x = za + effect_sd
    if paired:
        return float(np.mean(_paired_decides(x, alpha_step, interval_rule, permutation)))
    return float(np.mean(_two_sample_decides(x, zb, alpha_step, interval_rule, permutation)))


def _two_sample_decides(x: np.ndarray, y: np.ndarray, alpha: float, interval_rule: bool, permutation: bool):
    na, nb = x.shape[1], y.shape[1]
    mx, my = x.mean(1), y.mean(1)
    va, vb = x.var(1, ddof=1) / na, y.var(1, ddof=1) / nb
    if permutation:
        p = _permutation_p(np.concatenate([x, y], axis=1), _relabelings(na, nb), 1 / na + 1 / nb, 1 / nb)
    else:
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        p = 2 * stats.t.sf(np.abs(mx - my) / se, df)
    ok = (p < alpha) & (mx > my)
    if interval_rule:  # the lower end of A's 95 % interval above the upper end of B's
        ha, hb = stats.t.ppf(0.975, na - 1) * np.sqrt(va), stats.t.ppf(0.975, nb - 1) * np.sqrt(vb)
        ok &= mx - ha > my + hb
    return ok


def _paired_decides(d: np.ndarray, alpha: float, interval_rule: bool, permutation: bool) -> np.ndarray:
    n = d.shape[1]
    md, se = d.mean(1), d.std(1, ddof=1) / math.sqrt(n)
    if permutation:  # sign flips: the statistic of arrangement k is (d @ flips_k) / n
        p = _permutation_p(d, _sign_flips(n), 1 / n, 0.0)
    else:
        p = 2 * stats.t.sf(np.abs(md / se), n - 1)
    ok = (p < alpha) & (md > 0)
    if interval_rule:
        ok &= md - stats.t.ppf(0.975, n - 1) * se > 0
    return ok


def _permutation_p(z: np.ndarray, arrangements: np.ndarray, scale: float, total_weight: float) -> np.ndarray:
    """Two-sided permutation p of each row of z (S, N): the share of arrangements (K, N; the observed
    one first) whose statistic scale·(z @ a) − total_weight·Σz is at least the observed in size.
    With the observed arrangement counted this is scipy's p, exact and Monte Carlo alike."""
    p = np.empty(len(z))
    for lo in range(0, len(z), 500):  # chunks of experiments keep the (chunk, K) matrix small
        zc = z[lo : lo + 500]
        s = np.abs(scale * (zc @ arrangements.T) - total_weight * zc.sum(1, keepdims=True))
        observed = s[:, :1]
        p[lo : lo + 500] = np.mean(s >= observed - 1e-9 * (1 + observed), axis=1)
    return p


@lru_cache(maxsize=64)
def _relabelings(n_a: int, n_b: int) -> np.ndarray:
    """(K, n_a + n_b) indicators of side A: every split when the test enumerates them, else the
    observed one and SIM_RESAMPLES random ones (fixed seed)."""
    n = n_a + n_b
    if relabelings(n_a, n_b) <= PERMUTATION_RESAMPLES:
        picks = list(itertools.combinations(range(n), n_a))  # the first is the observed labelling
    else:
        rng = np.random.default_rng([SEED, n_a, n_b, 1])
        picks = [tuple(range(n_a))] + [tuple(rng.permutation(n)[:n_a]) for _ in range(SIM_RESAMPLES)]
    out = np.zeros((len(picks), n))
    for k, pick in enumerate(picks):
        out[k, list(pick)] = 1.0
    return out


@lru_cache(maxsize=64)
def _sign_flips(n: int) -> np.ndarray:
    """(K, n) signs: all 2^n when the test enumerates them, else all +1 and SIM_RESAMPLES random rows."""
    if 2**n <= PERMUTATION_RESAMPLES:
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # the first is all +1
    else:
        rng = np.random.default_rng([SEED, n, 2])
        flips = np.vstack([np.ones((1, n)), rng.choice((1.0, -1.0), size=(SIM_RESAMPLES, n))])
    return flips


def detectable_effect(
    n_a: int, n_b: int, *, alpha_step: float = ALPHA, paired: bool = False, power: float = POWER
) -> float:
    """The effect (σ) at which the rule reaches `power`; inf when not within MAX_EFFECT."""
    if rule_power(MAX_EFFECT, n_a, n_b, alpha_step=alpha_step, paired=paired) < power:
        return math.inf
    lo, hi = 0.0, MAX_EFFECT
    for _ in range(24):  # bisection to 4e-6 σ
        mid = (lo + hi) / 2
        if rule_power(mid, n_a, n_b, alpha_step=alpha_step, paired=paired) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def seeds_needed(
    effect_sd: float, *, alpha_step: float = ALPHA, paired: bool = False, power: float = POWER
) -> int | None:
    """The smallest number of seeds per side at which the rule reaches `power` for an effect of
    effect_sd σ; None when more than MAX_SEEDS would be needed (or the effect is 0)."""
    if not effect_sd > 0:
        return None

    def enough(n: int, **kw) -> bool:
        return rule_power(effect_sd, n, n, alpha_step=alpha_step, paired=paired, **kw) >= power

    # The t rule's answer is cheap and close to the permutation rule's (both ~ normal theory at these
    # n): the scan of the rule as applied starts a little below it instead of at 2.
    n_t = next((n for n in range(2, MAX_SEEDS + 1) if enough(n, test="t")), None)
    if n_t is None:
        return None
    if n_t < PERMUTATION_MIN_SEEDS:
        return n_t
    for n in range(max(PERMUTATION_MIN_SEEDS, n_t - 2), MAX_SEEDS + 1):
        if enough(n):
            return n
    return None


def holm_steps(p_values: list[float], alpha: float = ALPHA) -> list[float]:
    """Each p-value's Holm threshold: α/m for the smallest, α/(m−1) for the next, ... (NaN last)."""
    order = sorted(range(len(p_values)), key=lambda i: (math.isnan(p_values[i]), p_values[i]))
    steps = [math.nan] * len(p_values)
    for rank, i in enumerate(order):
        steps[i] = alpha / (len(p_values) - rank)
    return steps
