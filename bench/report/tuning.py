"""The report's optional Tuning section, for suites that tuned hyper-parameters before the final runs.

`section(results_dir, frame)` returns (Markdown body, [figure files]) or None when the results hold
no tuned rows; the writer places the section between the figures and the claims and copies the
figure files next to the report (name them `tuning_*.png` so they cannot clash with the others).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def section(results_dir: Path, frame: pd.DataFrame) -> tuple[str, list[Path]] | None:
    """None without tuned rows; otherwise which models were tuned."""
    tuned = frame[frame["tuned"]]
    if tuned.empty:
        return None
    labels = ", ".join(sorted(set(tuned["label"])))
    return f"{len(tuned)} of {len(frame)} trials ran with tuned hyper-parameters ({labels}).", []
