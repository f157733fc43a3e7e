"""`write_report(results_dir)`: summary.csv, claims.csv, claims_detail.csv, tables.tex,
figures/*.png, report.md and a self-contained report.html (figures embedded as base64).

Nothing in the written files depends on the clock or on random state, so the CSV files are
byte-identical when the report is regenerated from the same trials.
"""

from __future__ import annotations

import base64
import html
import logging
import os
from pathlib import Path

import pandas as pd

from bench.report import claims, data, figures, tables
from bench.report.evidence import ALPHA, MIN_SEEDS, VERDICTS
from bench.report.tables import FLOAT_FORMAT, DisplayTable

log = logging.getLogger(__name__)

OUTPUTS = (
    "report.md",
    "report.html",
    "tables.tex",
    "claims.csv",
    "claims_detail.csv",
    "summary.csv",
)

VERDICT_RULES = (
    f"Each comparison is made within one dataset and budget, over the seeds of the ok trials. "
    f"It is *inconclusive* when a side has fewer than {MIN_SEEDS} seeds, when the two-sided test's "
    f"p ≥ {ALPHA} (Welch t for two groups; paired t against a baseline; one-sample t against a "
    f"reference; Fisher's exact test for divergence rates), or when the 95 % t-intervals of the "
    f"two means overlap (paired / one-sample: when the interval of the difference contains 0; "
    f"rates: no interval rule); otherwise *supported* if the direction is the one the claim "
    f"predicts, else *contradicted*. Permutation-test p-values (fixed seed) are reported in the "
    f"detail table but do not decide. A claim is supported when some of its comparisons support "
    f"it and none contradicts it, contradicted in the mirror case, inconclusive when they are "
    f"mixed or undecided, and *not measured* when the results hold no comparison for it. "
    f"The flow claim checks each flow trial's density integral on the 2-D grid (density_mass): "
    f"all within 1 ± 1 % supports it, any above 1.01 contradicts it, any below 0.99 leaves it "
    f"inconclusive (mass beyond the grid is possible); nll_kind must be 'exact' for the flow "
    f"and not for GAN/VAE (a wrong kind is a contradicting comparison)."
)
SUMMARY_NOTE = (
    "Mean ± 95 % t-interval over the ok seeds (n). **Bold**: best value of its column within the "
    "table (lower NLL/FID/KID/train time, higher precision/recall/samples/s). — : not applicable "
    "or not measured (the GAN has no likelihood). NLL estimators: exact (flow), elbo / iwae-K "
    "(VAE), vlb (DDPM); all but exact are upper bounds on the NLL, so lower is still better."
)


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format=FLOAT_FORMAT, na_rep="", lineterminator="\n")


def _overview(df: pd.DataFrame) -> list[str]:
    counts = df["status"].value_counts()
    ok = df[df["status"] == "ok"]
    versions = sorted({f"{k} {v}" for text in ok["versions"] for k, v in (data.parse_json(text) or {}).items()})
    return [
        f"{len(df)} trials: {int(counts.get('ok', 0))} ok, {int(counts.get('failed', 0))} failed, "
        f"{int(counts.get('diverged', 0))} diverged.",
        f"Devices: {', '.join(sorted(set(ok['device']) - {''})) or 'n/a'}; mixed precision: "
        f"{', '.join(sorted(set(ok['mixed_precision']) - {''})) or 'n/a'}; "
        f"versions: {', '.join(versions) or 'n/a'}.",
    ]


def _tally(claims_tab: pd.DataFrame) -> str:
    counts = claims_tab["verdict"].value_counts()
    parts = [f"{int(counts[v])} {v}" for v in VERDICTS if v in counts]
    return f"{len(claims_tab)} claims: " + ", ".join(parts) + "."


def _detail_display(detail: pd.DataFrame) -> pd.DataFrame:
    def side(tag: str) -> list[str]:
        return [
            name if n == 0 else f"{name} {tables.fmt_interval(tables.Interval(m, lo, hi, int(n)))}"
            for name, m, lo, hi, n in zip(
                detail[tag],
                detail[f"{tag}_mean"],
                detail[f"{tag}_ci_low"],
                detail[f"{tag}_ci_high"],
                detail[f"{tag}_n"],
            )
        ]

    return pd.DataFrame(
        {
            "claim": detail["claim_id"],
            "context": detail["context"],
            "metric": detail["metric"],
            "A": side("a"),
            "predicted": detail["expect"],
            "B": side("b"),
            "test": detail["test"],
            "p": [tables.fmt_num(p) for p in detail["p_value"]],
            "p (perm.)": [tables.fmt_num(p) for p in detail["p_perm"]],
            "d": [tables.fmt_num(d) for d in detail["effect_d"]],
            "verdict": detail["verdict"],
            "reason": detail["reason"],
        }
    )


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


