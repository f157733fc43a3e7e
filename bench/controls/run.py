"""Every control of a suite at the suite's n and seeds: `run_bench.py controls --suite S --out DIR`.

For each dataset of the suite the trial's own measurement code (bench.metrics.reference.Reference,
with the suite's [eval] settings, so n = compared_count and the same features) reads every
known-answer set of bench.controls.inputs; bench.controls.readings judges each reading. Two more
checks need no samples: whether each family's NLL is exact (re-evaluation spread and grid mass,
bench.metrics.exactness; a family's own declaration says what it should be) and whether the
imputation scores rank a closed-form conditional correctly (bench.metrics.imputation). On 2-D data the
instability measure reads a perfect sampler's trajectory and a GAN at 10× its learning rate
(bench.controls.instability). The rows go
to DIR/controls.csv; the report's section "What each measure can see" is built from them.
"""

from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.controls import CONTROLS_CSV
from bench.controls.inputs import IMAGE_SETS, POINT_SETS
from bench.controls.instability import instability_controls
from bench.controls.readings import IMAGE_READINGS, NULL_CONTROL, POINT_READINGS, Reading
from bench.datasets import make_dataset
from bench.families import FAMILIES, make_family
from bench.metrics import exactness, imputation
from bench.metrics.reference import Reference
from bench.store.files import atomic_write_with

log = logging.getLogger(__name__)

COLUMNS = ("measure", "control", "expected", "value", "p_value", "detected", "dataset", "n", "seeds")
LIKELIHOOD_STEPS = 200  # training steps of each family's tiny model before its exactness check
LIKELIHOOD_EXAMPLES = 256  # test examples re-evaluated
REEVALUATIONS = 5  # random generators per re-evaluation spread
IMPUTE_DRAWS = 8  # M: draws a sampling imputer averages (the same M for every family)
IMPUTE_EXAMPLES = 2000  # test points hidden and imputed (one coordinate each)
SE_LIMIT = 3.0  # |observed − predicted| within 3 standard errors: "equal in expectation"


def run_controls(suite, out_dir: Path, *, cache_dir: Path) -> pd.DataFrame:
    """controls.csv of `suite` in out_dir (written atomically); returns its rows."""
    rows = []
    for entry in suite.datasets:
        dataset = make_dataset(entry.name, entry.options)
        log.info("controls on %s (%d seeds)", entry.name, len(suite.seeds))
        rows += sample_controls(dataset, suite.eval, suite.seeds, cache_dir)
        if not dataset.spec.is_image:
            rows += likelihood_controls(dataset, suite.eval)
            rows += instability_controls(dataset, suite.eval, suite.seeds, cache_dir, _record)
        if getattr(dataset, "modes", None) is not None and not dataset.spec.is_image:
            rows += imputation_controls(dataset, suite.seeds[0])
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    atomic_write_with(Path(out_dir) / CONTROLS_CSV, lambda p: df.to_csv(p, index=False))
    return df


def sample_controls(dataset, cfg, seeds, cache_dir: Path) -> list[dict]:
    """Every Reading of the dataset's kind, each set drawn and measured once per seed."""
    kind = dataset.spec.kind
    sets = {s.name: s for s in (IMAGE_SETS if dataset.spec.is_image else POINT_SETS) if s.usable(dataset)}
    readings = [r for r in (IMAGE_READINGS if dataset.spec.is_image else POINT_READINGS) if r.control in sets]
    wanted = sorted({r.control for r in readings} | {NULL_CONTROL[kind]})
    measured: dict[tuple[str, int], dict] = {}
    for seed in seeds:
        ref = Reference.build(dataset, cfg, cache_dir=cache_dir, device=torch.device("cpu"), seed=seed)
        for name in wanted:
            g = torch.Generator().manual_seed(_seed(name, seed))
            measured[name, seed] = ref.quality(sets[name].make(dataset, ref.n_real, g))
    return [_row(r, measured, seeds, kind, dataset.spec.name, ref.n_real) for r in readings]


def _row(r: Reading, measured, seeds, kind: str, dataset: str, n: int) -> dict:
    values = np.array([measured[r.control, s][r.measure] for s in seeds], dtype=float)
    null = np.array([measured[NULL_CONTROL[kind], s][r.measure] for s in seeds], dtype=float)
    value, p, detected = r.judge(values, null)
    return _record(r.measure, r.control, r.expected, value, p, detected, dataset, n, len(seeds))


