"""Floating-point operations of a computation, counted by torch.utils.flop_counter.FlopCounterMode.

A device-independent cost: the count is the same on a CPU and a GPU, loaded or idle. FlopCounterMode
counts the operations it has formulas for (matrix products, convolutions, attention: 2 FLOPs per
multiply-add), not elementwise work, and nothing that runs outside torch (numpy, scikit-learn).
Reused for sampling (`flops_per_sample`) and meant for training (`train_flops`) too.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode


def flops_of(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn()` (its result is discarded)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
