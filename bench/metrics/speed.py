"""Sampling cost: samples per second at a fixed batch size, after a warm-up batch, per wall-clock
second and per second of process CPU time (the latter is robust to a loaded, shared machine).

Timing is wall clock around whole `sample` calls under `torch.inference_mode`; on a GPU the device
is synchronised before reading the clock, otherwise asynchronous kernels would be timed as free.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampling_rates(
    sample: Callable[[int], object],
    batch: int,
    repeats: int,
    device: torch.device,
    *,
    warmup: bool = True,
    clocks: tuple[Callable[[], float], Callable[[], float]] = (time.perf_counter, time.process_time),
) -> tuple[float, float]:
    """(samples per wall-clock second, samples per second of process CPU time) over the same calls:
    `batch` × `repeats` samples from `repeats` calls of sample(batch), after one untimed call.

    The warm-up batch absorbs one-off costs (allocator growth, cuDNN autotuning, lazy init) that a
    long sampling run does not pay per batch. `clocks` are (wall, CPU); tests pass a virtual clock.

    Process CPU time (time.process_time) sums every thread of the process, so it is what sampling
    costs in CPU whatever else loads the machine; on a GPU it counts only the host side (launches,
    synchronisation waits are not CPU time), and the wall-clock rate is the one to read there.
    """
    with torch.inference_mode():
        if warmup:
            sample(batch)
        synchronize(device)
        wall_clock, cpu_clock = clocks
        wall, cpu = wall_clock(), cpu_clock()
        for _ in range(repeats):
            sample(batch)
        synchronize(device)
        wall, cpu = wall_clock() - wall, cpu_clock() - cpu
    n = batch * repeats
    return n / wall, (n / cpu if cpu > 0 else float("nan"))


def steps_grid(requested: tuple[int, ...], default_steps: int) -> list[int]:
    """Sorted, distinct step counts of the cost curve: the requested ones up to T, plus T itself."""
    return sorted({s for s in requested if s <= default_steps} | {default_steps})


def draw(sample: Callable[[int], torch.Tensor], n: int, batch: int) -> torch.Tensor:
    """n samples from sample(b) in batches of at most `batch`, concatenated on the CPU."""
    out = []
    with torch.inference_mode():
        for start in range(0, n, batch):
            out.append(sample(min(batch, n - start)).float().cpu())
    return torch.cat(out)[:n].clone()  # clone: a normal tensor, usable outside inference mode
