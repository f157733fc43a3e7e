"""Trial checkpoints: everything a trial needs to continue exactly where it stopped, as one folder.

    <folder>/state.pt   torch.save of {"family": Family.training_state(), "rng": every generator the
                        trial draws from, "monitor": TrainMonitor.state_dict(), "scaler": the fp16 loss
                        scaler's state or None, "step", "attempts"}
    <folder>/meta.json  {"trial_id", "step", "attempts", "state_bytes"}, written after state.pt

A checkpoint is complete when meta.json parses and state.pt has the size it records (Ray Tune
copies the folder file by file; a driver or node killed mid-copy leaves an incomplete one, which
`find_stored` skips). state.pt holds tensors and plain values only, so it loads with
`weights_only=True`.

Where checkpoints live: Ray Tune stores what a trial reports under
`<storage>/<experiment>/<trial_id>/checkpoint_<index>/` (the runner names trial folders by trial_id),
on any pyarrow filesystem. A retried trial gets its latest one from `tune.get_checkpoint()`; a rerun of
the suite (new experiment, same results folder) finds the most advanced one with `find_stored`. A
retried trial whose worker died after copying a checkpoint but before Tune's driver registered it gets
None from Tune; `newest_in` finds that folder in the trial's folder of the running experiment.
"""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyarrow import fs as pafs

log = logging.getLogger(__name__)

STATE = "state.pt"
META = "meta.json"
PREFIX = "checkpoint_"  # Ray Tune's checkpoint folder names


# --- random generators -----------------------------------------------------------------------------
def rng_state(batches: torch.Generator) -> dict[str, Any]:
    """The trial's generators: torch (CPU, every CUDA device), the batch-index generator, numpy, python."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "batches": batches.get_state(),
        "numpy": (name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], batches: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    batches.set_state(state["batches"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# --- one checkpoint folder -------------------------------------------------------------------------
def save(folder: Path, state: dict[str, Any], *, trial_id: str) -> None:
    """Write `state` (with "step" and "attempts") into `folder` as state.pt, then meta.json."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    (folder / STATE).write_bytes(data)
    meta = {"trial_id": trial_id, "step": state["step"], "attempts": state["attempts"], "state_bytes": len(data)}
    (folder / META).write_text(json.dumps(meta))


def load(folder: Path, *, trial_id: str) -> dict[str, Any]:
    """The state saved in `folder`; ValueError when it belongs to another trial or is incomplete."""
    meta = json.loads((folder / META).read_text())
    if meta["trial_id"] != trial_id:
        raise ValueError(f"checkpoint {folder} belongs to trial {meta['trial_id']}, not {trial_id}")
    data = (folder / STATE).read_bytes()
    if len(data) != meta["state_bytes"]:
        raise ValueError(f"checkpoint {folder} is incomplete ({len(data)} of {meta['state_bytes']} bytes)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# --- stored checkpoints of earlier runs ------------------------------------------------------------
def filesystem_for(storage: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path on it) for a local folder or a URI such as s3://bucket/prefix."""
    if "://" in storage:
        return pafs.FileSystem.from_uri(storage)
    return pafs.LocalFileSystem(), str(Path(storage).resolve())


def find_stored(filesystem: pafs.FileSystem, root: str, trial_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
    """trial_id -> (path, step) of its most advanced complete checkpoint under any experiment in
    `root` (`<root>/<experiment>/<trial_id>/checkpoint_*`); trials without one are left out."""
    wanted = set(trial_ids)
    best: dict[str, tuple[str, int]] = {}
    for experiment in _folders(filesystem, root):
        for trial in _folders(filesystem, experiment.path):
            if trial.base_name not in wanted:
                continue
            found = newest_in(filesystem, trial.path, trial.base_name)
            if found is not None and found[1] > best.get(trial.base_name, ("", -1))[1]:
                best[trial.base_name] = found
    return best


def newest_in(filesystem: pafs.FileSystem, trial_dir: str, trial_id: str) -> tuple[str, int] | None:
    """(path, step) of the most advanced complete checkpoint of `trial_id` in one trial folder
    (`<trial_dir>/checkpoint_*`, one listing), None when there is none (or no such folder)."""
    best = None
    for folder in _folders(filesystem, trial_dir):
        if not folder.base_name.startswith(PREFIX):
            continue
        step = _complete_step(filesystem, folder.path, trial_id)
        if step is not None and (best is None or step > best[1]):
            best = (folder.path, step)
    return best


def _folders(filesystem: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted((i for i in infos if i.type == pafs.FileType.Directory), key=lambda i: i.base_name)


def _complete_step(filesystem: pafs.FileSystem, folder: str, trial_id: str) -> int | None:
    """The checkpoint's step if it is complete and of this trial, else None."""
    try:
        with filesystem.open_input_stream(f"{folder}/{META}") as f:
            meta = json.loads(f.read())
        size = filesystem.get_file_info(f"{folder}/{STATE}").size
    except (OSError, ValueError) as exc:
        log.debug("skipping checkpoint %s: %s", folder, exc)
        return None
    if meta.get("trial_id") != trial_id or size != meta.get("state_bytes"):
        return None
    return int(meta["step"])
