"""Checks of one parsed suite document, collecting EVERY problem (bench.suite.load_suite reports them).

Each problem is one line `<file>: <field>: <what was expected>`. Checks go section by section and
go on after a problem, so one `validate` lists all of a file's mistakes; a check that needs a value
that was itself invalid is skipped (its own error is already on the list). Non-finite numbers are
found in one pass over the whole document, and the per-field checks skip those fields.
Dataset-specific checks (root layout, test-set size, labels) come from the dataset classes'
`facts` hook; what the metrics need of a dataset comes from EvalConfig. Recording a problem and the
generic field checks live in bench.suite.checks.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from bench.datasets import DATASETS, Facts, OptionError
from bench.families import FAMILIES
from bench.metrics.config import EvalConfig
from bench.suite.checks import Checks, shown
from bench.suite.model import (
    BUDGET_KEYS,
    DATASET_KEYS,
    MIXED_PRECISION,
    MODEL_KEYS,
    ROOT_HINT,
    TOP_KEYS,
    Budget,
    DatasetEntry,
    ModelEntry,
    Resources,
    Suite,
)
from bench.suite.space import parse_space, parse_tune


class Parser(Checks):
    """Checks one parsed TOML document section by section; `errors` holds (field, message) for each problem."""

    def __init__(self, source: str, data_root: Path, *, check_machine: bool = False):
        super().__init__(source, data_root)
        self.check_machine = check_machine
        self.facts: dict[str, Facts] = {}  # dataset name -> what validation knows of it
        self.spaced: list[tuple[str, str, str]] = []  # (field, label, family) of models that wrote a `space`

    # --- sections -----------------------------------------------------------------------------
    def suite(self, raw: dict[str, Any]) -> Suite | None:
        self.find_nonfinite(raw, "")
        raw = self.table(raw, "", TOP_KEYS)
        if "name" not in raw:
            self.error("name", "required: the suite's name (results go to <results>/<name>/)")
        name = self.name(raw.get("name"), "name") if "name" in raw else None
        seeds = self.seeds(raw.get("seeds"), "seeds", empty="empty grid: at least one seed is required, e.g. [0, 1, 2]")
        dataset_tables = self.tables(raw, "datasets", DATASET_KEYS)
        datasets = [self.dataset(t, where) for t, where in dataset_tables]
        self.unique([d.name if d else None for d in datasets], "datasets", "dataset")
        budgets = [self.budget(t, where) for t, where in self.tables(raw, "budgets", BUDGET_KEYS)]
        self.unique([b.name if b else None for b in budgets], "budgets", "budget name")
        # every registered dataset name, also of entries with bad options: the models are checked
        # against them, so a dataset's error neither hides a model's nor makes its overrides look wrong
        ds_names = list(dict.fromkeys(t["name"] for t, _ in dataset_tables if _registered(t.get("name"))))
        models = [self.model(t, where, ds_names) for t, where in self.tables(raw, "models", MODEL_KEYS)]
        hint = " (set `label` to tell two entries of one family apart)"
        self.unique([m.label if m else None for m in models], "models", "model label", hint)
        resources = self.resources(raw.get("resources", {}))
        eval_cfg = self.eval(raw.get("eval", {}))
        tune = self.tune(raw)
        if eval_cfg is not None:
            for i, d in enumerate(datasets):
                if d is not None and d.name in self.facts:
                    self.metric_needs(d.name, self.facts[d.name], eval_cfg, f"datasets[{i}]")
        parts = (name, seeds, resources, eval_cfg, *datasets, *budgets, *models)
        if self.errors or any(p is None for p in parts):
            return None
        return Suite(
            name=name,
            source=self.source,
            seeds=seeds,
            datasets=tuple(datasets),
            models=tuple(models),
            budgets=tuple(budgets),
            resources=resources,
            eval=eval_cfg,
            tune=tune,
        )

    def dataset(self, t: dict[str, Any], where: str) -> DatasetEntry | None:
        name = self.registered(t.get("name"), f"{where}.name", DATASETS)
        if name is None:
            return None
        options = t.get("options", {})
        if not isinstance(options, dict):
            self.error(f"{where}.options", f"expected a table of the dataset's options, got {shown(options)}")
            return None
        options, cls = dict(options), DATASETS.get(name)
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        if "root" in fields:  # resolve before building: the loader must see the absolute path
            written, at = options.get("root", fields["root"].default), f"{where}.options.root"
            if not isinstance(written, str):
                self.error(at, f"expected a path string, got {shown(written)}")
                return None
            options["root"] = self.path(written, at, f"data root of dataset {name!r}", f"; {ROOT_HINT}")
            if options["root"] is None:
                return None
        built = self.typed(cls.Options, options, f"{where}.options", owner=f"dataset {name!r}", noun="option")
        if built is None:
            return None
        try:
            self.facts[name] = cls.facts(built)
        except OptionError as exc:
            self.error(f"{where}.options.{exc.option}", str(exc))
            return None
        return DatasetEntry(name=name, options=built)

    def budget(self, t: dict[str, Any], where: str) -> Budget | None:
        name = self.name(t.get("name"), f"{where}.name")
        if "steps" not in t and "seconds" not in t:
            if where not in self.misspelt:  # else the unknown key was probably meant to be one of them
                self.error(where, "expected `steps` (optimizer steps) and/or `seconds` (wall)")
            return None
        steps = self.positive(t["steps"], f"{where}.steps", int) if "steps" in t else None
        seconds = self.positive(t["seconds"], f"{where}.seconds", float) if "seconds" in t else None
        if name is None or ("steps" in t and steps is None) or ("seconds" in t and seconds is None):
            return None
        return Budget(name=name, steps=steps, seconds=None if seconds is None else float(seconds))

    def model(self, t: dict[str, Any], where: str, datasets: list[str]) -> ModelEntry | None:
        family = self.registered(t.get("family"), f"{where}.family", FAMILIES)
        if family is None:
            return None
        label = self.name(t.get("label", family), f"{where}.label")
        hparams, overrides = t.get("hparams", {}), t.get("overrides", {})
        if not isinstance(hparams, dict):
            self.error(f"{where}.hparams", f"expected a table, got {shown(hparams)}")
            return None
        if not isinstance(overrides, dict):
            self.error(f"{where}.overrides", f"expected a table of dataset name -> hparams, got {shown(overrides)}")
            return None
        for ds, table in overrides.items():
            if ds not in datasets:
                self.error(
                    f"{where}.overrides.{ds}", f"not a dataset of this suite; expected one of: {', '.join(datasets)}"
                )
            elif not isinstance(table, dict):
                self.error(f"{where}.overrides.{ds}", f"expected a table of hparams, got {shown(table)}")
        overrides = {ds: v for ds, v in overrides.items() if ds in datasets and isinstance(v, dict)}
        built = {ds: self.hparams(family, hparams, overrides, ds, where) for ds in datasets}
        space = {}
        if "space" in t:
            self.spaced.append((where, label or family, family))
            hp_cls, overridden = FAMILIES.get(family).Hparams, {k for v in overrides.values() for k in v}
            space = parse_space(t["space"], family, hp_cls, hparams, overridden, self, f"{where}.space")
        if label is None or any(v is None for v in built.values()):
            return None
        return ModelEntry(label=label, family=family, hparams=built, space=space)

    def hparams(self, family: str, hparams: dict, overrides: dict, ds: str, where: str) -> Any:
        """The family's Hparams on dataset `ds`; key errors name the table that wrote the key."""
        table = f"{where}.overrides.{ds}" if ds in overrides else f"{where}.hparams"
        return self.typed(
            FAMILIES.get(family).Hparams,
            {**hparams, **overrides.get(ds, {})},
            table,
            owner=f"family {family!r}",
            noun="hyper-parameter",
            field=lambda key: self.hparam_field(key, hparams, overrides, ds, where),
        )

    @staticmethod
    def hparam_field(key: str, hparams: dict, overrides: dict, ds: str, where: str) -> str:
        return f"{where}.overrides.{ds}.{key}" if key in overrides.get(ds, {}) else f"{where}.hparams.{key}"

    def resources(self, value: Any) -> Resources | None:
        t = self.table(value, "resources", tuple(f.name for f in dataclasses.fields(Resources)))
        if t is None:
            return None
        t = {k: v for k, v in t.items() if self.finite(f"resources.{k}")}
        r, ok = Resources(**t), True
        if "cpus_per_trial" in t:
            ok &= self.positive(r.cpus_per_trial, "resources.cpus_per_trial", float) is not None
        gpus = r.gpus_per_trial
        if gpus != "auto" and not (type(gpus) in (int, float) and gpus >= 0):  # bool is not a GPU count
            self.error("resources.gpus_per_trial", f'expected "auto" or a number >= 0, got {shown(gpus)}')
            ok = False
        if r.mixed_precision not in MIXED_PRECISION:
            allowed = ", ".join(map(repr, MIXED_PRECISION))
            self.error("resources.mixed_precision", f"expected one of {allowed}, got {shown(r.mixed_precision)}")
            ok = False
        lows = {"max_retries": 0, "max_concurrent": 0, "report_every_steps": 1, "checkpoint_every_steps": 0}
        for key, low in lows.items():
            v = getattr(r, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                self.error(f"resources.{key}", f"expected an integer >= {low}, got {shown(v)}")
                ok = False
        if ok and self.check_machine:
            self.machine(r)
        return r if ok else None

    def machine(self, r: Resources) -> None:
        """[resources] against this machine (a run without --address trains here)."""
        import torch  # already imported with the families; here for what it says about CUDA

        cpus, hint = os.cpu_count() or 1, " (with --address, the cluster is checked after connecting)"
        if r.cpus_per_trial > cpus:
            self.error(
                "resources.cpus_per_trial", f"a trial needs {r.cpus_per_trial:g} CPUs but this machine has {cpus}{hint}"
            )
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if r.gpus_per_trial != "auto" and r.gpus_per_trial > gpus:
            self.error(
                "resources.gpus_per_trial",
                f'a trial needs {r.gpus_per_trial:g} GPUs but this machine has {gpus} (use "auto" or 0){hint}',
            )

    def eval(self, value: Any) -> EvalConfig | None:
        if not isinstance(value, dict):
            self.error("eval", f"expected a table, got {shown(value)}")
            return None
        value = dict(value)
        weights = value.get("feature_extractor_weights_path", "")
        if isinstance(weights, str) and weights:
            value["feature_extractor_weights_path"] = self.path(
                weights, "eval.feature_extractor_weights_path", "feature-extractor weights file"
            )
            if value["feature_extractor_weights_path"] is None:
                return None
        cfg = self.typed(EvalConfig, value, "eval", owner="[eval]", noun="setting")
        if cfg is not None and cfg.n_samples < cfg.min_real:  # the generated side of KID / precision-recall
            self.error(
                "eval.n_samples",
                f"FID/KID/precision-recall need at least {cfg.min_real} samples "
                f"(eval.prc_neighborhood {cfg.prc_neighborhood} + 1), got {cfg.n_samples}",
            )
        return cfg

    def metric_needs(self, name: str, facts: Facts, cfg: EvalConfig, where: str) -> None:
        """What the requested metrics need of dataset `name`: a fitting extractor and enough test data."""
        extractor = cfg.extractor_for(facts.kind)
        via = ' ("auto" picks it for images)' if cfg.feature_extractor == "auto" else ""
        if extractor != "raw" and facts.kind != "image":
            self.error("eval.feature_extractor", f"{extractor!r} needs images; dataset {name!r} ({where}) is points")
        elif extractor == "classifier" and not facts.labels:
            self.error(
                "eval.feature_extractor",
                f"dataset {name!r} ({where}) has no class labels to train the classifier extractor{via}; set "
                'eval.feature_extractor = "raw", or "inception-v3-compat" with eval.feature_extractor_weights_path',
            )
        n_real = min(cfg.n_real, facts.n_test)
        if n_real < cfg.min_real:
            self.error(
                f"{where}.options",
                f"dataset {name!r} gives {n_real} real test examples (test set {facts.n_test}, eval.n_real "
                f"{cfg.n_real}); FID/KID/precision-recall need at least {cfg.min_real} "
                f"(eval.prc_neighborhood {cfg.prc_neighborhood} + 1): use more data or a larger test share",
            )

    def tune(self, raw: dict[str, Any]):
        if "tune" not in raw:
            for where, _, _ in self.spaced:
                self.error(f"{where}.space", "a search space needs a [tune] table (metric, samples, ...)")
            return None
        spec = parse_tune(raw["tune"], self)
        if spec is None:
            return None
        if not self.spaced:
            self.error("tune", "no [[models]] entry has a `space` to tune")
        for where, label, family in self.spaced:
            if spec.metric == "nll" and not FAMILIES.get(family).has_likelihood():
                self.error(
                    f"{where}.family",
                    f"model {label!r} (family {family!r}) reports no NLL, so it cannot be tuned on "
                    'tune.metric = "nll"; use metric = "fid" or drop its space',
                )
        return spec


def _registered(name: Any) -> bool:
    return isinstance(name, str) and name in DATASETS.names()
