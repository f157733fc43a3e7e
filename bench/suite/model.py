"""The suite's typed model: `Suite`, its entries and the grid's `Cell`s, with their stable hashes.

`Suite.cells()` expands the grid into `Cell`s, each carrying typed, defaults-filled settings (the
family's Hparams, the dataset's Options, the EvalConfig) with a stable `trial_id` and `config_hash`;
`Cell.to_dict` / `Cell.from_dict` are the plain-data form that crosses the Ray boundary. The grid is
expanded once per Suite (cached) and hashed once per cell. Paths are left out of the hashes, so
results stay resumable when the data moves.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.datasets import DATASETS
from bench.families import FAMILIES, build_hparams
from bench.hparams import restore, to_dict
from bench.metrics.config import EvalConfig
from bench.suite.space import Dist, TuneSpec

MIXED_PRECISION = ("no", "bf16", "fp16")
HASH_CHARS = 16  # hex characters of trial_id / config_hash (64 bits)

TOP_KEYS = ("name", "seeds", "datasets", "models", "budgets", "resources", "eval", "tune")
DATASET_KEYS = ("name", "options")
MODEL_KEYS = ("family", "label", "hparams", "overrides", "space")
BUDGET_KEYS = ("name", "steps", "seconds")
ROOT_HINT = "set options.root (relative paths are resolved against --data-root, else $GENBENCH_DATA_ROOT, else ./data)"


@dataclass(frozen=True)
class Resources:
    """The suite's [resources] table."""

    cpus_per_trial: float = 1  # CPUs Ray reserves per trial; also torch's intra-op threads
    gpus_per_trial: float | str = "auto"  # "auto": 1 where CUDA (cluster: a GPU) exists, else 0
    mixed_precision: str = "no"  # no | bf16 | fp16 (fp16 on CPU falls back to "no", on the row)
    max_retries: int = 1  # Ray re-runs of a trial whose process died (exceptions are rows)
    max_concurrent: int = 0  # cap on simultaneous trials; 0 = as many as the cluster fits
    report_every_steps: int = 100  # a trial reports step, train_s and loss every this many steps
    # a trial saves a resumable checkpoint every this many steps and at the end of training; 0 = off
    checkpoint_every_steps: int = 500


@dataclass(frozen=True)
class Budget:
    name: str  # budget label on the rows
    steps: int | None = None  # optimizer steps; None = no step limit
    seconds: float | None = None  # training wall-clock seconds; None = no limit (first one stops)


@dataclass(frozen=True)
class DatasetEntry:
    name: str  # registered dataset name
    options: Any  # the dataset's Options: defaults filled, root absolute


@dataclass(frozen=True)
class ModelEntry:
    label: str  # distinguishes two entries of one family; defaults to the family name
    family: str  # registered family name
    hparams: dict[str, Any]  # dataset name -> the family's Hparams there (defaults filled, override applied)
    space: dict[str, Dist] = field(default_factory=dict)  # hyper-parameter -> distribution (tuned suites)


@dataclass(frozen=True)
class Cell:
    """One grid cell = one trial, with typed settings built once by validation.

    Crosses to Ray workers as plain data: `to_dict()` there, `from_dict()` rebuilds the typed values
    through the family and dataset registries."""

    suite: str
    label: str
    family: str
    hparams: Any  # the family's Hparams: defaults filled, dataset override applied
    dataset: str
    dataset_options: Any  # the dataset's Options: defaults filled, root absolute
    budget: str
    steps: int | None
    seconds: float | None
    seed: int
    mixed_precision: str
    cpus: float  # CPUs reserved for the trial (torch threads)
    report_every_steps: int  # resources.report_every_steps (not hashed: reporting changes no result)
    checkpoint_every_steps: int  # resources.checkpoint_every_steps (not hashed either; 0 = off)
    eval: EvalConfig  # defaults filled, weights path absolute
    space: dict[str, Dist] = field(default_factory=dict)  # the model's search space ({} = not tuned)
    tune: TuneSpec | None = None  # the suite's [tune] table (None = not a tuning suite)
    config_hash: str = ""
    trial_id: str = ""
    tuned: bool = False  # phase 2 of a tuning run: hparams hold the configuration chosen on validation

    @property
    def name(self) -> str:
        """Human-readable cell name for logs and progress."""
        return f"{self.label}/{self.dataset}/{self.budget}/seed{self.seed}"

    def with_hparams(self, values: Mapping[str, Any]) -> Cell:
        """This cell with some hyper-parameters replaced (e.g. a configuration sampled from `space`),
        checked by the family's Hparams (ConfigError if invalid). Numpy scalars, as search libraries
        return them, become Python numbers. The ids are left alone: what identifies a trial with
        sampled values is the caller's to decide."""
        plain = {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}
        return dataclasses.replace(self, hparams=build_hparams(self.family, {**to_dict(self.hparams), **plain}))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, numbers, lists, dicts, None) for Ray's config and JSON."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {
            "hparams": to_dict(self.hparams),
            "dataset_options": to_dict(self.dataset_options),
            "eval": to_dict(self.eval),
            "space": {k: d.to_dict() for k, d in self.space.items()},
            "tune": None if self.tune is None else to_dict(self.tune),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        tune = d.get("tune")
        # validated when the suite was parsed: rebuilt, not checked again (once per trial otherwise)
        return cls(
            **{
                **d,
                "hparams": restore(FAMILIES.get(d["family"]).Hparams, d["hparams"]),
                "dataset_options": restore(DATASETS.get(d["dataset"]).Options, d["dataset_options"]),
                "eval": restore(EvalConfig, d["eval"]),
                "space": {k: Dist.from_dict(v) for k, v in d.get("space", {}).items()},
                "tune": None if tune is None else TuneSpec(**{**tune, "seeds": tuple(tune["seeds"])}),
            }
        )


