"""The report's sections, in reading order: headline, summary, figures, (tuning), claims, notes.

Each function turns results into one `Section` of Markdown; bench.report.document renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import columns, data, tables
from bench.report.claims import ClaimResult
from bench.report.document import Section
from bench.report.evidence import ALPHA, MIN_SEEDS, NOT_MEASURED, VERDICTS
from bench.report.plotting import Figure
from bench.report.tables import DisplayTable

VERDICT_RULES = (
    f"Each comparison is made within one dataset and budget, over the seeds of the ok trials "
    f"(Welch t; paired t against a baseline; one-sample t against a reference; Fisher's exact test "
    f"for divergence rates). It is *inconclusive* when a side has fewer than {MIN_SEEDS} seeds or no "
    f"spread over its seeds, when its Holm-adjusted p ≥ {ALPHA} (the primary comparisons of the "
    f"table form one family), or when the 95 % intervals of the two means overlap; otherwise "
    f"*supported* or *contradicted* by the observed direction. Each claim pre-registers one primary "
    f"comparison per data kind (a measure against a side); only primaries decide, the others are "
    f"reported as secondary. A claim is supported when every primary supports it, contradicted when "
    f"some contradict it and none supports it, inconclusive otherwise. Every comparison carries the "
    f"rule's power simulated as applied (test, interval rule, its Holm step): the difference its seeds "
    f"detect with 80 % power, the power at the observed effect and the seeds that effect would need. "
    f"Comparisons against the baselines `copy` (training examples: the best "
    f"possible sample quality, and a memorizer) and `gmm` (a fitted Gaussian mixture) are shown in "
    f"the detail for reference and never decide."
)
MEASURE_NOTES = (
    "Sample quality is decided only by measures whose controls show they see an effect at this n (the "
    "section above): on 2-D data precision, recall and the classifier two-sample test's AUC (C2ST: a "
    "cross-fitted classifier telling real from generated examples, 0.5 = indistinguishable); FID on raw "
    "2-D coordinates compares two fitted Gaussians and cannot see modes, and mode coverage is constant "
    "over seeds, so both stay columns only. On images FID, in the named extractor's feature space, and "
    "the C2ST AUC decide.",
    "Loss oscillation is a within-family column, not compared across families: their losses are "
    "different quantities (a discriminator loss, an MSE, a likelihood bound).",
    "Throughput is compared on the log scale and summarized by geometric means; samples per "
    "CPU-second where measured (wall-clock samples/s depends on the machine's load).",
    "Intervals are 95 % t-intervals over seeds, clipped to the metric's range (precision, recall, "
    "mode coverage, C2ST accuracy and copy fraction in [0, 1]; FID ≥ 0).",
)
# What each NLL estimator is: the exact density, or an upper bound on the NLL.
ESTIMATORS = {
    "exact": "exact NLL of the model density",
    "dequantized": "upper bound: one-sample uniform dequantization of the discrete data",
    "elbo": "upper bound: negative evidence lower bound",
    "iwae": "upper bound: importance-weighted bound (tighter than the ELBO as K grows)",
    "vlb": "upper bound: the diffusion variational bound",
    "ode": "the model density by an adaptive ODE solve (exact divergence): exact up to the solver tolerance",
    "ode_dequantized": "upper bound in expectation: an ODE density (Hutchinson divergence) of dequantized data",
}


def _trial_counts(df: pd.DataFrame) -> str:
    counts = df["status"].value_counts()
    return f"{len(df)} trials ({_status_counts(counts)})"


def _budgets(df: pd.DataFrame) -> str:
    parts = []
    for budget, g in df.groupby("budget", sort=True):
        steps = g["train_steps"].to_numpy(dtype=float)
        steps = steps[np.isfinite(steps)]
        parts.append(f"{budget} ({int(steps.max()):,} steps)" if len(steps) else str(budget))
    return ", ".join(parts) or "n/a"


def headline(df: pd.DataFrame, results_dir: Path) -> tuple[str, str]:
    """(title, one paragraph): suite, trials, device, budget, tuned or not, library versions."""
    ok = df[df["status"] == "ok"]
    suites = ", ".join(sorted(set(df["suite"]) - {""})) or results_dir.name
    versions = sorted({f"{k} {v}" for text in ok["versions"] for k, v in (data.parse_json(text) or {}).items()})
    tuned = _tuned_text(df)
    lines = [
        f"**Suite** {suites} · **{_trial_counts(df)}** · **device** "
        f"{', '.join(sorted(set(ok['device']) - {''})) or 'n/a'} · **budget** {_budgets(df)} · "
        f"**{tuned}**",
        f"Datasets: {', '.join(sorted(set(df['dataset']))) or 'n/a'}; mixed precision: "
        f"{', '.join(sorted(set(ok['mixed_precision']) - {''})) or 'n/a'}; versions: {', '.join(versions) or 'n/a'}.",
    ]
    return f"genbench report: {suites}", "\n\n".join(lines)


def _tuned_text(df: pd.DataFrame) -> str:
    """Whether the trials ran tuned configurations, counted from the rows (some may not have)."""
    n = int(df["tuned"].sum())
    if not n:
        return "not tuned (suite hyper-parameters)"
    return "tuned hyper-parameters" if n == len(df) else f"tuned hyper-parameters in {n} of {len(df)} trials"


def summary_section(summaries: Sequence[DisplayTable]) -> Section:
    note = (
        "Mean ± 95 % interval over the ok seeds (n); bold: best of its column (baselines excluded); "
        f"— : not applicable or not measured; {tables.COPY_MARK}: memorizes (median over seeds of the "
        f"C_T test's p that samples copy the training set < {columns.MEMORIZATION_ALPHA}). "
        "NLL gap: model − true NLL on the scored test examples, paired per example."
    )
    parts = [note, ""]
    for t in summaries:
        parts += [f"### {t.title}", "", f"Protocol: {t.caption}", "", tables.to_markdown(t.cells, t.best), ""]
    if not summaries:
        parts.append("No trials.")
    return Section("Summary", "\n".join(parts))


def figures_section(figs: Sequence[Figure]) -> Section:
    drawn = tuple(f for f in figs if f.path is not None)
    skipped = [f"- {f.name}: {f.skipped}" for f in figs if f.path is None]
    body = "\n".join(["Figures not drawn:", "", *skipped]) if skipped else ""
    return Section("Figures", body or "All figures drawn.", drawn)


def claims_section(results: Sequence[ClaimResult]) -> Section:
    counts = pd.Series([r.verdict for r in results]).value_counts()
    tally = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)
    shown = tables.claims_display(results)
    unmeasured = [r.claim.claim_id for r in results if r.verdict == NOT_MEASURED]
    parts = [f"{len(results)} claims of the lecture: {tally}.", ""]
    parts += [tables.to_markdown(shown) if len(shown) else "No claim could be measured by this suite.", ""]
    if unmeasured:
        parts.append(f"Not measurable with this suite: {', '.join(unmeasured)} (see claims.csv for what each needs).")
    detail = tables.detail_display([r for r in results if r.verdict != NOT_MEASURED])
    details = None
    if len(detail):
        details = (f"Every comparison ({len(detail)}), per dataset and budget", tables.to_markdown(detail))
    return Section("Claims", "\n".join(parts), details=details)


def _estimator_notes(df: pd.DataFrame) -> list[str]:
    kinds = sorted(set(df.loc[df["status"] == "ok", "nll_kind"]) - {"", "none"})
    out = []
    for kind in kinds:
        base = kind.split("-")[0]  # iwae-64 -> iwae
        out.append(f"- `{kind}`: {ESTIMATORS.get(base, 'estimator not described')}")
    return out


def _memorization_note(df: pd.DataFrame) -> str:
    flagged = columns.flagged_copiers(df)
    if not flagged:
        measured = "memorization_p" in df and np.isfinite(df["memorization_p"].to_numpy(dtype=float)).any()
        none = f"No model memorizes (median C_T p ≥ {columns.MEMORIZATION_ALPHA} for every model)."
        return none if measured else "Memorization (C_T test) not measured."
    names = ", ".join(f"{k} (p = {v:.2g})" for k, v in flagged.items())
    return f"Flagged as memorizing (median C_T p over seeds < {columns.MEMORIZATION_ALPHA}): {names}."


def _failures(df: pd.DataFrame) -> pd.DataFrame:
    bad = df[df["status"] != "ok"]
    return pd.DataFrame(
        {
            "model": bad["label"],
            "dataset": bad["dataset"],
            "budget": bad["budget"],
            "seed": [str(int(s)) if pd.notna(s) else "" for s in bad["seed"]],
            "status": bad["status"],
            "error": [e.splitlines()[0][:160] if e else "" for e in bad["error"]],
        }
    )


def notes_section(df: pd.DataFrame) -> Section:
    parts = ["**How verdicts are reached.** " + VERDICT_RULES, "", "**Measures.**", ""]
    parts += [f"- {n}" for n in MEASURE_NOTES] + [""]
    estimators = _estimator_notes(df)
    if estimators:
        parts += ["**NLL estimators** (all but `exact` are upper bounds on the NLL, so lower is still better):", ""]
        parts += [*estimators, ""]
    parts += ["**Memorization.** " + _memorization_note(df), ""]
    fails = _failures(df)
    if len(fails):
        parts += ["**Failed and diverged trials.**", "", tables.to_markdown(fails), ""]
    return Section("Notes", "\n".join(parts))


def _status_counts(counts) -> str:
    """ok, failed, diverged always, then any other status present (no-steps, ...): they sum to the trials."""
    known = ("ok", "failed", "diverged")
    others = sorted(str(k) for k in counts.index if k not in known)
    return ", ".join(f"{int(counts.get(k, 0))} {k}" for k in (*known, *others))
