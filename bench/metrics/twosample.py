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
- 2-fold cross-validation with a seeded shuffle (not stratified: the folds do not depend on the
  labels, so neither do the neighbours, and a label permutation is one more vote over them): every
  example is predicted once by the classifier that did not see it; the score is the *balanced*
  accuracy (mean of the per-class accuracies), so chance is 0.5 even if the sides differ in size.

The test's p-value (`c2st_test`): accuracy is a weak statistic (one dropped mode of 8 lowers the
Bayes-optimal accuracy only to 0.5625), so the test scores the same out-of-fold k-NN class
probabilities by their AUC and calibrates it against C2ST_PERMUTATIONS label shuffles, each a vote
over the same out-of-fold neighbours (exactly what a refit on them would predict), with a Gaussian
fitted to those null AUCs. The binomial null of the accuracy is wrong for cross-fitted predictions:
at n = 1000 on 8gaussians it rejected a perfect sampler 25 % of the time at 0.05. One-sided:
p = 1 − Φ((AUC − mean₀) / sd₀), small when the samples are told apart.

memorization_test (Meehan, Chaudhuri & Dasgupta 2020, the C_T statistic): feature space is cut into
cells by k-means on the training set; in each cell the distances to the nearest training example
of held-out test examples and of samples are compared by a Mann-Whitney U z-score (negative:
samples sit closer to the training set than unseen data do, i.e. copies); the z-scores are
combined with the cells' test shares as weights, over the cells holding at least
MEMO_MIN_PER_CELL samples and test examples. Under the null each z is ~N(0, 1), so
C_T / sqrt(sum of squared weights) is ~N(0, 1) and the one-sided p of copying is its lower tail.

copy_fraction (Gu et al. 2023; Yoon et al. 2023): a sample counts as a copy when its nearest
training example is closer than 1/3 of the distance to the second nearest. For a model that does
not memorise, on 2-D data about 1/9 of samples pass by chance; copies of training examples give 1
(an exact duplicate pair in the training set counts as a copy: 0 <= 0/3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

C2ST_FOLDS = 2  # each half trains the classifier that scores the other half
C2ST_PERMUTATIONS = 200  # label shuffles calibrating the test (a vote each over fixed neighbours: cheap)
COPY_RATIO = 1.0 / 3.0  # nearest / second-nearest training distance below which a sample is a copy
MEMO_CELLS = 10  # k-means cells of the training set (Meehan et al. use a few to a few dozen)
MEMO_MIN_PER_CELL = 20  # samples and test examples a cell needs to enter C_T (their tau)
BLAS_THREADS = 1  # numpy BLAS threads spin-wait: on a loaded machine one thread is ~100× faster here


def _matrix(x: torch.Tensor | np.ndarray) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float64)


@dataclass(frozen=True)
class C2ST:
    accuracy: float  # balanced out-of-fold accuracy, 0.5 = indistinguishable
    auc: float  # AUC of the out-of-fold P(fake): 0.5 = indistinguishable, 1 = always told apart
    p_value: float  # one-sided: the AUC of the out-of-fold probabilities against the permutation null
    n: int  # predictions scored (real + fake)


def c2st_accuracy(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, *, seed: int = 0) -> float:
    """Held-out balanced accuracy of k-NN telling (n, F) real from (m, F) fake features (module doc)."""
    return c2st_test(real, fake, seed=seed).accuracy


def c2st_test(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, *, seed: int = 0) -> C2ST:
    """The classifier two-sample test on (n, F) real and (m, F) fake features: accuracy and p."""
    real, fake = _matrix(real), _matrix(fake)
    if min(len(real), len(fake)) < 2 * C2ST_FOLDS:
        return C2ST(math.nan, math.nan, math.nan, 0)
    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real), dtype=int), np.ones(len(fake), dtype=int)])
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        folds = _neighbours(x, seed)
    prob = _vote(folds, y)
    rng = np.random.default_rng(seed)
    null = [_auc(p, _vote(folds, p)) for p in (rng.permutation(y) for _ in range(C2ST_PERMUTATIONS))]
    pred = (prob > 0.5).astype(int)  # odd k: never a tie
    accuracy = float(np.mean([(pred[y == c] == c).mean() for c in (0, 1)]))
    auc = _auc(y, prob)
    z = (auc - np.mean(null)) / max(float(np.std(null, ddof=1)), 1e-12)
    return C2ST(accuracy, auc, float(scipy.stats.norm.sf(z)), len(y))