@dataclass(frozen=True)
class Suite:
    name: str
    source: str  # the file it was read from (error messages, logs)
    seeds: tuple[int, ...]
    datasets: tuple[DatasetEntry, ...]
    models: tuple[ModelEntry, ...]
    budgets: tuple[Budget, ...]
    resources: Resources
    eval: EvalConfig
    tune: TuneSpec | None = None  # the [tune] table; None: a plain (untuned) suite

    def cells(self) -> list[Cell]:
        """The grid, seed-major: cells of seed 0 come first, so a partial run covers the grid."""
        return list(self._grid)

    @functools.cached_property
    def _grid(self) -> tuple[Cell, ...]:
        """The grid, expanded and hashed once per Suite (cached_property writes the instance's
        __dict__ directly, so a frozen dataclass can hold it)."""
        out = []
        grid = itertools.product(self.seeds, self.budgets, self.datasets, self.models)
        for seed, budget, ds, model in grid:
            cell = Cell(
                suite=self.name,
                label=model.label,
                family=model.family,
                hparams=model.hparams[ds.name],
                dataset=ds.name,
                dataset_options=ds.options,
                budget=budget.name,
                steps=budget.steps,
                seconds=budget.seconds,
                seed=seed,
                mixed_precision=self.resources.mixed_precision,
                cpus=float(self.resources.cpus_per_trial),
                report_every_steps=self.resources.report_every_steps,
                checkpoint_every_steps=self.resources.checkpoint_every_steps,
                eval=self.eval,
                space=model.space,
                tune=self.tune,
            )
            out.append(_stamp(cell))
        return tuple(out)

    def describe(self) -> str:
        n = len(self.models) * len(self.datasets) * len(self.budgets) * len(self.seeds)
        return (
            f"suite {self.name!r}: {len(self.models)} models × {len(self.datasets)} datasets × "
            f"{len(self.budgets)} budgets × {len(self.seeds)} seeds = {n} trials"
        )


# --- hashing ----------------------------------------------------------------------------------
def digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _stamp(cell: Cell) -> Cell:
    """Fill config_hash (what was trained and measured how) and trial_id (which grid cell).

    Both hash values after defaults (writing a default explicitly changes nothing) and leave paths
    out (moving the data keeps results resumable; the extractor's content hash is on the row). A
    search space and the [tune] table enter only where present, so untuned suites keep their ids.
    """
    no_paths = {k: v for k, v in to_dict(cell.dataset_options).items() if k != "root"}
    eval_cfg = {k: v for k, v in to_dict(cell.eval).items() if k != "feature_extractor_weights_path"}
    config = {
        "family": cell.family,
        "hparams": to_dict(cell.hparams),
        "dataset": cell.dataset,
        "options": no_paths,
        "steps": cell.steps,
        "seconds": cell.seconds,
        "eval": eval_cfg,
        "mixed_precision": cell.mixed_precision,
    }
    if cell.space:
        config["space"] = {k: d.to_dict() for k, d in cell.space.items()}
    if cell.tune is not None:
        config["tune"] = to_dict(cell.tune)
    config_hash = digest(config)
    trial_id = digest(
        {"label": cell.label, "dataset": cell.dataset, "budget": cell.budget, "seed": cell.seed, "config": config_hash}
    )
    return dataclasses.replace(cell, config_hash=config_hash, trial_id=trial_id)


def with_values(cell: Cell, values: Mapping[str, Any], *, tuned: bool) -> Cell:
    """The cell with hyper-parameter `values` set on top of its own (checked), hashes recomputed.
    tuned: the values were chosen by a tuning run (phase 2)."""
    hparams = build_hparams(cell.family, {**to_dict(cell.hparams), **values})
    return _stamp(dataclasses.replace(cell, hparams=hparams, tuned=tuned))
