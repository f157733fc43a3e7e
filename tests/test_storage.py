"""--storage: weights, samples and Tune's files on a real S3-compatible server (moto's server mode on
127.0.0.1, started here), rows/tables/report in the results folder, the report reading from storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
from tiny_suite import write_suite

from bench.errors import ConfigError
from bench.store import folder, storage

ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free local port with an empty bucket `bench`; yields its host:port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    before = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # this process's pyarrow clients (fetch); never a real account
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True)
    fs.create_dir("bench")
    try:
        yield f"{host}:{port}"
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def _uri(endpoint: str, prefix: str) -> str:
    return f"s3://bench/{prefix}?endpoint_override={endpoint}&scheme=http"


def _bucket_files(endpoint: str, prefix: str) -> dict[str, int]:
    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    infos = fs.get_file_info(pafs.FileSelector(f"bench/{prefix}", recursive=True, allow_not_found=True))
    return {i.path.removeprefix(f"bench/{prefix}/"): i.size for i in infos if i.type == pafs.FileType.File}


def test_stored_names_follow_the_storage_and_never_carry_credentials(tmp_path):
    results = tmp_path / "results" / "s"
    assert storage.Storage(results).name_of("weights/a.pt") == "weights/a.pt"  # the results folder: relative
    shared = storage.Storage(results, str(tmp_path / "nfs"))
    assert shared.name_of("weights/a.pt") == f"{tmp_path / 'nfs'}/weights/a.pt"
    secret = storage.Storage(results, "s3://AK:SK@b/p?endpoint_override=h:1&scheme=http")
    name = secret.name_of("samples/t/samples.npy")
    assert name == "s3://b/p/samples/t/samples.npy?endpoint_override=h:1&scheme=http"
    assert "AK" not in name and "SK" not in name
    assert secret.tune_run_config()["storage_path"] == "b/p/ray"


def test_an_unknown_storage_scheme_is_a_one_line_input_error(tmp_path):
    with pytest.raises(ConfigError, match="--storage nosuch://x/y"):
        storage.open_storage("nosuch://x/y", tmp_path / "r", "id0")


def test_publish_and_fetch_round_trip_through_the_s3_server(s3, tmp_path):
    scratch = tmp_path / "scratch"
    (scratch / "weights").mkdir(parents=True)
    (scratch / "weights" / "t1.pt").write_bytes(b"weights-bytes")
    ident = folder.identity(tmp_path / "results")  # fetch reads only the folder's own prefix
    store = storage.open_storage(_uri(s3, "unit"), tmp_path / "results", ident)
    row = store.publish(scratch, {"weights_path": "weights/t1.pt", "samples_npy": "", "samples_png": ""})
    assert row["weights_path"].startswith(f"s3://bench/unit/results-{ident}/weights/t1.pt?")  # <suite>-<identity>/
    assert _bucket_files(s3, "unit") == {f"results-{ident}/weights/t1.pt": len(b"weights-bytes")}
    fetched = storage.fetch(row["weights_path"], tmp_path / "results")
    assert fetched.read_bytes() == b"weights-bytes"
    assert [p.name for p in (tmp_path / "results").iterdir()] == [folder.IDENTITY]  # nothing downloaded there
    assert storage.fetch(row["weights_path"].replace("t1.pt", "t2.pt"), tmp_path) is None


def _publish_trial(store: storage.Storage, trial_id: str) -> dict[str, str]:
    """A finished trial's files in `store` (weights, samples, a Tune checkpoint) and its row's names."""
    scratch = store.results_dir.parent / f"scratch-{store.results_dir.name}"
    files = {"weights_path": f"weights/{trial_id}.pt", "samples_npy": f"samples/{trial_id}/samples.npy"}
    for rel in files.values():
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).write_bytes(f"{store.results_dir.name}:{rel}".encode())
    checkpoint = f"{store.root}/ray/run-1/{trial_id}/checkpoint_000000"
    store.fs.create_dir(checkpoint, recursive=True)
    with store.fs.open_output_stream(f"{checkpoint}/state.pt") as out:
        out.write(b"checkpoint")
    return store.publish(scratch, {**files, "samples_png": ""})


def test_two_suites_share_one_bucket_and_restarting_one_leaves_the_others_files(s3, tmp_path):
    """The same --storage for suites a and b (same trial id even): --restart of a clears a's prefix only."""
    uri = _uri(s3, "shared")
    stores, rows = {}, {}
    for suite in ("a", "b"):
        results_dir = tmp_path / "results" / suite
        results_dir.mkdir(parents=True)
        stores[suite] = storage.open_storage(uri, results_dir, folder.identity(results_dir))
        rows[suite] = _publish_trial(stores[suite], "t0")
    assert rows["a"]["weights_path"] != rows["b"]["weights_path"]  # no file is shared

    storage.restart(stores["a"])

    left = _bucket_files(s3, "shared")
    prefix = f"b-{folder.read_identity(tmp_path / 'results' / 'b')}"
    assert set(left) == {
        f"{prefix}/weights/t0.pt",
        f"{prefix}/samples/t0/samples.npy",
        f"{prefix}/ray/run-1/t0/checkpoint_000000/state.pt",
    }
    for col in ("weights_path", "samples_npy"):  # b's report still finds its files, with their content
        fetched = storage.fetch(rows["b"][col], tmp_path / "results" / "b")
        assert (
            fetched is not None
            and fetched.read_bytes() == f"b:{rows['b'][col].split('/', 5)[-1].split('?')[0]}".encode()
        )
        assert storage.fetch(rows["a"][col], tmp_path / "results" / "a") is None


