"""One trial = one grid cell: seed, build, train for the budget, evaluate, save, return the row.

`run_trial(cell, results_dir=...)` never raises for a problem of the trial itself: an exception
becomes a row with status "failed" and its error text, a divergence a row with status "diverged",
a budget that allowed no optimizer step a row with status "no-steps" (nothing is measured)
(training stops, evaluation is skipped). Every column of `bench.store.schema` is present on the row.

Inside: Accelerate places the model and runs mixed precision for training only; evaluation (NLL
included) runs the unwrapped fp32 modules. Batches are drawn i.i.d. (with replacement) from
dataset.train() by a generator seeded with the trial seed, so a CPU rerun is bit-identical.

Lifecycle while training (`Lifecycle`): every `cell.report_every_steps` steps the trial calls
`reporter(metrics, None)` with step, budget_steps, budget_s, train_s, loss (the main loss averaged
since the last report), losses (the last step's) and whatever `report_hook(family, dataset)` adds
(e.g. a validation metric). Every `cell.checkpoint_every_steps` steps (0 = never) and at the end of
training it saves a checkpoint (bench.trial.checkpoint) into a temporary folder and passes it:
`reporter(metrics, folder)`; the folder is deleted when the reporter returns (Ray Tune has copied it
to storage by then). `resume=<checkpoint folder>` continues such a trial: on CPU the row equals that
of an uninterrupted run bit for bit (train_s apart). Reports and checkpoints are not training time.
An exception raised by the reporter (e.g. Tune stopping the trial) leaves run_trial unchanged
rather than becoming a failed row: it is the harness talking, not the trial failing.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed

from bench.datasets import make_dataset
from bench.families import make_family
from bench.hparams import to_dict
from bench.metrics import TrainMonitor, evaluate
from bench.metrics.cost import process_peak_mb, process_unique_mb, reset_process_peak
from bench.metrics.trajectory import Trajectory
from bench.store.files import atomic_write_bytes
from bench.store.rows import empty_row, normalize_row
from bench.store.schema import COLUMN_NAMES, NO_STEPS
from bench.suite.model import Cell
from bench.trial import checkpoint
from bench.trial.provenance import device_name, versions
from bench.trial.validation import TuningView, ValidationAsTest, ValidationHook

log = logging.getLogger(__name__)

PATH_COLUMNS = ("samples_png", "samples_npy")  # evaluate() gives absolute paths; rows: relative

# reporter(metrics, checkpoint folder or None): Ray's trainable passes one that calls tune.report
Reporter = Callable[[dict[str, Any], Path | None], None]
# report_hook(family, dataset) -> extra metrics for each report (runs in eval mode under no_grad, on
# the training device with the training (possibly mixed-precision) modules; the trial's random
# generators are restored afterwards, so a hook never changes what the trial trains or measures)
ReportHook = Callable[[Any, Any], dict[str, float]]


@dataclass
class Lifecycle:
    """How a trial talks to the outside while it trains (see the module docstring)."""

    reporter: Reporter | None = None  # None: no reports, no checkpoints (nothing would keep them)
    report_hook: ReportHook | None = None  # extra metrics for every report
    resume: Path | None = None  # a checkpoint folder to continue from


class _ReporterError(BaseException):
    """Carries an exception of the reporter past run_trial's failed-row handler."""


