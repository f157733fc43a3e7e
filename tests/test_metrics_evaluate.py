"""evaluate() end to end on fake families with analytic answers, and its small building blocks."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from metrics_fakes import (
    Bars,
    DatasetSampler,
    GaussianFamily,
    IWAEFamily,
    RingPoints,
    SleepySampler,
)

from bench.metrics import EvalConfig, evaluate, quality
from bench.metrics import impute as imp
from bench.metrics.nll import fp32_forward
from bench.store import COLUMN_NAMES

REQUIRED = (
    "nll nll_stderr nll_unit nll_kind nll_estimates true_nll_nats true_nll_stderr_nats "
    "density_mass fid kid_mean kid_std precision recall mode_coverage mode_kl_nats "
    "sharpness_ratio impute_mse impute_mse_baseline samples_per_s samples_per_cpu_s "
    "speed_clock speed_spread speed_batch flops_per_sample sample_batch nfe steps_curve "
    "eval_s sample_s metrics_s nll_s n_real n_fake extractor extractor_hash "
    "samples_png samples_npy"
).split()


def small_cfg(**kw) -> EvalConfig:
    base = dict(
        n_samples=300,
        n_real=300,
        sample_batch=100,
        speed_batches=(100,),
        speed_repeats=1,
        nll_examples=300,
        kid_subsets=5,
        kid_subset_size=200,
        impute_examples=200,
        classifier_steps=60,
    )
    return EvalConfig(**(base | kw))


@pytest.fixture(scope="module")
def ring():
    return RingPoints()


def run(family, data, tmp_path, cfg=None, seed=0):
    return evaluate(
        family,
        data,
        cfg or small_cfg(),
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "out",
        seed=seed,
    )


# --- points ---------------------------------------------------------------------------------------
def test_points_row_has_the_schema_columns_and_analytic_nll(ring, tmp_path):
    fam = GaussianFamily(ring.spec, torch.zeros(2), 1.0)
    row = run(fam, ring, tmp_path)
    assert set(REQUIRED) <= set(row) <= set(COLUMN_NAMES)
    x = ring.test()[:300].double()
    want = -torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert row["nll"] == pytest.approx(want.mean().item(), rel=1e-6)
    assert row["nll_stderr"] == pytest.approx(want.std().item() / math.sqrt(300), rel=1e-5)
    assert (row["nll_unit"], row["nll_kind"], row["extractor"], row["extractor_hash"]) == (
        "nats",
        "exact",
        "raw",
        "",
    )
    assert json.loads(row["nll_estimates"]) == {"exact": pytest.approx(row["nll"])}
    assert row["density_mass"] == pytest.approx(1.0, abs=1e-3)
    for col in ("sharpness_ratio", "true_nll_nats", "true_nll_stderr_nats"):
        assert math.isnan(row[col])  # not applicable: NaN, never 0
    assert row["steps_curve"] == "" and row["samples_png"] == "" and row["nfe"] == 1
    assert (row["n_real"], row["n_fake"], row["sample_batch"]) == (300, 300, 100)
    assert (row["speed_clock"], row["speed_batch"]) == ("cpu", 100)  # on a CPU, CPU time decides
    assert row["flops_per_sample"] == 0  # the fake samples by arithmetic on its mean: no matmul
    assert np.load(row["samples_npy"]).shape == (300, 2)
    assert row["eval_s"] >= row["nll_s"] + row["sample_s"] + row["metrics_s"] - 1e-6


def test_density_mass_catches_an_unnormalised_density(ring, tmp_path):
    class Half(GaussianFamily):  # reports −log(p/2): integrates to 1/2
        def nll(self, x, generator=None, *, iwae_k=None):
            return {"exact": super().nll(x)["exact"] + math.log(2)}

    row = run(Half(ring.spec, torch.zeros(2), 1.0), ring, tmp_path, small_cfg(impute=False))
    assert row["density_mass"] == pytest.approx(0.5, abs=1e-3)


def test_a_perfect_sampler_scores_like_the_data_and_a_mode_dropper_does_not(ring, tmp_path):
    good = run(DatasetSampler(ring), ring, tmp_path)
    two = run(DatasetSampler(ring, modes=[0, 4]), ring, tmp_path)
    assert good["mode_coverage"] == 1.0 and good["mode_kl_nats"] < 0.03
    assert two["mode_coverage"] == 0.25 and two["mode_kl_nats"] == pytest.approx(math.log(4), abs=0.03)
    assert good["fid"] < 0.1 * two["fid"]  # n = 300: the perfect sampler's FD is sampling noise (~2·tr Σ / n)
    assert good["precision"] > 0.9 and good["recall"] > 0.9 and two["recall"] < 0.4
    assert abs(good["kid_mean"]) < 3 * good["kid_std"] + 1e-3
    assert good["nll_kind"] == "none" and math.isnan(good["nll"]) and json.loads(good["nll_estimates"]) == {}


def test_iwae_k_of_the_eval_config_becomes_the_headline(ring, tmp_path):
    fam = IWAEFamily(ring.spec, torch.zeros(2), 1.0)
    exact = run(GaussianFamily(ring.spec, torch.zeros(2), 1.0), ring, tmp_path, small_cfg(impute=False))["nll"]
    row = run(fam, ring, tmp_path, small_cfg(iwae_k=64, impute=False))
    assert row["nll_kind"] == "iwae-64" and row["nll"] == pytest.approx(exact + 1 / 64, rel=1e-6)
    assert set(json.loads(row["nll_estimates"])) == {"iwae-64", "elbo"}
    own = run(fam, ring, tmp_path, small_cfg(iwae_k=3, impute=False))
    assert own["nll_kind"] == "iwae-3" and own["nll"] == pytest.approx(exact + 1 / 3, rel=1e-6)
    assert math.isnan(row["density_mass"])  # a bound says nothing about normalisation


def test_iterative_sampler_gets_a_steps_curve(ring, tmp_path):
    fam = SleepySampler(ring.spec, per_step=0.002, T=40)
    row = run(fam, ring, tmp_path, small_cfg(sampling_steps=(5, 20, 80), impute=False))
    curve = json.loads(row["steps_curve"])
    assert [c["steps"] for c in curve] == [5, 20, 40] and [c["nfe"] for c in curve] == [5, 20, 40]
    assert row["nfe"] == 40 and row["samples_per_s"] == curve[-1]["samples_per_s"]
    assert curve[0]["samples_per_s"] > 4 * curve[-1]["samples_per_s"]  # 8× fewer steps, ~8× faster
    assert all(c["fid"] is not None for c in curve)
    assert all(c["speed_spread"] >= 0 and c["flops_per_sample"] == 0 for c in curve)
    assert row["mode_coverage"] == 0.0 and math.isnan(row["mode_kl_nats"])  # all samples at the origin: off-mode


def test_non_finite_samples_give_nan_metrics_not_a_crash(ring, tmp_path):
    class Broken(GaussianFamily):
        def sample(self, n, generator=None, *, steps=None):
            return torch.full((n, 2), float("nan"))

    row = run(Broken(ring.spec, torch.zeros(2), 1.0), ring, tmp_path, small_cfg(impute=False))
    assert all(math.isnan(row[c]) for c in ("fid", "kid_mean", "precision", "recall", "mode_coverage"))
    assert math.isfinite(row["nll"])


def test_evaluate_restores_training_mode(ring, tmp_path):
    fam = GaussianFamily(ring.spec, torch.zeros(2), 1.0)
    fam.train(True)
    run(fam, ring, tmp_path, small_cfg(impute=False))
    assert fam.net.training


# --- images ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bars():
    return Bars(n_train=400, n_test=300)


def test_image_row_classifier_extractor_coverage_and_sharpness(bars, tmp_path):
    cfg = small_cfg()
    sharp = run(DatasetSampler(bars), bars, tmp_path, cfg)
    blurred = run(DatasetSampler(bars, blur=True), bars, tmp_path, cfg)
    assert sharp["extractor"] == "genbench-classifier" and sharp["extractor_hash"] == blurred["extractor_hash"]
    assert sharp["mode_coverage"] == 1.0 and sharp["mode_kl_nats"] < 0.05
    assert 0.8 < sharp["sharpness_ratio"] < 1.25 and blurred["sharpness_ratio"] < 0.5
    assert sharp["fid"] < blurred["fid"]
    assert sharp["nll_unit"] == "bits_per_dim" and sharp["nll_kind"] == "none"
    assert sharp["samples_png"].endswith("samples.png") and (tmp_path / "out" / "samples.png").exists()


def test_image_nll_is_reported_in_bits_per_dim(bars, tmp_path):
    fam = GaussianFamily(bars.spec, torch.zeros(1, 8, 8), 0.5)
    row = run(fam, bars, tmp_path, small_cfg(impute=False, n_samples=150))
    nats = fam.nll(bars.test()[:300])["exact"].double()
    assert row["nll"] == pytest.approx(nats.mean().item() / (64 * math.log(2)), rel=1e-6)


# --- building blocks ------------------------------------------------------------------------------
def test_mode_share_threshold_is_half_of_the_uniform_share():
    # n = 80, K = 8: a mode needs >= 80 / 16 = 5 samples
    counts = [20, 20, 20, 6, 5, 4, 0, 0]
    assignment = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)] + [torch.full((5,), -1)])
    assert len(assignment) == 80
    out = quality.mode_histogram_metrics(assignment, 8)
    assert out["mode_coverage"] == 5 / 8
    p = torch.tensor([c for c in counts if c], dtype=torch.float64) / 75
    assert out["mode_kl_nats"] == pytest.approx((p * torch.log(p * 8)).sum().item())


def test_laplacian_variance_of_known_images():
    assert quality.laplacian_variance(torch.zeros(2, 1, 6, 6)).tolist() == [0.0, 0.0]
    ii, jj = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    checker = ((-1.0) ** (ii + jj)).view(1, 1, 6, 6)  # Laplacian response ±8 everywhere: variance 64
    assert quality.laplacian_variance(checker).item() == pytest.approx(64.0)


def test_imputation_mask_is_fixed_and_hides_exactly_half(bars, ring):
    m = imp.hidden_mask(50, ring.spec)
    assert m.shape == (50, 2) and (m.sum(1) == 1).all() and torch.equal(m, imp.hidden_mask(50, ring.spec))
    mi = imp.hidden_mask(4, bars.spec)
    assert (mi.flatten(1).sum(1) == 32).all()


def test_each_seed_scores_its_own_examples_and_mask_and_every_family_at_a_seed_the_same(ring):
    """The baselines' uncertainty comes from the test examples: another trial seed draws other
    examples and another mask, so the mean baseline varies over seeds; at one seed every family
    sees the same examples and hidden entries."""
    test, mean = ring.test(), ring.train().mean(0)
    seen = []

    class Spy(GaussianFamily):
        def impute(self, x, known, generator=None):
            seen.append((x.clone(), known.clone()))
            return super().impute(x, known)

    def score(family, trial_seed):
        seed = imp.protocol_seed(trial_seed)
        return imp.imputation_columns(
            family, imp.scored_examples(test, 100, seed), mean, ring.spec, generator=None, seed=seed
        )

    a, b, other = (
        score(Spy(ring.spec, mean, 1.0), 0),
        score(Spy(ring.spec, mean, 2.0), 0),
        score(DatasetSampler(ring), 1),
    )
    assert torch.equal(seen[0][0], seen[1][0]) and torch.equal(seen[0][1], seen[1][1])
    assert a["impute_mse_baseline"] == b["impute_mse_baseline"] != other["impute_mse_baseline"]
    assert not torch.equal(imp.scored_examples(test, 100, 7), imp.scored_examples(test, 100, 8))
    assert torch.equal(imp.scored_examples(test, len(test), 7), test)  # all of them: nothing to draw


class Posterior(GaussianFamily):
    """Imputes E[hidden | known] under the true mixture: the MSE-optimal imputation."""

    def __init__(self, data):
        super().__init__(data.spec, data.train().mean(0), 1.0)
        self.data = data

    def impute(self, x, known, generator=None):
        c = self.data.modes.double()  # (K, 2)
        d2 = (((x[:, None].double() - c[None]) ** 2) * known[:, None]).sum(-1)  # (B, K), known coords only
        w = torch.softmax(-d2 / (2 * self.data.std**2), dim=1)
        return torch.where(known, x, (w @ c).float())


def test_imputation_columns(ring):
    test, mean = ring.test()[:200], ring.train().mean(0)
    seen = {}

    class Spy(GaussianFamily):
        def impute(self, x, known, generator=None):
            seen["x"], seen["known"] = x.clone(), known.clone()
            return super().impute(x, known)

    out = imp.imputation_columns(Spy(ring.spec, mean, 1.0), test, mean, ring.spec, generator=None)
    assert out["impute_mse"] == pytest.approx(out["impute_mse_baseline"])  # imputing the mean is the baseline
    assert (seen["x"][~seen["known"]] == 0).all()  # hidden entries never reach the family
    hidden = imp.hidden_mask(200, ring.spec)
    assert out["impute_mse_baseline"] == pytest.approx(((test - mean)[hidden] ** 2).mean().item(), rel=1e-6)
    none = imp.imputation_columns(DatasetSampler(ring), test, mean, ring.spec, generator=None)
    assert math.isnan(none["impute_mse"]) and math.isfinite(none["impute_mse_baseline"])


def test_a_better_imputer_scores_lower_on_an_asymmetric_mixture():
    # 3 modes at 90°, 210°, 330°: the known coordinate often pins the hidden one down
    tri = RingPoints(k=3, offset=math.pi / 2)
    out = imp.imputation_columns(Posterior(tri), tri.test()[:400], tri.train().mean(0), tri.spec, generator=None)
    assert out["impute_mse"] < 0.7 * out["impute_mse_baseline"]  # analytic ratio ≈ 0.5


def test_on_a_reflection_symmetric_mixture_nothing_beats_mean_imputation(ring):
    """Why the 8gaussians imputation claim cannot be won in MSE: with one coordinate hidden, the
    modes' symmetry under y -> -y (and x -> -x) makes E[hidden | known] = 0 = the training mean,
    and the conditional mean is the MSE-optimal imputation. Any imputer (a VAE too) can at best
    tie the baseline."""
    out = imp.imputation_columns(Posterior(ring), ring.test(), ring.train().mean(0), ring.spec, generator=None)
    assert out["impute_mse"] == pytest.approx(out["impute_mse_baseline"], rel=0.03)


def test_fp32_forward_undoes_accelerates_bf16_autocast():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    class LinearNLL(GaussianFamily):
        def __init__(self, spec):
            super().__init__(spec, torch.zeros(2), 1.0)
            torch.manual_seed(0)
            self.net = torch.nn.Linear(2, 1)

        def nll(self, x, generator=None, *, iwae_k=None):
            return {"exact": self.net(x).squeeze(1)}

    fam = LinearNLL(RingPoints(n_train=4, n_test=4).spec)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 3.1
    exact = fam.net(x).squeeze(1).detach()
    AcceleratorState._reset_state(True)  # an earlier test's trial may have left its state behind
    try:
        fam.attach(accelerate.Accelerator(mixed_precision="bf16", cpu=True))
        with torch.no_grad():
            wrapped = fam.nll(x)["exact"]
            with fp32_forward(fam):
                inside = fam.nll(x)["exact"]
            after = fam.nll(x)["exact"]
    finally:
        AcceleratorState._reset_state(True)
    assert not torch.equal(wrapped, exact)  # the precondition: Accelerate really computes in bf16
    assert torch.equal(inside, exact)
    assert torch.equal(after, wrapped)  # the wrapper is back afterwards (training goes on in bf16)


def test_laplacian_variance_of_white_noise_matches_the_closed_form():
    # i.i.d. pixels of variance s²: the 4-neighbour Laplacian sums 4 unit and one -4 weight,
    # so its response has variance (4·1 + 16)·s² = 20·s²; the sharpness ratio of two such sets is s₁²/s₂²
    from bench.metrics.quality import laplacian_variance, sharpness_ratio

    g = torch.Generator().manual_seed(0)
    noise = 0.3 * torch.randn(200, 1, 32, 32, generator=g)
    assert laplacian_variance(noise).mean().item() == pytest.approx(20 * 0.09, rel=0.01)
    wider = 0.6 * torch.randn(200, 1, 32, 32, generator=g)
    assert sharpness_ratio(noise, wider) == pytest.approx(0.25, rel=0.02)
    assert laplacian_variance(torch.full((3, 1, 8, 8), 0.7)).abs().max().item() < 1e-12  # flat image


@pytest.mark.parametrize("sigma_over_h", [0.45, 0.6, 1.0])
def test_density_mass_grid_error_is_within_the_stated_bound(sigma_over_h):
    """A two-component Gaussian mixture, narrow enough that the 64-cell midpoint sum visibly aliases:
    |density_mass − (exact mass inside the box)| <= midpoint_error_bound, and the bound is tight
    enough to mean something (the error is not far below it at the narrowest setting)."""
    from bench.metrics.nll import MASS_CELLS, density_mass, midpoint_error_bound

    box = torch.tensor([[-3.0, -2.0], [3.0, 2.0]])  # points spanning it: pad 0 keeps exactly this box
    h = float((box[1] - box[0]).min()) / MASS_CELLS
    sigma = sigma_over_h * h
    means = torch.tensor([[-1.0, 0.3], [1.2, -0.5]])

    class Mixture:
        nll_kind = "exact"
        device = torch.device("cpu")

        def modules(self):
            return {}

        def fp32(self):
            return contextlib.nullcontext()

        def nll(self, x, generator=None, *, iwae_k=None):
            d = torch.distributions.Normal(means[:, None].double(), sigma)  # (2, 1, 2)
            logp = d.log_prob(x.double()[None]).sum(-1)  # (2, B)
            return {"exact": -(torch.logsumexp(logp, 0) - math.log(2))}

    mass = density_mass(Mixture(), box, pad=0.0)
    normal = torch.distributions.Normal(means.double(), sigma)
    inside = (normal.cdf(box[1].double()) - normal.cdf(box[0].double())).prod(1).mean().item()
    spacing = max(((box[1] - box[0]) / MASS_CELLS).tolist())
    bound = midpoint_error_bound(sigma, spacing)
    assert abs(mass - inside) <= bound + 1e-9, (mass, inside, bound)
    if sigma_over_h == 0.45:
        assert 1e-4 < abs(mass - inside), "the test must see aliasing at all"


# --- the protocol: truth on the scored examples, equal sample counts, CPU-time throughput --------
def test_true_nll_and_the_paired_gap_are_taken_on_exactly_the_scored_examples(tmp_path):
    from bench.datasets import make_dataset

    ds = make_dataset("8gaussians", {"n_train": 1000, "n_test": 700})
    fam = GaussianFamily(ds.spec, torch.zeros(2), 2.0)
    row = run(fam, ds, tmp_path, small_cfg(nll_examples=250, impute=False))
    scored = ds.test()[:250]  # the first nll_examples of the test split
    truth = -ds.log_density(scored).double()
    model = fam.nll(scored)["exact"].double()
    assert row["true_nll_nats"] == pytest.approx(truth.mean().item(), rel=1e-9)
    assert row["true_nll_stderr_nats"] == pytest.approx(truth.std().item() / math.sqrt(250), rel=1e-6)
    gap = model - truth
    assert row["nll_gap_nats"] == pytest.approx(gap.mean().item(), rel=1e-6)
    assert row["nll_gap_stderr_nats"] == pytest.approx(gap.std().item() / math.sqrt(250), rel=1e-5)
    assert row["nll"] - row["true_nll_nats"] == pytest.approx(row["nll_gap_nats"], rel=1e-5)
    # the dataset's Monte-Carlo entropy is a different number: not what is reported
    assert row["true_nll_nats"] != ds.true_nll_nats()[0]


def test_unknown_density_has_no_truth_and_no_gap(ring, tmp_path):
    row = run(GaussianFamily(ring.spec, torch.zeros(2), 1.0), ring, tmp_path, small_cfg(impute=False))
    for col in ("true_nll_nats", "true_nll_stderr_nats", "nll_gap_nats", "nll_gap_stderr_nats"):
        assert math.isnan(row[col])


def test_n_fake_equals_n_real_and_a_capped_request_warns(tmp_path):
    bars = Bars(n_test=200)
    capped = run(DatasetSampler(bars), bars, tmp_path, small_cfg(n_samples=300, n_real=300, impute=False))
    assert capped["n_fake"] == capped["n_real"] == 200
    assert "capped" in capped["warnings"] and "test set 200" in capped["warnings"]
    uneven = run(DatasetSampler(bars), bars, tmp_path, small_cfg(n_samples=120, n_real=150, impute=False))
    assert uneven["n_fake"] == uneven["n_real"] == 120 and "capped" in uneven["warnings"]
    fits = run(DatasetSampler(bars), bars, tmp_path, small_cfg(n_samples=100, n_real=100, impute=False))
    assert fits["n_fake"] == fits["n_real"] == 100 and fits["warnings"] == ""


def test_cpu_time_throughput_ignores_time_spent_waiting(ring, tmp_path):
    """A sampler that sleeps costs wall time but (almost) no CPU time."""
    fam = SleepySampler(ring.spec, per_batch=0.05)
    row = run(fam, ring, tmp_path, small_cfg(impute=False, speed_repeats=2))
    assert row["samples_per_s"] == pytest.approx(100 / 0.05, rel=0.5)
    assert row["samples_per_cpu_s"] > 10 * row["samples_per_s"]


def test_ddpm_steps_is_a_deprecated_alias_of_sampling_steps(caplog):
    from bench.errors import ConfigError
    from bench.hparams import build

    with caplog.at_level("WARNING"):
        cfg = build(EvalConfig, {"ddpm_steps": [5, 20]}, owner="[eval]")
    assert cfg.sampling_steps == (5, 20) and "'ddpm_steps' is deprecated" in caplog.text
    with pytest.raises(ConfigError, match="deprecated name of 'sampling_steps'; give only the latter"):
        build(EvalConfig, {"ddpm_steps": [5], "sampling_steps": [5]}, owner="[eval]")


class PosteriorSampler(Posterior):
    """One draw from the exact posterior per call (a sampling imputer, like the DDPM)."""

    def impute(self, x, known, generator=None):
        c = self.data.modes.double()
        d2 = (((x[:, None].double() - c[None]) ** 2) * known[:, None]).sum(-1)
        w = torch.softmax(-d2 / (2 * self.data.std**2), dim=1)
        k = torch.multinomial(w, 1, generator=generator).squeeze(1)
        draw = c[k] + self.data.std * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        return torch.where(known, x, draw.float())


def test_a_sampling_imputer_is_scored_on_its_m_draw_mean_with_knn_and_energy_beside():
    """With M draws of the exact posterior, the conditional-mean MSE approaches the posterior
    mean's (it is that plus E[Var]/M), while one draw pays about twice; the energy score of the draws
    beats that of the point imputer; the k-NN baseline sees the same masks."""
    tri = RingPoints(k=3, offset=math.pi / 2)
    test, mean = tri.test()[:400], tri.train().mean(0)
    point = imp.imputation_columns(Posterior(tri), test, mean, tri.spec, generator=None, draws=8, train=tri.train())
    one = imp.imputation_columns(
        PosteriorSampler(tri), test, mean, tri.spec, generator=torch.Generator().manual_seed(0)
    )
    many = imp.imputation_columns(
        PosteriorSampler(tri), test, mean, tri.spec, generator=torch.Generator().manual_seed(0), draws=8
    )
    assert many["impute_draws"] == 8 and many["impute_mask"] == "random"
    assert point["impute_mse"] < many["impute_mse"] < 1.3 * point["impute_mse"] < one["impute_mse"]
    assert many["impute_energy"] < point["impute_energy"]  # the whole conditional, not its mean
    assert math.isfinite(point["impute_mse_knn"]) and point["impute_mse_knn"] < point["impute_mse_baseline"]
    block = imp.imputation_columns(Posterior(tri), test, mean, tri.spec, generator=None, mask="block")
    assert block["impute_mask"] == "block" and math.isfinite(block["impute_mse"])
