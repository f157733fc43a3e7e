"""Where a quick-suite trial's wall time goes (train, NLL, sampling, metrics), per cell.

    .venv/bin/python benchmarks/metric_cost.py [--suite suites/quick.toml] [--seed 0]
        [--families gan vae flow ddpm] [--datasets 8gaussians digits] [--steps N] [--out FILE.md]

Runs the suite's cells for one seed in this process through `bench.trial.run_trial` (the exact
trial code Ray runs, without Ray), one after another on `cpus_per_trial` threads. The one-off
per-dataset work (training the classifier extractor; real-feature caching) is done first and
reported on its own line, so each row shows a trial with warm caches, as in a suite where the
first trial per dataset paid it. The target (issue 4) is metrics_s <= 10 % of a trial's wall time.
Columns: wall_s (whole run_trial), train_s, eval_s = nll_s + sample_s + metrics_s (+ bookkeeping).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import torch

from bench.datasets import make_dataset
from bench.metrics.extractors import label_classifier, resolve_extractor
from bench.suite import load_suite
from bench.trial.run import run_trial

COLUMNS = ("wall_s", "train_s", "eval_s", "nll_s", "sample_s", "metrics_s")


def warm_caches(cells, cache_dir: Path) -> list[str]:
    """Train each dataset's extractor once (what the first trial of a suite pays); report it."""
    lines, done = [], set()
    for cell in cells:
        if cell.dataset in done:
            continue
        done.add(cell.dataset)
        cfg = cell.eval
        ds = make_dataset(cell.dataset, cell.dataset_options)
        t = time.perf_counter()
        extractor = resolve_extractor(ds, cfg, cache_dir)
        label_classifier(ds, cfg, cache_dir, extractor)
        lines.append(
            f"one-off for {cell.dataset}: extractor {extractor.name} "
            f"{extractor.hash or '-'} ready in {time.perf_counter() - t:.1f} s"
        )
    return lines


def table(rows: list[dict]) -> str:
    head = ["family", "dataset", "steps", *COLUMNS, "metrics % of wall", "eval % of wall"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [f"{r[c]:.1f}" for c in COLUMNS]
        shares = [
            f"{100 * r['metrics_s'] / r['wall_s']:.1f}",
            f"{100 * r['eval_s'] / r['wall_s']:.1f}",
        ]
        out.append("| " + " | ".join([r["label"], r["dataset"], str(r["train_steps"]), *vals, *shares]) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="suites/quick.toml")
    ap.add_argument("--seed", type=int, default=None, help="seed to run (default: the suite's first)")
    ap.add_argument("--families", nargs="*", default=None, help="model labels to keep (default: all)")
    ap.add_argument("--datasets", nargs="*", default=None, help="datasets to keep (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="override the budget's optimizer steps")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    suite = load_suite(args.suite)
    cells = suite.cells()
    seed = args.seed if args.seed is not None else cells[0].seed
    cells = [
        c
        for c in cells
        if c.seed == seed
        and (args.families is None or c.label in args.families or c.family in args.families)
        and (args.datasets is None or c.dataset in args.datasets)
    ]
    if args.steps is not None:
        cells = [dataclasses.replace(c, steps=args.steps, seconds=None) for c in cells]
    if not cells:
        raise SystemExit("no cells left after filtering")

    with tempfile.TemporaryDirectory(prefix="metric-cost-") as tmp:
        results, cache = Path(tmp) / "results", Path(tmp) / "cache"
        notes = warm_caches(cells, cache)
        rows = []
        for i, cell in enumerate(cells, 1):
            print(f"[{i}/{len(cells)}] {cell.name} ...", flush=True)
            t = time.perf_counter()
            row = run_trial(cell, results_dir=results, cache_dir=cache)
            row["wall_s"] = time.perf_counter() - t
            if row["status"] != "ok":
                print(f"    {row['status']}: {row['error']}")
                continue
            rows.append(row)

    text = "\n".join(
        [
            f"suite {args.suite}, seed {seed}, torch threads per trial {cells[0].cpus:g}, "
            f"torch {torch.__version__}, {'cuda' if torch.cuda.is_available() else 'cpu'}",
            *notes,
            "",
            table(rows),
        ]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
