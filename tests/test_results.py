"""The result store: atomic row files keyed by trial_id, typed tables, resume bookkeeping."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time

import pandas as pd
import pytest

from bench import store as results
from bench.errors import DataError
from bench.store import COLUMN_NAMES, COLUMNS


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
    path = results.trial_rows(tmp_path).write_row(row("a1"))
    stored = results.read_row(path)
    assert list(stored) == list(COLUMN_NAMES)
    assert stored["nll"] == 2.9 and math.isnan(stored["fid"]) and stored["params"] is None
    assert json.loads(stored["steps_curve"]) == [{"steps": 10, "fid": None}]  # JSON columns as text
    results.trial_rows(tmp_path).write_row(row("a1", status="failed", error="boom"))
    assert results.read_row(path)["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == ["a1.json"]  # no temp file left


def test_rows_outside_the_schema_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="nll_bits"):
        results.trial_rows(tmp_path).write_row(row("a1", nll_bits=3.0))
    with pytest.raises(ValueError, match="trial_id"):
        results.trial_rows(tmp_path).write_row({"status": "ok"})


def test_interrupted_write_keeps_the_old_row_and_temp_files_are_ignored(tmp_path, monkeypatch):
    results.trial_rows(tmp_path).write_row(row("a1"))

    def crash(src, dst):
        raise KeyboardInterrupt  # e.g. a signal between write and rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        results.trial_rows(tmp_path).write_row(row("a1", nll=99.0))
    monkeypatch.undo()
    assert results.trial_rows(tmp_path).read_rows()["a1"]["nll"] == 2.9
    # a temp file orphaned by a SIGKILL (no cleanup ran) is ignored and cleaned at start-up
    orphan = tmp_path / "rows" / ".a2.json.x.tmp"
    orphan.write_text("{half a row")
    assert set(results.trial_rows(tmp_path).read_rows()) == {"a1"}
    results.clean_temp_files(tmp_path)
    assert not orphan.exists()


def test_finished_ids_are_ok_and_diverged_rows(tmp_path):
    for tid, status in (("a", "ok"), ("b", "diverged"), ("c", "failed")):
        results.trial_rows(tmp_path).write_row(row(tid, status=status))
    assert set(results.trial_rows(tmp_path).finished_rows()) == {"a", "b"}


def test_tables_follow_the_schema_and_the_suite_order(tmp_path):
    for tid in ("c", "a", "b", "stale"):
        results.trial_rows(tmp_path).write_row(row(tid, seed=ord(tid[0])))
    df = results.rebuild_tables(tmp_path, ["b", "a", "c", "missing"])
    assert list(df["trial_id"]) == ["b", "a", "c"]  # suite order; stale rows left out
    loaded = results.load_results(tmp_path)
    assert list(loaded.columns) == list(COLUMN_NAMES)
    pd.testing.assert_frame_equal(loaded, df)
    dtypes = {c.name: c.dtype for c in COLUMNS}
    assert str(loaded["params"].dtype) == "Int64" and loaded["params"].isna().all()
    assert loaded["nll"].dtype == "float64" and dtypes["nll"] == "float"
    csv = pd.read_csv(tmp_path / results.TRIALS.csv)
    assert list(csv.columns) == list(COLUMN_NAMES) and list(csv["trial_id"]) == ["b", "a", "c"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_results_reads_rows_when_no_table_was_built_yet(tmp_path):
    results.trial_rows(tmp_path).write_row(row("a"))
    assert list(results.load_results(tmp_path)["trial_id"]) == ["a"]
    with pytest.raises(DataError, match="not a results folder"):
        results.load_results(tmp_path / "elsewhere")


def test_clear_removes_results_but_keeps_caches(tmp_path):
    results.trial_rows(tmp_path).write_row(row("a"))
    results.rebuild_tables(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "cache").mkdir()
    results.clear(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


# --- robustness: quarantine, file modes, damaged tables ------------------------------------------
def test_bad_files_in_rows_are_skipped_or_moved_to_quarantine_with_a_warning(tmp_path, caplog):
    results.trial_rows(tmp_path).write_row(row("good"))
    rows = tmp_path / "rows"
    full = (rows / "good.json").read_text()
    (rows / "cut.json").write_text(full.replace('"good"', '"cut"')[: len(full) // 2])  # truncated
    (rows / "notes.json").write_text('{"hello": "world"}')  # foreign JSON: no trial_id
    (rows / "list.json").write_text("[1, 2]")
    (rows / "copy.json").write_text(full)  # a row under another file name: a duplicate
    bad = {"cut.json", "notes.json", "list.json", "copy.json"}

    assert set(results.trial_rows(tmp_path).read_rows()) == {"good"}  # readers skip, and leave the files
    assert {p.name for p in rows.glob("*.json")} == bad | {"good.json"}
    assert all(any(name in r.getMessage() for r in caplog.records) for name in bad)

    caplog.clear()
    assert set(results.trial_rows(tmp_path).read_rows(quarantine=True)) == {"good"}
    assert {p.name for p in rows.glob("*.json")} == {"good.json"}
    assert {p.name for p in (rows / results.QUARANTINE).iterdir()} == bad
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 4 and all("\n" not in m and "quarantine" in m for m in warned)
    (rows / "notes.json").write_text("{}")  # a second file of the same name keeps both
    results.trial_rows(tmp_path).read_rows(quarantine=True)
    assert (rows / results.QUARANTINE / "notes.json.1").read_text() == "{}"
    assert (rows / results.QUARANTINE / "notes.json").read_text() == '{"hello": "world"}'


@pytest.mark.parametrize(
    "column, value",
    [("fid", "abc"), ("seed", "zero"), ("loss_curve", "{not json"), ("seed", 1e400), ("nll", [1, 2])],
)
def test_a_mistyped_row_is_quarantined_naming_the_file_and_readers_go_on(tmp_path, caplog, column, value):
    results.trial_rows(tmp_path).write_row(row("good"))
    bad = json.loads((tmp_path / "rows" / "good.json").read_text()) | {"trial_id": "bad", column: value}
    (tmp_path / "rows" / "bad.json").write_text(json.dumps(bad))
    assert set(results.trial_rows(tmp_path).read_rows(quarantine=True)) == {"good"}
    assert [p.name for p in (tmp_path / "rows" / results.QUARANTINE).iterdir()] == ["bad.json"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "bad.json" in warning and column in warning and "\n" not in warning
    assert list(results.load_results(tmp_path)["trial_id"]) == ["good"]  # a reader that types every row


def test_report_and_the_table_rebuild_go_on_past_a_mistyped_row(tmp_path, caplog):
    from bench import cli

    results.trial_rows(tmp_path).write_row(row("good"))
    bad = json.loads((tmp_path / "rows" / "good.json").read_text()) | {"trial_id": "bad", "fid": "abc"}
    (tmp_path / "rows" / "bad.json").write_text(json.dumps(bad))
    assert list(results.rebuild_tables(tmp_path)["trial_id"]) == ["good"]  # what `run` writes
    (tmp_path / results.TRIALS.table).unlink()
    caplog.clear()
    assert cli.main(["report", str(tmp_path)]) == 0
    assert any("bad.json" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_are_created_with_the_umask_mode(tmp_path, umask):
    before = os.umask(umask)
    try:
        path = results.trial_rows(tmp_path).write_row(row("a"))
        results.rebuild_tables(tmp_path)
    finally:
        os.umask(before)
    expected = 0o666 & ~umask
    for p in (path, tmp_path / results.TRIALS.table, tmp_path / results.TRIALS.csv):
        assert p.stat().st_mode & 0o777 == expected, (p.name, oct(p.stat().st_mode))


def test_a_damaged_table_is_read_from_the_rows_or_is_a_one_line_error(tmp_path, caplog):
    results.trial_rows(tmp_path).write_row(row("a"))
    expected = results.rebuild_tables(tmp_path)
    (tmp_path / results.TRIALS.table).write_bytes(b"PAR1 not really")
    pd.testing.assert_frame_equal(results.load_results(tmp_path), expected)
    assert any(results.TRIALS.table in r.getMessage() and "rows/" in r.getMessage() for r in caplog.records)
    shutil.rmtree(tmp_path / "rows")
    with pytest.raises(DataError, match="trials.parquet: unreadable") as info:
        results.load_results(tmp_path)
    assert "\n" not in str(info.value)


def test_a_table_written_before_a_column_existed_reads_it_as_not_measured(tmp_path):
    results.trial_rows(tmp_path).write_row(row("a"))
    full = results.rebuild_tables(tmp_path)
    full.drop(columns=["fid", "params", "error"]).to_parquet(tmp_path / results.TRIALS.table, index=False)
    loaded = results.load_results(tmp_path)
    pd.testing.assert_frame_equal(loaded, full)


# --- the driver's incremental table -------------------------------------------------------------
def test_incremental_table_equals_a_full_rebuild_after_every_trial(tmp_path, monkeypatch):
    rng = random.Random(0)
    ids = [f"t{i:03d}" for i in range(60)]
    monkeypatch.setattr(results.SuiteTable, "FLUSH_SHARE", 0.05)  # files rewritten every 1-3 puts
    for tid in ids[:40]:  # an earlier run's rows, some failed
        results.trial_rows(tmp_path).write_row(row(tid, status=rng.choice(["ok", "failed"]), seed=int(tid[1:])))
    results.trial_rows(tmp_path).write_row(row("stale", seed=999))  # a cell no longer in the suite
    table = results.SuiteTable.load(tmp_path, ids)
    table.write()
    events = [*ids[40:], *[t for t in ids[:40] if results.read_row(tmp_path / "rows" / f"{t}.json")["status"] != "ok"]]
    rng.shuffle(events)
    for n, tid in enumerate(events, 1):
        new = row(tid, status=rng.choice(["ok", "diverged"]), seed=int(tid[1:]), nll=rng.random())
        results.trial_rows(tmp_path).write_row(new)  # the trial stores it, then the driver hears of it
        table.put(new)
        full = results.SuiteTable.load(tmp_path, ids).frame()
        pd.testing.assert_frame_equal(table.frame(), full)
        assert table.finished_ids() == set(results.trial_rows(tmp_path).finished_rows()) - {"stale"}
        on_disk = pd.read_parquet(tmp_path / results.TRIALS.table)
        # the files lag by less than FLUSH_SHARE of the table
        assert len(full) - len(on_disk) < max(1, results.SuiteTable.FLUSH_SHARE * len(full)) + 1, n
    pd.testing.assert_frame_equal(table.write(), results.rebuild_tables(tmp_path, ids))
    assert list(table.frame()["trial_id"]) == ids  # grid order, stale row left out


def test_table_files_are_rewritten_once_per_percent_of_new_rows(tmp_path, monkeypatch):
    ids = [f"t{i:04d}" for i in range(1000)]
    rows = {t: results.normalize_row(row(t, seed=i)) for i, t in enumerate(ids[:900])}
    table = results.SuiteTable(tmp_path, rows, ids)
    table.write()
    writes = []
    atomic_write = results.atomic_write_with

    def counted(path, writer):
        if path.name == results.TRIALS.table:
            writes.append(len(table.rows))
        atomic_write(path, writer)

    monkeypatch.setattr(results.table, "atomic_write_with", counted)
    for i, tid in enumerate(ids[900:]):
        table.put(row(tid, seed=900 + i))
    # a write when the k new rows reach 1% of the table: k >= (n + k) / 100, i.e. k = ceil(n / 99)
    expected, n = [], 900
    while n + math.ceil(n / 99) <= 1000:
        n += math.ceil(n / 99)
        expected.append(n)
    assert writes == expected and len(writes) == 10


def test_unchanged_table_is_not_rewritten(tmp_path):
    results.trial_rows(tmp_path).write_row(row("a"))
    results.rebuild_tables(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / results.TRIALS.table, tmp_path / results.TRIALS.csv)}
    time.sleep(0.01)
    results.SuiteTable.load(tmp_path).write(only_if_changed=True)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    results.trial_rows(tmp_path).write_row(row("a", nll=3.5))
    results.SuiteTable.load(tmp_path).write(only_if_changed=True)
    assert results.load_results(tmp_path)["nll"].tolist() == [3.5]
