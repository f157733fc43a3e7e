"""Pairwise claims as data: "`column` of family A vs family B" records and the row helpers that
select models within one dataset/budget context.

A `PairwiseClaim` compares every model (suite label) of family `a` with every model of each family
in `b` in each context, on one column or on a measure resolved per context (`MEASURES`: sample
quality by data kind, throughput by the rows' deciding clock); baseline families are added as
references. bench.report.claims registers the claims built from these records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench.report import columns
from bench.report import evidence as ev
from bench.report.columns import BASELINES, REFERENCES
from bench.report.data import finite
from bench.report.evidence import HIGHER, LOWER, Evidence

SAMPLE_PROTOCOL = ("extractor", "extractor_hash", "n_real", "n_fake")  # sample metrics depend on all four
# throughput compares only on one device and one clock (and, for rows from before the sweep, at one batch)
SPEED_PROTOCOL = ("sample_batch", "device", "speed_clock")
Outcome = tuple[list[Evidence], list[str]]  # comparisons made, notes on what could not be compared


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def contexts(df: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(dataset/budget label, rows) — models are only ever compared within one context."""
    for (dataset, budget), rows in df.groupby(["dataset", "budget"], sort=True):
        yield f"{dataset}/{budget}", rows


def models(rows: pd.DataFrame, families: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) for each label of the given families, sorted by label."""
    sub = rows[rows["family"].isin(list(families))]
    return [(str(label), g) for label, g in sub.groupby("label", sort=True)]


def families_with(df: pd.DataFrame, col: str) -> list[str]:
    rows = df[np.isfinite(df[col].to_numpy(dtype=float))]
    return sorted(rows["family"].unique())


def protocol_mismatch(a: pd.DataFrame, b: pd.DataFrame, cols: Sequence[str]) -> str:
    """'' when both sides share one value of every protocol column, else what differs."""
    for col in cols:
        va, vb = sorted(set(map(str, a[col]))), sorted(set(map(str, b[col])))
        if len(set(va) | set(vb)) > 1:
            return f"{col} differs ({'/'.join(va)} vs {'/'.join(vb)})"
    return ""


def missing_note(df: pd.DataFrame, families: Sequence[str], col: str) -> str:
    have = set(families_with(ok_rows(df), col))
    status = ", ".join(f"{f} {'yes' if f in have else 'no'}" for f in families)
    return f"needs ok trials with {col} from {' and '.join(families)} in one dataset/budget ({status})"


@dataclass(frozen=True)
class Measure:
    """What a pairwise claim compares: fixed columns, or columns chosen per context."""

    text: str  # as shown in the claims table
    columns: Callable[[pd.DataFrame], tuple[str, ...]]  # ok rows of one context -> columns compared


MEASURES: dict[str, Measure] = {
    "sample_quality": Measure(
        "sample quality: FID and C2ST AUC (images); precision, recall, C2ST AUC (2-D)",
        columns.quality_columns,
    ),
    "throughput": Measure(
        "samples per second of the device's clock (CPU time on a CPU, wall clock on a GPU), log scale",
        lambda rows: (columns.throughput_column(rows),),
    ),
}


def measure(name: str) -> Measure:
    """A registered measure, or the plain result column `name`."""
    return MEASURES.get(name) or Measure(name, lambda rows: (name,))


@dataclass(frozen=True)
class PairwiseClaim:
    """ "`column` of family `a` vs each family in `b`": every model of `a` against every model of
    each b family in each dataset/budget, Welch t across seeds; baselines added as references."""

    a: str  # family the claim is about
    b: tuple[str, ...] | None  # families compared against; None: every other non-baseline family with values
    column: str  # result column, or a MEASURES name resolved per context
    better: str  # "a" | "b": the side the claim predicts to be better on the column
    protocol: tuple[str, ...] = ()  # columns that must agree between the sides to compare at all

    @property
    def compared(self) -> str:
        return f"{self.a} vs {', '.join(self.b) if self.b else 'each other family'} (baselines for reference)"

    @property
    def metric(self) -> str:
        return measure(self.column).text

    def expect(self, column: str) -> str:
        """Predicted direction of A relative to B on `column`."""
        up = columns.spec(column).better or HIGHER
        return up if self.better == "a" else (LOWER if up == HIGHER else HIGHER)

    def evaluate(self, df: pd.DataFrame) -> Outcome:
        found: list[Evidence] = []
        notes: list[str] = []
        for ctx, rows in contexts(ok_rows(df)):
            for col in measure(self.column).columns(rows):
                have = rows[np.isfinite(rows[col].to_numpy(dtype=float))]
                others = sorted(set(have["family"]) - {self.a, *REFERENCES})
                sides = [(f, False) for f in (self.b if self.b is not None else others)]
                refs = BASELINES if self.b is not None else REFERENCES  # "other families": every reference
                sides += [(f, True) for f in refs if f != self.a]
                for a_name, a_rows in models(have, [self.a]):
                    for fam, ref in sides:
                        for b_name, b_rows in models(have, [fam]):
                            bad = protocol_mismatch(a_rows, b_rows, self.protocol)
                            if bad:
                                notes.append(f"{ctx}: {a_name} vs {b_name} not comparable, {bad}")
                                continue
                            e = ev.compare_means(
                                ctx,
                                col,
                                a_name,
                                finite(a_rows, col),
                                b_name,
                                finite(b_rows, col),
                                self.expect(col),
                                reference=ref,
                            )
                            found.append(replace(e, b_family=fam))
        if not any(not e.reference for e in found) and not notes:
            b_text = " and ".join(self.b) if self.b else "another family"
            notes.append(f"needs ok trials with {self.column} from {self.a} and {b_text} in one dataset/budget")
        return found, notes
