"""Sampling cost: samples per second of the device's own clock at the batch that saturates it.

Rules (docs/design.md, "sampling speed"):
- the deciding clock is the device's: process CPU time on a CPU (`time.process_time`, all threads:
  what sampling costs whatever else loads a shared machine), wall clock on an accelerator (host CPU
  time there counts only kernel launches); `speed_clock` names it ("cpu" / "wall");
- every repeat is one `sample(batch)` call timed on its own, the device synchronised before and
  after it (asynchronous kernels would otherwise be timed as free), under `torch.inference_mode`;
- one untimed warm-up call per batch size absorbs one-off costs (allocator growth, cuDNN autotuning,
  lazy init) that a long sampling run does not pay per batch;
- a sweep over batch sizes keeps the batch with the best median rate of the deciding clock (a small
  batch leaves the device idle between launches); the rates reported are medians over the repeats
  at that batch and `speed_spread` = (max − min) / median of the deciding clock's per-repeat rates.
`clocks` are (wall, CPU) callables; tests pass a virtual clock so no real timing is asserted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

Clocks = tuple[Callable[[], float], Callable[[], float]]
MACHINE_CLOCKS: Clocks = (time.perf_counter, time.process_time)
# device type -> the call that waits for its queued kernels (CPU work is synchronous)
SYNC: dict[str, Callable[[torch.device], None]] = {"cuda": torch.cuda.synchronize}
# device type -> deciding clock; any other device (an accelerator) is read by the wall clock
DECIDING_CLOCK: dict[str, str] = {"cpu": "cpu"}


def synchronize(device: torch.device) -> None:
    sync = SYNC.get(device.type)
    if sync is not None:
        sync(device)


def deciding_clock(device: torch.device) -> str:
    """ "cpu" on a CPU, "wall" on an accelerator (see the module doc)."""
    return DECIDING_CLOCK.get(device.type, "wall")


@dataclass(frozen=True)
class Timing:
    """The per-repeat seconds of `sample(batch)` on both clocks."""

    batch: int
    wall_s: tuple[float, ...]
    cpu_s: tuple[float, ...]

    def rates(self, clock: str) -> np.ndarray:
        """Samples per second of `clock` ("wall" | "cpu") per repeat; NaN where the clock did not advance."""
        seconds = np.asarray({"wall": self.wall_s, "cpu": self.cpu_s}[clock], dtype=float)
        safe = np.where(seconds > 0, seconds, 1.0)
        return np.where(seconds > 0, self.batch / safe, np.nan)


@dataclass(frozen=True)
class Speed:
    """The sampling-speed columns of one batch size's timing."""

    clock: str  # deciding clock: "wall" | "cpu"
    batch: int  # batch size timed
    samples_per_s: float  # median over repeats, wall clock
    samples_per_cpu_s: float  # median over repeats, process CPU time
    spread: float  # (max − min) / median of the deciding clock's per-repeat rates

    @property
    def rate(self) -> float:
        """The deciding clock's median rate."""
        return {"wall": self.samples_per_s, "cpu": self.samples_per_cpu_s}[self.clock]

    def columns(self) -> dict[str, float | int | str]:
        return {
            "samples_per_s": self.samples_per_s,
            "samples_per_cpu_s": self.samples_per_cpu_s,
            "speed_clock": self.clock,
            "speed_spread": self.spread,
            "speed_batch": self.batch,
        }


