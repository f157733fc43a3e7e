"""The `copy` baseline: its samples are training examples drawn at random.

It is the best a sampler can do on FID and precision against a finite training set, and a perfect
memoriser: the reference that `copy_fraction` must flag. It has no likelihood (nll_kind None) and
nothing to optimise.

What a training step is: the trial loop hands it a batch of training examples (drawn i.i.d. with
replacement, like every family's batches) and it memorises them in an `ExampleBank`, a ring buffer
of the `capacity` most recent examples. Its loss is 0 by definition (loss_oscillation: NaN), so a
step budget only decides how much of the training set it has seen. `sample` draws uniformly from
the bank. The bank is a buffer: it is saved with the weights and travels with checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn

from bench.datasets.base import DataSpec
from bench.families.base import CommonHparams, Family, every_kind


class ExampleBank(nn.Module):
    """Ring buffer of up to `capacity` examples (buffers `data`, `seen`; no parameters)."""

    def __init__(self, shape: tuple[int, ...], capacity: int):
        super().__init__()
        self.register_buffer("data", torch.zeros(capacity, *shape))
        self.register_buffer("seen", torch.tensor(0, dtype=torch.long))  # examples added so far

    @property
    def size(self) -> int:
        """Examples held: min(seen, capacity)."""
        return min(int(self.seen), len(self.data))

    @torch.no_grad()
    def add(self, x: torch.Tensor) -> None:
        x = x[-len(self.data) :].to(self.data)  # a batch larger than the bank: its last examples
        idx = (int(self.seen) + torch.arange(len(x), device=self.data.device)) % len(self.data)
        self.data[idx] = x
        self.seen += len(x)

    def examples(self) -> torch.Tensor:
        if self.size == 0:
            raise RuntimeError("the example bank is empty: train for at least one step first")
        return self.data[: self.size]


@dataclass
class CopyHparams(CommonHparams):
    batch_size: int = 256  # training examples memorised per step (drawn by the trial loop)
    capacity: int = 5000  # examples kept: the most recent ones (a ring buffer)

    def validate(self) -> None:
        super().validate()
        for name in ("batch_size", "capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")


class Copy(Family):
    """Memorises training batches; samples are uniformly drawn memorised examples."""

    Hparams = CopyHparams
    tiny_hparams = MappingProxyType({})
    nll_kinds = every_kind(None)
    baseline = True

    def __init__(self, spec: DataSpec, hparams: CopyHparams):
        super().__init__(spec, hparams)
        self.bank = ExampleBank(spec.shape, hparams.capacity)

    def modules(self) -> dict[str, nn.Module]:
        return {"bank": self.bank}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        self.unwrapped(self.bank).add(x)
        return {"loss": 0.0}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        if steps is not None:
            raise ValueError(f"copy samples in one pass; steps must be None, got {steps}")
        bank = self.unwrapped(self.bank).examples()
        dev = generator.device if generator is not None else bank.device
        idx = torch.randint(len(bank), (n,), generator=generator, device=dev).to(bank.device)
        return bank[idx].float().clone()
