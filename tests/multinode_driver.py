"""Driver process of tests/test_multinode.py (its own process: the session's Ray stays untouched).

A Ray cluster on this machine (ray.cluster_utils.Cluster): a head without CPUs and two 1-CPU worker
nodes, so two 1-CPU trials land one on each. Once both trials have stored a checkpoint, a watcher
removes the node of a running trial; the suite must end with that trial retried on the other node,
resumed from its checkpoint. Every report carries the node that sent it (Tune's result.json).
Prints a JSON summary on its last line.

    python tests/multinode_driver.py SUITE RESULTS_ROOT
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from bench.run.driver import run_suite
from bench.store import trial_rows
from bench.suite import load_suite

REGISTERED_AFTER = 100  # the suite's checkpoint_every_steps: the first checkpoint is taken at this step


def reports(trial_dir: Path) -> list[dict]:
    """Tune's result.json of one trial: one JSON object per report (a line may be half written)."""
    out = []
    for line in (trial_dir / "result.json").read_text().splitlines() if (trial_dir / "result.json").exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def remove_a_node_after_a_checkpoint(
    cluster: Cluster, experiment_root: Path, trial_ids: set[str], removed: dict, stop: threading.Event
) -> None:
    """Once every trial has stored a checkpoint and none has finished, remove the node of a running
    trial (its actor)."""
    workers = {n.node_id: n for n in cluster.worker_nodes}
    while not stop.is_set():
        # registered with Tune, not merely on disk: a checkpoint folder appears while it is being stored, and a
        # node removed before Tune's driver has taken the report in leaves the retry no checkpoint to resume.
        # The driver logs reports in order, so a logged report past the first checkpoint's step proves it.
        checkpointed = {
            d.name
            for d in experiment_root.glob("run-*/*/")
            if any((r.get("step") or 0) > REGISTERED_AFTER for r in reports(d))
        }
        finished = any((experiment_root.parent / "rows").glob("*.json"))  # then a removal might miss
        if checkpointed >= trial_ids and not finished:
            alive = [
                a
                for a in ray._private.state.actors().values()  # the GCS actor table (no dashboard needed)
                if a["State"] == "ALIVE" and a["Address"]["NodeID"] in workers
            ]
            if alive:
                removed.update(node_id=alive[0]["Address"]["NodeID"], pid=alive[0]["Pid"])
                cluster.remove_node(workers[removed["node_id"]])
                return
        time.sleep(0.05)


def main(suite_path: str, results_root: str) -> None:
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    suite = load_suite(suite_path)
    removed: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(
        target=remove_a_node_after_a_checkpoint,
        args=(cluster, Path(results_root) / suite.name / "ray", {c.trial_id for c in suite.cells()}, removed, stop),
        daemon=True,
    )
    watcher.start()
    try:
        run_suite(suite, results_root, address=cluster.address, report=False)
    finally:
        stop.set()
        watcher.join(timeout=10)
    experiment = Path(results_root) / suite.name / "ray"
    trial_nodes = {}
    for trial_dir in experiment.glob("run-*/*/"):
        trial_nodes[trial_dir.name] = [r.get("node_id") for r in reports(trial_dir)]
    rows = trial_rows(Path(results_root) / suite.name).read_rows()
    summary = {
        "workers": [w.node_id for w in workers],
        "removed": removed,
        "trial_nodes": trial_nodes,
        "rows": {
            tid: {k: r[k] for k in ("status", "error", "attempts", "resumed_from_step", "train_steps")}
            for tid, r in rows.items()
        },
    }
    print(json.dumps(summary), flush=True)
    ray.shutdown()  # the driver first: Cluster refuses to remove the node it is connected to
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
