"""tables.tex: the summary tables and the claims table, sized to fit a page.

Summary tables are wide (one column per metric), so each is set in landscape and scaled to the
line width; the claims table is a `tabularx` whose evidence column wraps, with the claims
abbreviated C1, C2, ... and spelled out in a key under the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.report.claims import ClaimResult
from bench.report.tables import DisplayTable, evidence_sentence

PREAMBLE = "% genbench tables: needs \\usepackage{booktabs,tabularx,pdflscape,graphicx}"
_ESCAPES = (
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
# Unicode in cells/headers that pdflatex does not take without extra packages.
_SYMBOLS = (
    ("±", r"$\pm$"),
    ("↓", r"$\downarrow$"),
    ("↑", r"$\uparrow$"),
    ("—", "---"),
    ("−", "-"),
    ("×", r"$\times$"),
    ("†", r"$\dagger$"),
    (">=", r"$\geq$"),
    ("<=", r"$\leq$"),
    ("≥", r"$\geq$"),
    ("≤", r"$\leq$"),
    ("≈", r"$\approx$"),
    ("·", r"$\cdot$"),
    ("∫", r"$\int$"),
)


def escape(text: str) -> str:
    """Free text as LaTeX: specials escaped, then the Unicode symbols mapped to math."""
    text = text.replace("\\", "\0")  # backslash first out, so its braces are not escaped again
    for a, b in _ESCAPES:
        text = text.replace(a, b)
    text = text.replace("\0", r"\textbackslash{}")
    return symbols(text)


def symbols(tex: str) -> str:
    for a, b in _SYMBOLS:
        tex = tex.replace(a, b)
    return tex


def to_latex(cells: pd.DataFrame, best: pd.DataFrame | None, caption: str, label: str) -> str:
    """A booktabs table (pandas Styler, hrules=True), best cells in bold, in landscape and scaled
    to the line width so any number of metric columns fits the page."""
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    if best is not None:
        mask = best.to_numpy()
        styler = styler.apply(lambda _: np.where(mask, "textbf:--rwrap;", ""), axis=None)
    tex = styler.to_latex(hrules=True, caption=escape(caption), label=label)
    tex = tex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}")
    tex = tex.replace("\\end{tabular}", "\\end{tabular}}")
    return "\\begin{landscape}\n" + symbols(tex) + "\\end{landscape}\n"


def claims_table(results: Sequence[ClaimResult]) -> str:
    """One row per claim (key, family, verdict, evidence) in a page-wide tabularx, claims in a key."""
    rows = [
        f"C{i} & {escape(r.claim.family)} & {escape(r.verdict)} & {escape(evidence_sentence(r))} \\\\"
        for i, r in enumerate(results, 1)
    ]
    key = "; ".join(f"C{i}: {escape(r.claim.text)}" for i, r in enumerate(results, 1))
    return "\n".join(
        [
            "\\begin{table}[ht]\\centering\\small",
            "\\caption{Claims of the lecture, measured (key below the table)}\\label{tab:claims}",
            "\\begin{tabularx}{\\linewidth}{@{}lllX@{}}",
            "\\toprule",
            "Key & Family & Verdict & Evidence \\\\",
            "\\midrule",
            *rows,
            "\\bottomrule",
            "\\end{tabularx}",
            f"\\par\\footnotesize {key}",
            "\\end{table}",
            "",
        ]
    )


def document(summaries: Sequence[DisplayTable], results: Sequence[ClaimResult]) -> str:
    out = [PREAMBLE, ""]
    for i, t in enumerate(summaries):
        out += [to_latex(t.cells, t.best, f"{t.title}. {t.caption}", f"tab:summary{i}"), ""]
    out.append(claims_table(results))
    return "\n".join(out)
