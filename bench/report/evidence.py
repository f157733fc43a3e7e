"""One piece of evidence for a claim (a comparison in one dataset/budget) and the verdict rules.

Verdict of one comparison (claim predicts side A `higher` or `lower` than side B):
  * inconclusive  when a side has fewer than MIN_SEEDS finite values,
  * inconclusive  when the decision test's two-sided p >= ALPHA (NaN counts as >= ALPHA),
  * inconclusive  when the 95 % t-intervals of the two means overlap (paired / one-sample
                  comparisons: when the interval of the mean difference contains the reference),
  * otherwise     supported if the observed direction is the predicted one, else contradicted.
Rates (divergence) use Fisher's exact test and skip the interval rule: exact binomial intervals on
3 seeds always overlap, so that rule would make the rate indicator unable to decide anything.

A claim combines its comparisons (`combine`): no comparison -> not measured (with why);
some supported and none contradicted -> supported; some contradicted and none supported ->
contradicted; both -> inconclusive (mixed); none decided -> inconclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.report import stats
from bench.report.stats import Interval

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)

ALPHA = 0.05  # two-sided significance level of the decision test
MIN_SEEDS = 2  # fewer finite values on a side -> no interval, no test -> inconclusive
HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Side:
    name: str  # e.g. "gan", "ddpm-T200", "others (flow, vae)", "0 (no growth)"
    stats: Interval


@dataclass(frozen=True)
class Evidence:
    """One comparison: side A against side B on one metric in one dataset/budget context."""

    context: str  # "dataset/budget"
    metric: str  # column or derived quantity compared, unit as in bench.schema
    a: Side
    b: Side
    expect: str  # what the claim predicts for A relative to B: "higher" | "lower"
    test: str  # decision test, e.g. "Welch t"
    p_value: float  # two-sided p of the decision test
    p_perm: float  # permutation-test p (reported only; NaN where not computed)
    effect: float  # Cohen's d of A - B (paired/one-sample: d_z); NaN where undefined
    ratio: float  # mean(A) / mean(B)
    verdict: str
    reason: str


def _fmt_p(p: float) -> str:
    return f"{p:.3g}"


def decide(a: Side, b: Side, p: float, expect: str, separated: bool, min_n: tuple[int, int]) -> tuple[str, str]:
    """Apply the rules in the module docstring; `separated` is the interval rule's outcome."""
    if min(min_n) < MIN_SEEDS:
        return (
            INCONCLUSIVE,
            f"too few seeds (n={min_n[0]} vs {min_n[1]}; need >= {MIN_SEEDS} per side)",
        )
    if not p < ALPHA:
        return INCONCLUSIVE, f"no significant difference (p={_fmt_p(p)} >= {ALPHA})"
    if not separated:
        return INCONCLUSIVE, f"95 % intervals overlap (p={_fmt_p(p)})"
    observed = HIGHER if a.stats.mean > b.stats.mean else LOWER
    verdict = SUPPORTED if observed == expect else CONTRADICTED
    return verdict, f"{a.name} {observed} than {b.name} (p={_fmt_p(p)}, intervals disjoint)"


def compare_means(
    context: str,
    metric: str,
    a_name: str,
    a_values: Iterable[float],
    b_name: str,
    b_values: Iterable[float],
    expect: str,
    note: str = "",
) -> Evidence:
    """Two independent groups of seeds: Welch t decides, permutation p reported alongside."""
    x, y = stats.clean(a_values), stats.clean(b_values)
    a, b = Side(a_name, stats.t_interval(x)), Side(b_name, stats.t_interval(y))
    test = stats.welch_test(x, y)
    verdict, reason = decide(a, b, test.p_value, expect, not stats.overlaps(a.stats, b.stats), (len(x), len(y)))
    return Evidence(
        context,
        metric,
        a,
        b,
        expect,
        test.name,
        test.p_value,
        stats.permutation_test(x, y).p_value,
        stats.cohen_d(x, y),
        stats.ratio(a.stats.mean, b.stats.mean),
        verdict,
        _join(reason, note),
    )


def compare_paired(
    context: str,
    metric: str,
    a_name: str,
    a_values: Sequence[float],
    b_name: str,
    b_values: Sequence[float],
    expect: str,
    note: str = "",
) -> Evidence:
    """Paired values per trial (e.g. model vs baseline on the same masked inputs): paired t decides;
    the interval rule uses the t-interval of the mean difference (must exclude 0)."""
    x, y = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    a, b = Side(a_name, stats.t_interval(x)), Side(b_name, stats.t_interval(y))
    diff = stats.t_interval(x - y)
    test = stats.paired_t_test(x, y)
    verdict, reason = decide(a, b, test.p_value, expect, not stats.contains(diff, 0.0), (len(x), len(y)))
    return Evidence(
        context,
        metric,
        a,
        b,
        expect,
        test.name,
        test.p_value,
        stats.sign_flip_test(x - y).p_value,
        stats.cohen_dz(x - y),
        stats.ratio(a.stats.mean, b.stats.mean),
        verdict,
        _join(reason, note),
    )


def compare_to_reference(
    context: str,
    metric: str,
    a_name: str,
    a_values: Iterable[float],
    ref_name: str,
    ref: float,
    expect: str,
    note: str = "",
) -> Evidence:
    """One group of seeds against a fixed reference value: one-sample t decides; the interval of
    the mean must exclude the reference."""
    x = stats.clean(a_values)
    a = Side(a_name, stats.t_interval(x))
    b = Side(ref_name, Interval(ref, ref, ref, 0))
    test = stats.one_sample_t_test(x, ref)
    # The reference is exact, so only side A needs MIN_SEEDS values.
    verdict, reason = decide(a, b, test.p_value, expect, not stats.contains(a.stats, ref), (len(x), MIN_SEEDS))
    return Evidence(
        context,
        metric,
        a,
        b,
        expect,
        test.name,
        test.p_value,
        stats.sign_flip_test(x - ref).p_value,
        stats.cohen_dz(x, ref),
        stats.ratio(a.stats.mean, ref),
        verdict,
        _join(reason, note),
    )


