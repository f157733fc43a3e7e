"""Which Ray a run uses: never a `ray start` cluster it was not given, fast one-line errors otherwise.

The cluster here is a real `ray start --head` (token authentication on) in its own temp folder, so
that a bare `ray.init()` in the driver would join it; it is torn down by killing its own process
group, never with `ray stop`. Drivers run as subprocesses: the session's Ray stays untouched.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from tiny_suite import write_suite

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "genbench0test0token0000000000000"  # the test cluster's token (32 hex-ish chars)


def _suite(folder: Path, name: str, gpus: int = 0) -> Path:
    return write_suite(folder, name, resources={"gpus_per_trial": gpus})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _genbench(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def test_an_address_where_nothing_listens_fails_fast_in_one_line_naming_it(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    # timeout: the acceptance bound (Ray alone would retry for ~40 s here)
    done = _genbench(
        ["run", str(_suite(tmp_path, "dead")), "--results", str(tmp_path / "results"), "--address", address],
        _env(),
        timeout=30,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("genbench: error:")]
    assert len(errors) == 1 and address in errors[0], done.stderr[-2000:]
    assert not (tmp_path / "results").exists()  # nothing written before the cluster was reached


@pytest.fixture
def token_cluster():
    """A 1-CPU `ray start` head with token auth in a short private temp folder; yields (address, env)."""
    tmp = tempfile.mkdtemp(prefix="gb-", dir="/tmp")  # Ray's socket paths must stay short
    env = _env(RAY_TMPDIR=tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={_free_port()}", "--num-cpus=1"]
    cmd += ["--include-dashboard=false", "--disable-usage-stats"]
    start = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = start.communicate(timeout=60)
        assert start.returncode == 0, out.decode()[-2000:]
        address = (Path(tmp) / "ray" / "ray_current_cluster").read_text().strip()
        yield address, env
    finally:
        with_group = start.pid  # every process of that cluster is in this session's process group
        try:
            os.killpg(with_group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        subprocess.run(["rm", "-rf", tmp], check=False)


def _jobs(address: str, env: dict[str, str]) -> int:
    """Number of jobs (drivers) the cluster's GCS has ever seen, asked from a separate process."""
    code = f"import sys, ray._raylet as r\nprint(len(r.GcsClient(address={address!r}).get_all_job_info()))\n"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.ray
@pytest.mark.slow
def test_run_without_address_is_private_and_address_errors_are_one_line(token_cluster, tmp_path):
    address, cluster_env = token_cluster
    assert _jobs(address, cluster_env) == 0

    # no --address, no RAY_ADDRESS, the cluster's token at hand: a bare ray.init() would join it
    results = tmp_path / "results"
    done = _genbench(
        ["run", str(_suite(tmp_path, "private")), "--results", str(results), "--no-report"], cluster_env, 240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [json.loads(p.read_text()) for p in (results / "private" / "rows").glob("*.json")]
    assert row["status"] == "ok"
    assert _jobs(address, cluster_env) == 0  # the suite ran elsewhere: on its own private Ray

    # RAY_ADDRESS without the token: Ray's authentication error, in one line, at once
    no_token = _env(RAY_TMPDIR=cluster_env["RAY_TMPDIR"], RAY_ADDRESS=address)
    done = _genbench(["run", str(_suite(tmp_path, "refused")), "--results", str(results)], no_token, 60)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("genbench: error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert address in errors[0] and "Authentication" in errors[0], errors[0]
    assert not (results / "refused").exists()

    # --address with the token, a trial needing a GPU the cluster lacks: refused before any file
    done = _genbench(
        ["run", str(_suite(tmp_path, "gpu", gpus=1)), "--results", str(results), "--address", address],
        cluster_env,
        120,
    )
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("genbench: error:")]
    assert done.returncode == 2 and len(errors) == 1 and "GPU" in errors[0], done.stderr[-3000:]
    assert not (results / "gpu").exists()
    assert _jobs(address, cluster_env) == 1  # that driver did join: the job count can see a run
