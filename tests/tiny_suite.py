"""Tiny suite files for the trial and Ray integration tests: one flow on a small 8gaussians, a few
steps, an evaluation small enough to take a second. Each test names what it needs differently.

`suite_text(name, ...)` returns the TOML text; `write_suite(folder, name, ...)` writes it to
`<folder>/<name>.toml`. Datasets and models are tables ({"name": ..., "options": {...}} and
{"family": ..., "hparams": {...}}); `eval` and `resources` are merged into the defaults below, a key
set to None is left out of the file (the harness default applies).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TOY = {"name": "8gaussians", "options": {"n_train": 500, "n_test": 200}}
FLOW = {"family": "flow", "hparams": {"coupling_layers": 2, "hidden": 16, "batch_size": 32}}
TINY_EVAL = {  # every measure computed, on as few examples as the metrics accept
    "n_samples": 100,
    "n_real": 100,
    "sample_batch": 100,
    "speed_batches": [100],
    "speed_repeats": 1,
    "nll_examples": 50,
    "nll_batch": 50,
    "kid_subset_size": 50,
    "kid_subsets": 2,
    "classifier_steps": 10,  # image datasets only: the offline classifier extractor
}
# The trial tests' smaller evaluation (KID on 20-example subsets, one NLL batch, some imputation).
TRIAL_EVAL = {
    "sample_batch": 50,
    "speed_batches": [50],
    "nll_examples": 100,
    "nll_batch": None,
    "kid_subset_size": 20,
    "kid_subsets": 3,
    "impute_examples": 20,
    "classifier_steps": None,
}

# The runner and tuning tests' evaluation (written as an [eval] block by eval_toml).
RUN_EVAL = {
    "n_samples": 200,
    "n_real": 200,
    "sample_batch": 100,
    "speed_batches": [100],
    "speed_repeats": 1,
    "nll_examples": 100,
    "nll_batch": 100,
    "iwae_k": 4,
    "kid_subset_size": 50,
    "kid_subsets": 5,
    "impute_examples": 50,
    "classifier_steps": 30,
}


def eval_toml(values: Mapping[str, Any]) -> str:
    """An [eval] table as TOML text, for tests that write the rest of their suite by hand."""
    return "\n[eval]\n" + "\n".join(_keys(values)) + "\n"


def suite_text(
    name: str,
    *,
    seeds: Sequence[int] = (0,),
    datasets: Sequence[Mapping[str, Any]] = (TOY,),
    models: Sequence[Mapping[str, Any]] = (FLOW,),
    budget: str = "tiny",
    steps: int = 5,
    resources: Mapping[str, Any] | None = None,
    eval: Mapping[str, Any] | None = None,
) -> str:
    lines = [f"name = {_value(name)}", f"seeds = {_value(list(seeds))}"]
    lines += _tables("datasets", datasets) + _tables("models", models)
    lines += _tables("budgets", [{"name": budget, "steps": steps}])
    if resources:
        lines += ["[resources]", *_keys(resources)]
    lines += ["[eval]", *_keys({**TINY_EVAL, **(eval or {})})]
    return "\n".join(lines) + "\n"


def write_suite(folder: Path, name: str, **kw: Any) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(suite_text(name, **kw))
    return path


def _tables(key: str, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    return [line for entry in entries for line in (f"[[{key}]]", *_keys(entry))]


def _keys(table: Mapping[str, Any]) -> list[str]:
    return [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]


def _value(v: Any) -> str:
    """A TOML value: numbers, strings (JSON's escapes are TOML's), arrays, inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(map(_value, v)) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")
