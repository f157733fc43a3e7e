"""Statistics over seeds for the report: t-interval, t-tests, permutation tests, rates, effect size.

Every function takes 1-D samples (one value per trial/seed, in the metric's unit) and drops
non-finite values first, so a NaN "not applicable" never turns into a number. Results that cannot be
computed (too few values) are NaN, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

NAN = float("nan")
PERMUTATION_SEED = 0  # fixed so the permutation p-values (and claims.csv) are identical on rerun
PERMUTATION_RESAMPLES = 9999  # scipy enumerates all permutations exactly when there are fewer


@dataclass(frozen=True)
class Interval:
    """Sample mean with a two-sided confidence interval; low/high are NaN when n < 2."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half(self) -> float:
        """Half-width of the interval (NaN when it is undefined)."""
        return (self.high - self.low) / 2.0


@dataclass(frozen=True)
class TestResult:
    name: str  # the test as printed in the report, e.g. "Welch t"
    statistic: float
    p_value: float  # two-sided; NaN when the test is undefined (too few values)


def clean(values: Iterable[float]) -> np.ndarray:
    """1-D float array of the finite values (NaN/inf dropped)."""
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    x = x.reshape(-1)
    return x[np.isfinite(x)]


def is_constant(x: np.ndarray) -> bool:
    """All values equal up to float rounding (relative 1e-12): their sample spread is exactly 0,
    and scipy's tests would only report rounding noise (and warn about it)."""
    return len(x) > 0 and float(np.ptp(x)) <= 1e-12 * max(abs(float(x.mean())), 1e-300)


def t_interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean ± t_{(1+c)/2, n-1} · s/√n over the finite values (Student t-interval)."""
    x = clean(values)
    n = len(x)
    if n == 0:
        return Interval(NAN, NAN, NAN, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, NAN, NAN, n)
    if is_constant(x):
        return Interval(mean, mean, mean, n)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sem
    return Interval(mean, mean - half, mean + half, n)


def welch_difference(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> Interval:
    """mean(a) − mean(b) with its Welch interval (Welch-Satterthwaite df); NaN ends below 2 per side."""
    x, y = clean(a), clean(b)
    if not (len(x) and len(y)):
        return Interval(NAN, NAN, NAN, 0)
    diff = float(x.mean() - y.mean())
    if min(len(x), len(y)) < 2:
        return Interval(diff, NAN, NAN, len(x) + len(y))
    va, vb = float(x.var(ddof=1)) / len(x), float(y.var(ddof=1)) / len(y)
    if va + vb == 0:
        return Interval(diff, diff, diff, len(x) + len(y))
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * math.sqrt(va + vb)
    return Interval(diff, diff - half, diff + half, len(x) + len(y))


def pooled_sd(a: Iterable[float], b: Iterable[float]) -> float:
    """The pooled per-seed standard deviation of two groups (NaN without 3 values in all)."""
    x, y = clean(a), clean(b)
    dof = len(x) + len(y) - 2
    if dof < 1 or min(len(x), len(y)) < 1:
        return NAN
    ss = float(((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum())
    return math.sqrt(ss / dof)


def clip(iv: Interval, low: float, high: float) -> Interval:
    """The interval intersected with a metric's range [low, high] (e.g. precision in [0, 1],
    FID >= 0): the t-interval is symmetric and can leave a bounded range near its edge."""
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return iv
    return Interval(iv.mean, min(max(iv.low, low), high), max(min(iv.high, high), low), iv.n)


def log_t_interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """t-interval on the log scale, mapped back: geometric mean with a multiplicative interval,
    always positive (for throughput, which spans orders of magnitude). Non-positive values dropped."""
    x = clean(values)
    x = x[x > 0]
    iv = t_interval(np.log(x), confidence)
    return Interval(*(math.exp(v) if math.isfinite(v) else NAN for v in (iv.mean, iv.low, iv.high)), iv.n)


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control); NaN entries stay NaN and
    are not counted in the family. Same values as statsmodels' multipletests(method="holm")."""
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(len(p), NAN)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]  # i-th smallest p times (m - i)
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def detectable_difference(a: Iterable[float], b: Iterable[float] | None = None, alpha: float = 0.05) -> float:
    """Smallest true difference of means a two-sided t-test at `alpha` detects with 80 % power,
    (t_{1-α/2, df} + t_{0.8, df}) · SE: Welch SE and df for two groups, the one-sample (or paired,
    pass the differences as `a`) SE with n - 1 df otherwise. NaN with fewer than 2 values on a
    side or no spread at all (the seeds give no scale to detect anything against)."""
    x = clean(a)
    if b is None:
        if len(x) < 2:
            return NAN
        se, df = float(x.std(ddof=1)) / math.sqrt(len(x)), len(x) - 1.0
    else:
        y = clean(b)
        if len(x) < 2 or len(y) < 2:
            return NAN
        va, vb = (0.0 if is_constant(v) else float(v.var(ddof=1)) / len(v) for v in (x, y))
        se = math.sqrt(va + vb)
        if se == 0:
            return NAN
        df = (va + vb) ** 2 / ((va**2 / (len(x) - 1)) + (vb**2 / (len(y) - 1)))
    if not se > 0:
        return NAN
    return (float(stats.t.ppf(1 - alpha / 2, df)) + float(stats.t.ppf(0.8, df))) * se


