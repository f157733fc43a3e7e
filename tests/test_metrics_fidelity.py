"""FID / KID / precision-recall via torch-fidelity: analytic checks, extractors, feature cache."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from metrics_fakes import Bars
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from bench.errors import ConfigError
from bench.metrics import EvalConfig, fidelity
from bench.metrics import extractors as ext
from bench.metrics.cache import file_hash


def gaussian(n: int, mean: float, var: float, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mean + math.sqrt(var) * torch.randn(n, d, generator=g, dtype=torch.float64)


# --- pure feature -> metric functions -------------------------------------------------------------
def test_fd_of_a_feature_set_against_itself_is_zero():
    f = gaussian(500, 0.3, 2.0, 16, seed=0) @ torch.randn(
        16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    s = fidelity.fd_statistics(f)
    assert abs(fidelity.frechet_distance(s, s)) < 1e-6


def test_fd_of_two_gaussians_matches_the_closed_form_within_sampling_error():
    # N(0, I) vs N(1, 4I) in 2-D: |Δμ|² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = 2 + (2 + 8 − 2·4) = 4
    fds = torch.tensor(
        [
            fidelity.frechet_distance(
                fidelity.fd_statistics(gaussian(2000, 0.0, 1.0, 2, 2 * r)),
                fidelity.fd_statistics(gaussian(2000, 1.0, 4.0, 2, 2 * r + 1)),
            )
            for r in range(20)
        ],
        dtype=torch.float64,
    )
    stderr = fds.std().item() / math.sqrt(len(fds))
    assert 0.05 < fds.std().item() < 0.5  # the replicates really vary (sd ≈ 0.15 for n = 2000)
    assert abs(fds.mean().item() - 4.0) < 3 * stderr + 0.01  # + the estimator's O(d/n) bias
    # and a wrong closed form would be caught: FD of N(0,I) vs N(1,I) is 2, far outside this band
    assert (
        abs(
            fidelity.frechet_distance(
                fidelity.fd_statistics(gaussian(2000, 0.0, 1.0, 2, 0)),
                fidelity.fd_statistics(gaussian(2000, 1.0, 1.0, 2, 1)),
            )
            - 2.0
        )
        < 0.3
    )


def test_kid_of_two_samples_of_one_distribution_is_zero_within_its_spread():
    mean, std = fidelity.kid(gaussian(600, 0.0, 1.0, 8, 0), gaussian(600, 0.0, 1.0, 8, 1), subset_size=300, subsets=50)
    assert std > 0 and abs(mean) < 3 * std
    shifted, _ = fidelity.kid(gaussian(600, 0.0, 1.0, 8, 0), gaussian(600, 1.0, 1.0, 8, 1), subset_size=300, subsets=50)
    assert shifted > 10 * std  # a real difference is far outside that spread


def test_kid_subset_is_clamped_to_the_sample_counts():
    assert fidelity.clamp_kid_subset(1000, 50, 80) == 50
    mean, _ = fidelity.kid(gaussian(50, 0, 1, 4, 0), gaussian(80, 0, 1, 4, 1), subset_size=1000, subsets=5)
    assert math.isfinite(mean)


def test_precision_and_recall_of_a_set_against_itself_are_one():
    f = gaussian(400, 0.0, 1.0, 5, 0)
    assert fidelity.precision_recall(f, f, neighborhood=3) == (1.0, 1.0)
    far = gaussian(400, 50.0, 1.0, 5, 1)
    assert fidelity.precision_recall(far, f, neighborhood=3) == (0.0, 0.0)


def test_to_uint8_stretches_the_datasets_levels_to_0_255():
    spec = Bars().spec  # 17 levels
    x = spec.from_levels(torch.tensor([0, 8, 16]).view(3, 1, 1, 1))
    assert fidelity.to_uint8(x, spec).flatten().tolist() == [0, 128, 255]


# --- the offline classifier extractor -------------------------------------------------------------
@pytest.fixture(scope="module")
def bars():
    return Bars()


@pytest.fixture(scope="module")
def classifier(bars, tmp_path_factory):
    cfg = EvalConfig(feature_extractor="classifier", classifier_steps=60)
    cache = tmp_path_factory.mktemp("cache")
    return ext.resolve_extractor(bars, cfg, cache), cache


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network (or torch hub) fails the test."""

    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)