def run_trial(
    cell: Cell,
    *,
    results_dir: Path,
    cache_dir: Path | None = None,
    lifecycle: Lifecycle | None = None,
    validation: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate one cell; the row (schema columns) whatever happens inside.

    results_dir: the suite's results folder (absolute); weights/ and samples/ go under it.
    cache_dir: metric caches shared by the suite's trials (default results_dir/cache).
    lifecycle: reporter, report hook and checkpoint to resume from (default: none of them).
    validation: a tuning metric ("nll" | "fid") makes this a phase-1 tuning trial: it trains on the
        tuning split, every report carries the metric on the validation split (bench.trial.validation),
        and it ends with training: no evaluation (the test split is never read), no weights.
    """
    results_dir = Path(results_dir).resolve()
    row = identity_row(cell)
    warnings: list[str] = []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reset_process_peak(device)  # a reused worker must not report the previous trial's peak
    try:
        cache = Path(cache_dir or results_dir / "cache")
        _run(cell, row, warnings, results_dir, cache, lifecycle or Lifecycle(), validation)
    except _ReporterError as wrapped:
        raise wrapped.__cause__ from None
    except Exception as exc:  # a failing trial is data: record it, the suite goes on
        log.error("trial %s failed:\n%s", cell.name, traceback.format_exc())
        row.update(status="failed", error=_one_line(exc))
    row["peak_mem_mb"] = process_peak_mb(device)
    row["unique_mem_mb"] = process_unique_mb()
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
        versions=versions(),
        tuned=cell.tuned,
    )
    return row


def _run(
    cell: Cell,
    row: dict[str, Any],
    warnings: list[str],
    results_dir: Path,
    cache_dir: Path,
    lifecycle: Lifecycle,
    validation: str | None,
) -> None:
    torch.set_num_threads(max(1, int(cell.cpus)))  # the CPUs Ray reserved, not the machine's
    set_seed(cell.seed)  # python random, numpy, torch (CPU and CUDA)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    family = make_family(cell.family, dataset.spec, cell.hparams)
    row.update(hparams=to_dict(family.hp), params=family.param_count())
    accelerator, precision = _accelerator(cell.mixed_precision, warnings)
    row.update(mixed_precision=precision, device=device_name(accelerator.device))
    family.attach(accelerator)

    trajectory = _trajectory(cell, ValidationAsTest(dataset) if validation is not None else dataset, cache_dir)
    if validation is not None:  # phase 1 of a tuning run: train on the tuning split, report on val
        hook = ValidationHook(validation, dataset, cell.eval, cache_dir, cell.seed)
        lifecycle = dataclasses.replace(lifecycle, report_hook=hook)
        dataset = TuningView(dataset)
    monitor = _Training(family, dataset, cell, accelerator, lifecycle, trajectory).run(row)
    row.update(monitor.summary())
    if row.get("stalled_s"):
        stall = f"training stalled for {row['stalled_s']:.1f} s (the process did not run: stopped or starved)"
        stall += "; not counted in train_s"
        log.warning("trial %s: %s", cell.name, stall)
        warnings.append(stall)
    row.update(_trajectory_columns(trajectory, diverged=monitor.diverged_reason is not None))
    if validation is not None:  # the reports were the result
        row["status"] = "ok" if monitor.diverged_reason is None else "diverged"
        if monitor.diverged_reason is not None:
            row["error"] = f"diverged at step {monitor.diverged_step}: {monitor.diverged_reason}"
        return
    family.detach()  # evaluation runs plain fp32 modules (no autocast wrapper)
    _save_weights(family, results_dir / "weights" / f"{cell.trial_id}.pt", row, results_dir)
    if monitor.diverged_reason is not None:
        row.update(status="diverged", error=f"diverged at step {monitor.diverged_step}: {monitor.diverged_reason}")
        return
    if not row.get("train_steps"):  # e.g. seconds = 1e-9: measuring an untrained model would pass as ok
        budget = f"steps={cell.steps}, seconds={cell.seconds}"
        row.update(
            status=NO_STEPS, error=f"the budget ({budget}) ended before the first optimizer step: nothing to measure"
        )
        return

    family.train(False)
    with family.evaluation_weights() as which:  # the weight average when the family keeps one
        measured = evaluate(
            family,
            dataset,
            cell.eval,
            cache_dir=cache_dir,
            out_dir=results_dir / "samples" / cell.trial_id,
            seed=cell.seed,
        )
    row["weights_evaluated"] = which
    warnings.extend(w for w in measured.pop("warnings", "").split("; ") if w)
    unknown = sorted(set(measured) - set(COLUMN_NAMES))
    if unknown:  # a contract mismatch must not cost the trial its measurements
        log.warning("evaluate() returned columns outside bench.store.schema, dropped: %s", ", ".join(unknown))
    measured = {k: v for k, v in measured.items() if k in COLUMN_NAMES}
    row.update(_relative_paths(measured, results_dir))
    row["status"] = "ok"


# --- pieces -----------------------------------------------------------------------------------
def _trajectory(cell: Cell, reference_data, cache_dir: Path) -> Trajectory | None:
    """The trial's quality trajectory (None when eval.trajectory_points is 0); a tuning trial's
    compares with the validation split, as its reports do."""
    if cell.eval.trajectory_points == 0:
        return None
    return Trajectory(
        reference_data, cell.eval, cache_dir=cache_dir, seed=cell.seed, steps=cell.steps, seconds=cell.seconds
    )


def _trajectory_columns(trajectory: Trajectory | None, *, diverged: bool) -> dict[str, Any]:
    if trajectory is None:  # no curve: only a divergence says "collapsed"
        return {"collapsed": True if diverged else None}
    return trajectory.columns(diverged=diverged)


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


class _Training:
    """Optimizer steps until the budget (steps and/or seconds, first reached) or a divergence, with
    the lifecycle's reports and checkpoints at step multiples (a modulo check per step)."""

    def __init__(self, family, dataset, cell: Cell, accelerator, lifecycle: Lifecycle, trajectory=None):
        self.family, self.dataset, self.cell, self.accelerator = family, dataset, cell, accelerator
        self.lifecycle, self.trajectory = lifecycle, trajectory
        self.batches = torch.Generator().manual_seed(cell.seed)  # batch indices
        self.monitor = TrainMonitor(family, accelerator.device, batch_size=family.hp.batch_size)
        self.attempts, self.saved_step, self.reported_steps, self.last_loss = 1, -1, 0, math.nan

    def run(self, row: dict[str, Any]) -> TrainMonitor:
        cell, family, monitor = self.cell, self.family, self.monitor
        data = self.dataset.train().to(self.accelerator.device)  # small enough to sit on the device: no loader
        step = self._restore(row)  # last: the generators continue from the checkpoint's states
        report = cell.report_every_steps if self.lifecycle.reporter else math.inf
        ckpt = cell.checkpoint_every_steps if self.lifecycle.reporter and cell.checkpoint_every_steps else math.inf
        batch = family.hp.batch_size
        deadline = math.inf if cell.seconds is None else cell.seconds
        max_steps = math.inf if cell.steps is None else cell.steps
        family.train(True)
        monitor.start()
        try:
            while step < max_steps and monitor.train_s < deadline and monitor.diverged_step < 0:
                idx = torch.randint(len(data), (batch,), generator=self.batches).to(data.device)
                diverged = monitor.step(step, family.step(data[idx])) is not None  # train_step + EMA
                step += 1
                if not diverged and self.trajectory is not None and self.trajectory.due(step, monitor.train_s):
                    with monitor.paused():  # before a report at the same step, so that it carries the point
                        self._evaluating(lambda step=step: self.trajectory.measure(self.family, step))
                if not diverged and (step % report == 0 or step % ckpt == 0):
                    with monitor.paused():
                        self._report(step, save=step % ckpt == 0)
            # the end of training: a last report and checkpoint unless the loop's last event made them
            save = ckpt < math.inf and monitor.diverged_step < 0
            pending = step != self.reported_steps or (save and step != self.saved_step)
            if self.lifecycle.reporter is not None and pending:
                with monitor.paused():
                    self._report(step, save=save)
        finally:
            monitor.stop()
        return monitor

    def _restore(self, row: dict[str, Any]) -> int:
        """Load the checkpoint to resume from, if any; the step to continue from."""
        row.update(attempts=1, resumed_from_step=-1)
        if self.lifecycle.resume is None:
            return 0
        try:
            state = checkpoint.load(Path(self.lifecycle.resume), trial_id=self.cell.trial_id)
            self.family.load_training_state(state["family"])
            self.monitor.load_state_dict(state["monitor"])
            if self.accelerator.scaler is not None and state["scaler"] is not None:
                self.accelerator.scaler.load_state_dict(state["scaler"])
            checkpoint.set_rng_state(state["rng"], self.batches)
            if self.trajectory is not None and state.get("trajectory") is not None:
                self.trajectory.load_state_dict(state["trajectory"])
        except Exception as exc:  # e.g. written by an older genbench whose family had other state
            raise RuntimeError(
                f"cannot resume from checkpoint {self.lifecycle.resume} ({_one_line(exc)}); "
                "`run --restart` trains every cell from step 0"
            ) from exc
        self.attempts, self.saved_step = state["attempts"] + 1, state["step"]
        self.reported_steps = state["step"]
        row.update(attempts=self.attempts, resumed_from_step=state["step"])
        log.info("trial %s resumed from its checkpoint at step %d", self.cell.name, state["step"])
        return state["step"]

    def _report(self, step: int, save: bool) -> None:
        metrics = self._metrics(step)
        folder = None
        try:
            if save and step != self.saved_step:
                folder = Path(tempfile.mkdtemp(prefix="genbench-checkpoint-"))
                checkpoint.save(folder, self._state(step), trial_id=self.cell.trial_id)
                self.saved_step = step
            try:
                self.lifecycle.reporter(metrics, folder)
            except Exception as exc:
                raise _ReporterError() from exc
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def _metrics(self, step: int) -> dict[str, Any]:
        monitor, family = self.monitor, self.family
        window = monitor.losses.get(family.main_loss, [])[len(monitor.steps) - (step - self.reported_steps) :]
        recent = [v for v in window if math.isfinite(v)] if step > self.reported_steps else []
        if recent or step > self.reported_steps:
            self.last_loss = sum(recent) / len(recent) if recent else math.nan
        self.reported_steps = step
        metrics = {
            "step": step,
            "budget_steps": self.cell.steps,
            "budget_s": self.cell.seconds,
            "train_s": monitor.train_s,
            "loss": self.last_loss,  # mean main loss since the last report
            "losses": {name: series[-1] for name, series in monitor.losses.items() if series},
        }
        if self.lifecycle.report_hook is not None:
            metrics.update(self._evaluating(lambda: dict(self.lifecycle.report_hook(self.family, self.dataset))))
        if self.trajectory is not None and self.trajectory.curve:  # the curve so far (tuning rows read it)
            found = self.trajectory.columns(diverged=self.monitor.diverged_reason is not None)
            metrics.update(fid_oscillation=found["fid_oscillation"], collapsed=found["collapsed"])
        return metrics

    def _evaluating(self, measure: Callable[[], Any]) -> Any:
        """measure() on the evaluation weights in eval mode under no_grad; the trial's random
        generators and the modules' modes are restored, so training afterwards is unchanged."""
        rng = checkpoint.rng_state(self.batches)
        self.family.train(False)
        try:
            with torch.no_grad(), self.family.evaluation_weights():  # the weights the final row evaluates
                return measure()
        finally:
            self.family.train(True)
            checkpoint.set_rng_state(rng, self.batches)

    def _state(self, step: int) -> dict[str, Any]:
        scaler = self.accelerator.scaler
        return {
            "step": step,
            "attempts": self.attempts,
            "family": self.family.training_state(),
            "monitor": self.monitor.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": checkpoint.rng_state(self.batches),
            "trajectory": self.trajectory.state_dict() if self.trajectory is not None else None,
        }


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


def _one_line(exc: BaseException) -> str:
    """'Type: message [file:line]' on one line (the full traceback goes to the trial's log)."""
    msg = " ".join(str(exc).split()) or "(no message)"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" [{Path(frames[-1].filename).name}:{frames[-1].lineno}]" if frames else ""
    return f"{type(exc).__name__}: {msg}{where}"