def compare_rates(
    context: str,
    metric: str,
    a_name: str,
    k_a: int,
    n_a: int,
    b_name: str,
    k_b: int,
    n_b: int,
    expect: str,
    note: str = "",
) -> Evidence:
    """Event rates k/n (e.g. diverged trials): Fisher's exact test decides (no interval rule)."""
    a = Side(a_name, stats.proportion_interval(k_a, n_a))
    b = Side(b_name, stats.proportion_interval(k_b, n_b))
    test = stats.fisher_test(k_a, n_a, k_b, n_b)
    if n_a >= MIN_SEEDS and n_b >= MIN_SEEDS and k_a / n_a == k_b / n_b:
        verdict, reason = INCONCLUSIVE, f"equal rates (p={_fmt_p(test.p_value)})"
    else:
        verdict, reason = decide(a, b, test.p_value, expect, True, (n_a, n_b))
    return Evidence(
        context,
        metric,
        a,
        b,
        expect,
        test.name,
        test.p_value,
        stats.NAN,
        stats.NAN,
        stats.ratio(a.stats.mean, b.stats.mean),
        verdict,
        _join(reason, note),
    )


def check_mass(context: str, metric: str, a_name: str, masses: Iterable[float], tol: float, note: str = "") -> Evidence:
    """Grid integral of a density that should be normalised, one value per trial (an identity
    check of each model, so one trial suffices). The grid integral of a normalised density is at
    most 1 (+ quadrature error) and falls short when mass lies beyond the grid, so:
    all within 1 ± tol -> supported; any above 1 + tol -> contradicted (more than all the mass);
    otherwise (some below 1 - tol) -> inconclusive: missing mass may lie outside the grid."""
    x = stats.clean(masses)
    a = Side(a_name, stats.t_interval(x))
    b = Side(f"1 ± {tol:g}", Interval(1.0, 1.0 - tol, 1.0 + tol, 0))
    above, below = int(np.sum(x > 1.0 + tol)), int(np.sum(x < 1.0 - tol))
    if len(x) == 0:
        verdict, reason = INCONCLUSIVE, "no finite values"
    elif above:
        verdict, reason = CONTRADICTED, f"{above} of {len(x)} trial(s) integrate above 1 + {tol:g}"
    elif below:
        verdict, reason = (
            INCONCLUSIVE,
            (
                f"{below} of {len(x)} trial(s) integrate below 1 - {tol:g} on the grid "
                "(mass beyond the grid cannot be ruled out)"
            ),
        )
    else:
        verdict, reason = SUPPORTED, f"all {len(x)} trial(s) integrate to 1 ± {tol:g}"
    return Evidence(
        context,
        metric,
        a,
        b,
        "1 ± tol",
        f"grid integral within 1 ± {tol:g} per trial",
        stats.NAN,
        stats.NAN,
        stats.NAN,
        stats.ratio(a.stats.mean, 1.0),
        verdict,
        _join(reason, note),
    )


def label_mismatch(context: str, metric: str, a_name: str, expected: str, found: str) -> Evidence:
    """A reported label contradicts the claim (e.g. the flow's nll_kind is not 'exact')."""
    nan = Interval(stats.NAN, stats.NAN, stats.NAN, 0)
    return Evidence(
        context,
        metric,
        Side(a_name, nan),
        Side(expected, nan),
        expected,
        "label check",
        stats.NAN,
        stats.NAN,
        stats.NAN,
        stats.NAN,
        CONTRADICTED,
        found,
    )


def combine(evidence: Sequence[Evidence], notes: Sequence[str]) -> tuple[str, str]:
    """Claim verdict from its comparisons (rules in the module docstring) with a one-line reason:
    the tally, then the first comparison of each kind that decided (or left open) the verdict."""
    if not evidence:
        return NOT_MEASURED, "; ".join(notes) or "no trials with the needed columns"
    by = {v: [e for e in evidence if e.verdict == v] for v in (SUPPORTED, CONTRADICTED)}
    n_inc = len(evidence) - len(by[SUPPORTED]) - len(by[CONTRADICTED])
    tally = (
        f"{len(by[SUPPORTED])} supported, {len(by[CONTRADICTED])} contradicted, "
        f"{n_inc} inconclusive of {len(evidence)} comparison(s)"
    )
    if by[SUPPORTED] and not by[CONTRADICTED]:
        verdict, shown = SUPPORTED, by[SUPPORTED][:1]
    elif by[CONTRADICTED] and not by[SUPPORTED]:
        verdict, shown = CONTRADICTED, by[CONTRADICTED][:1]
    elif by[SUPPORTED]:
        verdict, shown = INCONCLUSIVE, by[SUPPORTED][:1] + by[CONTRADICTED][:1]
        tally = "mixed: " + tally
    else:
        verdict, shown = INCONCLUSIVE, evidence[:1]
    if len(evidence) == 1:
        tally = ""
    parts = [tally] + [f"[{e.context}, {e.metric}] {e.reason}" for e in shown]
    return verdict, "; ".join(p for p in [*parts, *notes] if p)


def _join(reason: str, note: str) -> str:
    return f"{reason}; {note}" if note else reason