def test_classifier_is_trained_deterministically_and_learns(bars, classifier, tmp_path):
    extractor, cache = classifier
    assert extractor.name == "genbench-classifier" and len(extractor.hash) == 16
    assert extractor.fidelity.weights_path.startswith(str(cache))
    again = ext.resolve_extractor(bars, EvalConfig(feature_extractor="classifier", classifier_steps=60), tmp_path)
    assert again.hash == extractor.hash  # retrained from scratch elsewhere: same weights (fixed seed)
    net = ext.load_classifier(extractor.fidelity.weights_path)
    acc = ext.accuracy(net, ext.classifier_input(bars.test(), bars.spec), bars.test_labels())
    assert acc > 0.9  # 4 well-separated classes; chance is 0.25


def test_classifier_needs_train_labels(tmp_path):
    data = Bars()
    data.train_labels = lambda: None
    with pytest.raises(ConfigError, match="no train labels"):
        ext.resolve_extractor(data, EvalConfig(), tmp_path)


def test_calculate_metrics_equals_the_feature_functions_offline(bars, classifier, offline, tmp_path):
    extractor, _ = classifier
    fake, real = (
        fidelity.to_uint8(bars.train()[:150], bars.spec),
        fidelity.to_uint8(bars.test()[:120], bars.spec),
    )
    got = fidelity.image_metrics(
        fake,
        real,
        extractor.fidelity,
        cuda=False,
        cache_root=tmp_path,
        real_cache_name=None,
        kid_subset_size=100,
        kid_subsets=10,
        prc_neighborhood=3,
        seed=0,
    )
    net = ext.ClassifierExtractor(
        ext.CLASSIFIER_NAME,
        ["features"],
        feature_extractor_weights_path=extractor.fidelity.weights_path,
    )
    with torch.no_grad():
        f_fake, f_real = net(fake)[0], net(real)[0]
    want = fidelity.frechet_distance(fidelity.fd_statistics(f_fake), fidelity.fd_statistics(f_real))
    assert want > 0 and got["fid"] == pytest.approx(want, rel=1e-6)
    kid_mean, _ = fidelity.kid(f_fake, f_real, subset_size=100, subsets=10, seed=0)
    assert got["kid_mean"] == pytest.approx(kid_mean, rel=1e-6, abs=1e-9)
    assert (got["precision"], got["recall"]) == pytest.approx(fidelity.precision_recall(f_fake, f_real, neighborhood=3))


