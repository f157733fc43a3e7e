"""The two kinds of rows a results folder holds, their columns, types and units: the single source of truth.

`TRIALS`: one row per trial (a grid cell), filled by the trial (bench.trial.run), stored by
bench.store.rows, read by the report. `TUNING`: one row per phase-1 tuning trial (one sampled
configuration), filled by bench.run.tuning_worker. A `Schema` says where its rows live, which key
names a row, which statuses are final and how rows are ordered without a grid.
A column that does not apply is NaN / "" (never 0): e.g. the GAN's `nll` is NaN with nll_kind "none".
JSON columns hold small structures as JSON text so parquet and CSV carry them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dtype = Literal["str", "int", "float", "bool", "json"]
PANDAS_DTYPE: dict[str, str] = {"str": "str", "json": "str", "int": "Int64", "float": "float64", "bool": "boolean"}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Dtype
    doc: str  # meaning, with the unit


COLUMNS: tuple[Column, ...] = (
    # identity of the grid cell
    Column("suite", "str", "suite name"),
    Column("trial_id", "str", "stable hash of the grid cell (model label, dataset, budget, seed, config)"),
    Column("family", "str", "registered family name"),
    Column("label", "str", "model label from the suite (defaults to the family name)"),
    Column("dataset", "str", "registered dataset name"),
    Column("budget", "str", "budget name from the suite"),
    Column("seed", "int", "trial seed (torch/numpy/python)"),
    Column("status", "str", "ok | failed | diverged | no-steps (the budget allowed no optimizer step)"),
    Column("error", "str", "error text of a failed/diverged trial, else ''"),
    Column("warnings", "str", "'; '-joined notes (e.g. fp16 on CPU fell back to fp32)"),
    Column("config_hash", "str", "hash of family hparams + dataset options + budget + eval config"),
    Column("hparams", "json", "the family's full hyper-parameters after defaults"),
    Column("tuned", "bool", "hparams were chosen by the suite's [tune] search on the validation split"),
    # likelihood
    Column("nll", "float", "headline test NLL in nll_unit (NaN for families without a likelihood)"),
    Column("nll_stderr", "float", "standard error of nll over test examples, in nll_unit"),
    Column("nll_unit", "str", "nats (points) | bits_per_dim (images, discrete data)"),
    Column(
        "nll_kind",
        "str",
        "exact | dequantized (one-sample uniform-dequantization upper bound, image flows and gmm) "
        "| elbo | iwae-K | vlb (bounds) | none",
    ),
    Column("nll_estimates", "json", "{estimator label: test NLL in nll_unit}, e.g. VAE elbo and iwae-K"),
    Column(
        "true_nll_nats",
        "float",
        "known-density data: −mean log p_data over exactly the test examples scored by nll, nats; else NaN",
    ),
    Column("true_nll_stderr_nats", "float", "standard error of true_nll_nats over those examples (std / √n)"),
    Column(
        "nll_gap_nats",
        "float",
        "mean over the scored examples of model NLL − true NLL, per example (paired), nats; NaN without both",
    ),
    Column("nll_gap_stderr_nats", "float", "standard error of nll_gap_nats (std of the per-example gaps / √n)"),
    Column(
        "density_mass", "float", "integral of the model density on a grid (2-D exact-likelihood families), else NaN"
    ),
    Column(
        "nll_ode",
        "float",
        "families with an ODE density (DDPM: probability flow of its β schedule; flow matching): test NLL by "
        "the instantaneous change of variables (dopri5; exact divergence on points, Hutchinson on dequantized "
        "images) over the first eval.ode_examples scored examples, in nll_unit; else NaN",
    ),
    Column(
        "nll_ode_stderr", "float", "standard error of nll_ode over its examples (Hutchinson noise included), nll_unit"
    ),
    Column("nll_ode_nfe", "float", "velocity-network evaluations per ODE solve (mean over the eval.nll_batch solves)"),
    Column("nll_ode_s", "float", "wall seconds of the nll_ode evaluation (part of nll_s)"),
    Column(
        "nll_ode_solver",
        "json",
        '{"method", "rtol", "atol", "divergence": exact | hutchinson-<probes>, "examples", with >= 2 probes '
        '"hutchinson_stderr": the probes\' share of nll_ode_stderr} of nll_ode; {} if none',
    ),
    # sample quality
    Column("fid", "float", "Fréchet distance, generated vs real test features (extractor below)"),
    Column("kid_mean", "float", "kernel inception distance, mean over subsets"),
    Column("kid_std", "float", "kernel inception distance, std over subsets"),
    Column("precision", "float", "improved precision (k-NN manifold), in [0, 1]"),
    Column("recall", "float", "improved recall (k-NN manifold), in [0, 1]"),
    Column("mode_coverage", "float", "fraction of modes/classes that receive their share of samples, [0, 1]"),
    Column("mode_kl_nats", "float", "KL(sample mode histogram || uniform) in nats"),
    Column("sharpness_ratio", "float", "mean Laplacian variance of samples / that of real test images"),
    Column(
        "c2st_accuracy",
        "float",
        "classifier two-sample test: held-out accuracy of a k-NN classifier telling real test examples "
        "from samples (2-fold; raw coordinates for points, extractor features for images); 0.5 = "
        "indistinguishable, 1 = always told apart",
    ),
    Column(
        "c2st_auc",
        "float",
        "AUC of the same k-NN's out-of-fold class probabilities (real vs samples), [0, 1]; 0.5 = "
        "indistinguishable: sees a dropped mode that the accuracy cannot (bench.controls)",
    ),
    Column(
        "c2st_p_value",
        "float",
        "one-sided p of the classifier two-sample test: the AUC of the same k-NN's out-of-fold probabilities "
        "against 200 label shuffles (bench.metrics.twosample); small = samples told apart from the data",
    ),
    Column(
        "memorization_p",
        "float",
        "one-sided p that samples copy the training set (Meehan et al. 2020's C_T: samples' distances to the "
        "training set against held-out test examples', per k-means cell; same features as copy_fraction); "
        "small = copying",
    ),
    Column(
        "blur_index",
        "float",
        "images: log of the samples' high-frequency share of power (Laplacian energy / pixel variance) over "
        "the real images'; < 0 blurred, > 0 noisy, 0 = the data's texture (no direction is better); else NaN",
    ),
    Column(
        "copy_fraction",
        "float",
        "share of samples whose nearest training example is closer than 1/3 of the distance to the "
        "second nearest (memorisation; raw coordinates for points, extractor features for images), [0, 1]",
    ),
    Column(
        "impute_mse",
        "float",
        "MSE on the masked part of test inputs of the mean of impute_draws imputations (model space²)",
    ),
    Column("impute_mse_baseline", "float", "same, for imputing the training mean"),
    Column("impute_mse_knn", "float", "same, for the 5-nearest-neighbour imputer on the known entries (same masks)"),
    Column(
        "impute_energy",
        "float",
        "energy score of the impute_draws imputations on the masked entries (a proper score of the conditional; "
        "model-space units, lower is better)",
    ),
    Column("impute_draws", "int", "M: imputations per test example, averaged (the same for every family)"),
    Column("impute_mask", "str", "random (half the positions) | block (one quarter-size rectangle)"),
    # cost
    Column(
        "samples_per_s",
        "float",
        "samples per wall-clock second: median over speed_repeats calls timed one by one at speed_batch "
        "(device synchronised around each call), after a warm-up call",
    ),
    Column(
        "samples_per_cpu_s",
        "float",
        "samples per second of process CPU time (time.process_time: all threads of the trial process; "
        "on a GPU only the host side): median over the same calls as samples_per_s",
    ),
    Column("speed_clock", "str", "the deciding clock of the sampling speed: cpu (on a CPU) | wall (on a GPU)"),
    Column(
        "speed_spread",
        "float",
        "(max − min) / median of the deciding clock's per-call rates at speed_batch (dimensionless)",
    ),
    Column("speed_batch", "int", "batch size of the speed_batches sweep with the best deciding-clock rate"),
    Column(
        "flops_per_sample",
        "float",
        "FLOPs of one sample call per sample (torch.utils.flop_counter: matrix products and convolutions; "
        "work outside torch, e.g. scikit-learn, is not counted)",
    ),
    Column("sample_batch", "int", "batch size of the draws of the evaluation samples"),
    Column("nfe", "int", "network function evaluations per sample"),
    Column(
        "steps_curve",
        "json",
        "DDPM: [{steps, nfe, samples_per_s, samples_per_cpu_s, speed_spread, flops_per_sample, fid}] over "
        "sampling-step counts (speeds at speed_batch)",
    ),
    Column("train_s", "float", "training seconds over all attempts (evaluation, reports, checkpoints excluded)"),
    Column(
        "stalled_s",
        "float",
        "wall seconds during training when the process did not run (stopped by SIGSTOP, suspended, starved): "
        "excluded from train_s; > 0 comes with a warning",
    ),
    Column("train_steps", "int", "optimizer steps taken"),
    Column(
        "attempts",
        "int",
        "training runs that built the model: 1 + resumes from a checkpoint, or this run's Ray Tune attempts "
        "(1 + retries of a dead trial process) where those are more",
    ),
    Column("resumed_from_step", "int", "step of the checkpoint the last resume started from, -1 if never resumed"),
    Column("examples_per_s", "float", "training examples per second"),
    Column("params", "int", "trainable parameter count"),
    Column(
        "peak_mem_mb",
        "float",
        "the trial process's peak memory in MiB over training and evaluation (CPU: peak RSS, VmHWM reset at "
        "the trial's start; GPU: torch max allocated)",
    ),
    Column(
        "unique_mem_mb",
        "float",
        "host memory in MiB only the trial process holds at its end (USS: private pages; peak_mem_mb's RSS "
        "adds the ~400 MiB of library pages all trial processes on a node share): what one more trial adds",
    ),
    Column(
        "train_mem_growth_mb",
        "float",
        "memory growth during training in MiB (CPU: peak RSS over its value at the start; GPU: max allocated)",
    ),
    Column(
        "diverged_step",
        "int",
        "step at which training diverged (same rule for every family: a non-finite loss or |loss| > 1e10, "
        "bench.families.base.LOSS_LIMIT), -1 if it did not",
    ),
    Column(
        "loss_oscillation",
        "float",
        "std of the main loss's step-to-step changes over the last half of training / the loss's 5-95 % "
        "spread over the whole run (unitless; unchanged by adding a constant to or scaling the loss)",
    ),
    Column(
        "mode_collapsed",
        "bool",
        "GAN only (else empty): the discriminator won, loss_d < 0.01 for 500 consecutive steps, at some point",
    ),
    Column(
        "quality_curve",
        "json",
        "[{step, fid}] at eval.trajectory_points evenly spaced points of training: FID of the evaluation weights, "
        "eval.trajectory_samples samples vs as many real test examples (iterative samplers: their fewest "
        "eval.sampling_steps), squared feature units; '' when off",
    ),
    Column(
        "fid_oscillation",
        "float",
        "total variation of log FID along quality_curve minus its net decrease (0 = only improving; "
        "dimensionless, bench.metrics.trajectory); NaN with < 2 points",
    ),
    Column(
        "fid_floor",
        "float",
        "FID of eval.trajectory_samples training examples against the curve's real examples: a perfect "
        "sampler's FID at that n (squared feature units)",
    ),
    Column(
        "collapsed",
        "bool",
        "same rule for every family: diverged (non-finite loss or |loss| > 1e10), or the final FID of "
        "quality_curve non-finite or above 2 × (the curve's best FID + fid_floor); empty without a curve",
    ),
    Column("weights_evaluated", "str", "ema (the family's weight average) | raw, the weights evaluation used"),
    Column("loss_curve", "json", "{loss name: [[step, value], ...]} downsampled to <= 300 points"),
    Column("eval_s", "float", "wall time of all evaluations in seconds"),
    Column("sample_s", "float", "of eval_s: time spent drawing samples for the metrics"),
    Column("metrics_s", "float", "of eval_s: time spent computing the sample-quality metrics"),
    Column("nll_s", "float", "of eval_s: time spent evaluating the NLL"),
    # protocol stamp
    Column("n_real", "int", "real test examples the metrics used: min(eval.n_samples, eval.n_real, test size)"),
    Column("n_fake", "int", "generated samples the metrics used; always equal to n_real (warning when capped)"),
    Column("extractor", "str", "feature extractor of fid/kid/precision/recall"),
    Column("extractor_hash", "str", "content hash of the extractor weights ('' for raw coordinates)"),
    Column("device", "str", "cpu | cuda:<name>"),
    Column("mixed_precision", "str", "no | bf16 | fp16 as actually used for training (NLL is always fp32)"),
    Column(
        "versions", "json", "{library: version} of bench.trial.provenance.VERSIONED (torch, torch-fidelity, ray, ...)"
    ),
    Column("weights_path", "str", "saved final weights, relative to the results folder"),
    Column("samples_png", "str", "PNG grid of samples (images), relative to the results folder"),
    Column("samples_npy", "str", "up to 2000 samples in model space (.npy), relative to the results folder"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)

TUNING_COLUMNS: tuple[Column, ...] = (
    Column("label", "str", "model label from the suite"),
    Column("family", "str", "registered family name"),
    Column("dataset", "str", "registered dataset name"),
    Column("budget", "str", "budget name from the suite"),
    Column("seed", "int", "tuning seed (one search of `samples` configurations per seed)"),
    Column("sample", "int", "0-based index of the configuration within its search"),
    Column("config", "json", "the sampled hyper-parameter values"),
    Column("val_metric", "float", "last validation metric reported (lower is better; inf when diverged)"),
    Column("metric", "str", "name of the validation metric: nll (in the row's NLL unit) | fid"),
    Column("stopped_step", "int", "optimizer step the trial ended at (below the budget when stopped early)"),
    Column("budget_steps", "int", "optimizer steps of the budget (empty for time-only budgets)"),
    Column("status", "str", "ok | stopped (early, by the scheduler) | diverged | failed"),
    Column("train_s", "float", "training wall time in seconds, validation excluded"),
    Column(
        "fid_oscillation",
        "float",
        "the trial's fid_oscillation (as in trials; its curve measured on the validation split), NaN without one",
    ),
    Column("collapsed", "bool", "the trial's collapsed (the trials' rule, its curve on the validation split)"),
    Column("error", "str", "error text of a failed/diverged trial, else ''"),
    Column("tuning_id", "str", "stable hash of the search and the sample index"),
)


@dataclass(frozen=True)
class Schema:
    """One kind of row: its columns and where and how a results folder keeps it."""

    columns: tuple[Column, ...]
    id_key: str  # the column naming a row (and its file, <rows_dir>/<id>.json)
    rows_dir: str  # folder of the row files inside the results folder (the source of truth)
    table: str  # the parquet table derived from the rows
    csv: str  # the same table as CSV
    finished: tuple[str, ...]  # statuses that are final: a resumed run never reruns these rows
    order: tuple[str, ...]  # columns ordering rows when no grid order is given

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def pandas_dtypes(self) -> dict[str, str]:
        return {c.name: PANDAS_DTYPE[c.dtype] for c in self.columns}


NO_STEPS = "no-steps"  # a trial whose budget ended before its first optimizer step (nothing measured)
# ok and diverged are measurements, no-steps a property of the budget (a new budget is a new cell);
# "failed" reruns
TRIALS = Schema(
    COLUMNS,
    "trial_id",
    "rows",
    "trials.parquet",
    "trials.csv",
    ("ok", "diverged", NO_STEPS),
    ("label", "dataset", "budget", "seed", "trial_id"),
)
# a finished tuning trial ran the budget (ok), was stopped early by the scheduler (stopped) or
# diverged; "failed" trials (exceptions, dead processes) run again
TUNING = Schema(
    TUNING_COLUMNS,
    "tuning_id",
    "tuning_rows",
    "tuning.parquet",
    "tuning.csv",
    ("ok", "stopped", "diverged"),
    ("label", "dataset", "budget", "seed", "sample"),
)
