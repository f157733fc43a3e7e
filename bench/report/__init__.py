"""The comparison report: summary tables, the lecture's claims with verdicts, figures.

`write_report(results_dir)` is the entry point used by `run_bench.py report RESULTS_DIR` and at the
end of `run`. Modules: stats (intervals, tests), evidence (verdict rules), claims (the registry),
tables (summary, claims tables, renderers), figures (seaborn; sample_figures, plotting: what every figure
shares), data (loading rows), writer (files).
"""

from bench.report.writer import OUTPUTS, write_report

__all__ = ["OUTPUTS", "write_report"]