def test_real_features_are_cached_and_changed_data_misses(monkeypatch, tmp_path):
    from bench.metrics.reference import Reference

    seen: list[int] = []  # batch sizes that went through the extractor network
    forward = ext.ClassifierExtractor.forward
    monkeypatch.setattr(
        ext.ClassifierExtractor,
        "forward",
        lambda self, x: (seen.append(len(x)), forward(self, x))[1],
    )
    cfg = EvalConfig(feature_extractor="classifier", classifier_steps=30, n_real=50, kid_subsets=3)
    samples = Bars(seed=5).test()[:30]

    def run(data):
        seen.clear()
        ref = Reference.build(data, cfg, cache_dir=tmp_path, device=torch.device("cpu"), seed=0)
        assert math.isfinite(ref.quality(samples)["fid"])
        return sorted(seen)

    # Two feature passes per call: torch-fidelity's (FID/KID/PRC) and the C2ST/copy_fraction one
    # (same network and layer), each caching the real side; copy_fraction also needs the 400
    # training images once, and the memorisation test every test image once.
    def batches(n):  # the extractor's batches of 64
        return [64] * (n // 64) + ([n % 64] if n % 64 else [])

    train_batches = batches(400)
    heldout = batches(len(Bars(seed=0).test()))
    assert run(Bars(seed=0)) == sorted([30, 30, 50, 50, *train_batches, *heldout])  # samples, real, train, test
    assert run(Bars(seed=0)) == [30, 30]  # second call, new Reference, same data: the rest from disk caches
    changed = Bars(seed=0)
    changed._test = changed._test.flip(-1)  # same name, same size, different pixels
    assert run(changed) == sorted([30, 30, 50, 50, *heldout])  # content hash differs: a miss, not a stale hit


def test_reference_cache_name_follows_the_data_content(tmp_path):
    from bench.metrics.reference import Reference

    cfg = EvalConfig(feature_extractor="classifier", classifier_steps=5, n_real=50)
    a = Reference.build(Bars(seed=0), cfg, cache_dir=tmp_path, device=torch.device("cpu"), seed=0)
    b = Reference.build(Bars(seed=0), cfg, cache_dir=tmp_path, device=torch.device("cpu"), seed=0)
    c = Reference.build(Bars(seed=1), cfg, cache_dir=tmp_path, device=torch.device("cpu"), seed=0)
    assert a.cache_name == b.cache_name and a.cache_name != c.cache_name
    assert "n50" in a.cache_name and a.extractor.hash in a.cache_name
    other_n = Reference.build(
        Bars(seed=0),
        EvalConfig(feature_extractor="classifier", classifier_steps=5, n_real=40),
        cache_dir=tmp_path,
        device=torch.device("cpu"),
        seed=0,
    )
    assert other_n.cache_name != a.cache_name


# --- InceptionV3 from a local file only -----------------------------------------------------------
@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A random-init state dict, laid out as FeatureExtractorInceptionV3.load_state_dict expects."""
    with pytest.MonkeyPatch.context() as mp:  # build the module without its download-and-load step
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    path = tmp_path_factory.mktemp("inception") / "inception-random.pt"
    torch.save(net.state_dict(), path)
    return path


def test_inception_resolves_to_the_local_file_and_missing_file_is_a_config_error(inception_weights, tmp_path):
    cfg = EvalConfig(
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(inception_weights),
    )
    got = ext.resolve_extractor(Bars(), cfg, tmp_path)
    assert (got.name, got.hash, got.fidelity.layer, got.fidelity.rgb) == (
        "inception-v3-compat",
        file_hash(inception_weights),
        "2048",
        True,
    )
    cfg.feature_extractor_weights_path = str(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="feature_extractor_weights_path"):
        ext.resolve_extractor(Bars(), cfg, tmp_path)


def test_inception_path_loads_the_local_weights_only(inception_weights, offline, tmp_path):
    bars = Bars()
    # layer "64" keeps the test fast (a 2048-d FD needs a 2048×2048 eigendecomposition: ~1 min here)
    fe = fidelity.FidelityExtractor("inception-v3-compat", "64", str(inception_weights), "h", rgb=True)
    fake, real = (
        fidelity.to_uint8(bars.train()[:6], bars.spec),
        fidelity.to_uint8(bars.test()[:6], bars.spec),
    )
    got = fidelity.image_metrics(
        fake,
        real,
        fe,
        cuda=False,
        cache_root=tmp_path,
        real_cache_name=None,
        kid_subset_size=6,
        kid_subsets=2,
        prc_neighborhood=2,
        seed=0,
        only_fid=True,
    )
    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["64"], feature_extractor_weights_path=str(inception_weights)
    )
    with torch.no_grad():  # 1-channel images are repeated to RGB, as the extractor needs
        f_fake, f_real = net(fake.repeat(1, 3, 1, 1))[0], net(real.repeat(1, 3, 1, 1))[0]
    want = fidelity.frechet_distance(fidelity.fd_statistics(f_fake), fidelity.fd_statistics(f_real))
    assert want > 0 and got["fid"] == pytest.approx(want, rel=1e-6)