def _median(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else math.nan


def summarize(timing: Timing, clock: str) -> Speed:
    """Medians of both clocks' rates and the deciding clock's relative spread."""
    rates = timing.rates(clock)
    finite, median = rates[np.isfinite(rates)], _median(rates)
    spread = float((finite.max() - finite.min()) / median) if len(finite) and median > 0 else math.nan
    return Speed(clock, timing.batch, _median(timing.rates("wall")), _median(timing.rates("cpu")), spread)


def time_batch(
    sample: Callable[[int], object],
    batch: int,
    repeats: int,
    device: torch.device,
    *,
    warmup: bool = True,
    clocks: Clocks = MACHINE_CLOCKS,
) -> Timing:
    """`repeats` calls of sample(batch), each timed on its own on both clocks, after one untimed call."""
    wall_clock, cpu_clock = clocks
    wall_s, cpu_s = [], []
    with torch.inference_mode():
        if warmup:
            sample(batch)
        for _ in range(repeats):
            synchronize(device)
            wall, cpu = wall_clock(), cpu_clock()
            sample(batch)
            synchronize(device)
            wall_s.append(wall_clock() - wall)
            cpu_s.append(cpu_clock() - cpu)
    return Timing(batch, tuple(wall_s), tuple(cpu_s))


def sweep(
    sample: Callable[[int], object],
    batches: Sequence[int],
    repeats: int,
    device: torch.device,
    *,
    budget_s: float = math.inf,
    drawn: Timing | None = None,
    clocks: Clocks = MACHINE_CLOCKS,
) -> Speed:
    """The best batch of the sweep (ascending; ties go to the smaller batch) by the deciding clock's
    median rate. A batch whose warm-up and repeats are predicted (the previous batch's median call,
    scaled by the batch ratio) to take longer than `budget_s` on the deciding clock is not timed, nor
    any larger one, nor any after a batch that ran out of device memory; the first batch always is.
    `drawn`: calls of the same sampler already timed at its batch (timed_draw), used as that batch's
    first repeats."""
    if not batches:
        raise ValueError("speed sweep needs at least one batch size")
    clock = deciding_clock(device)
    best: Speed | None = None
    previous: Timing | None = None
    for batch in sorted(set(batches)):
        if previous is not None and _predicted_s(previous, batch, repeats, clock) > budget_s:
            log.info("speed sweep stops before batch %d: predicted over the %.3g s budget", batch, budget_s)
            break
        try:
            previous = _timed_repeats(
                sample, batch, repeats, device, drawn if drawn and drawn.batch == batch else None, clocks
            )
        except torch.OutOfMemoryError:
            if best is None:
                raise
            log.info("speed sweep stops at batch %d: out of device memory", batch)
            _release(device)
            break
        speed = summarize(previous, clock)
        if best is None or _better(speed.rate, best.rate):
            best = speed
    return best


def _timed_repeats(
    sample, batch: int, repeats: int, device: torch.device, drawn: Timing | None, clocks: Clocks
) -> Timing:
    """`repeats` timed calls at `batch`: the drawn ones first (that batch is warm), then new ones."""
    if drawn is None:
        return time_batch(sample, batch, repeats, device, clocks=clocks)
    wall_s, cpu_s = drawn.wall_s[:repeats], drawn.cpu_s[:repeats]
    more = time_batch(sample, batch, repeats - len(wall_s), device, warmup=False, clocks=clocks)
    return Timing(batch, wall_s + more.wall_s, cpu_s + more.cpu_s)


def _release(device: torch.device) -> None:
    """Hand the failed batch's cached blocks back, so the rest of the evaluation has them."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _better(rate: float, than: float) -> bool:
    return math.isfinite(rate) and (not math.isfinite(than) or rate > than)


def _predicted_s(timed: Timing, batch: int, repeats: int, clock: str) -> float:
    """Seconds of `clock` the warm-up and repeats at `batch` would take, linear in the batch size (on
    a CPU its CPU time: the batches a sweep reaches do not depend on what else loads the machine)."""
    seconds = {"wall": timed.wall_s, "cpu": timed.cpu_s}[clock]
    return (repeats + 1) * float(np.median(seconds)) * batch / timed.batch


def steps_grid(requested: tuple[int, ...], default_steps: int) -> list[int]:
    """Sorted, distinct step counts of the cost curve: the requested ones up to T, plus T itself."""
    return sorted({s for s in requested if s <= default_steps} | {default_steps})


def timed_draw(
    sample: Callable[[int], torch.Tensor], n: int, batch: int, device: torch.device, *, clocks: Clocks = MACHINE_CLOCKS
) -> tuple[torch.Tensor, Timing | None]:
    """draw(sample, n, batch), each full-size call after the first (the warm-up) timed like a repeat
    of time_batch; the Timing is None when no call had the full batch (n < batch)."""
    wall_clock, cpu_clock = clocks
    out, wall_s, cpu_s = [], [], []
    with torch.inference_mode():
        for start in range(0, n, batch):
            b = min(batch, n - start)
            synchronize(device)
            wall, cpu = wall_clock(), cpu_clock()
            x = sample(b)
            synchronize(device)
            if start > 0 and b == batch:
                wall_s.append(wall_clock() - wall)
                cpu_s.append(cpu_clock() - cpu)
            out.append(x.float().cpu())
    timing = Timing(batch, tuple(wall_s), tuple(cpu_s)) if n >= batch else None
    return torch.cat(out)[:n].clone(), timing


def draw(sample: Callable[[int], torch.Tensor], n: int, batch: int) -> torch.Tensor:
    """n samples from sample(b) in batches of at most `batch`, concatenated on the CPU."""
    out = []
    with torch.inference_mode():
        for start in range(0, n, batch):
            out.append(sample(min(batch, n - start)).float().cpu())
    return torch.cat(out)[:n].clone()  # clone: a normal tensor, usable outside inference mode
