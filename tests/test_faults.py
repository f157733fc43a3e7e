"""Faults during `run` (Ray integration): SIGINT / SIGTERM, bad files in rows/, two runs on one
folder, a rerun of a finished folder. Signal tests run the driver in its own session with its own
private Ray, so its processes are found by session id (no other Ray on the machine is touched)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_runner import DATASETS, FLOW, ROOT, suite_file

from bench import cli
from bench import store as results
from bench.run.driver import run_suite
from bench.store.lock import OWNER
from bench.suite import load_suite

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TOY = DATASETS.split("\n\n")[0]  # 8gaussians only


def start_driver(suite_path: Path, results_root: Path, log_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)  # its own private Ray
    cmd = [sys.executable, str(ROOT / "run_bench.py"), "run", str(suite_path), "--results", str(results_root)]
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [*cmd, "--no-report", *extra], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def session_processes(sid: int) -> list[str]:
    """Command lines of the live processes in session `sid` (the driver and everything it started)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[3]) == sid and fields[0] != "Z":  # session id; zombies are gone
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError):
            continue  # exited meanwhile
    return found


def wait_for(predicate, timeout: float, what: str, driver: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if driver is not None and driver.poll() is not None:
            raise AssertionError(f"driver exited ({driver.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def interrupt(tmp_path: Path, suite_path: Path, sig: int, *, again: bool = False) -> tuple[int, str, dict]:
    """Start a run, send `sig` once a row has landed (and a second signal if `again`); returns
    (exit status, log text, {row file: bytes} after the run)."""
    rows = tmp_path / "results" / load_suite(suite_path).name / results.TRIALS.rows_dir
    before = set(rows.glob("*.json")) if rows.is_dir() else set()
    log = tmp_path / f"driver-{sig}.log"
    driver = start_driver(suite_path, tmp_path / "results", log)
    try:
        wait_for(lambda: set(rows.glob("*.json")) - before, 240, "a new row", driver, log)
        if sig == signal.SIGINT:
            os.killpg(driver.pid, sig)  # Ctrl-C: the terminal signals the foreground process group
        else:
            os.kill(driver.pid, sig)  # Kubernetes / SLURM: the main process
        if again:  # a second signal counts as one only once the driver has handled the first
            wait_for(
                lambda: "stopping the running trials" in log.read_text(), 60, "the first signal's warning", driver, log
            )
            os.kill(driver.pid, sig)
        code = driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    # the private Ray exits with the driver: nothing of this session may stay behind
    wait_for(
        lambda: not session_processes(driver.pid), 60, f"the run's processes to exit: {session_processes(driver.pid)}"
    )
    return code, log.read_text(), {p.name: p.read_bytes() for p in rows.glob("*.json")}


def assert_rows_intact(out: Path, landed: dict, total: int) -> None:
    assert 1 <= len(landed) < total, "the signal should come mid-suite"
    table = pd.read_parquet(out / results.TRIALS.table)  # the tables agree with rows/ after a clean stop
    assert sorted(table["trial_id"]) == sorted(name.removesuffix(".json") for name in landed)
    for name, data in landed.items():
        row = json.loads(data)
        assert row["status"] == "ok" and row["trial_id"] == name.removesuffix(".json")


def test_sigint_stops_the_run_with_130_and_a_rerun_finishes_the_suite(ray_cluster, tmp_path):
    path = suite_file(tmp_path, "sigint", FLOW, datasets=TOY, seeds="[0, 1, 2, 3]", steps=100)
    code, log, landed = interrupt(tmp_path, path, signal.SIGINT)
    assert code == 130, log[-3000:]
    assert "interrupted by SIGINT" in log and "Traceback" not in log, log[-3000:]
    out = tmp_path / "results" / "sigint"
    assert_rows_intact(out, landed, total=4)

    suite = load_suite(path)
    summary = run_suite(suite, tmp_path / "results", report=False)  # resume on the session's Ray
    df = results.load_results(out)
    assert sorted(df["trial_id"]) == sorted(c.trial_id for c in suite.cells()) and set(df["status"]) == {"ok"}
    assert summary.skipped == len(landed) and summary.interrupted is None
    for name, data in landed.items():
        assert (out / "rows" / name).read_bytes() == data


def test_sigterm_stops_the_run_with_143_and_a_second_signal_exits_at_once(ray_cluster, tmp_path):
    path = suite_file(tmp_path, "sigterm", FLOW, datasets=TOY, seeds="[0, 1, 2, 3, 4, 5]", steps=100)
    out = tmp_path / "results" / "sigterm"
    code, log, landed = interrupt(tmp_path, path, signal.SIGTERM)
    assert code == 143, log[-3000:]
    assert "interrupted by SIGTERM" in log and "SIGTERM received" not in log, log[-3000:]  # no C++ stack dump
    assert_rows_intact(out, landed, total=6)

    code, log, again = interrupt(tmp_path, path, signal.SIGINT, again=True)  # the resumed run, Ctrl-C twice
    assert code == 130 and "SIGINT again: exiting at once" in log, log[-3000:]
    assert {k: v for k, v in again.items() if k in landed} == landed and len(again) > len(landed)
    assert all(json.loads(data)["status"] == "ok" for data in again.values())


def test_bad_row_files_are_quarantined_and_a_finished_folder_is_left_untouched(ray_cluster, tmp_path, caplog):
    suite = load_suite(suite_file(tmp_path, "quar", FLOW, datasets=TOY, seeds="[0]", steps=20))
    (cell,) = suite.cells()
    rows = tmp_path / "results" / "quar" / results.TRIALS.rows_dir
    rows.mkdir(parents=True)
    truncated = rows / f"{cell.trial_id}.json"
    truncated.write_text('{"trial_id": "' + cell.trial_id + '", "status": "ok", "nll": 1.')
    foreign = rows / "settings.json"
    foreign.write_text('{"theme": "dark"}')
    with caplog.at_level(logging.WARNING):
        summary = run_suite(suite, tmp_path / "results", report=False)
    assert summary.statuses == {"ok": 1}
    assert sorted(p.name for p in (rows / results.QUARANTINE).iterdir()) == sorted([truncated.name, foreign.name])
    warned = [r.getMessage() for r in caplog.records if "quarantine" in r.getMessage()]
    assert len(warned) == 2 and any(str(truncated) in m for m in warned) and any(str(foreign) in m for m in warned)
    assert json.loads(truncated.read_text())["status"] == "ok"  # the cell ran again

    out = rows.parent
    files = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()}
    folders = sorted(p for p in out.rglob("*") if p.is_dir())
    again = run_suite(suite, tmp_path / "results", report=False)
    assert again.skipped == 1 and again.statuses == {"ok": 1}
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()}
    assert after == files and sorted(p for p in out.rglob("*") if p.is_dir()) == folders  # nothing written


def test_a_second_run_on_a_folder_exits_2_at_once_and_the_first_finishes(ray_cluster, tmp_path, capsys):
    path = suite_file(tmp_path, "busy", FLOW, datasets=TOY, seeds="[0, 1]", steps=200)
    out = tmp_path / "results" / "busy"
    log = tmp_path / "first.log"
    first = start_driver(path, tmp_path / "results", log, "--address", ray_cluster)
    try:
        wait_for(lambda: (out / OWNER).exists(), 120, "the first run's lock", first, log)
        code = cli.main(["run", str(path), "--results", str(tmp_path / "results"), "--address", ray_cluster])
        assert first.poll() is None, "the second run should not wait for the first"
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0, err
        assert str(out) in err and f"pid {first.pid}" in err and "another genbench run" in err
        assert first.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    df = results.load_results(out)
    assert len(df) == 2 and set(df["status"]) == {"ok"}
