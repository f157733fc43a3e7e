"""Suite files: parse a TOML suite, check every field before anything runs, expand the grid.

A suite declares models × datasets × budgets × seeds (see suites/quick.toml). `load_suite` returns
a typed `Suite` or raises `ConfigError` with ONE line naming the file, the field and what was
expected; nothing (Ray included) starts for an invalid suite. `Suite.cells()` expands the grid
into `Cell`s, each with a stable `trial_id` and a `config_hash`.

Paths: a dataset's `root` and `eval.feature_extractor_weights_path` may be relative; they are
resolved against the data root (`--data-root`, else $GENBENCH_DATA_ROOT, else ./data) and must
exist. Paths are left out of the hashes, so results stay resumable when the data moves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets import DATASETS, build_options
from bench.errors import ConfigError, GenbenchError
from bench.families import FAMILIES, build_hparams
from bench.hparams import build, to_dict
from bench.metrics.config import EvalConfig

MIXED_PRECISION = ("no", "bf16", "fp16")
DATA_ROOT_ENV = "GENBENCH_DATA_ROOT"  # default data root when --data-root is not given
DEFAULT_DATA_ROOT = "data"  # relative to the working directory (git-ignored)
HASH_CHARS = 16  # hex characters of trial_id / config_hash (64 bits)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # names that are safe as folder names

TOP_KEYS = ("name", "seeds", "datasets", "models", "budgets", "resources", "eval")
DATASET_KEYS = ("name", "options")
MODEL_KEYS = ("family", "label", "hparams", "overrides")
BUDGET_KEYS = ("name", "steps", "seconds")


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
    options: dict[str, Any]  # loader options as written, with paths made absolute
    full_options: dict[str, Any] = field(default_factory=dict, repr=False)  # defaults filled


@dataclass(frozen=True)
class ModelEntry:
    label: str  # distinguishes two entries of one family; defaults to the family name
    family: str  # registered family name
    hparams: dict[str, Any]  # hyper-parameters as written (defaults fill the rest)
    overrides: dict[str, dict[str, Any]]  # dataset name -> hparams replaced on that dataset

    def hparams_for(self, dataset: str) -> dict[str, Any]:
        return {**self.hparams, **self.overrides.get(dataset, {})}


@dataclass(frozen=True)
class Cell:
    """One grid cell = one trial. Plain data (travels to Ray workers as a dict)."""

    suite: str
    label: str
    family: str
    hparams: dict[str, Any]  # as written, override applied
    dataset: str
    dataset_options: dict[str, Any]  # as written, absolute paths
    budget: str
    steps: int | None
    seconds: float | None
    seed: int
    mixed_precision: str
    cpus: float  # CPUs reserved for the trial (torch threads)
    report_every_steps: int  # resources.report_every_steps (not hashed: reporting changes no result)
    checkpoint_every_steps: int  # resources.checkpoint_every_steps (not hashed either; 0 = off)
    eval: dict[str, Any]  # EvalConfig fields after defaults, absolute paths
    config_hash: str = ""
    trial_id: str = ""

    @property
    def name(self) -> str:
        """Human-readable cell name for logs and progress."""
        return f"{self.label}/{self.dataset}/{self.budget}/seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        return cls(**d)


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
    full_hparams: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)

    def cells(self) -> list[Cell]:
        """The grid, seed-major: cells of seed 0 come first, so a partial run covers the grid."""
        out = []
        grid = itertools.product(self.seeds, self.budgets, self.datasets, self.models)
        for seed, budget, ds, model in grid:
            cell = Cell(
                suite=self.name,
                label=model.label,
                family=model.family,
                hparams=model.hparams_for(ds.name),
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
                eval=to_dict(self.eval),
            )
            out.append(_stamp(cell, self.full_hparams[(model.label, ds.name)], ds.full_options))
        return out

    def describe(self) -> str:
        n = len(self.models) * len(self.datasets) * len(self.budgets) * len(self.seeds)
        return (
            f"suite {self.name!r}: {len(self.models)} models × {len(self.datasets)} datasets × "
            f"{len(self.budgets)} budgets × {len(self.seeds)} seeds = {n} trials"
        )


# --- hashing ----------------------------------------------------------------------------------
def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _stamp(cell: Cell, full_hparams: dict[str, Any], full_options: dict[str, Any]) -> Cell:
    """Fill config_hash (what was trained and measured how) and trial_id (which grid cell).

    Both hash values after defaults (writing a default explicitly changes nothing) and leave paths
    out (moving the data keeps results resumable; the extractor's content hash is on the row).
    """
    no_paths = {k: v for k, v in full_options.items() if k != "root"}
    eval_cfg = {k: v for k, v in cell.eval.items() if k != "feature_extractor_weights_path"}
    config = {
        "family": cell.family,
        "hparams": full_hparams,
        "dataset": cell.dataset,
        "options": no_paths,
        "steps": cell.steps,
        "seconds": cell.seconds,
        "eval": eval_cfg,
        "mixed_precision": cell.mixed_precision,
    }
    config_hash = _digest(config)
    trial_id = _digest(
        {"label": cell.label, "dataset": cell.dataset, "budget": cell.budget, "seed": cell.seed, "config": config_hash}
    )
    return dataclasses.replace(cell, config_hash=config_hash, trial_id=trial_id)


# --- loading ----------------------------------------------------------------------------------
def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $GENBENCH_DATA_ROOT, else ./data; absolute (Ray trials run elsewhere)."""
    if data_root is None:
        data_root = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(data_root).expanduser().resolve()


def load_suite(path: str | os.PathLike, *, data_root: str | os.PathLike | None = None) -> Suite:
    """Read and check a suite file; ConfigError (one line: file, field, expectation) if invalid."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the suite file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the suite file is not UTF-8 text ({exc.reason})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    return _Parser(str(path), resolve_data_root(data_root)).suite(raw)


class _Parser:
    """Checks one parsed TOML document; every error names `source` and the field's path."""

    def __init__(self, source: str, data_root: Path):
        self.source = source
        self.data_root = data_root

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {what}")

    # --- generic checks -----------------------------------------------------------------------
    def table(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table, got {_show(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(_join(where, key), f"unknown key; expected one of: {', '.join(allowed)}")
        return value

    def tables(self, raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> list[dict]:
        value = raw.get(key)
        if value is None or value == []:
            raise self.fail(key, f"empty grid: at least one [[{key}]] entry is required")
        if not isinstance(value, list):
            raise self.fail(key, f"expected an array of tables ([[{key}]]), got {_show(value)}")
        return [self.table(v, f"{key}[{i}]", allowed) for i, v in enumerate(value)]

    def name(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise self.fail(where, f"expected a name of letters, digits, '.', '_' or '-', got {_show(value)}")
        return value

    def positive(self, value: Any, where: str, kind: type) -> int | float:
        types = (int, float) if kind is float else int
        if isinstance(value, bool) or not isinstance(value, types) or not value > 0:
            noun = "number" if kind is float else "integer"
            raise self.fail(where, f"expected a positive {noun}, got {_show(value)}")
        return value

    def unique(self, names: list[Any], where: str, what: str, hint: str = "") -> None:
        seen = set()
        for i, n in enumerate(names):
            if n in seen:
                raise self.fail(f"{where}[{i}]", f"duplicate {what} {n!r}; expected unique {what}s{hint}")
            seen.add(n)

    def path(self, value: str, where: str, what: str) -> str:
        if not value:
            raise self.fail(where, f"required: {what}")
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.data_root / p
        if not p.exists():
            raise self.fail(
                where,
                f"missing {what}: {str(p)!r} does not exist (relative paths "
                f"are resolved against the data root {str(self.data_root)!r})",
            )
        return str(p)

    # --- sections -----------------------------------------------------------------------------
    def suite(self, raw: dict[str, Any]) -> Suite:
        self.table(raw, "top level", TOP_KEYS)
        if "name" not in raw:
            raise self.fail("name", "required: the suite's name (results go to <results>/<name>/)")
        name = self.name(raw["name"], "name")
        seeds = self.seeds(raw.get("seeds"))
        datasets = tuple(
            self.dataset(t, f"datasets[{i}]") for i, t in enumerate(self.tables(raw, "datasets", DATASET_KEYS))
        )
        self.unique([d.name for d in datasets], "datasets", "dataset")
        budgets = tuple(self.budget(t, f"budgets[{i}]") for i, t in enumerate(self.tables(raw, "budgets", BUDGET_KEYS)))
        self.unique([b.name for b in budgets], "budgets", "budget name")
        models = tuple(
            self.model(t, f"models[{i}]", datasets) for i, t in enumerate(self.tables(raw, "models", MODEL_KEYS))
        )
        self.unique(
            [m.label for m in models], "models", "model label", " (set `label` to tell two entries of one family apart)"
        )
        full = {(m.label, d.name): self.hparams(m, d.name, i) for i, m in enumerate(models) for d in datasets}
        return Suite(
            name=name,
            source=self.source,
            seeds=seeds,
            datasets=datasets,
            models=models,
            budgets=budgets,
            resources=self.resources(raw.get("resources", {})),
            eval=self.eval(raw.get("eval", {})),
            full_hparams=full,
        )

    def seeds(self, value: Any) -> tuple[int, ...]:
        if value is None or value == []:
            raise self.fail("seeds", "empty grid: at least one seed is required, e.g. [0, 1, 2]")
        ints = isinstance(value, list) and all(type(s) is int for s in value)  # bool is not a seed
        if not ints:
            raise self.fail("seeds", f"expected an array of integers, got {_show(value)}")
        for i, s in enumerate(value):
            if not 0 <= s < 2**32:  # numpy's seed range
                raise self.fail(f"seeds[{i}]", f"expected an integer in [0, 2**32), got {s}")
        self.unique(value, "seeds", "seed")
        return tuple(value)

    def dataset(self, t: dict[str, Any], where: str) -> DatasetEntry:
        name = t.get("name")
        known = ", ".join(DATASETS.names())
        if not isinstance(name, str):
            raise self.fail(f"{where}.name", f"required: a dataset name ({known})")
        if name not in DATASETS:
            raise self.fail(f"{where}.name", f"unknown dataset {name!r}; expected one of: {known}")
        options = t.get("options", {})
        if not isinstance(options, dict):
            raise self.fail(f"{where}.options", f"expected a table, got {_show(options)}")
        options = dict(options)
        fields = {f.name: f for f in dataclasses.fields(DATASETS.get(name).Options)}
        if "root" in fields:  # resolve before building: the loader must see the absolute path
            written, at = options.get("root", fields["root"].default), f"{where}.options.root"
            if not isinstance(written, str):
                raise self.fail(at, f"expected a path string, got {_show(written)}")
            options["root"] = self.path(written, at, f"data root of dataset {name!r}")
        try:
            full = to_dict(build_options(name, options))
        except GenbenchError as exc:
            raise self.fail(f"{where}.options", str(exc)) from None
        return DatasetEntry(name=name, options=options, full_options=full)

    def budget(self, t: dict[str, Any], where: str) -> Budget:
        name = self.name(t.get("name"), f"{where}.name")
        if "steps" not in t and "seconds" not in t:
            raise self.fail(where, "expected `steps` (optimizer steps) and/or `seconds` (wall)")
        steps = self.positive(t["steps"], f"{where}.steps", int) if "steps" in t else None
        seconds = None
        if "seconds" in t:
            seconds = float(self.positive(t["seconds"], f"{where}.seconds", float))
        return Budget(name=name, steps=steps, seconds=seconds)

    def model(self, t: dict[str, Any], where: str, datasets: tuple[DatasetEntry, ...]):
        family, known = t.get("family"), ", ".join(FAMILIES.names())
        if not isinstance(family, str):
            raise self.fail(f"{where}.family", f"required: a family name ({known})")
        if family not in FAMILIES:
            raise self.fail(f"{where}.family", f"unknown family {family!r}; expected one of: {known}")
        label = self.name(t.get("label", family), f"{where}.label")
        hparams = t.get("hparams", {})
        if not isinstance(hparams, dict):
            raise self.fail(f"{where}.hparams", f"expected a table, got {_show(hparams)}")
        overrides = t.get("overrides", {})
        if not isinstance(overrides, dict):
            raise self.fail(
                f"{where}.overrides", f"expected a table of dataset name -> hparams, got {_show(overrides)}"
            )
        names = [d.name for d in datasets]
        for ds, table in overrides.items():
            if ds not in names:
                raise self.fail(
                    f"{where}.overrides.{ds}", f"not a dataset of this suite; expected one of: {', '.join(names)}"
                )
            if not isinstance(table, dict):
                raise self.fail(f"{where}.overrides.{ds}", f"expected a table of hparams, got {_show(table)}")
        return ModelEntry(
            label=label, family=family, hparams=dict(hparams), overrides={k: dict(v) for k, v in overrides.items()}
        )

    def hparams(self, model: ModelEntry, dataset: str, i: int) -> dict[str, Any]:
        """Full hparams (defaults filled) of a model on a dataset; errors name the table."""
        table = f"overrides.{dataset}" if dataset in model.overrides else "hparams"
        where = f"models[{i}].{table}"
        try:
            return to_dict(build_hparams(model.family, model.hparams_for(dataset)))
        except GenbenchError as exc:
            raise self.fail(where, str(exc)) from None

    def resources(self, value: Any) -> Resources:
        t = self.table(value, "resources", tuple(f.name for f in dataclasses.fields(Resources)))
        r = Resources(**t)
        self.positive(r.cpus_per_trial, "resources.cpus_per_trial", float)
        gpus = r.gpus_per_trial
        number = type(gpus) in (int, float)  # bool is not a GPU count
        if gpus != "auto" and not (number and gpus >= 0):
            raise self.fail("resources.gpus_per_trial", f'expected "auto" or a number >= 0, got {_show(gpus)}')
        if r.mixed_precision not in MIXED_PRECISION:
            allowed = ", ".join(map(repr, MIXED_PRECISION))
            raise self.fail("resources.mixed_precision", f"expected one of {allowed}, got {_show(r.mixed_precision)}")
        lows = {"max_retries": 0, "max_concurrent": 0, "report_every_steps": 1, "checkpoint_every_steps": 0}
        for key, low in lows.items():
            v = getattr(r, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise self.fail(f"resources.{key}", f"expected an integer >= {low}, got {_show(v)}")
        return r

    def eval(self, value: Any) -> EvalConfig:
        if not isinstance(value, dict):
            raise self.fail("eval", f"expected a table, got {_show(value)}")
        value = dict(value)
        weights = value.get("feature_extractor_weights_path", "")
        if isinstance(weights, str) and weights:
            value["feature_extractor_weights_path"] = self.path(
                weights, "eval.feature_extractor_weights_path", "feature-extractor weights file"
            )
        try:
            return build(EvalConfig, value, owner="[eval]")
        except GenbenchError as exc:  # its message names the [eval] field already
            raise ConfigError(f"{self.source}: {exc}") from None


def _join(where: str, key: str) -> str:
    return key if where == "top level" else f"{where}.{key}"


def _show(value: Any) -> str:
    """A value and its TOML-ish type for error messages."""
    kinds = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}
    return f"{value!r} ({kinds.get(type(value), type(value).__name__)})"
