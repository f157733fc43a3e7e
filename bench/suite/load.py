"""Reading a suite file: TOML to a checked, typed `Suite` (bench.suite.parse does the checks)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from bench.errors import ConfigError, ConfigErrors
from bench.suite.model import Suite
from bench.suite.parse import Parser

DATA_ROOT_ENV = "GENBENCH_DATA_ROOT"  # default data root when --data-root is not given
DEFAULT_DATA_ROOT = "data"  # relative to the working directory (git-ignored)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $GENBENCH_DATA_ROOT, else ./data; absolute (Ray trials run elsewhere)."""
    if data_root is None:
        data_root = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(data_root).expanduser().resolve()


def load_suite(
    path: str | os.PathLike, *, data_root: str | os.PathLike | None = None, check_machine: bool = False
) -> Suite:
    """Read and check a suite file; ConfigError listing every problem (one line each) if invalid.

    check_machine: also check [resources] against this machine (a run without --address; with one,
    the runner checks the cluster right after connecting).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a leading byte-order mark is dropped
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the suite file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the suite file is not UTF-8 text ({exc.reason})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except RecursionError:  # tomllib recurses per nesting level: ~1 000 nested arrays exhaust the stack
        raise ConfigError(f"{path}: TOML nested too deeply to read (arrays or tables inside each other)") from None
    parser = Parser(str(path), resolve_data_root(data_root), check_machine=check_machine)
    suite = parser.suite(raw)
    if parser.errors:
        raise ConfigErrors(parser.lines())
    return suite
