"""The `gmm` baseline: a Gaussian mixture fitted by scikit-learn's EM (exact NLL, cheap samples).

What a training step is: the batch the trial loop hands it joins an `ExampleBank` (the `capacity`
most recent training draws), then one EM iteration runs on the bank, warm-started from the current
parameters (the first step initialises them with k-means++). The step's loss is the mean NLL of the
bank in nats per example before that iteration's M-step (EM's objective; it only decreases on a
fixed bank). A few dozen steps converge on 2-D data; later steps refine on more examples.

Likelihood: on points `nll` is the mixture's exact continuous NLL ("exact"). On images the mixture
is a continuous density over model space, so, as for the flow, the NLL of the discrete data is
bounded by one-sample uniform dequantization −log p(x + u) − D·log Δ ("dequantized"); samples are
clamped to [-1, 1]. Training on images dequantizes likewise (without it, pixels that are constant
in the data would get near-zero variance and an unbounded density). The parameters (weights,
means, covariances) are buffers, saved with the weights and carried by checkpoints; sklearn's
estimator is rebuilt from them at every step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits
from torch import nn

from bench.datasets.base import DataSpec
from bench.families.base import CONTINUOUS_DENSITY, CommonHparams, Family
from bench.families.copy import ExampleBank

Covariance = Literal["full", "diag", "spherical", "tied"]
# sklearn's EM runs on numpy's BLAS; its worker threads spin-wait, and on a loaded machine a
# (1500 × 64)ᵀ(1500 × 64) product took 1.1 s with 2 threads vs 2 ms with one. The matrices are small.
BLAS_THREADS = 1


@dataclass
class GMMHparams(CommonHparams):
    components: int = 8  # mixture components (8gaussians has 8 modes)
    covariance: Covariance = "full"  # sklearn covariance_type; "diag" for high-dimensional images
    reg_covar: float = 1e-6  # added to covariance diagonals (sklearn's default): keeps them invertible
    batch_size: int = 256  # training examples added to the bank per step (drawn by the trial loop)
    capacity: int = 5000  # examples EM fits: the most recent draws (a ring buffer)

    def validate(self) -> None:
        super().validate()
        for name in ("components", "batch_size", "capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not self.reg_covar >= 0:
            raise ValueError(f"reg_covar must be >= 0 (got {self.reg_covar})")
        for name in ("capacity", "batch_size"):  # the first EM step fits one batch
            if getattr(self, name) < self.components:
                raise ValueError(f"{name} must be >= components (got {getattr(self, name)} < {self.components})")


def _cov_shape(kind: Covariance, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "diag": (k, d), "spherical": (k,), "tied": (d, d)}[kind]


class MixtureParams(nn.Module):
    """Buffers of a fitted mixture in float64: weights (K,), means (K, D), covariances (sklearn's shape)."""

    def __init__(self, k: int, d: int, kind: Covariance):
        super().__init__()
        self.register_buffer("weights", torch.full((k,), 1.0 / k, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(k, d, dtype=torch.float64))
        self.register_buffer("covariances", torch.zeros(_cov_shape(kind, k, d), dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))


class GMM(Family):
    """Gaussian mixture; `nll` gives {"exact"} on points, {"dequantized"} on images, (B,) nats."""

    Hparams = GMMHparams
    tiny_hparams = MappingProxyType({"components": 2})
    nll_kinds = CONTINUOUS_DENSITY
    baseline = True

    def __init__(self, spec: DataSpec, hparams: GMMHparams):
        super().__init__(spec, hparams)
        self.bank = ExampleBank((spec.dim,), hparams.capacity)
        self.mixture = MixtureParams(hparams.components, spec.dim, hparams.covariance)
        # k-means++ seed drawn from torch's stream, which the trial seeds: reruns are identical
        self._init_seed = int(torch.randint(2**31 - 1, ()))

    def modules(self) -> dict[str, nn.Module]:
        return {"bank": self.bank, "mixture": self.mixture}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def _params(self) -> MixtureParams:
        return self.unwrapped(self.mixture)

    def _estimator(self) -> GaussianMixture:
        """sklearn's estimator at the current parameters (not fitted yet: k-means++ on first fit)."""
        hp, m = self.hp, self._params()
        kw = dict(
            n_components=hp.components,
            covariance_type=hp.covariance,
            reg_covar=hp.reg_covar,
            max_iter=1,
            random_state=self._init_seed,
        )
        if not bool(m.fitted):
            return GaussianMixture(init_params="k-means++", **kw)
        chol = _precision_cholesky(m.covariances.cpu().numpy(), hp.covariance)
        precisions = chol @ np.swapaxes(chol, -1, -2) if hp.covariance in ("full", "tied") else chol**2
        return GaussianMixture(
            init_params="random_from_data",  # overridden by the three *_init below
            weights_init=m.weights.cpu().numpy(),
            means_init=m.means.cpu().numpy(),
            precisions_init=precisions,
            **kw,
        )

    def _fitted(self) -> GaussianMixture:
        """An estimator holding exactly the current parameters, for scoring."""
        gm, m = self._estimator(), self._params()
        if not bool(m.fitted):
            raise RuntimeError("the mixture is not fitted: train for at least one step first")
        gm.weights_, gm.means_ = m.weights.cpu().numpy(), m.means.cpu().numpy()
        gm.covariances_ = m.covariances.cpu().numpy()
        gm.precisions_cholesky_ = _precision_cholesky(gm.covariances_, self.hp.covariance)
        return gm

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        bank, m = self.unwrapped(self.bank), self._params()
        bank.add(self.dequantize(x).flatten(1))  # images: fit the continuous density the NLL bound scores
        data = bank.examples().double().cpu().numpy()
        gm = self._estimator()
        with warnings.catch_warnings(), threadpool_limits(BLAS_THREADS, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)  # one EM iteration per step, by design
            gm.fit(data)
        for name, value in (("weights", gm.weights_), ("means", gm.means_), ("covariances", gm.covariances_)):
            getattr(m, name).copy_(torch.from_numpy(np.asarray(value)))
        m.fitted.fill_(True)
        return {"loss": float(-gm.lower_bound_)}

    @torch.no_grad()
    def nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, iwae_k: int | None = None
    ) -> dict[str, torch.Tensor]:
        x = self.dequantize(x.float(), generator)
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            log_p = self._fitted().score_samples(x.flatten(1).double().cpu().numpy())
        return {self.nll_kind: (self.dequantization_nats() - torch.from_numpy(log_p)).float().to(x.device)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        if steps is not None:
            raise ValueError(f"gmm samples in one pass; steps must be None, got {steps}")
        m = self._params()
        if not bool(m.fitted):
            raise RuntimeError("the mixture is not fitted: train for at least one step first")
        dev = generator.device if generator is not None else m.means.device
        comp = torch.multinomial(m.weights.to(dev), n, replacement=True, generator=generator).cpu()
        z = torch.randn((n, self.spec.dim), generator=generator, device=dev, dtype=torch.float64).cpu()
        x = m.means.cpu()[comp] + _scale(m.covariances.cpu(), self.hp.covariance, comp, z)
        x = x.float().view(n, *self.spec.shape).to(self.device)
        return self.to_data_range(x)


def _scale(cov: torch.Tensor, kind: Covariance, comp: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Σ_k^{1/2} z for each row's component k (Cholesky factor for full/tied covariances)."""
    if kind == "full":
        return (torch.linalg.cholesky(cov)[comp] @ z[:, :, None]).squeeze(-1)
    if kind == "tied":
        return z @ torch.linalg.cholesky(cov).T
    if kind == "diag":
        return cov[comp].sqrt() * z
    return cov[comp].sqrt()[:, None] * z  # spherical


def _precision_cholesky(cov: np.ndarray, kind: Covariance) -> np.ndarray:
    """sklearn's precisions_cholesky_ from covariances (what score_samples reads)."""
    if kind == "full":
        return np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in cov])
    if kind == "tied":
        return np.linalg.inv(np.linalg.cholesky(cov)).T
    return 1.0 / np.sqrt(cov)
