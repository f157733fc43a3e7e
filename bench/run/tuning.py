"""Hyper-parameter tuning with an equal budget for every model: the two phases of a `[tune]` suite.

Phase 1 (`tune_phase`): for every model × dataset × budget and every tuning seed, one Ray Tune
experiment tries `samples` configurations drawn from the model's `space` (Ray Tune's own
`tune.uniform / loguniform / randint / choice`; randint's upper bound is exclusive, as in Tune).
- search "random": Tune's default variant generator (seeded by the tuning seed);
  "optuna": `OptunaSearch` (seeded), behind a `ConcurrencyLimiter` so it learns from finished trials.
- scheduler "fifo": every trial runs its budget; "asha": `ASHAScheduler` stops trials whose
  validation metric falls behind at its rungs (time attribute: the optimizer step, or train_s for
  time-only budgets; rungs on the trial's report points).
Each trial trains on the tuning split and reports `val_metric` on the validation split
(bench.trial.validation); the test split is never read. One row per trial goes to tuning_rows/ (in the
results folder); Tune's files go to the run's storage (`<storage>/ray/tune-*`, bench.store.storage).

Phase 2 (`final_cells`): the configuration with the lowest final val_metric among the trials that
ran their whole budget (ties: lowest seed, then sample) is retrained with every suite seed and
evaluated on the test split exactly like an untuned cell (rows with tuned = true). A model with no
such configuration gets failed rows that say why, never an untuned run.

Resume: a finished tuning row (ok / stopped / diverged) is never rerun. A rerun runs only the
missing sample indices of each search: "random" draws them afresh (seeded by the tuning seed and
the missing indices); "optuna" is first told the finished trials' configurations and scores
(`points_to_evaluate` + `evaluated_rewards`), so it continues the same study.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

from bench.run.experiment import ROW_KEY, experiment_name, run_experiment
from bench.run.tuning_worker import METRIC, plain_value, sample_of, tuning_id, tuning_row, tuning_trainable
from bench.store import TUNING, rebuild_tables, trial_rows, tuning_rows
from bench.store.storage import Storage
from bench.suite.model import Cell, Suite, digest, with_values
from bench.trial.run import identity_row

log = logging.getLogger(__name__)

ASHA_REDUCTION = 3  # ASHA keeps the best third at each rung (rungs at 1, 3, 9... report intervals)


# --- search spaces ------------------------------------------------------------------------------
def _choice(*options):
    return tune.choice(list(options))


# implementations of the vocabularies bench.suite.space owns (tests check they cover them)
DOMAIN_OF = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint, "choice": _choice}


def search_space(space: dict[str, Any]) -> dict[str, Any]:
    """{hparam: Dist} -> {hparam: Ray Tune domain}."""
    return {key: DOMAIN_OF[dist.kind](*dist.args) for key, dist in space.items()}


# --- the searches ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """One Ray Tune experiment: `samples` configurations of one model × dataset × budget × seed."""

    cell: Cell  # the untuned cell, seed = the tuning seed
    space: dict[str, Any]  # hparam -> Dist
    key: str  # hash of what defines the search (see tuning_rows)

    def tuning_id(self, sample: int) -> str:
        return tuning_id(self.key, sample)

    @property
    def name(self) -> str:
        return f"{self.cell.label}/{self.cell.dataset}/{self.cell.budget}/seed{self.cell.seed}"


def searches(suite: Suite) -> list[Search]:
    spec, spaces = suite.tune, {m.label: m.space for m in suite.models}
    base = [c for c in suite.cells() if c.seed == suite.seeds[0] and spaces[c.label]]  # no space: not tuned
    out = []
    for seed in spec.seeds:
        for cell in base:
            # no checkpoints: a tuning trial whose process dies starts again (it is short)
            cell = with_values(replace(cell, seed=seed, checkpoint_every_steps=0), {}, tuned=False)
            space = spaces[cell.label]
            # what was trained and measured how, without [tune] (a larger `samples` keeps the rows)
            untuned = with_values(replace(cell, tune=None, space={}), {}, tuned=False)
            key = digest(
                {
                    "config": untuned.config_hash,
                    "label": cell.label,
                    "seed": seed,
                    "space": {k: [d.kind, list(d.args)] for k, d in sorted(space.items())},
                    "tune": [spec.metric, spec.search, spec.scheduler],
                }
            )
            out.append(Search(cell=cell, space=space, key=key))
    return out


def tuning_ids(suite: Suite) -> list[str]:
    return Plan.of(suite).ids


@dataclass(frozen=True)
class Plan:
    """A tuned suite's searches and their tuning ids, expanded and hashed once per run."""

    searches: tuple[Search, ...]
    ids: list[str]  # every sample of every search, in search order
    samples: int  # configurations per search

    @classmethod
    def of(cls, suite: Suite) -> Plan:
        found = tuple(searches(suite))
        n = suite.tune.samples
        return cls(found, [s.tuning_id(i) for s in found for i in range(n)], n)