def _markdown(
    title: str,
    overview: list[str],
    claims_tab: pd.DataFrame,
    detail: pd.DataFrame,
    summaries: list[DisplayTable],
    figs: list[figures.Figure],
    fails: pd.DataFrame,
) -> str:
    out = [
        f"# {title}",
        "",
        *overview,
        "",
        "## Claims: the lecture's pros and cons, measured",
        "",
        _tally(claims_tab),
        "",
        tables.to_markdown(claims_tab),
        "",
        VERDICT_RULES,
        "",
        "### Evidence per comparison",
        "",
    ]
    out += [tables.to_markdown(detail) if len(detail) else "No comparison could be made.", ""]
    out += ["## Summary per dataset and budget", "", SUMMARY_NOTE, ""]
    for t in summaries:
        out += [
            f"### {t.title}",
            "",
            f"Protocol: {t.caption}",
            "",
            tables.to_markdown(t.cells, t.best),
            "",
        ]
    out += ["## Figures", ""]
    for f in figs:
        if f.path is not None:
            out += [f"### {f.caption}", "", f"![{f.caption}](figures/{f.path.name})", ""]
    skipped = [f"- {f.name}: {f.skipped}" for f in figs if f.path is None]
    if skipped:
        out += ["Figures not drawn:", "", *skipped, ""]
    if len(fails):
        out += ["## Failed and diverged trials", "", tables.to_markdown(fails), ""]
    return "\n".join(out)


_CSS = (
    "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f3f3f3}"
    "img{max-width:100%}"
)


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html(
    title: str,
    overview: list[str],
    claims_tab: pd.DataFrame,
    detail: pd.DataFrame,
    summaries: list[DisplayTable],
    figs: list[figures.Figure],
    fails: pd.DataFrame,
) -> str:
    e = html.escape
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
    ]
    out += [f"<p>{e(line)}</p>" for line in overview]
    out += [
        "<h2>Claims: the lecture's pros and cons, measured</h2>",
        f"<p>{e(_tally(claims_tab))}</p>",
        tables.to_html(claims_tab, None, "claims"),
        f"<p>{e(VERDICT_RULES)}</p>",
        "<h3>Evidence per comparison</h3>",
        tables.to_html(detail, None, "detail") if len(detail) else "<p>No comparison.</p>",
        "<h2>Summary per dataset and budget</h2>",
        f"<p>{e(SUMMARY_NOTE)}</p>",
    ]
    for i, t in enumerate(summaries):
        out += [
            f"<h3>{e(t.title)}</h3><p>Protocol: {e(t.caption)}</p>",
            tables.to_html(t.cells, t.best, f"summary{i}"),
        ]
    out += ["<h2>Figures</h2>"]
    for f in figs:
        if f.path is not None:  # embedded: the HTML file stands alone
            out += [
                f"<figure><img src='{_embed(f.path)}' alt='{e(f.caption)}'>"
                f"<figcaption>{e(f.caption)}</figcaption></figure>"
            ]
        else:
            out += [f"<p>Figure {e(f.name)} not drawn: {e(f.skipped)}</p>"]
    if len(fails):
        out += ["<h2>Failed and diverged trials</h2>", tables.to_html(fails, None, "failures")]
    return "\n".join(out + ["</body></html>"])


def _latex(claims_tab: pd.DataFrame, summaries: list[DisplayTable]) -> str:
    out = ["% genbench tables: needs \\usepackage{booktabs}", ""]
    for i, t in enumerate(summaries):
        out += [tables.to_latex(t.cells, t.best, f"{t.title}. {t.caption}", f"tab:summary{i}"), ""]
    out += [tables.to_latex(claims_tab, None, "Claims of the lecture, measured", "tab:claims")]
    return "\n".join(out)


def write_report(results_dir: Path) -> Path:
    """Write the report files into results_dir (see module docstring); returns report.md's path."""
    results_dir = Path(results_dir)
    df = data.load(results_dir)
    log.info("report on %d trials in %s", len(df), results_dir)
    summary = tables.summarize(df)
    results = claims.evaluate_claims(df)
    detail = tables.claims_detail(results)
    _write_text(results_dir / "summary.csv", _csv(summary))
    _write_text(results_dir / "claims.csv", _csv(tables.claims_frame(results)))
    _write_text(results_dir / "claims_detail.csv", _csv(detail))

    figs = figures.draw_all(df, results_dir, results_dir / "figures")
    summaries = tables.summary_tables(summary, df)
    claims_tab, detail_tab, fails = (
        tables.claims_display(results),
        _detail_display(detail),
        _failures(df),
    )
    suites = ", ".join(sorted(set(df["suite"]) - {""})) or results_dir.name
    title, overview = f"genbench report: {suites}", _overview(df)
    _write_text(results_dir / "tables.tex", _latex(claims_tab, summaries))
    _write_text(
        results_dir / "report.html",
        _html(title, overview, claims_tab, detail_tab, summaries, figs, fails),
    )
    report = results_dir / "report.md"
    _write_text(report, _markdown(title, overview, claims_tab, detail_tab, summaries, figs, fails))
    return report
