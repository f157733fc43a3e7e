"""Mode coverage and sharpness: small pure functions on samples (no model, no I/O).

Mode coverage (one definition for points and images). With K modes and n samples, each sample is
assigned to at most one mode; mode k is *covered* when it receives at least its half share,
count_k >= n / (2K). `mode_coverage` is the covered fraction of the K modes, in [0, 1];
`mode_kl_nats` is KL(p || uniform_K) of the assigned samples' histogram p (0 = perfectly balanced,
log K = everything in one mode; NaN when no sample is assigned).
- points (8gaussians): a sample belongs to its nearest mode centre if it lies within 3σ of it, σ the
  per-coordinate RMS distance of real test points to their nearest centre (P(r <= 3σ) = 98.9 % for
  an isotropic 2-D Gaussian); samples farther away are off-mode and count towards n only.
- images (digits, MNIST): every sample is assigned to the class the dataset's classifier predicts.

Sharpness: the variance of the 3×3 Laplacian response of an image (a standard blur measure: blur
removes high frequencies, lowering it), averaged over images and channels; reported as the ratio
samples / real test images, so 1 means "as sharp as the data" and < 1 blurred. It is not a
quality score: noise raises it too (uniform noise 1.6 on digits). `blur_index` reads it in both
directions: the log of the samples' high-frequency share of power (Laplacian energy over pixel
variance, per image, so brightness and contrast cancel) over the real images'; below 0 blurred,
above 0 noisy, 0 = the data's own texture. No direction is better.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MODE_RADIUS_SIGMAS = 3.0  # a sample within this many σ of its nearest centre belongs to that mode


def mode_histogram_metrics(assignment: torch.Tensor, n_modes: int) -> dict[str, float]:
    """(n,) int64 mode index per sample, -1 for off-mode -> {"mode_coverage", "mode_kl_nats"}."""
    n = len(assignment)
    counts = torch.bincount(assignment[assignment >= 0], minlength=n_modes).double()
    coverage = (counts >= n / (2 * n_modes)).double().mean().item() if n else math.nan
    total = counts.sum().item()
    if total == 0:
        return {"mode_coverage": coverage, "mode_kl_nats": math.nan}
    p = counts[counts > 0] / total
    return {"mode_coverage": coverage, "mode_kl_nats": (p * torch.log(p * n_modes)).sum().item()}


def nearest_centre(points: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) points, (K, D) centres -> index (N,) and distance (N,) of each nearest centre."""
    d = torch.cdist(points.double(), centres.double())
    dist, idx = d.min(dim=1)
    return idx, dist


def mode_scale(real: torch.Tensor, centres: torch.Tensor) -> float:
    """σ: per-coordinate RMS distance of real points to their nearest centre."""
    _, dist = nearest_centre(real, centres)
    return math.sqrt((dist**2).mean().item() / real.shape[1])


def point_mode_coverage(samples: torch.Tensor, real: torch.Tensor, centres: torch.Tensor) -> dict[str, float]:
    """Mode coverage of (N, D) samples around (K, D) centres; σ from (M, D) real test points."""
    radius = MODE_RADIUS_SIGMAS * mode_scale(real, centres)
    idx, dist = nearest_centre(samples, centres)
    return mode_histogram_metrics(torch.where(dist <= radius, idx, torch.full_like(idx, -1)), len(centres))


@torch.no_grad()
def class_mode_coverage(samples: torch.Tensor, classifier: torch.nn.Module, n_classes: int) -> dict[str, float]:
    """Mode coverage of (N, C, H, W) images under `classifier`: (B, ...) -> (features, logits)."""
    preds = torch.cat([classifier(chunk)[1].argmax(dim=1) for chunk in samples.split(500)])
    return mode_histogram_metrics(preds.cpu(), n_classes)


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N,) variance of the Laplacian over valid pixels, averaged over channels."""
    n, c, h, w = images.shape
    kernel = LAPLACIAN.to(images.device, torch.float64).view(1, 1, 3, 3)
    response = F.conv2d(images.double().reshape(n * c, 1, h, w), kernel)  # valid: no padding artefacts
    return response.flatten(1).var(dim=1, unbiased=False).view(n, c).mean(dim=1)


def sharpness_ratio(samples: torch.Tensor, real: torch.Tensor) -> float:
    """Mean Laplacian variance of samples / that of real images (same value scale for both)."""
    return (laplacian_variance(samples).mean() / laplacian_variance(real).mean()).item()


def high_frequency_share(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N,): Laplacian response energy / pixel variance (flat images: NaN)."""
    n, c, h, w = images.shape
    x = images.double().reshape(n * c, 1, h, w)
    response = F.conv2d(x, LAPLACIAN.to(images.device, torch.float64).view(1, 1, 3, 3))
    energy = response.pow(2).flatten(1).mean(1)
    variance = x.flatten(1).var(dim=1, unbiased=False)
    share = torch.where(variance > 0, energy / variance, torch.full_like(energy, math.nan))
    return share.view(n, c).nanmean(dim=1)


def blur_index(samples: torch.Tensor, real: torch.Tensor) -> float:
    """log(mean high-frequency share of samples / that of real images): < 0 blurred, > 0 noisy."""
    s, r = high_frequency_share(samples).nanmean(), high_frequency_share(real).nanmean()
    return math.log(s.item() / r.item()) if s > 0 and r > 0 else math.nan
