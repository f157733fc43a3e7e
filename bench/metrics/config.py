"""Evaluation settings of a suite's `[eval]` table (checked like hyper-parameters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.families.samplers import DEFAULT_SAMPLERS, SAMPLERS

POSITIVE = (  # settings that must be > 0
    "n_samples",
    "n_real",
    "sample_batch",
    "speed_repeats",
    "speed_budget_s",
    "nll_examples",
    "iwae_k",
    "kid_subset_size",
    "prc_neighborhood",
    "impute_examples",
    "impute_draws",
    "nll_batch",
    "kid_subsets",
    "classifier_steps",
    "ode_rtol",
    "ode_atol",
    "ode_probes",
)
EXTRACTORS = ("raw", "classifier", "inception-v3-compat")  # eval.feature_extractor besides "auto"
AUTO_EXTRACTOR = {"points": "raw", "image": "classifier"}  # what "auto" means per data kind
IMPUTE_MASKS = ("random", "block")  # eval.impute_mask (bench.metrics.impute.MASKS implements them)


@dataclass
class EvalConfig:
    # deprecated key -> current name; bench.hparams.build maps it with a warning
    ALIASES: ClassVar[dict[str, str]] = {"ddpm_steps": "sampling_steps"}

    # the sample metrics use n_fake = n_real = min(n_samples, n_real, test size) for every family
    n_samples: int = 2000  # generated samples requested for FID/KID/PRC/C2ST/mode coverage
    n_real: int = 2000  # real test examples requested for the same metrics
    sample_batch: int = 500  # batch size of the draws of the evaluation samples (recorded on the row)
    # batch sizes of the sampling-speed sweep (the best one is kept: small batches leave a device idle)
    speed_batches: tuple[int, ...] = (250, 1000, 4000)
    speed_repeats: int = 5  # calls timed one by one per batch size, after one untimed warm-up call
    # seconds (deciding clock) one batch size of the sweep may take, predicted from the previous: larger are skipped
    speed_budget_s: float = 30.0
    nll_examples: int = 1000  # test examples for the NLL (capped at the test-set size)
    iwae_k: int = 64  # importance samples for the VAE's IWAE-K bound
    # step counts of iterative samplers (DDPM) for the cost/quality curve; the family's full count is added
    sampling_steps: tuple[int, ...] = (10, 50, 200)
    # samplers of iterative families (bench.families.samplers.SAMPLERS: ancestral | ddim | dpm-solver++)
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    # auto | raw | classifier | inception-v3-compat ("auto": raw for points, classifier for images)
    feature_extractor: str = "auto"
    feature_extractor_weights_path: str = ""  # local Inception weights; required for inception-v3-compat
    kid_subset_size: int = 1000  # clamped to the sample count
    prc_neighborhood: int = 3  # k of the k-NN manifolds for precision/recall
    impute: bool = True  # run the missing-data imputation measurement
    impute_examples: int = 500  # test examples to mask and impute, drawn per trial seed (the same for every family)
    impute_draws: int = 4  # M imputations per example, averaged (the same M for every family)
    impute_mask: str = "random"  # random (half the positions) | block (one quarter-size rectangle)
    save_samples_png: bool = True  # PNG grid of samples for image datasets
    nll_batch: int = 200  # test examples per NLL call (IWAE: iwae_k × this many decoder passes)
    # ODE likelihood (nll_ode columns) of families with an ODE density: the first ode_examples scored
    # test examples (0 = off; on CPU a digits DDPM costs ~1 s per example, docs/benchmarks.md)
    ode_examples: int = 100
    ode_rtol: float = 1e-5  # dopri5 relative tolerance (bench.families.ode.OdeSettings)
    ode_atol: float = 1e-5  # dopri5 absolute tolerance
    ode_probes: int = 1  # Rademacher probes per image of the Hutchinson divergence (points: exact)
    kid_subsets: int = 100  # random subsets averaged by KID (torch-fidelity's default)
    classifier_steps: int = 1000  # optimizer steps of the offline classifier (trained once per dataset)
    classifier_seed: int = 0  # seed of the classifier's init and batches (fixed: one extractor for all)
    # the quality trajectory (bench.metrics.trajectory): FID at this many evenly spaced points of training
    trajectory_points: int = 8  # 0 = off (no quality_curve, fid_oscillation; collapsed only on divergence)
    trajectory_samples: int = 2000  # samples and real test examples per trajectory FID (capped at the test size)

    def problems(self) -> list[tuple[str, str]]:
        """(setting, what is wrong) for every invalid setting: validation lists them all, one line each."""
        out = []
        for name in POSITIVE:
            if not getattr(self, name) > 0:
                out.append((name, f"must be positive, got {getattr(self, name)}"))
        for name in ("trajectory_points", "ode_examples"):
            if getattr(self, name) < 0:
                out.append((name, f"must be >= 0 (0 = off), got {getattr(self, name)}"))
        if self.trajectory_samples < 2:  # a covariance needs two samples
            out.append(("trajectory_samples", f"must be >= 2, got {self.trajectory_samples}"))
        if not self.speed_batches or any(b <= 0 for b in self.speed_batches):
            out.append(("speed_batches", f"must be a non-empty list of positive batch sizes, got {self.speed_batches}"))
        if any(s <= 0 for s in self.sampling_steps):
            out.append(("sampling_steps", f"must be positive, got {self.sampling_steps}"))
        if not self.samplers or any(s not in SAMPLERS for s in self.samplers):
            out.append(("samplers", f"must be a non-empty list of {', '.join(SAMPLERS)}, got {list(self.samplers)}"))
        if self.impute_mask not in IMPUTE_MASKS:
            out.append(("impute_mask", f"must be one of {', '.join(IMPUTE_MASKS)}, got {self.impute_mask!r}"))
        allowed = ("auto", *EXTRACTORS)
        if self.feature_extractor not in allowed:
            out.append(("feature_extractor", f"must be one of {allowed}, got {self.feature_extractor!r}"))
        if self.feature_extractor == "inception-v3-compat" and not self.feature_extractor_weights_path:
            out.append(("feature_extractor_weights_path", "is required for inception-v3-compat"))
        return out

    def validate(self) -> None:
        """The first problem as a ValueError (for callers that build an EvalConfig by hand)."""
        found = self.problems()
        if found:
            raise ValueError(f"eval.{found[0][0]} {found[0][1]}")

    def extractor_for(self, kind: str) -> str:
        """The feature extractor used on data of `kind` ("points" | "image"), "auto" resolved."""
        return AUTO_EXTRACTOR[kind] if self.feature_extractor == "auto" else self.feature_extractor

    @property
    def min_real(self) -> int:
        """Fewest real test examples the sample metrics work with: KID needs subsets of 2 and
        precision/recall's k-NN balls k + 1 points."""
        return max(2, self.prc_neighborhood + 1)