# --- phase 1 --------------------------------------------------------------------------------------
def tune_phase(suite: Suite, plan: Plan, store: Storage, *, slots: int, resources: dict, callbacks, stop=None) -> None:
    """Run every missing tuning trial of the suite (one Tune experiment per search, its files under
    the run's storage like the final runs'); a stop signal (bench.run.signals) ends the running search
    and skips the others. Tuning rows and tables stay in the results folder."""
    spec, ids = suite.tune, plan.ids
    results_dir = store.results_dir
    stored = tuning_rows(results_dir).read_rows(quarantine=True)  # holding the folder's lock
    stale = set(stored) - set(ids)
    if stale:
        log.warning(
            "%s holds %d tuning rows of searches that are not in this suite (edited space, [tune] or model "
            "configuration?); they stay in %s/ but not in %s",
            results_dir,
            len(stale),
            TUNING.rows_dir,
            TUNING.table,
        )
    rebuild_tables(results_dir, ids, schema=TUNING)
    finished = tuning_rows(results_dir).finished_rows(stored)  # a search only ever writes its own rows
    for search in plan.searches:
        done = {r["sample"]: r for i in _ids(search, spec) if (r := finished.get(i)) is not None}
        missing = [i for i in range(spec.samples) if i not in done]
        if not missing:
            continue
        log.info("tuning %s: %d of %d configurations to try", search.name, len(missing), spec.samples)
        _run_search(
            suite,
            search,
            sorted(done.values(), key=lambda r: r["sample"]),
            missing,
            store,
            slots=slots,
            resources=resources,
            callbacks=callbacks,
            stop=stop,
        )
        rebuild_tables(results_dir, ids, schema=TUNING)
        if stop is not None and stop.signum is not None:
            return


def _ids(search: Search, spec) -> list[str]:
    return [search.tuning_id(i) for i in range(spec.samples)]


def _run_search(
    suite, search: Search, done: list[dict], missing: list[int], store: Storage, *, slots, resources, callbacks, stop
):
    spec = suite.tune
    results_dir = store.results_dir
    concurrent = max(1, min(slots, len(missing)))
    trainable = tune.with_parameters(
        tuning_trainable,
        results_dir=str(results_dir),
        storage_uri=store.uri,
        keys=tuple(search.space),
        metric=spec.metric,
        key=search.key,
    )
    searcher, first = SEARCHER_OF[spec.search](search, done, missing, concurrent)
    namer = _SampleNamer(missing, first)
    c = search.cell  # a rerun never mixes files with a killed run: tune-<label>-<dataset>-<budget>-seed<seed>[-n]
    run_experiment(
        trainable,
        store=store,  # Tune's files: <storage>/ray, as in the final phase
        name=experiment_name(store, f"tune-{c.label}-{c.dataset}-{c.budget}-seed{c.seed}"),
        resources=resources,
        param_space={"cell": search.cell.to_dict(), **search_space(search.space)},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            num_samples=len(missing),
            search_alg=searcher,
            scheduler=SCHEDULER_OF[spec.scheduler](search.cell),
            trial_name_creator=namer,
            trial_dirname_creator=namer,
            reuse_actors=True,  # one worker process per slot, not per trial (imports cost ~8 CPU-s)
        ),
        max_retries=suite.resources.max_retries,
        callback=_Recorder(results_dir, search, spec, namer, stop),
        tracking=callbacks,
        stop=stop,
    )


