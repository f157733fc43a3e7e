"""Classifier two-sample test and memorisation: small pure functions on feature matrices.

C2ST (Lopez-Paz & Oquab 2017): a classifier learns to tell real examples (label 0) from generated
ones (label 1); its held-out accuracy is ≈ 0.5 when the two samples come from the same
distribution and approaches 1 as they separate. Unlike the Fréchet distance, which sees only means
and covariances, a non-parametric classifier sees modes: on 8gaussians a single Gaussian with the
data's mean and covariance is told apart from the data, while a perfect sampler is not.
Choices (fixed, so every row is comparable):
- classifier: k-NN on standardised features (the scaler is fitted on the training fold),
  k = the odd number nearest √n_train_fold: consistent (k → ∞, k/n → 0), no training randomness,
  and non-linear, which a logistic regression is not (it cannot see modes at equal moments);
- 2-fold stratified cross-validation with a seeded shuffle: every example is predicted once by the
  classifier that did not see it; the score is the *balanced* accuracy (mean of the per-class
  accuracies), so chance is 0.5 even if the two sides differ in size.

copy_fraction (Gu et al. 2023; Yoon et al. 2023): a sample counts as a copy when its nearest
training example is closer than 1/3 of the distance to the second nearest. For a model that does
not memorise, on 2-D data about 1/9 of samples pass by chance; copies of training examples give 1
(an exact duplicate pair in the training set counts as a copy: 0 <= 0/3).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

C2ST_FOLDS = 2  # each half trains the classifier that scores the other half
COPY_RATIO = 1.0 / 3.0  # nearest / second-nearest training distance below which a sample is a copy
BLAS_THREADS = 1  # numpy BLAS threads spin-wait: on a loaded machine one thread is ~100× faster here


def _matrix(x: torch.Tensor | np.ndarray) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float64)


def c2st_accuracy(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, *, seed: int = 0) -> float:
    """Held-out balanced accuracy of k-NN telling (n, F) real from (m, F) fake features (module doc)."""
    real, fake = _matrix(real), _matrix(fake)
    if min(len(real), len(fake)) < 2 * C2ST_FOLDS:
        return math.nan
    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real), dtype=int), np.ones(len(fake), dtype=int)])
    pred = np.empty_like(y)
    folds = StratifiedKFold(n_splits=C2ST_FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(x, y):
        k = 2 * int(math.sqrt(len(train)) / 2) + 1
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            pred[test] = model.fit(x[train], y[train]).predict(x[test])
    return float(np.mean([(pred[y == c] == c).mean() for c in (0, 1)]))


def copy_fraction(samples: torch.Tensor | np.ndarray, train: torch.Tensor | np.ndarray) -> float:
    """Share of (n, F) samples whose nearest (N, F) training example is < COPY_RATIO × the 2nd nearest."""
    samples, train = _matrix(samples), _matrix(train)
    if len(samples) == 0 or len(train) < 2:
        return math.nan
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        dist, _ = NearestNeighbors(n_neighbors=2).fit(train).kneighbors(samples)
    return float(np.mean(dist[:, 0] <= COPY_RATIO * dist[:, 1]))
