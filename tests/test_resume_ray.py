"""Preemption with Ray: a SIGKILLed trial worker is retried from its checkpoint, a SIGKILLed driver's
cell resumes from its stored checkpoint on the rerun; both give the uninterrupted run's numbers."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from tiny_suite import TRIAL_EVAL, write_suite

from bench.run.driver import run_suite
from bench.store import load_results
from bench.suite import load_suite
from bench.trial.run import run_trial

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
STEPS, REPORT, CHECKPOINT = 500, 10, 20
COMPARED = ("nll", "nll_estimates", "fid", "kid_mean", "precision", "recall", "loss_curve", "train_steps")


def suite_path(folder: Path, name: str) -> Path:
    toy = {"name": "8gaussians", "options": {"n_train": 2000, "n_test": 300}}
    resources = {"report_every_steps": REPORT, "checkpoint_every_steps": CHECKPOINT, "max_retries": 2}
    return write_suite(folder, name, datasets=[toy], budget="b", steps=STEPS, resources=resources, eval=TRIAL_EVAL)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The cell run uninterrupted, in-process (the trial_id does not depend on the suite's name)."""
    folder = tmp_path_factory.mktemp("reference")
    (cell,) = load_suite(suite_path(folder, "reference")).cells()
    row = run_trial(cell, results_dir=folder)
    assert row["status"] == "ok" and row["attempts"] == 1 and row["resumed_from_step"] == -1
    return cell.trial_id, row, (folder / row["samples_npy"]).read_bytes()


def wait_for_registered_checkpoint(storage: Path, trial_id: str, alive, timeout: float = 180) -> dict:
    """The first result the driver logged after one that carried a checkpoint (by then Tune has
    registered that checkpoint: it saves before the trial trains on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert alive(), "the run ended before a checkpoint was registered"
        for path in glob.glob(str(storage / "run-*" / trial_id / "result.json")):
            results = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            saved = [r["step"] for r in results if r.get("checkpoint_dir_name") and "step" in r]
            later = [r for r in results if saved and r.get("step", 0) > saved[0]]
            if later:
                assert later[0]["step"] < STEPS, "training ended before the kill: raise STEPS"
                return later[0]
        time.sleep(0.02)
    raise AssertionError("no checkpoint registered in time")


def assert_resumed_equals_reference(row: dict, reference) -> None:
    _, ref, ref_npy = reference
    assert row["status"] == "ok", row["error"]
    assert row["attempts"] >= 2 and 0 < row["resumed_from_step"] < STEPS and row["resumed_from_step"] % CHECKPOINT == 0
    for key in COMPARED:
        assert row[key] == ref[key], (key, row[key], ref[key])


def test_sigkilled_trial_worker_is_retried_from_its_checkpoint(ray_cluster, tmp_path, reference):
    trial_id = reference[0]
    suite = load_suite(suite_path(tmp_path, "worker"))
    out = tmp_path / "results" / "worker"
    done = {}
    driver = threading.Thread(target=lambda: done.update(summary=run_suite(suite, out.parent, report=False)))
    driver.start()
    try:
        result = wait_for_registered_checkpoint(out / "ray", trial_id, driver.is_alive)
        os.kill(result["pid"], signal.SIGKILL)  # the trial's worker process, as an OOM kill would
    finally:
        driver.join(timeout=240)
    assert not driver.is_alive() and done["summary"].statuses == {"ok": 1}
    row = load_results(out).iloc[0].to_dict()
    assert_resumed_equals_reference(row, reference)
    assert (out / row["samples_npy"]).read_bytes() == reference[2]


def session_processes(leader: int) -> list[psutil.Process]:
    """The processes of the session `leader` started (its private Ray: GCS, raylet, workers)."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == leader and p.pid != leader:
                found.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def test_sigkilled_driver_mid_trial_resumes_the_cell_from_its_stored_checkpoint(ray_cluster, tmp_path, reference):
    trial_id = reference[0]
    path = suite_path(tmp_path, "driver")
    out = tmp_path / "results" / "driver"
    log = open(tmp_path / "driver.log", "w")
    cmd = [sys.executable, str(ROOT / "run_bench.py"), "run", str(path), "--results", str(out.parent), "--no-report"]
    # its own session: the driver starts a private Ray, whose processes the test removes by session id
    driver = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ray_processes: list[psutil.Process] = []
    try:
        wait_for_registered_checkpoint(out / "ray", trial_id, lambda: driver.poll() is None)
        ray_processes = psutil.Process(driver.pid).children(recursive=True)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        for p in ray_processes + session_processes(driver.pid):
            try:
                p.kill()  # psutil checks the pid still names the same process
            except psutil.NoSuchProcess:
                pass
        log.close()
    assert not (out / "rows").exists() or not list((out / "rows").glob("*.json")), "killed after the trial ended"

    summary = run_suite(load_suite(path), out.parent, report=False)  # the rerun, on the test's Ray
    assert summary.statuses == {"ok": 1}
    row = load_results(out).iloc[0].to_dict()
    assert_resumed_equals_reference(row, reference)
    assert row["attempts"] == 2