def proportion_interval(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Rate k/n with the exact (Clopper-Pearson) interval; NaN when n == 0."""
    if n == 0:
        return Interval(NAN, NAN, NAN, 0)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence, method="exact")
    return Interval(k / n, float(ci.low), float(ci.high), int(n))


def overlaps(a: Interval, b: Interval) -> bool:
    """True when the intervals share a point, or when either is undefined (cannot tell apart)."""
    if not all(math.isfinite(v) for v in (a.low, a.high, b.low, b.high)):
        return True
    return a.low <= b.high and b.low <= a.high


def contains(a: Interval, value: float) -> bool:
    """True when value lies in the interval, or when the interval is undefined."""
    if not (math.isfinite(a.low) and math.isfinite(a.high)):
        return True
    return a.low <= value <= a.high


def _constant_case(mx: float, my: float, name: str) -> TestResult:
    # Both samples have zero variance: scipy returns NaN, but the answer is certain either way.
    if mx == my:
        return TestResult(name, 0.0, 1.0)
    return TestResult(name, math.copysign(math.inf, mx - my), 0.0)


def welch_test(a: Iterable[float], b: Iterable[float]) -> TestResult:
    """Welch's unequal-variance t-test of mean(a) == mean(b), two-sided."""
    x, y = clean(a), clean(b)
    if len(x) < 2 or len(y) < 2:
        return TestResult("Welch t", NAN, NAN)
    # A constant side has spread exactly 0 (scipy would compute rounding noise and warn).
    sx, sy = (0.0 if is_constant(v) else float(v.std(ddof=1)) for v in (x, y))
    if sx == 0 and sy == 0:
        return _constant_case(float(x.mean()), float(y.mean()), "Welch t")
    res = stats.ttest_ind_from_stats(float(x.mean()), sx, len(x), float(y.mean()), sy, len(y), equal_var=False)
    return TestResult("Welch t", float(res.statistic), float(res.pvalue))


def paired_t_test(a: Iterable[float], b: Iterable[float]) -> TestResult:
    """Paired t-test of mean(a - b) == 0 on pairs where both values are finite, two-sided."""
    x, y = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    return one_sample_t_test(d, 0.0, name="paired t")


def one_sample_t_test(a: Iterable[float], ref: float, name: str = "one-sample t") -> TestResult:
    """t-test of mean(a) == ref, two-sided."""
    x = clean(a)
    if len(x) < 2:
        return TestResult(name, NAN, NAN)
    if is_constant(x):
        return _constant_case(float(x.mean()), ref, name)
    res = stats.ttest_1samp(x, ref)
    return TestResult(name, float(res.statistic), float(res.pvalue))


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean(d: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(d, axis=axis)


def relabelings(n_a: int, n_b: int) -> int:
    """Distinct splits of n_a + n_b seeds into sides of n_a and n_b (what a permutation test enumerates)."""
    return math.comb(n_a + n_b, n_a)


def permutation_name(arrangements: int, kind: str = "permutation") -> str:
    """The test's name as reported: exact where scipy enumerates every arrangement, else Monte Carlo."""
    return f"exact {kind}" if arrangements <= PERMUTATION_RESAMPLES else f"{kind} ({PERMUTATION_RESAMPLES} draws)"


def permutation_test(a: Iterable[float], b: Iterable[float], seed: int = PERMUTATION_SEED) -> TestResult:
    """Two-sided permutation test of the difference of means (labels shuffled across seeds).

    Exact when the number of distinct relabelings is at most PERMUTATION_RESAMPLES, otherwise Monte
    Carlo with a fixed seed. With 3 vs 3 seeds there are only 20 relabelings, so p >= 0.1; with 6 vs 6,
    924, so p >= 0.0022. The smallest attainable p is 2 / relabelings (two-sided).
    """
    x, y = clean(a), clean(b)
    name = permutation_name(relabelings(len(x), len(y)))
    if len(x) < 2 or len(y) < 2:
        return TestResult(name, NAN, NAN)
    res = stats.permutation_test(
        (x, y),
        _mean_difference,
        vectorized=True,
        n_resamples=PERMUTATION_RESAMPLES,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return TestResult(name, float(res.statistic), float(res.pvalue))


def sign_flip_test(d: Iterable[float], seed: int = PERMUTATION_SEED) -> TestResult:
    """Paired permutation test: sign flips of the differences d (all 2^n where at most
    PERMUTATION_RESAMPLES, else random ones), two-sided; the smallest attainable p is 2 / 2^n."""
    x = clean(d)
    name = permutation_name(2 ** len(x), "sign-flip")
    if len(x) < 2:
        return TestResult(name, NAN, NAN)
    res = stats.permutation_test(
        (x,),
        _mean,
        vectorized=True,
        permutation_type="samples",
        n_resamples=PERMUTATION_RESAMPLES,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return TestResult(name, float(res.statistic), float(res.pvalue))


def fisher_test(k_a: int, n_a: int, k_b: int, n_b: int) -> TestResult:
    """Fisher's exact test of equal rates k_a/n_a vs k_b/n_b, two-sided (statistic: odds ratio)."""
    if n_a == 0 or n_b == 0:
        return TestResult("Fisher exact", NAN, NAN)
    res = stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]])
    return TestResult("Fisher exact", float(res.statistic), float(res.pvalue))


def cohen_d(a: Iterable[float], b: Iterable[float]) -> float:
    """Standardised mean difference (mean(a) - mean(b)) / √((s_a² + s_b²)/2) (Welch-style d).

    ±inf when both samples are constant and differ, NaN with fewer than 2 values on a side.
    """
    x, y = clean(a), clean(b)
    if len(x) < 2 or len(y) < 2:
        return NAN
    diff = float(x.mean() - y.mean())
    scale = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2.0)
    if is_constant(x) and is_constant(y):
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / scale


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is 0 or either is NaN."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return NAN
    return a / b


def cohen_dz(d: Iterable[float], ref: float = 0.0) -> float:
    """One-sample / paired effect size (mean(d) - ref) / s_d; ±inf for a constant d != ref."""
    x = clean(d)
    if len(x) < 2:
        return NAN
    diff = float(x.mean()) - ref
    scale = float(x.std(ddof=1))
    if is_constant(x):
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / scale
