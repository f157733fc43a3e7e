"""One trial = one grid cell: seed, build, train for the budget, evaluate, save, return the row.

`run_trial(cell, results_dir=...)` never raises for a problem of the trial itself: an exception
becomes a row with status "failed" and its error text, a divergence a row with status "diverged"
(training stops, evaluation is skipped). Every column of `bench.schema` is present on the row.

Inside: Accelerate places the model and runs mixed precision for training only; evaluation (NLL
included) runs the unwrapped fp32 modules. Batches are drawn i.i.d. (with replacement) from
dataset.train() by a generator seeded with the trial seed, so a CPU rerun is bit-identical.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import logging
import math
import traceback
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed

from bench.datasets import make_dataset
from bench.families import make_family
from bench.hparams import build, to_dict
from bench.metrics import EvalConfig, TrainMonitor, evaluate
from bench.results import atomic_write_bytes, empty_row, normalize_row
from bench.schema import COLUMN_NAMES
from bench.suite import Cell

log = logging.getLogger(__name__)

VERSIONED = ("torch", "torch-fidelity", "ray", "accelerate", "genbench")  # stamped on the row
PATH_COLUMNS = ("samples_png", "samples_npy")  # evaluate() gives absolute paths; rows: relative


def run_trial(cell: Cell, *, results_dir: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """Train and evaluate one cell; the row (schema columns) whatever happens inside.

    results_dir: the suite's results folder (absolute); weights/ and samples/ go under it.
    cache_dir: metric caches shared by the suite's trials (default results_dir/cache).
    """
    results_dir = Path(results_dir).resolve()
    row = identity_row(cell)
    warnings: list[str] = []
    try:
        _run(cell, row, warnings, results_dir, Path(cache_dir or results_dir / "cache"))
    except Exception as exc:  # a failing trial is data: record it, the suite goes on
        log.error("trial %s failed:\n%s", cell.name, traceback.format_exc())
        row.update(status="failed", error=_one_line(exc))
    row["warnings"] = "; ".join(warnings)
    return normalize_row(row)


def identity_row(cell: Cell) -> dict[str, Any]:
    """A row with the cell's identity filled and every other column 'not applicable'."""
    row = empty_row()
    row.update(
        suite=cell.suite,
        trial_id=cell.trial_id,
        family=cell.family,
        label=cell.label,
        dataset=cell.dataset,
        budget=cell.budget,
        seed=cell.seed,
        config_hash=cell.config_hash,
        status="running",
        mixed_precision=cell.mixed_precision,
        versions=_versions(),
    )
    return row


def _run(cell: Cell, row: dict[str, Any], warnings: list[str], results_dir: Path, cache_dir: Path) -> None:
    torch.set_num_threads(max(1, int(cell.cpus)))  # the CPUs Ray reserved, not the machine's
    set_seed(cell.seed)  # python random, numpy, torch (CPU and CUDA)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    family = make_family(cell.family, dataset.spec, cell.hparams)
    row.update(hparams=to_dict(family.hp), params=family.param_count())
    accelerator, precision = _accelerator(cell.mixed_precision, warnings)
    row.update(mixed_precision=precision, device=_device_name(accelerator.device))
    family.attach(accelerator)

    monitor = _train(family, dataset, cell, accelerator)
    row.update(monitor.summary())
    _detach(family, accelerator)  # evaluation runs plain fp32 modules (no autocast wrapper)
    _save_weights(family, results_dir / "weights" / f"{cell.trial_id}.pt", row, results_dir)
    if monitor.diverged_reason is not None:
        row.update(status="diverged", error=f"diverged at step {monitor.diverged_step}: {monitor.diverged_reason}")
        return

    cfg = build(EvalConfig, cell.eval, owner="[eval]")
    family.train(False)
    measured = evaluate(
        family, dataset, cfg, cache_dir=cache_dir, out_dir=results_dir / "samples" / cell.trial_id, seed=cell.seed
    )
    unknown = sorted(set(measured) - set(COLUMN_NAMES))
    if unknown:  # a contract mismatch must not cost the trial its measurements
        log.warning("evaluate() returned columns outside bench.schema, dropped: %s", ", ".join(unknown))
    measured = {k: v for k, v in measured.items() if k in COLUMN_NAMES}
    row.update(_relative_paths(measured, results_dir))
    row["status"] = "ok"


# --- pieces -----------------------------------------------------------------------------------
def _accelerator(requested: str, warnings: list[str]):
    """A fresh Accelerator; fp16 on CPU falls back to "no" (decided here, recorded on the row)."""
    # AcceleratorState is a per-process singleton; several trials in one process (tests, the
    # benchmark) need a reset. Private API, also used by transformers' tests (library-notes).
    AcceleratorState._reset_state(reset_partial_state=True)
    cuda = torch.cuda.is_available()
    precision = requested
    if requested == "fp16" and not cuda:
        precision = "no"
        warnings.append("mixed_precision fp16 requested on CPU: trained in fp32 (no autocast)")
    return Accelerator(mixed_precision=precision, cpu=not cuda), precision


def _train(family, dataset, cell: Cell, accelerator):
    """Optimizer steps until the budget (steps and/or seconds, first reached) or a divergence."""
    data = dataset.train().to(accelerator.device)  # small enough to sit on the device: no loader
    generator = torch.Generator().manual_seed(cell.seed)
    batch = family.hp.batch_size
    monitor = TrainMonitor(family, accelerator.device, batch_size=batch)
    family.train(True)
    deadline = math.inf if cell.seconds is None else cell.seconds
    max_steps = math.inf if cell.steps is None else cell.steps
    step = 0
    monitor.start()
    try:
        while step < max_steps and monitor.train_s < deadline:
            idx = torch.randint(len(data), (batch,), generator=generator).to(data.device)
            if monitor.step(step, family.train_step(data[idx])) is not None:
                break
            step += 1
    finally:
        monitor.stop()
    return monitor


def _detach(family, accelerator) -> None:
    """Swap the prepared modules for the bare ones (mixed precision ends with training)."""
    # keep_fp32_wrapper=False also removes the autocast wrapper around forward
    bare = {name: accelerator.unwrap_model(m, keep_fp32_wrapper=False) for name, m in family.modules().items()}
    family._replace(bare, {})
    family.accelerator = None


def _save_weights(family, path: Path, row: dict[str, Any], results_dir: Path) -> None:
    buffer = io.BytesIO()
    torch.save(family.state_dict(), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    row["weights_path"] = str(path.relative_to(results_dir))


def _relative_paths(measured: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    out = dict(measured)
    for key in PATH_COLUMNS:
        value = out.get(key)
        if value:
            p = Path(value)
            inside = p.is_absolute() and p.is_relative_to(results_dir)
            out[key] = str(p.relative_to(results_dir)) if inside else str(p)
    return out


def _device_name(device: torch.device) -> str:
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"


def _versions() -> str:
    found = {}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return json.dumps(found, sort_keys=True)


def _one_line(exc: BaseException) -> str:
    """'Type: message [file:line]' on one line (the full traceback goes to the trial's log)."""
    msg = " ".join(str(exc).split()) or "(no message)"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" [{Path(frames[-1].filename).name}:{frames[-1].lineno}]" if frames else ""
    return f"{type(exc).__name__}: {msg}{where}"