def test_a_folder_storage_gets_one_prefix_per_results_folder_kept_across_restarts(tmp_path):
    shared = tmp_path / "nfs"
    one, two = tmp_path / "r1" / "quick", tmp_path / "r2" / "quick"  # two machines' results/quick
    for d in (one, two):
        d.mkdir(parents=True)
    s1 = storage.open_storage(str(shared), one, folder.identity(one))
    s2 = storage.open_storage(str(shared), two, folder.identity(two))
    assert Path(s1.root).parent == Path(s2.root).parent == shared.resolve() and s1.root != s2.root
    assert Path(s1.root).name.startswith("quick-")
    _publish_trial(s1, "t0")
    _publish_trial(s2, "t0")
    storage.restart(s1)
    assert folder.identity(one) == Path(s1.root).name.removeprefix("quick-")  # --restart keeps the identity
    assert not (Path(s1.root) / "weights").exists() and (Path(s2.root) / "weights" / "t0.pt").is_file()
    assert storage.open_storage(None, one, "x").is_results_folder  # no --storage: the results folder, no prefix


DIGITS = {"name": "digits"}
MODELS = (
    {"family": "flow", "hparams": {"coupling_layers": 2, "hidden": 16, "width": 8, "blocks": 1, "batch_size": 32}},
    {"family": "vae", "hparams": {"hidden": 16, "width": 8, "batch_size": 32}},
)


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_with_s3_storage_keeps_only_rows_tables_report_and_logs_locally(s3, tmp_path):
    from bench.report import OUTPUTS
    from bench.report.data import load, resolve_asset
    from bench.report.writer import RECORD
    from bench.store.folder import CELLS, IDENTITY, read_identity
    from bench.store.lock import LOCK

    eval_cfg = {"iwae_k": 2, "impute_examples": 20}
    suite = write_suite(tmp_path, "s3run", datasets=[DIGITS], models=MODELS, eval=eval_cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(CREDENTIALS, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "node-cache"))
    cmd = [sys.executable, str(ROOT / "run_bench.py"), "run", str(suite), "--results", str(tmp_path / "results")]
    done = subprocess.run(
        [*cmd, "--storage", _uri(s3, "runs")], env=env, capture_output=True, text=True, timeout=400, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-4000:]

    out = tmp_path / "results" / "s3run"
    rows = [json.loads(p.read_text()) for p in (out / "rows").glob("*.json")]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    stored = _bucket_files(s3, f"runs/s3run-{read_identity(out)}")  # the folder's own prefix
    for r in rows:
        tid = r["trial_id"]
        for key, rel in (
            ("weights_path", f"weights/{tid}.pt"),
            ("samples_npy", f"samples/{tid}/samples.npy"),
            ("samples_png", f"samples/{tid}/samples.png"),
        ):
            assert stored.get(rel, 0) > 0, (rel, sorted(stored))
            assert r[key].startswith(f"s3://bench/runs/s3run-{read_identity(out)}/{rel}?"), r[key]
    for r in rows:  # Tune's checkpoints (the one at the end of training) went to the bucket too
        assert any(p.startswith("ray/run-") and f"/{r['trial_id']}/checkpoint_" in p for p in stored), sorted(stored)

    allowed = {
        "rows",
        "logs",
        "figures",
        "trials.parquet",
        "trials.csv",
        LOCK,
        IDENTITY,
        CELLS,
        RECORD,
        *OUTPUTS,
    }  # LOCK: one run per folder
    assert {p.name for p in out.iterdir()} <= allowed, sorted(p.name for p in out.iterdir())
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.npy"))

    # the report drew each model's sample grid from the files in the bucket
    assert (out / "figures" / "samples_digits.png").stat().st_size > 0
    df = load(out)
    for _, r in df.iterrows():
        npy = resolve_asset(out, r, "samples_npy")
        assert np.load(npy).shape[1:] == (1, 8, 8)
        assert resolve_asset(out, r, "samples_png").stat().st_size == stored[f"samples/{r['trial_id']}/samples.png"]


