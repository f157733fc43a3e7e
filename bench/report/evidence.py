"""One piece of evidence for a claim (a comparison in one dataset/budget) and the verdict rules.

Verdict of one comparison (claim predicts side A `higher` or `lower` than side B):
  * inconclusive  when a side has fewer than MIN_SEEDS finite values,
  * inconclusive  when a side has no spread over its seeds (identical values: a t-test would
                  divide by zero and report certainty it does not have),
  * inconclusive  when the decision test's Holm-adjusted two-sided p >= ALPHA (NaN counts as
                  >= ALPHA; the Holm family is every deciding comparison of the claims table);
                  the decision test is Welch t (paired: paired t), or where both independent
                  sides have power.PERMUTATION_MIN_SEEDS seeds or more the permutation test of
                  the difference of means, exact where its arrangements can be enumerated;
                  `test` names the one used,
  * inconclusive  when the 95 % intervals of the two means overlap (paired / one-sample
                  comparisons: when the interval of the mean difference contains the reference),
  * otherwise     supported if the observed direction is the predicted one, else contradicted.
Each comparison carries the power of this rule, simulated as applied (bench.report.power: the test,
the interval rule and the comparison's own Holm threshold, at the observed per-seed spread): the
smallest difference its seeds detect with 80 % power (`detectable`), the power at the observed
effect and the seeds per side that effect would need. Throughput is compared on the log scale
(ratios). Rates (divergence) use Fisher's exact test and skip the interval rule: exact binomial
intervals on 3 seeds always overlap.
Comparisons against a baseline family (`reference`) are shown but never decide a verdict.

Only a claim's pre-registered primary comparisons decide (one measure against one side per data
kind, `bench.report.claims.Primary`); the others are reported as secondary. A claim combines its
primaries (`combine`): none -> not measured (with why); every one supported -> supported; some
contradicted and none supported -> contradicted; both -> inconclusive (mixed); otherwise
inconclusive. Holm runs over the primaries of the claims table only, so comparisons added to
another claim as secondary leave a claim's verdict alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bench.report import columns, power, stats
from bench.report.columns import HIGHER, LOWER
from bench.report.stats import Interval

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)

ALPHA = 0.05  # two-sided family-wise significance level (Holm) of the decision tests
RULE = (
    "A comparison decides when its two-sided test (Welch t, paired t against a paired baseline; the "
    f"permutation test where each side has {power.PERMUTATION_MIN_SEEDS} seeds or more) is "
    f"significant at its Holm-adjusted level (α = {ALPHA} over the table's deciding comparisons), the "
    "95 % intervals of the two means are disjoint, and the observed direction is the predicted one."
)
MIN_SEEDS = 2  # fewer finite values on a side -> no interval, no test -> inconclusive
__all__ = ["HIGHER", "LOWER", "Evidence", "Side", "combine", "compare_means", "holm_adjust"]


@dataclass(frozen=True)
class Side:
    name: str  # e.g. "gan", "ddpm-T200", "others (flow, vae)", "0 (no growth)"
    stats: Interval


@dataclass(frozen=True)
class Evidence:
    """One comparison: side A against side B on one metric in one dataset/budget context."""

    context: str  # "dataset/budget"
    metric: str  # column or derived quantity compared, unit as in bench.store.schema
    a: Side
    b: Side
    expect: str  # what the claim predicts for A relative to B: "higher" | "lower"
    test: str  # decision test, e.g. "Welch t"
    p_value: float  # two-sided p of the decision test, uncorrected
    p_perm: float  # permutation-test p (reported only; NaN where not computed)
    effect: float  # Cohen's d of A - B (paired/one-sample: d_z; log scale for throughput); NaN if undefined
    ratio: float  # mean(A) / mean(B) (geometric means for throughput)
    verdict: str
    reason: str
    p_adjusted: float = math.nan  # Holm-adjusted p across the claims table; the verdict uses it
    detectable: str = ""  # smallest difference the seeds could detect, e.g. "0.12" or "×1.8"; "" if none
    reference: bool = False  # side B is a baseline family: shown, never decides the claim's verdict
    n: tuple[int, int] = (0, 0)  # finite values per side (the reference side of a fixed value: MIN_SEEDS)
    spread: bool = True  # both sides vary over seeds
    separated: bool = True  # the interval rule's outcome
    note: str = ""  # appended to the reason
    sigma: float = math.nan  # pooled per-seed standard deviation on the compared scale (log for throughput)
    paired: bool = False  # the test is on paired differences (or against a fixed reference)
    log: bool = False  # compared on the log scale: differences are log ratios
    diff: float = math.nan  # mean(A) − mean(B) on the compared scale
    diff_low: float = math.nan  # 95 % interval of diff (Welch / paired t)
    diff_high: float = math.nan
    alpha_step: float = math.nan  # the Holm threshold this comparison's p is held to
    power_at_effect: float = math.nan  # the rule's power for a true effect of the observed size
    seeds_needed: float = math.nan  # seeds per side at which that power reaches 80 % (NaN: beyond 64)
    role: str = "primary"  # primary (decides) | secondary (reported, never decides) | reference (a baseline)
    b_family: str = ""  # side B's family (or fixed reference) for matching a claim's primary comparison

    @property
    def effect_sd(self) -> float:
        """The observed difference in units of the per-seed standard deviation."""
        return self.diff / self.sigma if self.sigma > 0 else math.nan


def _fmt_p(p: float) -> str:
    return f"{p:.3g}"


def decide(e: Evidence, p: float) -> tuple[str, str]:
    """Apply the rules in the module docstring with decision p-value `p`."""
    if min(e.n) < MIN_SEEDS:
        return INCONCLUSIVE, f"too few seeds (n={e.n[0]} vs {e.n[1]}; need >= {MIN_SEEDS} per side)"
    detect = f"; detectable difference {e.detectable}" if e.detectable else ""
    if not e.spread:
        return INCONCLUSIVE, f"no spread over seeds (identical values on a side): untestable{detect}"
    raw = f", raw p={_fmt_p(e.p_value)}" if p != e.p_value and math.isfinite(e.p_value) else ""
    if not p < ALPHA:
        return INCONCLUSIVE, f"no significant difference (p={_fmt_p(p)}{raw} >= {ALPHA}){detect}"
    if not e.separated:
        return INCONCLUSIVE, f"95 % intervals overlap (p={_fmt_p(p)}{raw}){detect}"
    observed = HIGHER if e.a.stats.mean > e.b.stats.mean else LOWER
    verdict = SUPPORTED if observed == e.expect else CONTRADICTED
    return verdict, f"{e.a.name} {observed} than {e.b.name} (p={_fmt_p(p)}{raw}, intervals disjoint)"


def _judged(e: Evidence, p: float) -> Evidence:
    verdict, reason = decide(e, p)
    return replace(e, p_adjusted=p, verdict=verdict, reason=_join(reason, e.note))


def with_power(e: Evidence, alpha_step: float) -> Evidence:
    """The rule's simulated power for this comparison at Holm threshold `alpha_step` (module doc):
    `detectable` (80 % point, in the metric's unit; a ratio on the log scale), the power at the
    observed effect and the seeds it would need. Unchanged where no spread gives a scale."""
    n_a, n_b = e.n
    if not (e.sigma > 0 and min(n_a, n_b) >= MIN_SEEDS and math.isfinite(alpha_step)):
        return replace(e, alpha_step=alpha_step, detectable="")
    effect = abs(e.effect_sd)
    d = power.detectable_effect(n_a, n_b, alpha_step=alpha_step, paired=e.paired) * e.sigma
    need = power.seeds_needed(effect, alpha_step=alpha_step, paired=e.paired)
    return replace(
        e,
        alpha_step=alpha_step,
        detectable=_detectable(d, e.log),
        power_at_effect=power.rule_power(effect, n_a, n_b, alpha_step=alpha_step, paired=e.paired),
        seeds_needed=math.nan if need is None else float(need),
    )


def deciding(e: Evidence) -> bool:
    """Only a claim's primary comparisons decide (never a reference)."""
    return e.role == "primary" and not e.reference


def holm_adjust(evidence: Sequence[Evidence]) -> list[Evidence]:
    """Holm-adjust the p-values of every deciding comparison (a primary with a finite p) as one
    family and re-judge them with the adjusted p; each gets the power of the rule at its own Holm
    step (the others at ALPHA, judged on their raw p: they never decide)."""
    family = [i for i, e in enumerate(evidence) if deciding(e) and math.isfinite(e.p_value)]
    ps = [evidence[i].p_value for i in family]
    adjusted, steps = stats.holm(ps), power.holm_steps(ps, ALPHA)
    out = [with_power(e, ALPHA) if i not in set(family) else e for i, e in enumerate(evidence)]
    for i, p, step in zip(family, adjusted, steps):
        out[i] = _judged(with_power(out[i], step), float(p))
    return out


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) >= 2 else math.nan


