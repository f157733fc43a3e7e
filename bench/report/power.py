"""The decision rule's power, simulated for the rule as applied (not the t-test's textbook power).

A comparison supports its claim when three things hold at once (bench.report.evidence): the
two-sided Welch p (paired: paired t) is below the comparison's Holm threshold, the two 95 %
t-intervals of the means are disjoint (paired: the interval of the mean difference excludes 0),
and the observed direction is the predicted one. The interval rule and the Holm threshold both
cost power that the analytic "detectable difference" of a bare t-test ignores: at 3 vs 3 seeds and
its 3.03 σ, Welch alone has 68 % power, with the interval rule 23 %, at Holm's first step of 39
comparisons 4 %.

Everything is in units of σ, the per-seed standard deviation (both sides the same σ; paired: σ of
the per-trial differences). Simulations draw standard normal seeds once per (n_a, n_b) from a fixed
seed and shift them by the effect (common random numbers), so power is reproducible and monotone
in the effect, and the 80 % point is found by bisection.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats

ALPHA = 0.05  # the default level; bench.report.evidence passes its own (the same) with each Holm step
POWER = 0.80  # the power a detectable effect is defined at
SIMS = 4000  # simulated experiments per power evaluation: standard error of a power near 0.8 is 0.006
SEED = 20_240_607
MAX_EFFECT = 64.0  # σ: beyond this an effect counts as undetectable at these n
MAX_SEEDS = 64  # seeds_needed looks no further


@lru_cache(maxsize=256)
def _draws(n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([SEED, n_a, n_b])
    return rng.standard_normal((SIMS, n_a)), rng.standard_normal((SIMS, max(n_b, 1)))


def rule_power(
    effect_sd: float, n_a: int, n_b: int, *, alpha_step: float = ALPHA, paired: bool = False, interval_rule: bool = True
) -> float:
    """P(the rule supports a true difference of effect_sd σ in the predicted direction) with n_a and
    n_b seeds (paired: n_a differences; n_b ignored) at Holm threshold `alpha_step`."""
    if min(n_a, n_a if paired else n_b) < 2:
        return 0.0
    za, zb = _draws(n_a, 0 if paired else n_b)
    x = za + effect_sd
    if paired:
        return float(np.mean(_paired_decides(x, alpha_step, interval_rule)))
    return float(np.mean(_welch_decides(x, zb, alpha_step, interval_rule)))


def _welch_decides(x: np.ndarray, y: np.ndarray, alpha: float, interval_rule: bool) -> np.ndarray:
    na, nb = x.shape[1], y.shape[1]
    mx, my = x.mean(1), y.mean(1)
    va, vb = x.var(1, ddof=1) / na, y.var(1, ddof=1) / nb
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    p = 2 * stats.t.sf(np.abs(mx - my) / se, df)
    ok = (p < alpha) & (mx > my)
    if interval_rule:  # the lower end of A's 95 % interval above the upper end of B's
        ha, hb = stats.t.ppf(0.975, na - 1) * np.sqrt(va), stats.t.ppf(0.975, nb - 1) * np.sqrt(vb)
        ok &= mx - ha > my + hb
    return ok


def _paired_decides(d: np.ndarray, alpha: float, interval_rule: bool) -> np.ndarray:
    n = d.shape[1]
    md, se = d.mean(1), d.std(1, ddof=1) / math.sqrt(n)
    t = md / se
    ok = (2 * stats.t.sf(np.abs(t), n - 1) < alpha) & (md > 0)
    if interval_rule:
        ok &= md - stats.t.ppf(0.975, n - 1) * se > 0
    return ok


def detectable_effect(
    n_a: int, n_b: int, *, alpha_step: float = ALPHA, paired: bool = False, power: float = POWER
) -> float:
    """The effect (σ) at which the rule reaches `power`; inf when not within MAX_EFFECT."""
    if rule_power(MAX_EFFECT, n_a, n_b, alpha_step=alpha_step, paired=paired) < power:
        return math.inf
    lo, hi = 0.0, MAX_EFFECT
    for _ in range(40):  # bisection to ~1e-10 of MAX_EFFECT
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
    for n in range(2, MAX_SEEDS + 1):
        if rule_power(effect_sd, n, n, alpha_step=alpha_step, paired=paired) >= power:
            return n
    return None


def holm_steps(p_values: list[float], alpha: float = ALPHA) -> list[float]:
    """Each p-value's Holm threshold: α/m for the smallest, α/(m−1) for the next, ... (NaN last)."""
    order = sorted(range(len(p_values)), key=lambda i: (math.isnan(p_values[i]), p_values[i]))
    steps = [math.nan] * len(p_values)
    for rank, i in enumerate(order):
        steps[i] = alpha / (len(p_values) - rank)
    return steps
