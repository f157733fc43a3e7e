"""The results folder: one run at a time (lock) and storage problems as one-line errors, exit 2.

The CLI cases run `genbench run` in a subprocess; folders are made unwritable by chmod, and when the
tests run as root (which ignores permission bits) the subprocess drops root's capabilities to
override them. None of these runs gets as far as starting Ray.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench import store as results
from bench.errors import StorageError
from bench.store.lock import LOCK, OWNER, results_lock
from bench.suite import load_suite
from bench.trial.run import identity_row

ROOT = Path(__file__).resolve().parents[1]
SUITE = """name = "s"
seeds = [0, 1]
[[datasets]]
name = "8gaussians"
[[models]]
family = "flow"
[[budgets]]
name = "tiny"
steps = 5
"""


def test_a_second_lock_on_a_folder_fails_at_once_naming_the_folder_and_the_holder(tmp_path):
    folder = tmp_path / "res" / "s"
    with results_lock(folder):
        owner = json.loads((folder / OWNER).read_text())
        assert owner["pid"] == os.getpid()
        with pytest.raises(StorageError) as info, results_lock(folder):
            pass
        msg = str(info.value)
        assert str(folder) in msg and f"pid {os.getpid()} on {owner['host']}" in msg and "\n" not in msg
    assert not (folder / OWNER).exists()
    with results_lock(folder):  # released: free again
        pass


def drop_root_overrides() -> None:
    """In a child before exec: root without CAP_DAC_OVERRIDE / DAC_READ_SEARCH / FOWNER obeys the
    permission bits (the capabilities leave the bounding set, so exec does not grant them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # linux/capability.h
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_cli(args, cwd: Path, *, unprivileged=False, limit_file_size=False) -> subprocess.CompletedProcess:
    def setup():
        if limit_file_size:  # any write to a regular file fails (EFBIG), as on a full disk
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        if unprivileged and os.geteuid() == 0:
            drop_root_overrides()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, str(ROOT / "run_bench.py"), "run", *args, "--no-report"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, preexec_fn=setup)


def read_only(path: Path) -> None:
    """Unwritable for its owner (and for root without its override capabilities)."""
    for p in [path, *path.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("genbench: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert "Started a local Ray" not in proc.stderr


@pytest.mark.slow
def test_read_only_parent_is_a_one_line_error(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE)
    parent = tmp_path / "ro"
    parent.mkdir()
    read_only(parent)
    proc = run_cli(["s.toml", "--results", "ro"], tmp_path, unprivileged=True)
    assert_one_line_error(proc, str(parent / "s"), "Permission denied")


@pytest.mark.slow
def test_read_only_finished_folder_is_a_one_line_error_and_stays_untouched(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE)
    folder = tmp_path / "res" / "s"
    for cell in load_suite(tmp_path / "s.toml").cells():  # a finished folder: every cell ok
        results.trial_rows(folder).write_row({**identity_row(cell), "status": "ok"})
    results.rebuild_tables(folder)
    read_only(tmp_path / "res")
    before = sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*"))
    proc = run_cli(["s.toml", "--results", "res"], tmp_path, unprivileged=True)
    assert_one_line_error(proc, str(folder), "Permission denied")
    assert sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*")) == before


@pytest.mark.slow
def test_a_failing_first_write_is_a_one_line_error(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE)
    proc = run_cli(["s.toml", "--results", "res"], tmp_path, limit_file_size=True)
    assert_one_line_error(proc, str(tmp_path / "res" / "s"), "File too large")


def test_results_pointing_at_a_file_in_process(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SUITE)
    (tmp_path / "taken").write_text("x")
    assert cli.main(["run", str(tmp_path / "s.toml"), "--results", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("genbench: error:") and str(tmp_path / "taken") in err


def test_report_on_a_damaged_table_without_rows_is_a_one_line_error(tmp_path, capsys):
    folder = tmp_path / "quick"
    folder.mkdir()
    (folder / results.TRIALS.table).write_bytes(b"PAR1\x00 cut short")
    assert cli.main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(folder / results.TRIALS.table) in err and "unreadable" in err, err


def test_after_a_run_the_lock_file_stays_and_the_owner_file_is_gone(tmp_path):
    with results_lock(tmp_path / "r"):
        assert (tmp_path / "r" / OWNER).is_file()
    assert (tmp_path / "r" / LOCK).is_file() and not (tmp_path / "r" / OWNER).exists()  # as documented
    with results_lock(tmp_path / "r"):  # and it locks again
        pass
