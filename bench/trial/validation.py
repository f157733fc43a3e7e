"""The tuning metric, measured on the validation split while a tuning trial trains.

Phase 1 of a tuning run (bench.run.tuning) trains each sampled configuration on `Dataset.tuning_train()`
and scores it on `Dataset.val()`; the test split is never touched (`TuningView.test` raises).
At every report point of the trial loop, `ValidationHook(family, step)` returns

    {"val_metric": value, "val_<metric>": value}        (lower is better)

which Ray Tune's scheduler (ASHA) and searcher (Optuna) minimise. Metrics (`VAL_METRICS`):
- nll: the family's headline NLL estimator (exact / iwae-K / vlb) on the first VAL_NLL_EXAMPLES
  validation examples, in the row's unit (nats for points, bits/dim for images);
- fid: Fréchet distance between VAL_FID_SAMPLES samples and the validation examples, in the
  features of the dataset's extractor (the same one the final rows use).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import torch

from bench.datasets.base import Dataset
from bench.errors import GenbenchError
from bench.metrics.nll import nll_columns
from bench.metrics.reference import Reference

VAL_NLL_EXAMPLES = 256  # validation examples per NLL report (DDPM's VLB costs T passes each)
VAL_FID_SAMPLES = 500  # generated samples and real validation examples per FID report
VAL_SEED_OFFSET = 7  # keeps the validation noise stream apart from evaluate()'s streams


class HiddenSplitError(GenbenchError):
    """The test split was asked for during tuning (a bug: tuning must never see it)."""


class _View(Dataset):
    """`base` with other splits in the places of train() and test(); the spec, the validation split
    and the mode centres of point data (8gaussians) are the base's."""

    def __init__(self, base: Dataset):
        super().__init__(base.options)
        self.base = base

    @property
    def spec(self):
        return self.base.spec

    def val(self) -> torch.Tensor:
        return self.base.val()

    @property
    def modes(self):  # mode centres of point data, if the dataset has them
        return getattr(self.base, "modes", None)


class TuningView(_View):
    """A dataset as a tuning trial sees it: train() is tuning_train(), test() raises."""

    def train(self) -> torch.Tensor:
        return self.base.tuning_train()

    def test(self) -> torch.Tensor:
        raise HiddenSplitError(f"dataset {self.spec.name!r}: the test split is not available while tuning")


class ValidationAsTest(_View):
    """The validation split in the place of the test split, for bench.metrics' Reference.

    train() stays the full training split, so the feature extractor (trained on and hashed by
    the training split) is the very one the final rows are measured with.
    """

    def train(self) -> torch.Tensor:
        return self.base.train()

    def test(self) -> torch.Tensor:
        return self.base.val()

    def train_labels(self) -> torch.Tensor | None:
        return self.base.train_labels()

    def test_labels(self) -> torch.Tensor | None:
        labels = self.base.train_labels()
        return None if labels is None else labels[self.base.val_indices()[0]]


def _val_nll(family, dataset: Dataset, cfg, cache_dir: Path, seed: int) -> Callable[[], float]:
    x = dataset.val()[:VAL_NLL_EXAMPLES]

    def measure() -> float:
        gen = torch.Generator(device=family.device).manual_seed(seed + VAL_SEED_OFFSET)
        row = nll_columns(family, x, dataset.spec, batch=cfg.nll_batch, iwae_k=cfg.iwae_k, generator=gen)
        return row["nll"]

    return measure


def _val_fid(family, dataset: Dataset, cfg, cache_dir: Path, seed: int) -> Callable[[], float]:
    cfg = dataclasses.replace(cfg, n_real=VAL_FID_SAMPLES)
    ref = Reference.build(ValidationAsTest(dataset), cfg, cache_dir=cache_dir, device=family.device, seed=seed)
    n = min(VAL_FID_SAMPLES, ref.n_real)

    def measure() -> float:
        gen = torch.Generator(device=family.device).manual_seed(seed + VAL_SEED_OFFSET)
        with torch.no_grad():
            samples = torch.cat([family.sample(len(b), generator=gen) for b in torch.arange(n).split(cfg.sample_batch)])
        return ref.fid(samples.float().cpu())

    return measure


# metric name -> builder of a no-argument measurement (a family without a likelihood, the GAN,
# cannot be tuned on "nll": the suite rejects that before anything runs)
VAL_METRICS: dict[str, Callable[..., Callable[[], float]]] = {"nll": _val_nll, "fid": _val_fid}


class ValidationHook:
    """The trial lifecycle's report hook in a tuning trial: the validation metric of the model as
    it is now. Called as hook(family, dataset) in eval mode under no_grad (bench.trial); it reads
    the validation split of the dataset it was built with (the trial trains on a TuningView)."""

    def __init__(self, metric: str, dataset: Dataset, cfg, cache_dir: Path, seed: int):
        if metric not in VAL_METRICS:
            raise GenbenchError(f"unknown tuning metric {metric!r}; expected one of {', '.join(VAL_METRICS)}")
        self.metric, self.dataset, self.cfg, self.cache_dir, self.seed = metric, dataset, cfg, Path(cache_dir), seed
        self._measure: Callable[[], float] | None = None  # built on the first call (needs the family)

    def __call__(self, family, dataset=None) -> dict[str, float]:
        if self._measure is None:
            self._measure = VAL_METRICS[self.metric](family, self.dataset, self.cfg, self.cache_dir, self.seed)
        value = float(self._measure())
        value = value if math.isfinite(value) else math.inf  # ASHA and Optuna rank inf as worst
        return {"val_metric": value, f"val_{self.metric}": value}
