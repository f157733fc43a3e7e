"""Suites: a TOML file read, checked and typed (`load_suite`), and its grid of cells.

A suite declares models × datasets × budgets × seeds (see suites/quick.toml), optionally with search
spaces and a [tune] table. `load_suite` returns a typed `Suite` or raises `ConfigError` listing EVERY
problem of the file, one line each naming the file, the field and what was expected; nothing (Ray
included) starts for an invalid suite.

Paths: a dataset's `root` and `eval.feature_extractor_weights_path` may be relative; they are
resolved against the data root (`--data-root`, else $GENBENCH_DATA_ROOT, else ./data) and must exist.

Modules: `model` (Suite, Cell, Budget, Resources, entries, hashing), `space` (search spaces and
[tune]), `checks` (recording problems, generic field checks), `parse` (the sections), `load` (the file).
"""

from bench.suite.load import load_suite, resolve_data_root
from bench.suite.model import Budget, Cell, DatasetEntry, ModelEntry, Resources, Suite
from bench.suite.space import Dist, TuneSpec

__all__ = [
    "Budget",
    "Cell",
    "DatasetEntry",
    "Dist",
    "ModelEntry",
    "Resources",
    "Suite",
    "TuneSpec",
    "load_suite",
    "resolve_data_root",
]
