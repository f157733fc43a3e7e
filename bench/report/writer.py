"""`write_report(results_dir)`: summary.csv, claims.csv, claims_detail.csv, tables.tex,
figures/*.png, report.md and a self-contained report.html (figures embedded as base64).

Everything is first written into a staging folder inside the results folder and then moved into
place with atomic renames: the figures first, report.md last, stale figures removed only after
that. A report killed at any point therefore never links a missing figure (report.md is either
the old one, whose figures are still there, or the new one, whose figures already are).
Nothing in the written files depends on the clock or on random state, so the CSV files are
byte-identical when the report is regenerated from the same trials.

`report_rows.json` records what the report was built from: the id and content hash of every row it
read (trial rows and tuning rows), and a hash of controls.csv. It is removed when a report
starts and moved into place after report.md, so a report that failed or was killed leaves none.
`is_current(results_dir)` is true only when every output and the record exist and the record
matches the folder's rows and inputs now: `run` rebuilds the report whenever it is false.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from bench.controls import CONTROLS_CSV
from bench.report import claims, controls_section, data, figures, latex, plotting, tables, tuning_section
from bench.report.document import Document, Section, render_html, render_markdown
from bench.report.sections import claims_section, figures_section, headline, notes_section, summary_section
from bench.report.tables import FLOAT_FORMAT
from bench.store import TUNING
from bench.store.files import atomic_write_bytes
from bench.store.lock import storage_errors
from bench.store.table import load_results, load_tuning, row_digests

log = logging.getLogger(__name__)

# Moved into place in this order: report.md last, it is what links the figures.
OUTPUTS = (
    "summary.csv",
    "claims.csv",
    "claims_detail.csv",
    "tables.tex",
    "report.html",
    "report.md",
)
RECORD = "report_rows.json"  # the rows and inputs the report was built from (moved in after report.md)
PUBLISHED = (*OUTPUTS, RECORD)  # every file moved into place, in order
STAGING = ".report-staging"  # inside the results folder: same filesystem, so the renames are atomic
FIGURES = "figures"


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format=FLOAT_FORMAT, na_rep="", lineterminator="\n")


def _tuning_section(results_dir: Path, df: pd.DataFrame, fig_dir: Path) -> Section | None:
    """The tuning module's section, its figure files copied next to the report's figures."""
    found = tuning_section.section(results_dir, df)
    if found is None:
        return None
    body, paths = found
    figs = []
    for path in paths:
        shutil.copyfile(path, fig_dir / path.name)
        figs.append(plotting.Figure(path.stem, path.stem.replace("_", " "), fig_dir / path.name))
    return Section("Tuning", body, tuple(figs))


def _build(results_dir: Path, stage: Path) -> None:
    """Every output file of the report, and the record of what it was built from, written into `stage`."""
    rows = load_results(results_dir)
    df = data.normalize(rows)
    log.info("report on %d trials in %s", len(df), results_dir)
    summary = tables.summarize(df)
    blind = controls_section.blind_measures(results_dir)  # measures whose control missed: never deciding
    results = claims.evaluate_claims(df, tuning=load_tuning(results_dir), blind=blind)
    (stage / "summary.csv").write_text(_csv(summary), encoding="utf-8")
    (stage / "claims.csv").write_text(_csv(tables.claims_frame(results)), encoding="utf-8")
    (stage / "claims_detail.csv").write_text(_csv(tables.claims_detail(results)), encoding="utf-8")

    fig_dir = stage / FIGURES
    figs = figures.draw_all(df, results_dir, fig_dir)
    summaries = tables.summary_tables(summary, df)
    title, head = headline(df, results_dir)
    sections = [summary_section(summaries), figures_section(figs)]
    sections += [s for s in [_tuning_section(results_dir, df, fig_dir)] if s is not None]
    sections += [controls_section.section(results_dir), claims_section(results), notes_section(df)]
    doc = Document(title, head, tuple(sections))
    (stage / "tables.tex").write_text(latex.document(summaries, results), encoding="utf-8")
    (stage / "report.html").write_text(render_html(doc), encoding="utf-8")
    (stage / "report.md").write_text(render_markdown(doc, FIGURES), encoding="utf-8")
    atomic_write_bytes(stage / RECORD, (json.dumps(_record(results_dir, rows), sort_keys=True) + "\n").encode())


def _publish(stage: Path, results_dir: Path) -> None:
    """Move the staged report into place (order in the module docstring)."""
    fig_dir = results_dir / FIGURES
    fig_dir.mkdir(exist_ok=True)
    new = sorted(p.name for p in (stage / FIGURES).iterdir())
    for name in new:
        os.replace(stage / FIGURES / name, fig_dir / name)
    for name in PUBLISHED:
        os.replace(stage / name, results_dir / name)
    for old in sorted(fig_dir.glob("*.png")):
        if old.name not in new:
            old.unlink()
    shutil.rmtree(stage)


def write_report(results_dir: Path) -> Path:
    """Write the report files into results_dir (see module docstring); returns report.md's path.
    A folder that cannot take the files (full disk, read-only, no permission) is a StorageError
    naming the path, one line; the staging folder is removed on any failure, so a full disk is not
    left fuller, and the report already in place stays as it was."""
    results_dir = Path(results_dir)
    (results_dir / RECORD).unlink(missing_ok=True)  # until this report is in place, none is current
    stage = results_dir / STAGING
    shutil.rmtree(stage, ignore_errors=True)  # left over by a report that was killed
    try:
        with storage_errors(results_dir):
            (stage / FIGURES).mkdir(parents=True)
            _build(results_dir, stage)
            _publish(stage, results_dir)
    except Exception:  # a full disk, say: the half-written staging folder would only fill it further
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return results_dir / "report.md"


def is_current(results_dir: Path) -> bool:
    """Whether the folder's report exists whole and was built from exactly its rows and inputs now."""
    results_dir = Path(results_dir)
    if not all((results_dir / name).is_file() for name in PUBLISHED):
        return False
    try:
        recorded = json.loads((results_dir / RECORD).read_text())
        return recorded == _record(results_dir, load_results(results_dir))
    except Exception as exc:  # a damaged record or folder: rebuilding is the safe answer
        log.info("report in %s taken as stale: %s", results_dir, " ".join(str(exc).split()))
        return False


def _record(results_dir: Path, rows: pd.DataFrame) -> dict[str, Any]:
    """The report's inputs: {row id: content hash} of the trial rows and of the tuning rows, and a
    hash of controls.csv (when present)."""
    tuning = load_tuning(results_dir)
    controls = results_dir / CONTROLS_CSV
    return {
        "rows": row_digests(rows),
        "tuning_rows": row_digests(tuning, TUNING) if tuning is not None else {},
        "controls": _file_hash(controls) if controls.is_file() else "",
    }


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
