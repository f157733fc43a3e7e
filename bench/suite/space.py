"""Search spaces (`[[models]] space = {...}`) and the `[tune]` table: typed values and their checks.

A space maps hyper-parameters of the model's family to distributions:

    space = { lr = { loguniform = [1e-4, 3e-3] }, hidden = { choice = [64, 128, 256] } }

| distribution | args | values | allowed for |
|---|---|---|---|
| `uniform` | `[lo, hi]`, lo < hi, finite | floats in [lo, hi] | float hyper-parameters |
| `loguniform` | `[lo, hi]`, 0 < lo < hi, finite | floats, log-uniform | float hyper-parameters |
| `randint` | `[lo, hi]` integers, lo < hi | integers lo <= x < hi (Ray Tune's convention) | int and float ones |
| `choice` | a non-empty array | its elements | any; each element is type-checked |

Bounds (randint: lo and hi - 1) and every choice are checked against the family's own range checks.
Checks record each problem in the suite parser's collector (bench.suite.checks.Checks), so one
`validate` reports every problem at once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bench.errors import ConfigError
from bench.hparams import build, describe, field_type, type_ok
from bench.suite.checks import Checks, join_key
from bench.trial.validation import VAL_METRICS  # the validation metrics a tuning run can minimise

DistKind = Literal["uniform", "loguniform", "randint", "choice"]
DIST_KINDS: tuple[str, ...] = get_args(DistKind)
SearchKind = Literal["random", "optuna"]  # Ray Tune search: BasicVariantGenerator | OptunaSearch
SEARCHES: tuple[str, ...] = get_args(SearchKind)
SchedulerKind = Literal["fifo", "asha"]  # Ray Tune scheduler: FIFOScheduler | ASHAScheduler
SCHEDULERS: tuple[str, ...] = get_args(SchedulerKind)


@dataclass(frozen=True)
class Dist:
    """One hyper-parameter's distribution; `args` = (lo, hi) or the choices."""

    kind: DistKind
    args: tuple

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "args": list(self.args)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dist:
        return cls(kind=d["kind"], args=tuple(d["args"]))

    def extremes(self) -> tuple:
        """The values at the edges of the space (all of them for choice): what range checks see."""
        if self.kind == "choice":
            return self.args
        lo, hi = self.args
        return (lo, hi - 1) if self.kind == "randint" else (lo, hi)


# configurations per search at most: each is a Ray Tune trial whose id the run lists up front, and
# 10 000 ids take ~0.1 s to list (2-core CPU); a larger number is a typo, not a search
MAX_SAMPLES = 10_000


@dataclass(frozen=True)
class TuneSpec:
    """The suite's [tune] table."""

    metric: str = "nll"  # validation metric, minimised: a key of bench.trial.validation.VAL_METRICS
    samples: int = 8  # configurations tried per model × dataset × budget (the same for every model)
    search: SearchKind = "random"  # "random" (Ray Tune's random search) or "optuna" (OptunaSearch)
    scheduler: SchedulerKind = "fifo"  # "fifo" (every configuration trains its full budget) or "asha" (early stopping)
    seeds: tuple[int, ...] = (0,)  # seeds of the tuning trials