def _random(search: Search, done: list[dict], missing: list[int], concurrent: int):
    seed = int(digest({"seed": search.cell.seed, "missing": missing}), 16) % 2**32
    return BasicVariantGenerator(random_state=seed, max_concurrent=concurrent), 0


def _optuna(search: Search, done: list[dict], missing: list[int], concurrent: int):
    from ray.tune.search.optuna import OptunaSearch  # imports optuna (~1 s): only where it is used

    scored = [r for r in done if math.isfinite(r["val_metric"])]
    searcher = OptunaSearch(
        metric=METRIC,
        mode="min",
        seed=search.cell.seed,
        points_to_evaluate=[json.loads(r["config"]) for r in scored] or None,
        evaluated_rewards=[r["val_metric"] for r in scored] or None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=concurrent), 1


def _fifo(cell: Cell):
    return FIFOScheduler()


def _asha(cell: Cell):
    if cell.steps is not None:
        every = min(cell.report_every_steps, cell.steps)
        return ASHAScheduler(time_attr="step", max_t=cell.steps, grace_period=every, reduction_factor=ASHA_REDUCTION)
    return ASHAScheduler(
        time_attr="train_s", max_t=cell.seconds, grace_period=cell.seconds / 8, reduction_factor=ASHA_REDUCTION
    )


# implementations of the vocabularies bench.suite.space owns (tests check they cover them)
SEARCHER_OF = {"random": _random, "optuna": _optuna}
SCHEDULER_OF = {"fifo": _fifo, "asha": _asha}


class _SampleNamer:
    """Names each Tune trial after its sample index: the k-th trial Tune creates in this
    experiment runs the k-th missing index. Tune numbers its trials in `experiment_tag` (from 0 in
    its variant generator, from 1 behind a searcher); Tune copies this callable, so it is stateless."""

    def __init__(self, missing: list[int], first: int):
        self.missing = list(missing)
        self.first = first  # Tune's number of the first trial

    def __call__(self, trial) -> str:
        return f"sample-{self.missing[int(trial.experiment_tag.split('_')[0]) - self.first]}"


def _ran_budget(cell: Cell, last: dict) -> bool:
    if cell.steps is not None and last.get("step", 0) >= cell.steps:
        return True
    return cell.seconds is not None and last.get("train_s", 0) >= cell.seconds


