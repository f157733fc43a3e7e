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

from bench.report.claims import ClaimResult
from bench.report.evidence import Evidence, Side
from bench.report.stats import Interval, t_interval

GROUP = ("dataset", "budget", "family", "label")
DASH = "—"  # a metric that does not apply or was not measured: never shown as 0
FLOAT_FORMAT = "%.6g"  # fixed float formatting of the CSV files (identical on rerun)


@dataclass(frozen=True)
class MetricSpec:
    column: str  # bench.schema column
    header: str  # display header, unit included
    better: str | None  # "lower" | "higher" | None (not highlighted)
    integer: bool = False  # display as a whole number without an interval (e.g. params)


SUMMARY_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("nll", "NLL", "lower"),  # header gets the unit; all estimators are exact or upper bounds
    MetricSpec("fid", "FID ↓", "lower"),
    MetricSpec("kid_mean", "KID ↓", "lower"),
    MetricSpec("precision", "precision ↑", "higher"),
    MetricSpec("recall", "recall ↑", "higher"),
    MetricSpec("samples_per_s", "samples/s ↑", "higher"),
    MetricSpec("train_s", "train time [s] ↓", "lower"),
    MetricSpec("params", "params", None, integer=True),
)
UNIT_NAMES = {"nats": "nats", "bits_per_dim": "bits/dim"}


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
    cols = [*GROUP, "n_trials", "n_ok", "n_failed", "n_diverged", "nll_unit", "nll_kind"]
    for m in SUMMARY_METRICS:
        cols += [f"{m.column}_mean", f"{m.column}_ci_low", f"{m.column}_ci_high", f"{m.column}_n"]
    return cols