def parse_dist(value: Any, hp_type: Any, checks: Checks, where: str) -> Dist | None:
    """One `space` entry of a hyper-parameter of type `hp_type`; a problem is recorded at `where`."""
    shape = "expected { uniform|loguniform|randint = [lo, hi] } or { choice = [values] }"
    if not isinstance(value, dict) or len(value) != 1:
        return checks.error(where, f"{shape}, got {value!r}")
    ((kind, args),) = value.items()
    if kind not in DIST_KINDS:
        return checks.error(where, f"unknown distribution {kind!r}; expected one of: {', '.join(DIST_KINDS)}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            return checks.error(where, f"choice: expected a non-empty array of values, got {args!r}")
        wrong = [v for v in args if not type_ok(v, hp_type)]
        if wrong:
            return checks.error(where, f"choice: {wrong[0]!r} is not a valid {describe(hp_type)}")
        return Dist("choice", tuple(tuple(v) if isinstance(v, list) else v for v in args))
    number = int if kind == "randint" else float
    if not (isinstance(args, list) and len(args) == 2 and all(type_ok(a, number) for a in args)):
        return checks.error(where, f"{kind}: expected two {number.__name__} bounds [lo, hi], got {args!r}")
    lo, hi = args
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return checks.error(where, f"{kind}: bounds must be finite, got {args!r}")
    if not lo < hi:
        return checks.error(where, f"{kind}: bounds in the wrong order: expected lo < hi, got {args!r}")
    if kind == "loguniform" and not lo > 0:
        return checks.error(where, f"loguniform: bounds must be > 0, got {args!r}")
    if not type_ok(number(lo), hp_type):  # a float distribution for an int / bool / str field
        use = "randint or choice" if type_ok(1, hp_type) else "choice"
        return checks.error(
            where, f"{kind} draws {number.__name__}s but the hyper-parameter is {describe(hp_type)}; use {use}"
        )
    return Dist(kind, (lo, hi))


def parse_space(
    table: Any,
    family: str,
    hp_cls: type,
    fixed: Mapping[str, Any],
    overridden: Collection[str],
    checks: Checks,
    where: str,
) -> dict[str, Dist]:
    """Checked space of a model, {key: Dist}; problems recorded at `where`.<key>.

    `fixed` are the model's written hparams and `overridden` the keys its overrides set: a key may not
    be both fixed and searched. Range checks build the family's Hparams with each extreme value on top
    of `fixed` (skipped when `fixed` alone is invalid: that error is reported on hparams).
    """
    if not isinstance(table, dict):
        checks.error(where, f"expected a table of hyper-parameter = distribution, got {table!r}")
        return {}
    names = {f.name for f in dataclasses.fields(hp_cls)}
    space = {}
    try:
        build(hp_cls, fixed, owner=f"family {family!r}")
        check_ranges = True
    except ConfigError:
        check_ranges = False
    for key, value in table.items():
        at = join_key(where, key)
        if key not in names:
            checks.error(at, f"not a hyper-parameter of family {family!r}; known: {', '.join(sorted(names))}")
            continue
        if key in fixed or key in overridden:
            checks.error(at, f"set both in {'hparams' if key in fixed else 'overrides'} and space; keep one")
            continue
        dist = parse_dist(value, field_type(hp_cls, key), checks, at)
        if dist is None:
            continue
        for v in dist.extremes() if check_ranges else ():
            try:
                build(hp_cls, {**fixed, key: v}, owner=f"family {family!r}")
            except ConfigError as exc:
                checks.error(at, f"{dist.kind} value {v!r} is out of range ({exc})")
                break
        else:
            space[key] = dist
    return space


def parse_tune(table: Any, checks: Checks, where: str = "tune") -> TuneSpec | None:
    """The [tune] table as a TuneSpec (defaults filled); None with its problems recorded."""
    if not isinstance(table, dict):
        checks.error(where, f"expected a table, got {table!r}")
        return None
    before = len(checks.errors)
    names = [f.name for f in dataclasses.fields(TuneSpec)]
    for k in table:
        if k not in names:
            checks.error(join_key(where, k), f"unknown key; expected one of: {', '.join(names)}")
    values = {k: v for k, v in table.items() if k in names}
    for key, allowed in (("metric", tuple(VAL_METRICS)), ("search", SEARCHES), ("scheduler", SCHEDULERS)):
        if key in values and values[key] not in allowed:
            checks.error(
                join_key(where, key), f"expected one of {', '.join(map(repr, allowed))}, got {values.pop(key)!r}"
            )
    if "samples" in values and not (type_ok(values["samples"], int) and 0 < values["samples"] <= MAX_SAMPLES):
        checks.error(
            join_key(where, "samples"), f"expected an integer from 1 to {MAX_SAMPLES}, got {values.pop('samples')!r}"
        )
    if "seeds" in values:
        values["seeds"] = checks.seeds(values["seeds"], join_key(where, "seeds"))
    if values.get("search") == "optuna" and importlib.util.find_spec("optuna") is None:
        checks.error(
            join_key(where, "search"), "'optuna' needs the optuna package (pip install optuna); or use 'random'"
        )
    return TuneSpec(**values) if len(checks.errors) == before else None