class _Recorder(tune.Callback):
    """Driver side: the row of every ended trial (early-stopped and failed trials write none)."""

    def __init__(self, results_dir: Path, search: Search, spec, namer: _SampleNamer, stop=None):
        self.results_dir, self.search, self.spec, self.namer = results_dir, search, spec, namer
        self.stop = stop  # bench.run.signals.StopOnSignal: trials ended by a stop signal leave no row

    def __getstate__(self):  # Tune pickles its callbacks; the signal handlers stay in this process
        return {**self.__dict__, "stop": None}

    def _finished_on_disk(self, row_id: str) -> bool:
        stored = tuning_rows(self.results_dir).read_stored_row(row_id, quarantine=True)  # damaged: moved aside
        return stored is not None and stored["status"] in TUNING.finished

    def _store(self, trial, status: str | None, error: str = "") -> None:
        sample = sample_of(self.namer(trial))
        row_id = self.search.tuning_id(sample)
        last = trial.last_result or {}
        if ROW_KEY in last:
            row = json.loads(last[ROW_KEY])
        elif self._finished_on_disk(row_id):
            return  # the trial stored its own row before Tune ended it
        else:
            # ended by the scheduler: at its last rung (the whole budget ran) or early
            status = status or ("ok" if _ran_budget(self.search.cell, last) else "stopped")
            if status == "stopped" and self.stop is not None and self.stop.signum is not None:
                return  # ended by a stop signal, not by the scheduler: it runs again next time
            sampled = {k: plain_value(trial.config[k]) for k in self.search.space}
            row = tuning_row(self.search.cell, sample, sampled, self.spec.metric, last, status=status, error=error)
        row["tuning_id"] = row_id
        tuning_rows(self.results_dir).write_row(row)
        log.info("tuning %s sample %d: %s, %s = %s", self.search.name, sample, row["status"], METRIC, row["val_metric"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._store(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._store(trial, "failed", error=f"trial process died ({trial.num_failures} attempts)")


# --- phase 2 --------------------------------------------------------------------------------------
def best_configs(
    suite: Suite, results_dir: Path, plan: Plan | None = None
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(label, dataset, budget) -> chosen sampled values: lowest val_metric among ok trials."""
    ids = set((plan or Plan.of(suite)).ids)
    rows = [r for t, r in tuning_rows(results_dir).read_rows().items() if t in ids and r["status"] == "ok"]
    rows = [r for r in rows if math.isfinite(r["val_metric"])]
    best: dict[tuple[str, str, str], dict] = {}
    for r in sorted(rows, key=lambda r: (r["val_metric"], r["seed"], r["sample"])):
        best.setdefault((r["label"], r["dataset"], r["budget"]), r)
    return {k: json.loads(r["config"]) for k, r in best.items()}


def final_cells(suite: Suite, plan: Plan, results_dir: Path) -> tuple[list[Cell], set[str]]:
    """The phase-2 cells, each carrying its model's chosen configuration (tuned = true), and the ids
    of those that must not run.

    A search without any trial that ran its budget with a finite score gets a "failed" row for each of
    its cells, saying why (the tuning trials' statuses and first error), and those cells are not run:
    an untuned run in their place would pass its suite hyper-parameters off as tuned results. They stay
    in the grid (a failed row reruns): the next run retries the failed tuning trials, then them.
    """
    rebuild_tables(results_dir, plan.ids, schema=TUNING)
    chosen = best_configs(suite, results_dir, plan)
    cells, blocked = [], set()
    for cell in suite.cells():
        config = chosen.get((cell.label, cell.dataset, cell.budget))
        if not cell.space:  # a model without a space trains with its written hyper-parameters
            cells.append(cell)
        elif config is None:
            row = identity_row(cell)
            row.update(status="failed", error=_untuned_reason(cell, plan, results_dir))
            trial_rows(results_dir).write_row(row)
            log.warning("%s: %s", cell.name, row["error"])
            cells.append(cell)
            blocked.add(cell.trial_id)
        else:
            cells.append(with_values(cell, config, tuned=True))
    return cells, blocked


def _untuned_reason(cell: Cell, plan: Plan, results_dir: Path) -> str:
    """Why `cell` has no tuned configuration, from its searches' tuning rows."""
    ids = set(plan.ids)
    key = (cell.label, cell.dataset, cell.budget)
    rows = [
        r
        for t, r in tuning_rows(results_dir).read_rows().items()
        if t in ids and (r["label"], r["dataset"], r["budget"]) == key
    ]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r["status"] for r in rows).items())) or "none ran"
    errors = [r["error"] for r in sorted(rows, key=lambda r: (r["seed"], r["sample"])) if r.get("error")]
    first = f"; first error: {errors[0]}" if errors else ""
    return (
        f"tuning failed: no configuration of {len(rows)} ran its budget with a finite validation metric "
        f"({counts}{first}); not run untuned"
    )


def pending(plan: Plan, results_dir: Path) -> bool:
    """Whether phase 1 has tuning trials left to run."""
    return bool(set(plan.ids) - set(tuning_rows(results_dir).finished_rows()))
