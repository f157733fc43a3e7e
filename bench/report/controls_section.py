"""The report's "What each measure can see" section, from the results folder's controls.csv
(written by `genbench controls`): which known-answer controls each measure read as expected at the
suite's n and seeds, and any it missed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.controls import CONTROLS_CSV as CSV  # bench.controls.run writes it; the report reads it
from bench.report import tables
from bench.report.document import Section

TITLE = "What each measure can see"
SHOWN = ("measure", "dataset", "control", "expected", "value", "p_value", "detected")


def blind_measures(results_dir: Path) -> frozenset[tuple[str, str]]:
    """(measure, dataset) of every control in the folder's controls.csv that was not detected:
    such a measure cannot decide a verdict on that dataset (bench.report.claims.evaluate_claims)."""
    path = Path(results_dir) / CSV
    if not path.is_file():
        return frozenset()
    df = pd.read_csv(path)
    if not {"measure", "dataset", "detected"} <= set(df.columns):
        return frozenset()
    missed = df[~df["detected"].astype(str).str.lower().isin(["true", "1"])]
    return frozenset(zip(missed["measure"].astype(str), missed["dataset"].astype(str)))


def section(results_dir: Path) -> Section:
    path = Path(results_dir) / CSV
    if not path.is_file():
        return Section(
            TITLE,
            f"No {CSV} in this results folder: `genbench controls --suite SUITE` evaluates every measure on "
            "inputs with a known answer at this suite's n and seeds, and the next report shows what each can see.",
        )
    df = pd.read_csv(path)
    missing = [c for c in SHOWN if c not in df.columns]
    if missing:
        return Section(TITLE, f"{CSV} lacks the columns {', '.join(missing)}: regenerate it with `genbench controls`.")
    df["detected"] = df["detected"].astype(str).str.lower().isin(["true", "1"])
    lines = [_summary(df), ""]
    lines += [f"- {_measure_line(m, rows)}" for m, rows in df.groupby("measure", sort=False)]
    lines += ["", tables.to_markdown(_table(df))]
    return Section(TITLE, "\n".join(lines))


def _summary(df: pd.DataFrame) -> str:
    missed = df[~df["detected"]]
    head = f"{int(df['detected'].sum())} of {len(df)} controls read as expected"
    if missed.empty:
        return head + ": every measure below sees the effects listed for it at this suite's n and seeds."
    named = "; ".join(f"{r.measure} on {r.control} ({r.dataset})" for r in missed.itertuples())
    return f"{head}. **Not detected**: {named}; no verdict should rest on those readings."


def _measure_line(measure: str, rows: pd.DataFrame) -> str:
    seen = rows[rows["detected"]]
    n = ", ".join(f"{d} n={int(k)}" for d, k in rows.groupby("dataset", sort=False)["n"].first().items())
    parts = [
        f"**{measure}** ({n}): reads as expected {', '.join(seen['control'])}"
        if len(seen)
        else f"**{measure}** ({n}): nothing"
    ]
    if len(seen) < len(rows):
        parts.append("misses " + "; ".join(rows.loc[~rows["detected"], "control"]))
    return "; ".join(parts)


def _table(df: pd.DataFrame) -> pd.DataFrame:
    out = df[list(SHOWN)].copy()
    out["value"] = [f"{v:.3g}" for v in out["value"]]
    out["p_value"] = ["" if pd.isna(p) else f"{p:.2g}" for p in out["p_value"]]
    out["detected"] = ["yes" if d else "**no**" for d in out["detected"]]
    return out
