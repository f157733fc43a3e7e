"""The result store: the schemas of trial and tuning rows (`schema`), their row files (`rows`: one
`RowStore` for both kinds), the tables derived from them (`table`), what a run owns in a results
folder and its identity (`folder`), atomic files (`files`), the folder's lock (`lock`), the run's
storage, a folder or an object store (`storage`), and which files a row may name (`confine`)."""

from bench.store.files import atomic_write_bytes, atomic_write_with
from bench.store.folder import LOGS_DIR, OWNED, clean_temp_files, clear
from bench.store.rows import QUARANTINE, RowStore, empty_row, normalize_row, read_row, to_frame, trial_rows, tuning_rows
from bench.store.schema import COLUMN_NAMES, COLUMNS, TRIALS, TUNING, Column, Schema
from bench.store.table import SuiteTable, hparam_columns, load_results, load_tuning, read_table, rebuild_tables

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "LOGS_DIR",
    "OWNED",
    "QUARANTINE",
    "TRIALS",
    "TUNING",
    "Column",
    "RowStore",
    "Schema",
    "SuiteTable",
    "atomic_write_bytes",
    "atomic_write_with",
    "clean_temp_files",
    "clear",
    "empty_row",
    "hparam_columns",
    "load_results",
    "load_tuning",
    "normalize_row",
    "read_row",
    "read_table",
    "rebuild_tables",
    "to_frame",
    "trial_rows",
    "tuning_rows",
]
