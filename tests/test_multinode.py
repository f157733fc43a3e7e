"""A suite on a three-node Ray cluster on this machine (tests/multinode_driver.py, own process):
trials land on both worker nodes; removing a node mid-trial ends with that trial resumed from its
checkpoint on the other node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from tiny_suite import write_suite

ROOT = Path(__file__).resolve().parents[1]

# checkpoint_every_steps: tests/multinode_driver.py waits for the first checkpoint (REGISTERED_AFTER)
RESOURCES = {"gpus_per_trial": 0, "max_retries": 2, "report_every_steps": 25, "checkpoint_every_steps": 100}


@pytest.mark.ray
@pytest.mark.slow
def test_trials_spread_over_nodes_and_a_removed_nodes_trial_resumes_on_the_other(tmp_path):
    suite = write_suite(tmp_path, "nodes", seeds=[0, 1], steps=2000, resources=RESOURCES)
    ray_tmp = tempfile.mkdtemp(prefix="gbn-", dir="/tmp")  # the cluster's own temp folder (short socket paths)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PYTHONPATH=str(ROOT), RAY_TMPDIR=ray_tmp)
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "multinode_driver.py"), str(suite), str(tmp_path / "results")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the cluster's processes share its process group: killed together below
    )
    try:
        out, err = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)
            driver.wait()
        subprocess.run(["rm", "-rf", ray_tmp], check=False)
    assert driver.returncode == 0, err[-4000:]
    summary = json.loads(out.strip().splitlines()[-1])

    rows = summary["rows"]
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {"ok"}, rows
    assert all(r["train_steps"] == 2000 for r in rows.values()), rows
    removed = summary["removed"]
    assert removed, "no node was removed (the trials ended before both had a checkpoint?)"
    workers = set(summary["workers"])
    (survivor,) = workers - {removed["node_id"]}
    nodes = summary["trial_nodes"]  # trial_id -> the node of each of its reports, in order
    (victim,) = [tid for tid, r in rows.items() if r["attempts"] >= 2]
    (other,) = set(rows) - {victim}
    assert rows[victim]["resumed_from_step"] > 0 and rows[other]["attempts"] == 1, rows
    assert nodes[victim][0] == removed["node_id"] and nodes[victim][-1] == survivor, nodes[victim]
    assert set(nodes[other]) == {survivor}  # so the two trials started one on each worker node
