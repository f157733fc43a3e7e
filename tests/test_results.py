"""The result store: atomic row files keyed by trial_id, typed tables, resume bookkeeping."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from bench import results
from bench.errors import DataError
from bench.schema import COLUMN_NAMES, COLUMNS


def row(trial_id: str, status: str = "ok", **extra):
    return {
        "trial_id": trial_id,
        "status": status,
        "label": "flow",
        "family": "flow",
        "dataset": "8gaussians",
        "budget": "b",
        "seed": 0,
        "nll": 2.9,
        "train_steps": 10,
        "steps_curve": [{"steps": 10, "fid": None}],
        **extra,
    }


def test_row_file_is_complete_typed_and_replaced_atomically(tmp_path):
    path = results.write_row(tmp_path, row("a1"))
    stored = results.read_row(path)
    assert list(stored) == list(COLUMN_NAMES)
    assert stored["nll"] == 2.9 and math.isnan(stored["fid"]) and stored["params"] is None
    assert json.loads(stored["steps_curve"]) == [{"steps": 10, "fid": None}]  # JSON columns as text
    results.write_row(tmp_path, row("a1", status="failed", error="boom"))
    assert results.read_row(path)["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == ["a1.json"]  # no temp file left


def test_rows_outside_the_schema_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="nll_bits"):
        results.write_row(tmp_path, row("a1", nll_bits=3.0))
    with pytest.raises(ValueError, match="trial_id"):
        results.write_row(tmp_path, {"status": "ok"})


def test_interrupted_write_keeps_the_old_row_and_temp_files_are_ignored(tmp_path, monkeypatch):
    results.write_row(tmp_path, row("a1"))

    def crash(src, dst):
        raise KeyboardInterrupt  # e.g. a signal between write and rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        results.write_row(tmp_path, row("a1", nll=99.0))
    monkeypatch.undo()
    assert results.read_rows(tmp_path)["a1"]["nll"] == 2.9
    # a temp file orphaned by a SIGKILL (no cleanup ran) is ignored and cleaned at start-up
    orphan = tmp_path / "rows" / ".a2.json.x.tmp"
    orphan.write_text("{half a row")
    assert set(results.read_rows(tmp_path)) == {"a1"}
    results.clean_temp_files(tmp_path)
    assert not orphan.exists()


def test_finished_ids_are_ok_and_diverged_rows(tmp_path):
    for tid, status in (("a", "ok"), ("b", "diverged"), ("c", "failed")):
        results.write_row(tmp_path, row(tid, status=status))
    assert results.finished_ids(tmp_path) == {"a", "b"}


def test_tables_follow_the_schema_and_the_suite_order(tmp_path):
    for tid in ("c", "a", "b", "stale"):
        results.write_row(tmp_path, row(tid, seed=ord(tid[0])))
    df = results.rebuild_tables(tmp_path, ["b", "a", "c", "missing"])
    assert list(df["trial_id"]) == ["b", "a", "c"]  # suite order; stale rows left out
    loaded = results.load_results(tmp_path)
    assert list(loaded.columns) == list(COLUMN_NAMES)
    pd.testing.assert_frame_equal(loaded, df)
    dtypes = {c.name: c.dtype for c in COLUMNS}
    assert str(loaded["params"].dtype) == "Int64" and loaded["params"].isna().all()
    assert loaded["nll"].dtype == "float64" and dtypes["nll"] == "float"
    csv = pd.read_csv(tmp_path / results.CSV)
    assert list(csv.columns) == list(COLUMN_NAMES) and list(csv["trial_id"]) == ["b", "a", "c"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_results_reads_rows_when_no_table_was_built_yet(tmp_path):
    results.write_row(tmp_path, row("a"))
    assert list(results.load_results(tmp_path)["trial_id"]) == ["a"]
    with pytest.raises(DataError, match="not a results folder"):
        results.load_results(tmp_path / "elsewhere")


def test_clear_removes_results_but_keeps_caches(tmp_path):
    results.write_row(tmp_path, row("a"))
    results.rebuild_tables(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "cache").mkdir()
    results.clear(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