def _neighbours(x: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold: the held-out rows and, for each, its k nearest rows of the other fold (indices into
    x; features standardised on that fold). The neighbours do not depend on the labels, so a label
    permutation is one more vote over them, not a refit."""
    out = []
    for train, test in KFold(n_splits=C2ST_FOLDS, shuffle=True, random_state=seed).split(x):
        k = 2 * int(math.sqrt(len(train)) / 2) + 1
        scaler = StandardScaler().fit(x[train])
        nn = NearestNeighbors(n_neighbors=k).fit(scaler.transform(x[train]))
        out.append((test, train[nn.kneighbors(scaler.transform(x[test]), return_distance=False)]))
    return out


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of `score` for labels y (1 = fake) through the Mann-Whitney rank sum (ties averaged:
    sklearn's roc_auc_score, without its per-call checks, which cost 30× more here)."""
    ranks = scipy.stats.rankdata(score)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _vote(folds: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray) -> np.ndarray:
    """P(fake) of every example: the share of fakes among its k out-of-fold neighbours (a k-NN's vote)."""
    prob = np.empty(len(y))
    for test, neighbours in folds:
        prob[test] = y[neighbours].mean(1)
    return prob


def copy_fraction(samples: torch.Tensor | np.ndarray, train: torch.Tensor | np.ndarray) -> float:
    """Share of (n, F) samples whose nearest (N, F) training example is < COPY_RATIO × the 2nd nearest."""
    samples, train = _matrix(samples), _matrix(train)
    if len(samples) == 0 or len(train) < 2:
        return math.nan
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        dist, _ = NearestNeighbors(n_neighbors=2).fit(train).kneighbors(samples)
    return float(np.mean(dist[:, 0] <= COPY_RATIO * dist[:, 1]))


@dataclass(frozen=True)
class Memorization:
    statistic: float  # C_T: test-share-weighted Mann-Whitney z over cells; << 0 means copying
    p_value: float  # one-sided p of copying, Phi(C_T / sqrt(sum of squared weights))
    cells: int  # cells that entered the statistic


def memorization_test(
    train: torch.Tensor | np.ndarray,
    test: torch.Tensor | np.ndarray,
    samples: torch.Tensor | np.ndarray,
    *,
    seed: int = 0,
    cells: int = MEMO_CELLS,
) -> Memorization:
    """Meehan et al.'s C_T on (N, F) training, (n, F) held-out test and (m, F) sample features."""
    train, test, samples = _matrix(train), _matrix(test), _matrix(samples)
    if len(train) < cells or min(len(test), len(samples)) < MEMO_MIN_PER_CELL:
        return Memorization(math.nan, math.nan, 0)
    from sklearn.cluster import KMeans  # here: only this test needs it

    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        km = KMeans(n_clusters=cells, n_init=1, random_state=seed).fit(train)
        nn = NearestNeighbors(n_neighbors=1).fit(train)
        d_test, d_fake = nn.kneighbors(test)[0][:, 0], nn.kneighbors(samples)[0][:, 0]
        c_test, c_fake = km.predict(test), km.predict(samples)
    z, w = [], []
    for c in range(cells):
        t, f = d_test[c_test == c], d_fake[c_fake == c]
        if min(len(t), len(f)) < MEMO_MIN_PER_CELL:
            continue
        u = scipy.stats.mannwhitneyu(f, t, alternative="two-sided").statistic  # pairs with d(sample) > d(test)
        mean, var = len(f) * len(t) / 2, len(f) * len(t) * (len(f) + len(t) + 1) / 12
        z.append((u - mean) / math.sqrt(var))
        w.append(len(t) / len(test))
    if not z:
        return Memorization(math.nan, math.nan, 0)
    w = np.asarray(w) / np.sum(w)  # the cells that entered, weighted by their test share
    statistic = float(np.dot(w, z))
    return Memorization(statistic, float(scipy.stats.norm.cdf(statistic / math.sqrt(np.sum(w**2)))), len(z))
