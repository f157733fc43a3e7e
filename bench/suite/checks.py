"""Recording the problems of one suite document, and the field checks every section uses.

`Checks` keeps (field, message) pairs: a repeated problem is recorded once, and a problem that follows
from a non-finite number (found in one pass over the whole document) is not recorded again. The
generic checks (a table and its keys, names, positive numbers, unique entries, a typed dataclass,
an existing path) record their problem and return None. The suite's sections are checked in
bench.suite.parse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import ConfigError, FieldProblems
from bench.hparams import build, field_errors
from bench.registry import Registry

NAME_MAX = 64  # characters of a suite, label or budget name (they become folder and file names)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # names that are safe as folder names (fullmatch)
SEED_LIMIT = 2**32  # numpy's seed range
SHOW_MAX = 60  # characters of a written value quoted in an error line


class Checks:
    """The problems found so far in one parsed TOML document; `errors` holds (field, message) for each."""

    def __init__(self, source: str, data_root: Path):
        self.source = source
        self.data_root = data_root
        self.errors: list[tuple[str, str]] = []
        self.nonfinite: set[str] = set()  # fields holding nan/inf (reported once, skipped after)
        self.misspelt: set[str] = set()  # tables with an unknown key (a missing key may be that key)

    # --- recording ----------------------------------------------------------------------------
    def error(self, where: str, what: str, *, exact: bool = False) -> None:
        """Record a problem, unless it repeats one or follows from a non-finite value at `where` or
        (unless `exact`: the check never saw those values) inside it."""
        covered = any(p == where or (not exact and self.inside(p, where)) for p in self.nonfinite)
        if not covered and (where, what) not in self.errors:
            self.errors.append((where, what))

    @staticmethod
    def inside(path: str, where: str) -> bool:
        return path.startswith((where + ".", where + "["))

    def finite(self, path: str) -> bool:
        """No non-finite number at `path` or inside it."""
        return not any(p == path or self.inside(p, path) for p in self.nonfinite)

    def lines(self) -> list[str]:
        return [_printable(f"{self.source}: {where or 'top level'}: {what}") for where, what in self.errors]

    def find_nonfinite(self, value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            self.errors.append((where, f"expected a finite number, got {value!r}"))
            self.nonfinite.add(where)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.find_nonfinite(v, join_key(where, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.find_nonfinite(v, f"{where}[{i}]")

    # --- generic checks -----------------------------------------------------------------------
    def table(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        """The table's known keys (unknown ones are recorded); None if it is not a table."""
        if not isinstance(value, dict):
            self.error(where, f"expected a table, got {shown(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.error(join_key(where, key), f"unknown key; expected one of: {', '.join(allowed)}")
                self.misspelt.add(where)
        return {k: v for k, v in value.items() if k in allowed}

    def tables(self, raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> list[tuple[dict, str]]:
        value = raw.get(key)
        if value is None or value == []:
            self.error(key, f"empty grid: at least one [[{key}]] entry is required")
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of tables ([[{key}]]), got {shown(value)}")
            return []
        out = [(self.table(v, f"{key}[{i}]", allowed), f"{key}[{i}]") for i, v in enumerate(value)]
        return [(t, where) for t, where in out if t is not None]

    def name(self, value: Any, where: str) -> str | None:
        ok = isinstance(value, str) and len(value) <= NAME_MAX and NAME_RE.fullmatch(value)
        if not ok:
            self.error(
                where,
                f"expected a name of 1 to {NAME_MAX} letters, digits, '.', '_' or '-' starting with a letter "
                f"or digit, got {shown(value)}",
            )
        return value if ok else None

    def registered(self, value: Any, where: str, registry: Registry) -> str | None:
        """A name of `registry` (a family, a dataset), else None with the known names in the error."""
        known = ", ".join(registry.names())
        if not isinstance(value, str):
            self.error(where, f"required: a {registry.kind} name ({known})")
            return None
        if value not in registry:
            self.error(where, f"unknown {registry.kind} {value!r}; expected one of: {known}")
            return None
        return value

    def positive(self, value: Any, where: str, kind: type) -> int | float | None:
        types = (int, float) if kind is float else int
        if isinstance(value, bool) or not isinstance(value, types) or not value > 0:
            self.error(where, f"expected a positive {'number' if kind is float else 'integer'}, got {shown(value)}")
            return None
        return value

    def unique(self, names: list[Any], where: str, what: str, hint: str = "") -> None:
        seen = set()
        for i, n in enumerate(names):
            if n is not None and n in seen:
                self.error(f"{where}[{i}]", f"duplicate {what} {n!r}; expected unique {what}s{hint}")
            seen.add(n)

    def typed(
        self, cls: type, mapping: dict, where: str, *, owner: str, noun: str, field: Callable[[str], str] | None = None
    ) -> Any:
        """`cls` built from `mapping`: each unknown or mistyped key is its own error (at `field(key)`,
        default `where.key`); the cross-field `validate()` error names the table. None when invalid."""
        field = field or (lambda key: join_key(where, key))
        bad = field_errors(cls, mapping, owner=owner, noun=noun)
        for key, msg in bad:
            self.error(field(key), msg)
        good = {k: v for k, v in mapping.items() if k not in dict(bad) and self.finite(field(k))}
        try:
            built = build(cls, good, owner=owner, noun=noun)
        except FieldProblems as exc:  # every problem at its own field
            for key, msg in exc.problems:
                self.error(field(key), f"{owner} {noun} {key!r} {msg}")
            return None
        except ConfigError as exc:
            self.error(where, str(exc), exact=True)  # non-finite values were left out of `good`
            return None
        return None if bad else built

    def seeds(self, value: Any, where: str, *, empty: str = "expected a non-empty array of seeds") -> tuple | None:
        """A list of unique integer seeds in numpy's range (the grid's and [tune]'s)."""
        if value is None or value == []:
            self.error(where, empty)
            return None
        if not (isinstance(value, list) and all(type(s) is int for s in value)):  # bool is not a seed
            self.error(where, f"expected an array of integers, got {shown(value)}")
            return None
        for i, s in enumerate(value):
            if not 0 <= s < SEED_LIMIT:
                self.error(f"{where}[{i}]", f"expected an integer in [0, 2**32), got {s}")
        self.unique(value, where, "seed")
        return tuple(value)

    def path(self, value: str, where: str, what: str, hint: str = "") -> str | None:
        if not value:
            self.error(where, f"required: {what}{hint}")
            return None
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.data_root / p
        if not p.exists():
            self.error(
                where,
                f"missing {what}: {str(p)!r} does not exist (relative paths are resolved against the data root "
                f"{str(self.data_root)!r}: --data-root, else $GENBENCH_DATA_ROOT, else ./data)",
            )
            return None
        return str(p)


def join_key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def shown(value: Any) -> str:
    """A value (shortened) and its TOML-ish type for error messages."""
    kinds = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}
    text = repr(value)
    if len(text) > SHOW_MAX:
        text = text[: SHOW_MAX - 3] + "..."
    return f"{text} ({kinds.get(type(value), type(value).__name__)})"


def _printable(line: str) -> str:
    """Control characters (in keys or paths) escaped, so every error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