def _joined(values: pd.Series) -> str:
    return "/".join(sorted(set(map(str, values)) - {""}))


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × budget × family × label: trial counts and, over the ok trials,
    mean / 95 % t-interval / n of every SUMMARY_METRICS column (NaN where nothing was measured)."""
    records = []
    for key, g in df.groupby(list(GROUP), sort=True):
        ok = g[g["status"] == "ok"]
        rec: dict[str, object] = dict(zip(GROUP, key))
        rec.update(
            n_trials=len(g),
            n_ok=len(ok),
            n_failed=int((g["status"] == "failed").sum()),
            n_diverged=int((g["status"] == "diverged").sum()),
            nll_unit=_joined(ok.loc[np.isfinite(ok["nll"].to_numpy(dtype=float)), "nll_unit"]),
            nll_kind=_joined(ok["nll_kind"]),
        )
        for m in SUMMARY_METRICS:
            iv = t_interval(ok[m.column].to_numpy(dtype=float))
            rec.update(
                {
                    f"{m.column}_mean": iv.mean,
                    f"{m.column}_ci_low": iv.low,
                    f"{m.column}_ci_high": iv.high,
                    f"{m.column}_n": iv.n,
                }
            )
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
    return (
        f"features: {extractor}{' @' + hashes if hashes else ''}; n_real {ints['n_real']}, "
        f"n_fake {ints['n_fake']}; sample batch {ints['sample_batch']}; device "
        f"{_joined(ok['device']) or 'n/a'}; "
        f"mixed precision {_joined(ok['mixed_precision']) or 'n/a'}"
    )


def _best_mask(summary: pd.DataFrame, m: MetricSpec) -> np.ndarray:
    """Rows holding the best mean of the column; only marked when at least two rows have a value."""
    mean = summary[f"{m.column}_mean"].to_numpy(dtype=float)
    have = np.isfinite(mean)
    if m.better is None or have.sum() < 2:
        return np.zeros(len(mean), dtype=bool)
    best = np.nanmin(mean) if m.better == "lower" else np.nanmax(mean)
    return have & (mean == best)


def _cell(row: pd.Series, m: MetricSpec) -> str:
    if m.integer:
        return f"{int(round(row[f'{m.column}_mean'])):,}" if row[f"{m.column}_n"] else DASH
    iv = Interval(
        row[f"{m.column}_mean"],
        row[f"{m.column}_ci_low"],
        row[f"{m.column}_ci_high"],
        int(row[f"{m.column}_n"]),
    )
    return fmt_interval(iv)


def summary_tables(summary: pd.DataFrame, df: pd.DataFrame) -> list[DisplayTable]:
    """One display table per dataset × budget (units differ across datasets, and budgets are
    not comparable), best value per column marked."""
    tables = []
    for (dataset, budget), s in summary.groupby(["dataset", "budget"], sort=True):
        s = s.reset_index(drop=True)
        unit = "/".join(UNIT_NAMES.get(u, u) for u in _joined(s["nll_unit"]).split("/") if u)
        cells = pd.DataFrame(
            {
                "model": [lab if lab == fam else f"{lab} ({fam})" for lab, fam in zip(s["label"], s["family"])],
            }
        )
        best = pd.DataFrame({"model": np.zeros(len(s), dtype=bool)})
        for m in SUMMARY_METRICS:
            header = f"NLL [{unit or 'n/a'}] ↓" if m.column == "nll" else m.header
            cells[header] = [_cell(r, m) for _, r in s.iterrows()]
            best[header] = _best_mask(s, m)
            if m.column == "nll":  # estimator named right next to the value it qualifies
                cells["NLL estimator"] = [k if k and k != "none" else DASH for k in s["nll_kind"]]
                best["NLL estimator"] = False
        for col, name in (("n_failed", "failed"), ("n_diverged", "diverged")):
            cells[name] = [str(int(v)) for v in s[col]]
            best[name] = False
        rows = df[(df["dataset"] == dataset) & (df["budget"] == budget)]
        tables.append(DisplayTable(f"{dataset} / {budget}", _protocol(rows), cells, best))
    return tables


# ---------------------------------------------------------------- claims


def _keys(evidence: Sequence[Evidence]) -> tuple[list[str], list[str]]:
    """Prefixes per comparison: '[context]' (plus the metric when a claim uses several) for side A,
    and the same plus 'vs B' when several comparisons share context and metric."""
    multi_metric = len({e.metric for e in evidence}) > 1
    base = [f"{e.context}, {e.metric}" if multi_metric else e.context for e in evidence]
    full = [f"[{k} vs {e.b.name}]" if base.count(k) > 1 else f"[{k}]" for k, e in zip(base, evidence)]
    return [f"[{k}]" for k in base], full


def _join_parts(parts: list[str]) -> str:
    """Join per-comparison texts, dropping exact repeats (side A recurs once per B)."""
    return "; ".join(dict.fromkeys(parts)) if parts else DASH


def claims_frame(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """claims.csv: one row per claim; numbers per comparison joined as '[context] …'."""
    rows = []
    for r in results:
        e = r.evidence
        a_keys, keys = _keys(e)
        rows.append(
            {
                "claim_id": r.claim.claim_id,
                "family": r.claim.family,
                "claim": r.claim.text,
                "measured_as": r.claim.measured_as,
                "compared": r.claim.compared,
                "metric": r.claim.metric,
                "side_a": _join_parts([f"{k} {_fmt_side(x.a)}" for k, x in zip(a_keys, e)]),
                "side_b": _join_parts([f"{k} {_fmt_side(x.b)}" for k, x in zip(keys, e)]),
                "test": "; ".join(sorted({x.test for x in e})) or DASH,
                "p_value": _join_parts([f"{k} {fmt_num(x.p_value)}" for k, x in zip(keys, e)]),
                "effect_size": _join_parts(
                    [f"{k} d={fmt_num(x.effect)}, ratio={fmt_num(x.ratio)}" for k, x in zip(keys, e)]
                ),
                "verdict": r.verdict,
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
                p_perm=e.p_perm,
                effect_d=e.effect,
                ratio=e.ratio,
                verdict=e.verdict,
                reason=e.reason,
            )
            rows.append(row)
    cols = (
        ["claim_id", "context", "metric"]
        + [f"{t}{s}" for t in ("a", "b") for s in ("", "_mean", "_ci_low", "_ci_high", "_n")]
        + ["expect", "test", "p_value", "p_perm", "effect_d", "ratio", "verdict", "reason"]
    )
    return pd.DataFrame(rows, columns=cols)


def claims_display(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """The claims table as shown in the report."""
    frame = claims_frame(results)
    keep = [
        "family",
        "claim",
        "compared",
        "side_a",
        "side_b",
        "test",
        "p_value",
        "effect_size",
        "verdict",
        "reason",
    ]
    return frame[keep].rename(
        columns={
            "side_a": "A: mean ± 95 % CI (n)",
            "side_b": "B",
            "p_value": "p",
            "effect_size": "effect",
        }
    )


# ---------------------------------------------------------------- renderers


def to_markdown(cells: pd.DataFrame, best: pd.DataFrame | None = None) -> str:
    shown = cells.astype(str).map(lambda s: s.replace("|", "\\|"))  # a bare | ends the cell
    if best is not None:
        shown = shown.where(~best.to_numpy(), "**" + shown + "**")
    return shown.to_markdown(index=False)


_LATEX_ESCAPES = (
    ("&", r"\&"),
    ("%", r"\%"),
    ("$", r"\$"),
    ("#", r"\#"),
    ("_", r"\_"),
    ("{", r"\{"),
    ("}", r"\}"),
    ("~", r"\textasciitilde{}"),
    ("^", r"\textasciicircum{}"),
)


def _latex_escape(text: str) -> str:
    """Escape LaTeX specials in free text (the caption; Styler escapes the cells itself)."""
    text = text.replace("\\", "\0")  # backslash last, so its braces are not escaped again
    for a, b in _LATEX_ESCAPES:
        text = text.replace(a, b)
    return text.replace("\0", r"\textbackslash{}")


# Unicode in cells/headers that pdflatex does not take without extra packages.
_LATEX_SYMBOLS = (
    ("±", r"$\pm$"),
    ("↓", r"$\downarrow$"),
    ("↑", r"$\uparrow$"),
    ("—", "---"),
    (">=", r"$\geq$"),
    ("<=", r"$\leq$"),
    ("≈", r"$\approx$"),
    ("·", r"$\cdot$"),
)


def to_latex(cells: pd.DataFrame, best: pd.DataFrame | None, caption: str, label: str) -> str:
    """A booktabs table (pandas Styler, hrules=True); best cells in bold."""
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    if best is not None:
        mask = best.to_numpy()
        styler = styler.apply(lambda _: np.where(mask, "textbf:--rwrap;", ""), axis=None)
    tex = styler.to_latex(hrules=True, caption=_latex_escape(caption), label=label)
    for a, b in _LATEX_SYMBOLS:
        tex = tex.replace(a, b)
    return tex


def to_html(cells: pd.DataFrame, best: pd.DataFrame | None, uuid: str) -> str:
    """An HTML table (pandas Styler) with a fixed uuid so the output is identical on rerun."""
    styler = cells.style.hide(axis="index").set_uuid(uuid)
    if best is not None:
        mask = best.to_numpy()
        styler = styler.apply(lambda _: np.where(mask, "font-weight: bold", ""), axis=None)
    return styler.to_html()
