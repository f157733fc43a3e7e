"""Training cost of one trial: wall time (evaluation excluded), steps, throughput, peak memory,
divergence, loss oscillation and a downsampled loss curve.

Loss oscillation compares families whose losses differ by constants (the flow's NLL carries −D·log Δ,
the GAN's discriminator loss sits near 2 log 2), so it uses only differences and spreads of the main
loss: the std of its step-to-step changes over the last half of training divided by its overall
spread (5th to 95th percentile over the whole run). Adding a constant to the loss, or scaling it,
changes neither; ≈ 0 for a loss that settled smoothly after a large descent, ≳ 0.4 for a loss that
only jitters around where it started (√2σ / 3.3σ for white noise).

Usage inside the trial loop:

    mon = TrainMonitor(family, device, batch_size=hp.batch_size)
    mon.start()
    for step in range(steps):
        reason = mon.step(step, family.step(next_batch()))  # train_step + weight average
        if reason: break                      # diverged: the trial records it
        if step % every == 0:
            with mon.paused(): ...            # checkpoints, previews: not training time
    mon.stop(); row |= mon.summary()

A resumed trial calls `mon.load_state_dict(saved)` before start(), with `saved = mon.state_dict()`
taken by the interrupted attempt (steps, losses, divergence, training seconds so far): the summary
then covers all attempts. train_s stands still during a `paused()` block, so a state taken there
(a checkpoint) holds the training time up to the pause.

Stalls: a step that took more than STALL_FACTOR × the typical step and at least STALL_MIN_S of
wall time while the process used under STALL_CPU_SHARE of it in CPU time did not run (SIGSTOP, a
suspended VM, a starved container): the excess over a typical step is `stalled_s`, not training
time (train_s excludes it), and the trial warns with its id. A slow step that computes (CPU time
grows with wall time) is training, however long.

`step` must stay cheap (the harness loop targets <= 1.03× a bare loop): it appends floats and
polls RSS only every `RSS_EVERY` steps. Training memory growth (train_mem_growth_mb) on CPU is the
growth of the process's peak RSS over its value at start(); on a GPU, torch.cuda.max_memory_allocated
after a reset at start().

The trial's own peak (peak_mem_mb: what a user sizes concurrent trials by) is `process_peak_mb`
after `reset_process_peak` at the trial's start: on Linux the process's RSS high-water mark
(VmHWM, reset by writing 5 to /proc/self/clear_refs, so a reused Ray worker does not carry the
previous trial's peak), elsewhere ru_maxrss (since process start: an upper bound); on a GPU the
maximum allocated by torch.

RSS counts the shared library pages every trial process maps (torch's CUDA build, torchvision,
Ray: ~400 MiB, held once per node however many trials run). `process_unique_mb` is the memory
only this process holds (USS: private pages, from /proc/self/smaps_rollup) at the trial's end: what
one more concurrent trial adds to a node.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psutil
import torch

STALL_FACTOR = 20.0  # a step this many times the typical step's wall time ...
STALL_MIN_S = 1.0  # ... and at least this long ...
STALL_CPU_SHARE = 0.1  # ... with less than this share of it in process CPU time: the process did not run
TYPICAL_DECAY = 0.9  # the typical step time: an exponential average of the non-stalled steps

RSS_EVERY = 50  # steps between RSS polls (ru_maxrss catches peaks between polls once it exceeds the start)


class TrainMonitor:
    def __init__(
        self,
        family,
        device: torch.device | str,
        batch_size: int,
        max_points: int = 300,
        *,
        clocks: tuple = (time.perf_counter, time.process_time),  # (wall, CPU); tests pass virtual ones
    ):
        self.family = family
        self.device = torch.device(device)
        self.batch_size = batch_size  # examples per optimizer step (for examples/s)
        self.max_points = max_points  # loss-curve points kept per loss
        self.steps: list[int] = []
        self.losses: dict[str, list[float]] = {}
        self.diverged_step = -1
        self.diverged_reason: str | None = None
        self._t0 = self._t1 = None
        self._paused_s = 0.0
        self._pause_t: float | None = None  # start of the pause in progress (train_s stands still)
        self._earlier_s = 0.0  # training seconds of earlier attempts (load_state_dict)
        self._wall, self._cpu = clocks
        self.stalled_s = 0.0  # wall seconds the process did not run during training (module doc)
        self._earlier_stalled_s = 0.0
        self._last: tuple[float, float] | None = None  # (wall, CPU) at the end of the last step
        self._typical: float | None = None  # typical wall seconds per step
        self._proc = psutil.Process()
        self._rss0 = self._rss_max = 0
        self._maxrss0 = 0

    # --- timing --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._rss0 = self._rss_max = self._proc.memory_info().rss
        self._maxrss0 = _ru_maxrss_bytes()
        self._paused_s = 0.0
        self._t1 = None
        self._t0 = self._wall()
        self._last = (self._t0, self._cpu())

    def stop(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._t1 = self._wall()
        self._poll_rss()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside is not training time (evaluation, checkpointing, sample previews)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = self._pause_t = self._wall()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = self._wall()
            self._paused_s += now - t
            self._pause_t = None
            self._last = (now, self._cpu())  # the next step is timed from here, not across the pause

    @property
    def train_s(self) -> float:
        if self._t0 is None:
            return math.nan
        end = self._t1 if self._t1 is not None else (self._pause_t or self._wall())
        return self._earlier_s + end - self._t0 - self._paused_s - self.stalled_s

    # --- per step ------------------------------------------------------------------------------
    def step(self, step: int, losses: dict[str, float]) -> str | None:
        """Record this step's losses; return the family's divergence reason (first one is kept)."""
        self._time_step()
        self.steps.append(step)
        for name, value in losses.items():
            series = self.losses.setdefault(name, [])
            series.extend([math.nan] * (len(self.steps) - 1 - len(series)))  # a loss that appears late
            series.append(float(value))
        if len(self.steps) % RSS_EVERY == 0:
            self._poll_rss()
        reason = self.family.check_divergence(losses)
        if reason is not None and self.diverged_step < 0:
            self.diverged_step, self.diverged_reason = step, reason
        return reason

    def _time_step(self) -> None:
        """The step's wall and CPU time since the last one: a stall (module doc) is set aside."""
        if self._last is None:
            return
        wall, cpu = self._wall(), self._cpu()
        dw, dc = wall - self._last[0], cpu - self._last[1]
        self._last = (wall, cpu)
        typical = self._typical
        if typical is not None and dw >= max(STALL_MIN_S, STALL_FACTOR * typical) and dc < STALL_CPU_SHARE * dw:
            self.stalled_s += dw - typical
            return
        self._typical = dw if typical is None else TYPICAL_DECAY * typical + (1 - TYPICAL_DECAY) * dw

    # --- resume -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a resumed attempt needs to continue the record: steps, losses, divergence, train_s."""
        return {
            "steps": torch.tensor(self.steps, dtype=torch.int64),
            "losses": {name: torch.tensor(v, dtype=torch.float64) for name, v in self.losses.items()},
            "diverged_step": self.diverged_step,
            "diverged_reason": self.diverged_reason,
            "train_s": self.train_s if self._t0 is not None else self._earlier_s,
            "stalled_s": self._earlier_stalled_s + self.stalled_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the record of an earlier attempt (call before start(): its train_s is added)."""
        self.steps = state["steps"].tolist()
        self.losses = {name: v.tolist() for name, v in state["losses"].items()}
        self.diverged_step, self.diverged_reason = state["diverged_step"], state["diverged_reason"]
        self._earlier_s = float(state["train_s"])
        self._earlier_stalled_s = float(state.get("stalled_s", 0.0))  # checkpoints of older versions lack it

    def _poll_rss(self) -> None:
        self._rss_max = max(self._rss_max, self._proc.memory_info().rss)

    # --- results -------------------------------------------------------------------------------
    def peak_mem_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        maxrss = _ru_maxrss_bytes()
        peak = maxrss if maxrss > self._maxrss0 else self._rss_max  # the process peak was set during training
        return max(0, peak - self._rss0) / 2**20

    def loss_oscillation(self) -> float:
        """std of the main loss's step-to-step changes in the last half / its 5-95 % spread (module doc)."""
        return oscillation(self.losses.get(self.family.main_loss, []))

    def loss_curve(self) -> str:
        """JSON {loss name: [[step, value], ...]} at <= max_points even steps, ends kept."""
        n = len(self.steps)
        keep = np.unique(np.linspace(0, n - 1, num=min(n, self.max_points)).round().astype(int)) if n else []
        curve = {}
        for name, series in self.losses.items():
            series = series + [math.nan] * (n - len(series))
            curve[name] = [[self.steps[i], _finite_or_none(series[i])] for i in keep]
        return json.dumps(curve)

    def summary(self) -> dict[str, Any]:
        train_s = self.train_s
        n = len(self.steps)
        return {
            "train_s": train_s,
            "stalled_s": self._earlier_stalled_s + self.stalled_s,
            "train_steps": n,
            "examples_per_s": n * self.batch_size / train_s if train_s > 0 else math.nan,
            "train_mem_growth_mb": self.peak_mem_mb(),
            "diverged_step": self.diverged_step,
            "loss_oscillation": self.loss_oscillation(),
            "mode_collapsed": self.family.mode_collapsed(),
            "loss_curve": self.loss_curve(),
        }


def oscillation(losses) -> float:
    """Offset- and scale-free oscillation of a loss series (see the module doc); NaN if undefined."""
    values = np.asarray(losses, dtype=np.float64)
    values = values[np.isfinite(values)]
    tail = values[len(values) // 2 :]
    if len(tail) < 3:
        return math.nan
    lo, hi = np.percentile(values, [5, 95])
    return float(np.diff(tail).std() / (hi - lo)) if hi > lo else math.nan


def reset_process_peak(device: torch.device | str) -> None:
    """Start a new peak-memory window for this process (see the module docstring)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with contextlib.suppress(OSError):  # not Linux (or no permission): ru_maxrss, not resettable
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def process_peak_mb(device: torch.device | str) -> float:
    """Peak memory in MiB since `reset_process_peak`: max allocated (GPU), else the peak RSS."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            hwm = next(line for line in f if line.startswith("VmHWM:"))
        return int(hwm.split()[1]) / 1024  # kB
    except (OSError, StopIteration):
        return _ru_maxrss_bytes() / 2**20


def process_unique_mb() -> float | None:
    """Host memory only this process holds (USS) in MiB, now; None where smaps_rollup is missing."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            private_kb = [int(line.split()[1]) for line in f if line.startswith("Private_")]
    except OSError:
        return None
    return sum(private_kb) / 1024


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no NaN; a diverged point shows as null


def _ru_maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
