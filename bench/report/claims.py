"""The lecture's pros/cons as claims: data records for "metric X of family A vs family B", small
pure functions for the composite ones.

Each claim's `evaluate(df)` returns the comparisons it could make (bench.report.evidence.Evidence,
one per dataset/budget context, pair of models and metric) and notes on what it could not compare.
`evaluate_claims` then Holm-adjusts the p-values of every deciding comparison of the table as one
family, and each verdict follows from `evidence.combine`. Models are suite labels (a family may
appear under several labels); only `status == "ok"` rows give metric values, `diverged` rows count
as divergences. Baseline families (`copy`, `gmm`) appear as reference comparisons where they have
values and never decide a verdict. Claim texts are quoted from the lecture (section 4.1 "Summary";
the flow claim from section 3), "what is measured" from the claims table in errata.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench.report import evidence as ev
from bench.report import instability
from bench.report.columns import REFERENCES, THROUGHPUT, curve_rate_key, is_points
from bench.report.data import finite, parse_json
from bench.report.evidence import HIGHER, LOWER, Evidence
from bench.report.pairwise import (
    MEASURES,
    SAMPLE_PROTOCOL,
    SPEED_PROTOCOL,
    Outcome,
    PairwiseClaim,
    contexts,
    families_with,
    missing_note,
    models,
    ok_rows,
)

IMPUTE_VS_MEAN = "impute_mse vs impute_mse_baseline"
MEAN_IMPUTATION = "mean imputation"
COST_EXPONENT = "cost exponent d log(s/sample) / d log steps"
MASS_TOLERANCE = 0.01  # |∫p − 1| allowed for a normalised density on the grid (±1 %)
FLOW_KINDS = ("exact", "dequantized")  # exact density of the model; dequantized: a bound on discrete data


@dataclass(frozen=True)
class Composite:
    """A claim that no single pairwise comparison expresses."""

    compared: str  # the sides, e.g. "gan vs other families"
    metric: str  # result columns the verdict uses
    evaluate: Callable[[pd.DataFrame], Outcome]


@dataclass(frozen=True)
class Primary:
    """The pre-registered comparison that decides a claim on one kind of data: `metric` (a result
    column or a composite claim's derived measure; throughput: whichever of its columns the context
    clock reads) of the claim's family against side `versus` (a family, or a composite's fixed side)."""

    metric: tuple[str, ...]  # the comparison's metric is one of these
    versus: str  # side B's family or fixed reference ("" = any side)

    def matches(self, e: Evidence) -> bool:
        return e.metric in self.metric and (not self.versus or (e.b_family or e.b.name) == self.versus)


def on_both(metric: tuple[str, ...], versus: str) -> dict[str, Primary]:
    return {"points": Primary(metric, versus), "image": Primary(metric, versus)}


@dataclass(frozen=True)
class Claim:
    claim_id: str  # stable id, the row key of claims.csv
    family: str  # family the lecture attributes the pro/con to
    text: str  # as the lecture states it
    measured_as: str  # what is measured (errata claims table)
    test: PairwiseClaim | Composite  # how the results decide it
    primary: Mapping[str, Primary]  # data kind -> the one comparison that decides there
    tuning: Callable[[pd.DataFrame], list[Evidence]] | None = None  # secondary evidence from tuning rows

    @property
    def compared(self) -> str:
        return self.test.compared

    @property
    def metric(self) -> str:
        return self.test.metric

    def evaluate(self, df: pd.DataFrame, tuning: pd.DataFrame | None = None) -> Outcome:
        found, notes = self.test.evaluate(df)
        if self.tuning is not None and tuning is not None and not tuning.empty:
            found = [*found, *self.tuning(tuning)]  # no data kind: never a primary
        kinds = {ctx: "points" if is_points(rows) else "image" for ctx, rows in contexts(df)}
        return [replace(e, role=self.role(e, kinds.get(e.context))) for e in found], notes

    def role(self, e: Evidence, kind: str | None) -> str:
        if e.reference:
            return "reference"
        if e.metric == "nll_kind":  # a wrong estimator label is a fact, not a statistic: it always decides
            return "primary"
        primary = self.primary.get(kind)
        return "primary" if primary is not None and primary.matches(e) else "secondary"


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    evidence: tuple[Evidence, ...]
    verdict: str
    reason: str


# ---------------------------------------------------------------- composite claims


def vae_handles_missing_data(df: pd.DataFrame) -> Outcome:
    """VAE imputation error vs mean imputation on the same masked inputs (paired by trial), and
    vs every other family that imputes (Welch; baselines as references); lower is predicted."""
    found, notes = [], []
    ok = ok_rows(df)
    imputers = [f for f in families_with(ok, "impute_mse") if f != "vae"]
    for ctx, rows in contexts(ok):
        rows = rows[np.isfinite(rows["impute_mse"].to_numpy(dtype=float))]
        for v_name, v_rows in models(rows, ["vae"]):
            found.append(
                ev.compare_paired(
                    ctx,
                    IMPUTE_VS_MEAN,
                    v_name,
                    v_rows["impute_mse"].to_numpy(),
                    MEAN_IMPUTATION,
                    v_rows["impute_mse_baseline"].to_numpy(),
                    LOWER,
                )
            )
            if np.isfinite(v_rows["impute_mse_knn"].to_numpy(dtype=float)).all():
                found.append(  # secondary: a real baseline, on the same masks
                    ev.compare_paired(
                        ctx,
                        "impute_mse vs impute_mse_knn",
                        v_name,
                        v_rows["impute_mse"].to_numpy(),
                        "5-NN imputation",
                        v_rows["impute_mse_knn"].to_numpy(),
                        LOWER,
                    )
                )
            for fam in imputers:
                for o_name, o_rows in models(rows, [fam]):
                    v, o = finite(v_rows, "impute_mse"), finite(o_rows, "impute_mse")
                    found.append(
                        ev.compare_means(ctx, "impute_mse", v_name, v, o_name, o, LOWER, reference=fam in REFERENCES)
                    )
    if not found:
        notes.append(missing_note(df, ["vae"], "impute_mse"))
    return found, notes


def cost_exponent(curve_text: str, rate: str = "samples_per_s") -> float:
    """Slope of log(seconds per sample) on log(steps) over a steps_curve, read by its `rate` entry
    (the deciding clock's): 1 = cost linear in the number of sampling steps, 0 = no growth. NaN with
    fewer than 2 distinct step counts."""
    points = parse_json(curve_text) or []
    pairs = [
        (float(p["steps"]), float(p[rate])) for p in points if isinstance(p, dict) and p.get("steps") and p.get(rate)
    ]
    pairs = [(s, v) for s, v in pairs if s > 0 and v > 0 and np.isfinite(s) and np.isfinite(v)]
    if len({s for s, _ in pairs}) < 2:
        return float("nan")
    steps, speed = np.array(pairs).T
    return float(np.polyfit(np.log(steps), -np.log(speed), 1)[0])


DDPM_SLOWER = PairwiseClaim("ddpm", None, "throughput", better="b", protocol=SPEED_PROTOCOL)


def ddpm_sampling_expensive(df: pd.DataFrame) -> Outcome:
    """DDPM throughput lower than each other family (equal batch/device, log scale), and sampling
    cost growing with the number of steps (cost exponent > 0 across seeds)."""
    found, notes = DDPM_SLOWER.evaluate(df)
    for ctx, rows in contexts(ok_rows(df)):
        for d_name, d_rows in models(rows, ["ddpm"]):
            rate = curve_rate_key(d_rows)
            exps = np.array([cost_exponent(c, rate) for c in d_rows["steps_curve"]])
            if np.isfinite(exps).any():
                found.append(
                    ev.compare_to_reference(
                        ctx,
                        COST_EXPONENT,
                        d_name,
                        exps,
                        "0 (no growth)",
                        0.0,
                        HIGHER,
                        note="1 = linear in steps",
                    )
                )
    if any(not e.reference for e in found):  # the pairwise "missing" note is moot once there is evidence
        notes = [n for n in notes if not n.startswith("needs ")]
    return found, notes


def flow_exact_likelihood(df: pd.DataFrame) -> Outcome:
    """The flow's density integrates to 1 (±1 %) on the 2-D grid (density_mass, one comparison
    per context), it reports nll_kind 'exact' (or 'dequantized' on discrete images: the exact
    density of the dequantized data, a bound on the discrete likelihood), and GAN/VAE do not
    report 'exact': a wrong kind is one more, contradicting, comparison."""
    ok = ok_rows(df)
    found, notes = [], []
    kinds = {f: sorted(set(ok.loc[ok["family"] == f, "nll_kind"]) - {""}) for f in ("flow", "gan", "vae")}
    notes.append("nll_kind: " + "; ".join(f"{f} {'/'.join(k) or 'n/a'}" for f, k in kinds.items()))
    wrong = [f"flow reports {k!r}" for k in kinds["flow"] if k not in FLOW_KINDS]
    wrong += [f"{f} reports 'exact'" for f in ("gan", "vae") if "exact" in kinds[f]]
    for ctx, rows in contexts(ok):
        for f_name, f_rows in models(rows, ["flow"]):
            mass = finite(f_rows, "density_mass")
            if len(mass):
                found.append(ev.check_mass(ctx, "density_mass", f_name, mass, MASS_TOLERANCE))
    if wrong and kinds["flow"]:
        found.append(ev.label_mismatch("all", "nll_kind", "flow", "exact", "; ".join(wrong)))
    if not found:
        notes.insert(0, "needs ok flow trials on 2-D data with density_mass")
    return found, notes


# ---------------------------------------------------------------- the registry

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "gan-faster-than-flow",
        "gan",
        "Sample generation is faster compared with flow-based methods as it does not need to "
        "generate the full sequence.",
        "samples per second of the device's clock at each family's best batch, GAN vs flow, same device and clock",
        PairwiseClaim("gan", ("flow",), "throughput", better="a", protocol=SPEED_PROTOCOL),
        on_both(THROUGHPUT, "flow"),
    ),
    Claim(
        "gan-no-bias-vs-vae",
        "gan",
        "Don't introduce any deterministic bias compared with VAE",
        "sample quality (FID, C2ST AUC on images; precision, recall, C2ST AUC on 2-D points), GAN vs VAE",
        PairwiseClaim("gan", ("vae",), "sample_quality", better="a", protocol=SAMPLE_PROTOCOL),
        {"points": Primary(("c2st_auc",), "vae"), "image": Primary(("fid",), "vae")},
    ),
    Claim(
        "gan-nash-equilibrium-hard",
        "gan",
        "Training a GAN requires finding a Nash equilibrium(hard)",
        "oscillation of the quality trajectory inside each trial (primary on 2-D data, where its control "
        "runs; secondary on images); FID seed spread, divergence and collapse rates, tuning-objective "
        "spread and collapse rate across configurations (secondary)",
        Composite(
            "gan vs other families",
            "fid_oscillation; fid (seed spread), status=diverged, collapsed",
            instability.gan_training_unstable,
        ),
        # points only: the instability controls (a perfect sampler, a GAN at 10x its learning rate) run
        # on the suite's 2-D data, so on images no control shows fid_oscillation sees its effect
        {"points": Primary((instability.OSCILLATION,), instability.OTHERS)},
        tuning=lambda t: [replace(e, b_family=instability.OTHERS) for e in instability.gan_tuning_unstable(t)],
    ),
    Claim(
        "vae-missing-data",
        "vae",
        "Can handle missing data effectively, allowing for more robust analysis.",
        "imputation error on masked test inputs",
        Composite(
            "vae vs mean imputation and other imputing families",
            "impute_mse, impute_mse_baseline",
            vae_handles_missing_data,
        ),
        on_both((IMPUTE_VS_MEAN,), MEAN_IMPUTATION),
    ),
    Claim(
        "vae-samples-blurred",
        "vae",
        "The generated samples are much more blurred than those coming from GANs",
        "blur index of samples relative to real data (< 0 blurred, > 0 noisy), VAE lower than GAN",
        PairwiseClaim("vae", ("gan",), "blur_index", better="b"),
        {"image": Primary(("blur_index",), "gan")},
    ),
    Claim(
        "ddpm-complex-samples",
        "ddpm",
        "Can generate complex samples",
        "FID / KID / mode coverage against the other families",
        PairwiseClaim("ddpm", None, "sample_quality", better="a", protocol=SAMPLE_PROTOCOL),
        {"points": Primary(("c2st_auc",), ""), "image": Primary(("fid",), "")},  # vs every other family
    ),
    Claim(
        "ddpm-sampling-expensive",
        "ddpm",
        "rely on a long Markov chain of diffusion steps to generate samples, thus quite "
        "expensive in terms of time and computation.",
        "samples/s against the other families; cost growth with steps",
        Composite(
            "ddpm vs each other family; ddpm steps curve",
            f"{MEASURES['throughput'].text}; steps_curve",
            ddpm_sampling_expensive,
        ),
        on_both((*THROUGHPUT, COST_EXPONENT), ""),  # slower than every other family, and cost grows with steps
    ),
    Claim(
        "flow-exact-likelihood",
        "flow",
        "Now the exact log-likelihood of input data log p(x) becomes tractable.",
        "NLL kind per family; the flow's density integrates to 1",
        Composite("flow (nll_kind vs gan, vae)", "density_mass, nll_kind", flow_exact_likelihood),
        {"points": Primary(("density_mass",), "")},
    ),
)


def evaluate_claims(
    df: pd.DataFrame,
    claims: Sequence[Claim] = CLAIMS,
    tuning: pd.DataFrame | None = None,
    blind: frozenset[tuple[str, str]] = frozenset(),
) -> list[ClaimResult]:
    """Evaluate every claim on normalized result rows (bench.report.data.normalize) and, where a
    claim reads them, the tuning rows (secondary evidence), Holm-adjusting the deciding comparisons
    of all claims together before the verdicts are combined. `blind`: (measure, dataset) pairs whose
    control was not detected at the suite's n (controls.csv): a primary on such a measure is
    reported as secondary, since no control shows it can see its effect there."""
    if len({c.claim_id for c in claims}) != len(claims):
        raise ValueError("duplicate claim_id in the claims registry")
    outcomes = [_without_blind(c.evaluate(df, tuning), blind) for c in claims]
    flat = ev.holm_adjust([e for found, _ in outcomes for e in found])  # the family: every claim's primaries
    results, start = [], 0
    for claim, (found, notes) in zip(claims, outcomes):
        mine, start = flat[start : start + len(found)], start + len(found)
        verdict, reason = ev.combine(mine, notes)
        results.append(ClaimResult(claim, tuple(mine), verdict, reason))
    return results


def _without_blind(outcome: Outcome, blind: frozenset[tuple[str, str]]) -> Outcome:
    found, notes = outcome
    note = "not deciding: its control was not detected at this n and these seeds (controls.csv)"
    out = [
        replace(e, role="secondary", reason=f"{e.reason}; {note}")
        if ev.deciding(e) and (e.metric, e.context.split("/")[0]) in blind
        else e
        for e in found
    ]
    return out, notes