def _record(measure, control, expected, value, p, detected, dataset, n, seeds) -> dict:
    return dict(
        measure=measure,
        control=control,
        expected=expected,
        value=value,
        p_value=p,
        detected=bool(detected),
        dataset=dataset,
        n=n,
        seeds=seeds,
    )


def _seed(name: str, seed: int) -> int:
    """A stable seed per (control, trial seed): controls differ from each other and across seeds."""
    return (zlib.crc32(name.encode()) + 7919 * seed) % 2**31


def likelihood_controls(dataset, cfg) -> list[dict]:
    """Each family with a likelihood on points: its tiny model trained briefly, its headline NLL
    re-evaluated under REEVALUATIONS generators and integrated on the grid. The known answer is
    the family's own declaration: "exact" must pass, an estimate or a bound must not."""
    x = dataset.test()[:LIKELIHOOD_EXAMPLES]
    lo, hi = x.min(0).values - 3, x.max(0).values + 3  # the grid box: the data plus a margin
    rows = []
    for name in FAMILIES.names():
        kind = FAMILIES.get(name).nll_kinds["points"]
        if kind is None:
            continue
        family = _trained(name, dataset)
        nll_fn = exactness.headline_nll_fn(family, iwae_k=cfg.iwae_k)
        generators = [torch.Generator().manual_seed(s) for s in range(REEVALUATIONS)]
        found = exactness.exactness_test(nll_fn, x, generators, box=(lo.tolist(), hi.tolist()))
        exact = kind == "exact"
        expected = "exact (spread 0, mass 1)" if exact else "not exact (re-evaluations differ)"
        control = f"{name} ({kind}); mass {found.mass:.3f}"
        rows.append(
            _record(
                "nll exactness",
                control,
                expected,
                found.spread_nats,
                math.nan,
                found.exact == exact,
                dataset.spec.name,
                len(x),
                1,
            )
        )
    return rows


def _trained(name: str, dataset):
    torch.manual_seed(0)
    family = make_family(name, dataset.spec, FAMILIES.get(name).tiny_hparams | {"batch_size": 128})
    family.train(True)
    data, g = dataset.train(), torch.Generator().manual_seed(0)
    for _ in range(LIKELIHOOD_STEPS):
        family.step(data[torch.randint(len(data), (128,), generator=g)])
    family.train(False)
    return family


def imputation_controls(dataset, seed: int) -> list[dict]:
    """On a Gaussian mixture, the closed-form conditional: (1) a sampler's mean of M draws and the
    exact conditional mean score equal in expectation under the conditional-mean MSE (up to the
    known E[Var]/M); (2) the energy score ranks the true conditional above a point mass at its mean."""
    x = dataset.test()[:IMPUTE_EXAMPLES]
    hidden = imputation.random_mask(len(x), dataset.spec)
    g = torch.Generator().manual_seed(seed)
    cond = imputation.gaussian_mixture_conditional(
        x, hidden, dataset.modes, dataset.mode_std, n_draws=IMPUTE_DRAWS, generator=g
    )
    per_sampler = imputation.conditional_mean_squared_errors(cond.draws, x, hidden)
    per_mean = imputation.conditional_mean_squared_errors(cond.mean[None], x, hidden)
    gap = per_sampler - per_mean - _hidden_mean(cond.var, hidden) / IMPUTE_DRAWS  # E[gap] = 0
    energy_gap = imputation.energy_scores(cond.draws, x, hidden) - imputation.energy_scores(cond.mean[None], x, hidden)
    name, n = dataset.spec.name, len(x)
    return [
        _record(
            f"impute_mse (mean of {IMPUTE_DRAWS} draws)",
            "sampler of the true conditional vs its mean",
            "equal in expectation (gap − E[Var]/M within 3 SE of 0)",
            gap.mean().item(),
            math.nan,
            abs(gap.mean().item()) < SE_LIMIT * _se(gap),
            name,
            n,
            1,
        ),
        _record(
            "impute_energy",
            "true conditional vs a point mass at its mean",
            "lower for the true conditional (by > 3 SE)",
            energy_gap.mean().item(),
            math.nan,
            energy_gap.mean().item() < -SE_LIMIT * _se(energy_gap),
            name,
            n,
            1,
        ),
    ]


def _hidden_mean(per_entry: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N,): the mean over each example's hidden entries."""
    h = hidden.double()
    return (per_entry * h).sum(1) / h.sum(1)


def _se(v: torch.Tensor) -> float:
    return (v.double().std() / math.sqrt(len(v))).item()