TUNED = """name = "s3tune"
seeds = [0]
[[datasets]]
name = "8gaussians"
options = { n_train = 1000, n_test = 300 }
[[models]]
family = "flow"
hparams = { coupling_layers = 2, hidden = 16, batch_size = 32 }
space = { lr = { loguniform = [1e-4, 1e-2] } }
[[budgets]]
name = "tiny"
steps = 10
[tune]
metric = "nll"
samples = 2
seeds = [0]
[resources]
report_every_steps = 5
checkpoint_every_steps = 0
[eval]
nll_examples = 50
"""


@pytest.mark.ray
@pytest.mark.slow
def test_tuning_trials_keep_tunes_files_in_the_s3_storage_and_their_rows_locally(
    ray_cluster, s3, tmp_path, monkeypatch
):
    from bench.run.driver import tuned_cells
    from bench.store import tuning_rows
    from bench.suite import load_suite

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "node-cache"))  # the driver's metric caches
    path = tmp_path / "s3tune.toml"
    path.write_text(TUNED)
    suite = load_suite(path)
    out = (tmp_path / "results" / "s3tune").resolve()
    # the session's Ray workers started without the server's credentials: they travel in the URI
    uri = _uri(s3, "tuned").replace("s3://", "s3://testing:testing@")
    cells, untuned = tuned_cells(suite, out, address=None, store=storage.open_storage(uri, out, "id0"))

    rows = tuning_rows(out).read_rows()
    assert sorted(r["sample"] for r in rows.values()) == [0, 1] and {r["status"] for r in rows.values()} == {"ok"}
    assert [c.tuned for c in cells] == [True] and not untuned
    stored = _bucket_files(s3, "tuned/s3tune-id0")
    experiment = "ray/tune-flow-8gaussians-tiny-seed0"
    for sample in (0, 1):  # each tuning trial's results went to the bucket
        assert any(p.startswith(f"{experiment}/sample-{sample}") and p.endswith("result.json") for p in stored), sorted(
            stored
        )
    assert not (out / "ray").exists() and not (out / "cache").exists()