def _shifted(iv: Interval, by: float) -> Interval:
    return Interval(iv.mean + by, iv.low + by, iv.high + by, iv.n)


def _scale(sigma: float, diff: Interval, *, paired: bool, log: bool = False) -> dict:
    """The fields the power simulation reads: σ, the observed difference and its interval."""
    return dict(sigma=sigma, paired=paired, log=log, diff=diff.mean, diff_low=diff.low, diff_high=diff.high)


def _detectable(d: float, log: bool) -> str:
    if not math.isfinite(d):
        return ""
    return f"×{math.exp(d):.3g}" if log else f"{d:.3g}"


def compare_means(
    context: str,
    metric: str,
    a_name: str,
    a_values: Iterable[float],
    b_name: str,
    b_values: Iterable[float],
    expect: str,
    note: str = "",
    reference: bool = False,
) -> Evidence:
    """Two independent groups of seeds: Welch t decides (on log values for a log-scale metric), the
    permutation test where both sides have enough seeds; the permutation p is reported either way.
    Intervals lie inside the metric's range."""
    x, y = stats.clean(a_values), stats.clean(b_values)
    log = columns.spec(metric).log
    if log:  # throughput: ratios matter, and the spread grows with the mean
        x, y = np.log(x[x > 0]), np.log(y[y > 0])
    a = Side(a_name, columns.interval(np.exp(x) if log else x, metric))
    b = Side(b_name, columns.interval(np.exp(y) if log else y, metric))
    perm = stats.permutation_test(x, y)
    test = perm if power.uses_permutation(len(x), len(y)) else stats.welch_test(x, y)
    e = Evidence(
        context,
        metric,
        a,
        b,
        expect,
        test.name + (" on log values" if log else ""),
        test.p_value,
        perm.p_value,
        stats.cohen_d(x, y),
        math.exp(x.mean() - y.mean()) if log and len(x) and len(y) else stats.ratio(a.stats.mean, b.stats.mean),
        "",
        "",
        reference=reference,
        n=(len(x), len(y)),
        spread=not (stats.is_constant(x) or stats.is_constant(y)),
        separated=not stats.overlaps(a.stats, b.stats),
        note=note,
        **_scale(stats.pooled_sd(x, y), stats.welch_difference(x, y), paired=False, log=log),
    )
    return _judged(e, test.p_value)


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
    """Paired values per trial (e.g. model vs baseline on the same masked inputs): paired t decides
    (the sign-flip p is reported); the interval rule uses the t-interval of the mean difference
    (must exclude 0)."""
    x, y = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    a, b = Side(a_name, columns.interval(x, metric)), Side(b_name, columns.interval(y, metric))
    flips = stats.sign_flip_test(x - y)
    test = flips if power.uses_permutation(len(x), len(x), paired=True) else stats.paired_t_test(x, y)
    e = Evidence(
        context,
        metric,
        a,
        b,
        expect,
        test.name,
        test.p_value,
        flips.p_value,
        stats.cohen_dz(x - y),
        stats.ratio(a.stats.mean, b.stats.mean),
        "",
        "",
        n=(len(x), len(y)),
        spread=not stats.is_constant(x - y),
        separated=not stats.contains(stats.t_interval(x - y), 0.0),
        note=note,
        **_scale(_sd(x - y), stats.t_interval(x - y), paired=True),
    )
    return _judged(e, test.p_value)


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
    """One group of seeds against a fixed reference value: one-sample t decides (the sign-flip p of
    x − ref is reported); the interval of the mean must exclude the reference."""
    x = stats.clean(a_values)
    a = Side(a_name, stats.t_interval(x))
    flips = stats.sign_flip_test(x - ref)
    test = flips if power.uses_permutation(len(x), len(x), paired=True) else stats.one_sample_t_test(x, ref)
    e = Evidence(
        context,
        metric,
        a,
        Side(ref_name, Interval(ref, ref, ref, 0)),
        expect,
        test.name,
        test.p_value,
        flips.p_value,
        stats.cohen_dz(x, ref),
        stats.ratio(a.stats.mean, ref),
        "",
        "",
        **_scale(_sd(x), _shifted(stats.t_interval(x), -ref), paired=True),
        n=(len(x), MIN_SEEDS),  # the reference is exact: only side A needs MIN_SEEDS values
        spread=not stats.is_constant(x),
        separated=not stats.contains(a.stats, ref),
        note=note,
    )
    return _judged(e, test.p_value)


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
    e = Evidence(
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
        "",
        "",
        n=(n_a, n_b),
        note=note,
    )
    return _judged(e, test.p_value)


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
        n=(len(x), 0),
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
    """Claim verdict from its deciding comparisons (rules in the module docstring) with a one-line
    reason: the tally, then the first comparison of each kind that decided (or left open) it."""
    primaries = [e for e in evidence if deciding(e)]
    if not primaries:
        secondary = any(e.role == "secondary" for e in evidence)
        why = "no primary comparison could be made (only secondary ones)" if secondary else ""
        return NOT_MEASURED, "; ".join(p for p in [why, *notes] if p) or "no trials with the needed columns"
    by = {v: [e for e in primaries if e.verdict == v] for v in (SUPPORTED, CONTRADICTED)}
    n_inc = len(primaries) - len(by[SUPPORTED]) - len(by[CONTRADICTED])
    tally = (
        f"{len(by[SUPPORTED])} supported, {len(by[CONTRADICTED])} contradicted, "
        f"{n_inc} inconclusive of {len(primaries)} primary comparison(s)"
    )
    if len(by[SUPPORTED]) == len(primaries):
        verdict, shown = SUPPORTED, by[SUPPORTED][:1]
    elif by[CONTRADICTED] and not by[SUPPORTED]:
        verdict, shown = CONTRADICTED, by[CONTRADICTED][:1]
    elif by[SUPPORTED] and by[CONTRADICTED]:
        verdict, shown = INCONCLUSIVE, by[SUPPORTED][:1] + by[CONTRADICTED][:1]
        tally = "mixed: " + tally
    else:
        verdict, shown = INCONCLUSIVE, [e for e in primaries if e.verdict == INCONCLUSIVE][:1] or primaries[:1]
    if len(primaries) == 1:
        tally = ""
    parts = [tally] + [f"[{e.context}, {e.metric}] {e.reason}" for e in shown]
    return verdict, "; ".join(p for p in [*parts, *notes] if p)


def key_evidence(evidence: Sequence[Evidence], verdict: str) -> Evidence | None:
    """The comparison that best stands for the claim's verdict: the first deciding comparison with
    that verdict, else the first deciding one (inconclusive claims: the smallest adjusted p)."""
    primaries = [e for e in evidence if deciding(e)]
    same = [e for e in primaries if e.verdict == verdict]
    if same:
        return same[0]
    ranked = sorted(primaries, key=lambda e: e.p_adjusted if math.isfinite(e.p_adjusted) else math.inf)
    return ranked[0] if ranked else None


def _join(reason: str, note: str) -> str:
    return f"{reason}; {note}" if note else reason
