"""genbench's command line (`genbench ...` or `python run_bench.py ...`); logging is set up here.

    genbench --version
    genbench validate SUITE [--data-root DIR] [--address ADDR] [--cells]
    genbench run SUITE [--results DIR] [--address ADDR] [--storage URI] [--resume | --restart] [--data-root DIR]
                       [--tracking tensorboard|mlflow]
    genbench controls --suite SUITE [--out DIR] [--results DIR] [--data-root DIR]
    genbench list [--hparams FAMILY] [--options DATASET]
    genbench report RESULTS_DIR

Exit status: 0 success; 2 invalid input (suite, paths, arguments: one line on stderr per problem,
each naming the file and field; nothing was started) or an unusable results folder (not writable,
full, in use by another run); 3 for `controls` when a measure missed a control; 1 an unexpected error
(traceback); for `run`, 100 + n when n trials
failed (capped at 199; diverged trials are measurements, not failures); 130 / 143 when SIGINT
(Ctrl-C) / SIGTERM stopped it (finished rows are kept; run again to resume); 141 when the reader of
stdout went away (`validate --cells | head`), like tools killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from bench.errors import GenbenchError

log = logging.getLogger(__name__)

EXIT_INVALID = 2
EXIT_FAILED_TRIALS = 100  # + number of failed trials
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader closed the pipe
EXIT_CONTROL_MISSED = 3  # `controls`: some measure did not read its control as expected
EXIT_SIGINT = 130  # 128 + SIGINT, the shell's convention; SIGTERM gives 143


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose - args.quiet)
    try:
        return args.command(args)
    except GenbenchError as exc:
        for line in str(exc).splitlines():  # several problems of one input: one line each
            print(f"genbench: error: {line}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # e.g. `genbench validate --cells | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as exc:  # bench.run.signals.Interrupted carries SIGTERM's code too
        print(f"genbench: interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_SIGINT)


def _version() -> str:
    try:
        return importlib.metadata.version("genbench")
    except importlib.metadata.PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genbench",
        description="Train and compare GAN, VAE, RealNVP and DDPM on equal terms.",
        epilog="Exit status: 0 ok; 2 invalid input or unusable results folder (nothing started); "
        "1 unexpected error; run: 100 + number of failed trials, 130 / 143 when stopped by SIGINT (Ctrl-C) / "
        "SIGTERM (finished rows kept; a second signal exits at once); 141 stdout closed early.",
    )
    parser.add_argument("--version", action="version", version=f"genbench {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    data_root = {
        "metavar": "DIR",
        "default": None,
        "help": "folder that relative dataset roots and weight paths are resolved against "
        "(default: $GENBENCH_DATA_ROOT, else ./data)",
    }

    p = sub.add_parser(
        "validate",
        help="check a suite file without running anything",
        description="Check a suite file: every field, registry names, data roots, what the metrics "
        "need of each dataset, resources against this machine. Prints the grid size; exit status 2 "
        "with one line per problem (all of them) if invalid.",
    )
    p.add_argument("suite", type=Path, help="suite file (TOML), e.g. suites/quick.toml")
    p.add_argument("--data-root", **data_root)
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="the suite runs on this Ray cluster: skip the check of [resources] against this machine",
    )
    p.add_argument("--cells", action="store_true", help="also list the grid cells and trial_ids")
    p.set_defaults(command=cmd_validate)

    p = sub.add_parser(
        "run",
        help="run a suite's grid with Ray Tune (resumes by default)",
        description="Run one Ray Tune trial per grid cell. Rows go to "
        "RESULTS/<suite name>/trials.parquet (and .csv); the report is "
        "written at the end. Cells with an ok or diverged row are "
        "skipped.",
    )
    p.add_argument("suite", type=Path, help="suite file (TOML)")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="parent folder of the suite's results folder (default: results)",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster to run on: 'auto' (the latest `ray start` on this machine) or host:port; "
        "default: $RAY_ADDRESS, else a private local Ray with this machine's CPUs (never a running cluster)",
    )
    p.add_argument(
        "--storage",
        default=None,
        metavar="URI",
        help="where trials put weights, samples and checkpoints: a (shared) folder or an object store "
        "(s3://bucket/prefix, gs://...; S3-compatible: ?endpoint_override=host:port&scheme=http); "
        "default: the results folder",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        dest="restart",
        action="store_false",
        default=False,
        help="skip cells that already have an ok/diverged row (default)",
    )
    mode.add_argument(
        "--restart",
        dest="restart",
        action="store_true",
        help="delete the suite's earlier rows, weights and samples; run every cell",
    )
    p.add_argument("--data-root", **data_root)
    p.add_argument("--no-report", dest="report", action="store_false", help="skip the report at the end")
    p.add_argument(
        "--tracking",
        choices=("tensorboard", "mlflow"),
        default=None,
        help="attach Ray Tune's TensorBoard or MLflow (local file store) logger to every trial",
    )
    p.set_defaults(command=cmd_run)

    p = sub.add_parser(
        "controls",
        help="run every measure on inputs with a known answer, at a suite's n and seeds",
        description="Evaluate each measure's controls (true samples, a dropped mode, blur, noise, training "
        "copies, an exact density vs a stochastic estimate, a closed-form imputation) with the suite's [eval] "
        "settings and seeds, and write OUT/controls.csv (measure, control, expected, value, p_value, detected). "
        "A report of a results folder holding controls.csv says what each measure can see. Exit 3 when a "
        "control is not detected.",
    )
    p.add_argument("--suite", type=Path, required=True, help="suite file (TOML)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <results>/<suite name>)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results/)")
    p.add_argument("--data-root", **data_root)
    p.set_defaults(command=cmd_controls)

    p = sub.add_parser(
        "list",
        help="list registered families and datasets",
        description="Registered families with their NLL estimator on each kind of data (points, image); datasets "
        "with their per-example shape and NLL unit. With --hparams FAMILY or --options DATASET: every key a suite "
        "may set there, with its type, default and meaning.",
    )
    p.add_argument("--hparams", metavar="FAMILY", help="the hyper-parameters of FAMILY ([[models]] hparams)")
    p.add_argument("--options", metavar="DATASET", help="the options of DATASET ([[datasets]] options)")
    p.set_defaults(command=cmd_list)

    p = sub.add_parser(
        "report",
        help="write the report of a results folder",
        description="Write report.md/.html, tables.tex, claims.csv, summary.csv and "
        "figures/ into RESULTS_DIR (a suite's folder, e.g. "
        "results/quick).",
    )
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    p.set_defaults(command=cmd_report)
    return parser


def _configure_logging(level: int) -> None:
    levels = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
    logging.basicConfig(
        level=levels[max(-1, min(1, level))],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


# --- commands -----------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from bench.suite import load_suite

    suite = load_suite(args.suite, data_root=args.data_root, check_machine=_on_this_machine(args))
    print(f"{args.suite}: ok, {suite.describe()}")
    if args.cells:
        for cell in suite.cells():
            print(f"  {cell.trial_id}  {cell.name}")
    return 0


def _on_this_machine(args: argparse.Namespace) -> bool:
    """Trials run on this machine (no cluster address): [resources] is checked against it."""
    return not (args.address or os.environ.get("RAY_ADDRESS"))


def cmd_run(args: argparse.Namespace) -> int:
    from bench.suite import load_suite

    # invalid: exit 2, Ray not imported
    suite = load_suite(args.suite, data_root=args.data_root, check_machine=_on_this_machine(args))
    from bench.run.tracking import check_tracking

    check_tracking(args.tracking)  # a missing package: exit 2 before Ray starts
    from bench.run.driver import run_suite
    from bench.run.signals import StopOnSignal

    with StopOnSignal() as stop:  # SIGINT / SIGTERM: trials stopped, rows kept, exit 130 / 143
        summary = run_suite(
            suite,
            args.results,
            address=args.address,
            storage_uri=args.storage,
            restart=args.restart,
            report=args.report,
            stop=stop,
            tracking=args.tracking,
        )
    print(summary.describe())
    if summary.report_path is not None:
        print(f"report: {summary.report_path}")
    if summary.interrupted:
        print(f"interrupted by {signal.Signals(summary.interrupted).name}: run again to resume", file=sys.stderr)
        return 128 + summary.interrupted
    return EXIT_FAILED_TRIALS + min(summary.failed, 99) if summary.failed else 0


def cmd_controls(args: argparse.Namespace) -> int:
    from bench.suite import load_suite

    suite = load_suite(args.suite, data_root=args.data_root)  # invalid: exit 2 before anything runs
    from bench.controls import CONTROLS_CSV
    from bench.controls.run import run_controls

    out = args.out or args.results / suite.name
    df = run_controls(suite, out, cache_dir=out / "cache")
    missed = df[~df["detected"]]
    print(f"{len(df) - len(missed)} of {len(df)} controls detected; {out / CONTROLS_CSV}")
    for _, r in missed.iterrows():
        print(f"  not detected: {r['measure']} on {r['control']} ({r['dataset']}): expected {r['expected']}")
    return EXIT_CONTROL_MISSED if len(missed) else 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.hparams or args.options:
        from bench.suite import reference

        tables = []  # looked up first: an unknown name is one error line, before any output
        if args.hparams:
            tables.append((f"family {args.hparams!r}: hparams", reference.hparams(args.hparams)))
        if args.options:
            tables.append((f"dataset {args.options!r}: options", reference.options(args.options)))
        for title, docs in tables:
            print(title)
            print(reference.text_table(docs))
        return 0
    from bench.datasets import DATASETS
    from bench.datasets.base import Kind
    from bench.families import FAMILIES

    specs = {name: _dataset_spec(name) for name in DATASETS.names()}
    print("families (NLL estimator per data kind):")
    for name in FAMILIES.names():
        cls = FAMILIES.get(name)  # class facts only: no model is built
        estimators = " ".join(f"{kind + ':':7s} {cls.nll_kinds[kind] or 'none':12s}" for kind in get_args(Kind))
        print(f"  {name:14s} {estimators} {cls.__module__}.{cls.__name__}")
    print("datasets (per-example shape, NLL unit):")
    for name, (spec, note) in specs.items():
        shape = str(spec.shape) if spec else "?"
        unit = spec.nll_unit if spec else "?"
        print(f"  {name:14s} {shape:14s} {unit:14s} {note}".rstrip())
    return 0


def _dataset_spec(name: str):
    """(DataSpec with default options, note); datasets that need a root get their spec from the
    options alone (no files are read)."""
    from bench.datasets import DATASETS, build_options
    from bench.datasets.base import Dataset

    cls = DATASETS.get(name)
    options = build_options(name, {})
    try:
        return cls(options).spec, ""
    except GenbenchError:
        pass
    try:
        bare = cls.__new__(cls)
        Dataset.__init__(bare, options)
        return bare.spec, "(needs options.root)"
    except Exception as exc:  # a spec that depends on the files themselves
        return None, f"(needs options.root; shape from the data: {type(exc).__name__})"


def cmd_report(args: argparse.Namespace) -> int:
    folder = args.results_dir
    if not folder.is_dir():
        raise GenbenchError(f"{folder}: results folder does not exist")
    from bench.report import write_report

    print(f"report: {write_report(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
