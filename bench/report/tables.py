"""Tables: the per-model summary (mean ± 95 % t-interval over seeds) and the claims tables.

`summarize` gives the tidy numeric summary (summary.csv); `summary_tables` turns it into one display
table per dataset × budget (strings + a mask of the best value per column); `claims_frame` /
`claims_detail` give claims.csv (one row per claim) and claims_detail.csv (one row per comparison).
Writers render a display table to Markdown, LaTeX (booktabs) and HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report import columns
from bench.report.claims import ClaimResult
from bench.report.columns import METRICS, SUMMARY_COLUMNS
from bench.report.evidence import CONTRADICTED, NOT_MEASURED, SUPPORTED, Side, deciding, key_evidence
from bench.report.stats import Interval

GROUP = ("dataset", "budget", "family", "label")
DASH = "—"  # a metric that does not apply or was not measured: never shown as 0
FLOAT_FORMAT = "%.6g"  # fixed float formatting of the CSV files (identical on rerun)
UNIT_NAMES = {"nats": "nats", "bits_per_dim": "bits/dim"}
COPY_MARK = "†"  # after a model's name: it memorizes (median memorization_p < columns.MEMORIZATION_ALPHA)
Z95 = 1.959963984540054  # normal 97.5 % quantile: one seed's NLL gap interval from its per-example stderr


@dataclass(frozen=True)
class DisplayTable:
    title: str  # e.g. "8gaussians / short"
    caption: str  # protocol stamp of the numbers in the table
    cells: pd.DataFrame  # formatted strings
    best: pd.DataFrame  # bool, same shape: best value of its column


# ---------------------------------------------------------------- number formatting


def fmt_num(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) and math.isfinite(x) else DASH


def fmt_interval(iv: Interval) -> str:
    """'mean ± half (n=k)' ('mean [low, high] (n=k)' for an asymmetric interval such as a rate's);
    no interval for n=1; DASH for no value."""
    if iv.n == 0 or not math.isfinite(iv.mean):
        return DASH
    if not math.isfinite(iv.half):
        return f"{fmt_num(iv.mean)} (n={iv.n})"
    if not math.isclose(iv.mean - iv.low, iv.high - iv.mean, rel_tol=1e-6, abs_tol=1e-12):
        return f"{fmt_num(iv.mean)} [{fmt_num(iv.low)}, {fmt_num(iv.high)}] (n={iv.n})"
    return f"{fmt_num(iv.mean)} ± {iv.half:.2g} (n={iv.n})"


def _fmt_side(side: Side) -> str:
    # Reference sides (a fixed target, n=0) show their name only.
    return side.name if side.stats.n == 0 else f"{side.name} {fmt_interval(side.stats)}"


# ---------------------------------------------------------------- summary


def summary_columns() -> list[str]:
    cols = [*GROUP, "n_trials", "n_ok", "n_failed", "n_diverged", "n_collapsed", "nll_unit", "nll_kind", "tuned"]
    for c in SUMMARY_COLUMNS:
        cols += [f"{c}_mean", f"{c}_ci_low", f"{c}_ci_high", f"{c}_n"]
    return cols


def _joined(values: pd.Series) -> str:
    return "/".join(sorted(set(map(str, values)) - {""}))


def _column_interval(ok: pd.DataFrame, col: str) -> Interval:
    iv = columns.interval(ok[col].to_numpy(dtype=float), col)
    if col == "nll_gap_nats" and iv.n == 1:  # one seed: the paired per-example interval of that seed
        se = float(ok["nll_gap_stderr_nats"].to_numpy(dtype=float)[np.isfinite(ok[col].to_numpy(dtype=float))][0])
        if math.isfinite(se):
            return Interval(iv.mean, iv.mean - Z95 * se, iv.mean + Z95 * se, 1)
    return iv


def _collapsed(ok: pd.DataFrame) -> float:
    """Ok trials the GAN collapse detector flagged; NaN where no trial was checked."""
    x = ok["mode_collapsed"].to_numpy(dtype=float)
    return float(np.sum(x[np.isfinite(x)] != 0)) if np.isfinite(x).any() else math.nan


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × budget × family × label: trial counts and, over the ok trials,
    mean / 95 % interval / n of every SUMMARY_COLUMNS column (NaN where nothing was measured).
    Intervals lie inside the column's range; throughput means are geometric (log scale)."""
    records = []
    for key, g in df.groupby(list(GROUP), sort=True):
        ok = g[g["status"] == "ok"]
        rec: dict[str, object] = dict(zip(GROUP, key))
        rec.update(
            n_trials=len(g),
            n_ok=len(ok),
            n_failed=int((g["status"] == "failed").sum()),
            n_diverged=int((g["status"] == "diverged").sum()),
            n_collapsed=_collapsed(ok),
            nll_unit=_joined(ok.loc[np.isfinite(ok["nll"].to_numpy(dtype=float)), "nll_unit"]),
            nll_kind=_joined(ok["nll_kind"]),
            tuned=bool(g["tuned"].any()),
        )
        for c in SUMMARY_COLUMNS:
            iv = _column_interval(ok, c)
            rec.update({f"{c}_mean": iv.mean, f"{c}_ci_low": iv.low, f"{c}_ci_high": iv.high, f"{c}_n": iv.n})
        records.append(rec)
    return pd.DataFrame(records, columns=summary_columns())


def _protocol(rows: pd.DataFrame) -> str:
    ok = rows[rows["status"] == "ok"]
    extractor = _joined(ok["extractor"]) or "n/a"
    hashes = "/".join(sorted({h[:8] for h in ok["extractor_hash"] if h}))
    ints = {
        c: "/".join(sorted({str(int(v)) for v in ok[c] if np.isfinite(v)})) or "n/a"
        for c in ("n_real", "n_fake", "sample_batch")
    }
    weights = _joined(ok["weights_evaluated"])
    return (
        f"features: {extractor}{' @' + hashes if hashes else ''}; n_real {ints['n_real']}, "
        f"n_fake {ints['n_fake']}; sample batch {ints['sample_batch']}; speed clock "
        f"{_joined(ok['speed_clock']) or 'n/a'}; device "
        f"{_joined(ok['device']) or 'n/a'}; mixed precision {_joined(ok['mixed_precision']) or 'n/a'}"
        + (f"; weights evaluated: {weights}" if weights else "")
    )


def _best_mask(summary: pd.DataFrame, col: str) -> np.ndarray:
    """Rows holding the best mean of the column; only marked when at least two rows have a value.
    Baselines are references: they are never marked best. NLLs are compared only among rows of one
    estimator kind (an exact NLL and a bound are different quantities)."""
    mean = summary[f"{col}_mean"].to_numpy(dtype=float)
    have = np.isfinite(mean) & ~summary["family"].isin(columns.BASELINES).to_numpy()
    better = METRICS[col].better
    if better is None:
        return np.zeros(len(mean), dtype=bool)
    if col != "nll":
        return _best_among(mean, have, better)
    kinds = summary["nll_kind"].astype(str).to_numpy()
    groups = [_best_among(mean, have & (kinds == k), better) for k in sorted(set(kinds[have]))]
    return np.logical_or.reduce(groups) if groups else np.zeros(len(mean), dtype=bool)


UNIT_COLUMNS = ("nll", "nll_ode")  # columns in the row's nll_unit: the header names it


def _best_among(mean: np.ndarray, have: np.ndarray, better: str) -> np.ndarray:
    if have.sum() < 2:
        return np.zeros(len(mean), dtype=bool)
    best = np.min(mean[have]) if better == "lower" else np.max(mean[have])
    return have & (mean == best)


def _cell(row: pd.Series, col: str) -> str:
    if METRICS[col].integer:
        return f"{int(round(row[f'{col}_mean'])):,}" if row[f"{col}_n"] else DASH
    return fmt_interval(Interval(row[f"{col}_mean"], row[f"{col}_ci_low"], row[f"{col}_ci_high"], int(row[f"{col}_n"])))


def _model_names(s: pd.DataFrame, copiers: dict[str, float]) -> list[str]:
    names = [lab if lab == fam else f"{lab} ({fam})" for lab, fam in zip(s["label"], s["family"])]
    return [f"{n} {COPY_MARK}" if lab in copiers else n for n, lab in zip(names, s["label"])]


def summary_tables(summary: pd.DataFrame, df: pd.DataFrame) -> list[DisplayTable]:
    """One display table per dataset × budget (units differ across datasets, and budgets are
    not comparable), best value per column marked; columns nothing in the table measured are left
    out, so a small suite's table stays narrow."""
    tables = []
    for (dataset, budget), s in summary.groupby(["dataset", "budget"], sort=True):
        s = s.reset_index(drop=True)
        rows = df[(df["dataset"] == dataset) & (df["budget"] == budget)]
        unit = "/".join(UNIT_NAMES.get(u, u) for u in _joined(s["nll_unit"]).split("/") if u)
        cells = pd.DataFrame({"model": _model_names(s, columns.flagged_copiers(rows))})
        best = pd.DataFrame({"model": np.zeros(len(s), dtype=bool)})
        for c in SUMMARY_COLUMNS:
            if not (s[f"{c}_n"] > 0).any():
                continue
            header = f"{METRICS[c].header} [{unit or 'n/a'}] ↓" if c in UNIT_COLUMNS else METRICS[c].header
            cells[header] = [_cell(r, c) for _, r in s.iterrows()]
            best[header] = _best_mask(s, c)
            if c == "nll":  # estimator named right next to the value it qualifies
                cells["estimator"] = [k if k and k != "none" else DASH for k in s["nll_kind"]]
                best["estimator"] = False
        for col, name in (("n_failed", "failed"), ("n_diverged", "diverged"), ("n_collapsed", "collapsed")):
            if col == "n_collapsed" and not np.isfinite(s[col].to_numpy(dtype=float)).any():
                continue  # no collapse detector ran in this table
            cells[name] = [str(int(v)) if math.isfinite(v) else DASH for v in s[col]]
            best[name] = False
        tables.append(DisplayTable(f"{dataset} / {budget}", _protocol(rows), cells, best))
    return tables


# ---------------------------------------------------------------- claims


def evidence_sentence(r: ClaimResult) -> str:
    """One short sentence behind a claim's verdict: its key comparison and how many agree."""
    e = key_evidence(r.evidence, r.verdict)
    if e is None:
        return r.reason
    deciding = [x for x in r.evidence if not x.reference]
    agree = sum(x.verdict == r.verdict for x in deciding)
    more = f"; {agree} of {len(deciding)} comparisons {r.verdict}" if len(deciding) > 1 else ""
    decided = e.verdict in (SUPPORTED, CONTRADICTED) and math.isfinite(e.p_adjusted)
    why = f"Holm p = {fmt_num(e.p_adjusted)}" if decided else e.reason
    return f"{e.metric} ({e.context}): {_fmt_side(e.a)} vs {_fmt_side(e.b)}, {why}{more}"


def claims_frame(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """claims.csv: one row per lecture claim; the numbers of its key comparison (see
    evidence.key_evidence), the others in claims_detail.csv."""
    rows = []
    family = sum(deciding(x) and math.isfinite(x.p_value) for r in results for x in r.evidence)  # the Holm family
    for r in results:
        e = key_evidence(r.evidence, r.verdict)
        rows.append(
            {
                "claim_id": r.claim.claim_id,
                "family": r.claim.family,
                "claim": r.claim.text,
                "measured_as": r.claim.measured_as,
                "compared": r.claim.compared,
                "metric": r.claim.metric,
                "verdict": r.verdict,
                "evidence": evidence_sentence(r),
                "context": e.context if e else "",
                "p_value": e.p_value if e else math.nan,
                "p_adjusted": e.p_adjusted if e else math.nan,
                "detectable": e.detectable if e else "",
                "seeds_needed": e.seeds_needed if e else math.nan,
                "n_comparisons": sum(not x.reference for x in r.evidence),
                "n_primary": sum(deciding(x) for x in r.evidence),
                "holm_family_size": family,
                "reason": r.reason,
            }
        )
    return pd.DataFrame(rows)


def claims_detail(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """claims_detail.csv: one numeric row per comparison (context × pair of models × metric)."""
    rows = []
    for r in results:
        for e in r.evidence:
            row = {"claim_id": r.claim.claim_id, "context": e.context, "metric": e.metric}
            for tag, side in (("a", e.a), ("b", e.b)):
                row.update(
                    {
                        tag: side.name,
                        f"{tag}_mean": side.stats.mean,
                        f"{tag}_ci_low": side.stats.low,
                        f"{tag}_ci_high": side.stats.high,
                        f"{tag}_n": side.stats.n,
                    }
                )
            row.update(
                expect=e.expect,
                test=e.test,
                p_value=e.p_value,
                p_adjusted=e.p_adjusted,
                p_perm=e.p_perm,
                effect_d=e.effect,
                ratio=e.ratio,
                effect=e.diff,
                effect_low=e.diff_low,
                effect_high=e.diff_high,
                alpha_step=e.alpha_step,
                detectable=e.detectable,
                power_at_effect=e.power_at_effect,
                seeds_needed=e.seeds_needed,
                reference=e.reference,
                role=e.role,
                verdict="reference" if e.reference else e.verdict,
                reason=e.reason,
            )
            rows.append(row)
    cols = (
        ["claim_id", "context", "metric"]
        + [f"{t}{s}" for t in ("a", "b") for s in ("", "_mean", "_ci_low", "_ci_high", "_n")]
        + ["expect", "test", "p_value", "p_adjusted", "p_perm", "effect_d", "ratio", "effect", "effect_low"]
        + ["effect_high", "alpha_step", "detectable", "power_at_effect", "seeds_needed", "reference", "role"]
        + ["verdict", "reason"]
    )
    return pd.DataFrame(rows, columns=cols)


def claims_display(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """The claims table as shown in the report: measured claims only, one row each."""
    measured = [r for r in results if r.verdict != NOT_MEASURED]
    return pd.DataFrame(
        {
            "claim": [f"{r.claim.family}: {r.claim.text}" for r in measured],
            "verdict": [r.verdict for r in measured],
            "evidence": [evidence_sentence(r) for r in measured],
        },
        columns=["claim", "verdict", "evidence"],
    )


def detail_display(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """Every comparison of the measured claims, for the collapsible detail section."""
    rows = [
        {
            "claim": r.claim.claim_id,
            "context": e.context,
            "metric": e.metric,
            "A": _fmt_side(e.a),
            "predicted": e.expect,
            "B": _fmt_side(e.b) + (" (baseline)" if e.reference else ""),
            "test": e.test,
            "p": fmt_num(e.p_value),
            "p (Holm)": fmt_num(e.p_adjusted),
            "detectable": e.detectable or DASH,
            "power": fmt_num(e.power_at_effect),
            "seeds needed": DASH if e.seeds_needed != e.seeds_needed else f"{e.seeds_needed:.0f}",
            "role": e.role,
            "verdict": "reference" if e.reference else e.verdict,
            "reason": e.reason,
        }
        for r in results
        for e in r.evidence
    ]
    cols = ["claim", "context", "metric", "A", "predicted", "B", "test", "p", "p (Holm)", "detectable"]
    cols += ["power", "seeds needed", "role"]
    return pd.DataFrame(rows, columns=[*cols, "verdict", "reason"])


# ---------------------------------------------------------------- renderers


def to_markdown(cells: pd.DataFrame, best: pd.DataFrame | None = None) -> str:
    """A pipe table; best cells in bold (rendered to <strong> in the HTML by the Markdown library)."""
    shown = cells.astype(str).map(lambda s: s.replace("|", "\\|"))  # a bare | ends the cell
    if best is not None:
        shown = shown.where(~best.to_numpy(), "**" + shown + "**")
    return shown.to_markdown(index=False)
