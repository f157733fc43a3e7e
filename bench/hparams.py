"""Typed hyper-parameter dataclasses built from plain mappings (TOML tables, dicts).

`build(cls, mapping, owner=...)` rejects unknown keys (naming the key, the owner and the known
keys) and values of the wrong type, so a misspelt key can never be silently ignored. A class may
name deprecated keys in `ALIASES` ({old: new}): they are mapped to the new name with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from bench.errors import ConfigError, FieldProblems

H = TypeVar("H")
log = logging.getLogger(__name__)


def type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        return any(type_ok(value, a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(type_ok(v, inner) for v in value)
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp is float:  # ints are fine where a float is expected; bools are not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def field_errors(cls: type, mapping: Mapping[str, Any], *, owner: str, noun: str = "hyper-parameter") -> list:
    """(key, one-line message) for every unknown key and every value of the wrong type."""
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    aliases = getattr(cls, "ALIASES", {})
    out = []
    for key, value in mapping.items():
        if key in aliases:  # a deprecated name: checked as the field it stands for
            if aliases[key] in mapping:
                out.append((key, f"{owner}: {key!r} is the deprecated name of {aliases[key]!r}; give only the latter"))
                continue
            key = aliases[key]
        if key not in fields:
            out.append((key, f"unknown {noun} {key!r} for {owner}; known: {', '.join(sorted(fields))}"))
        elif not type_ok(value, hints[key]):
            out.append(
                (
                    key,
                    f"{noun} {key!r} for {owner} must be {describe(hints[key])}, "
                    f"got {value!r} ({type(value).__name__})",
                )
            )
    return out


def field_type(cls: type, key: str) -> Any:
    """The annotated type of field `key` of dataclass `cls`."""
    return typing.get_type_hints(cls)[key]


def build(cls: type[H], mapping: Mapping[str, Any] | None, *, owner: str, noun: str = "hyper-parameter") -> H:
    """Instantiate dataclass `cls` from `mapping`; `owner` names it in errors ("family 'flow'"),
    `noun` what its fields are called there ("hyper-parameter", "option", "setting")."""
    mapping = dict(mapping or {})
    bad = field_errors(cls, mapping, owner=owner, noun=noun)
    if bad:
        raise ConfigError(bad[0][1])
    for old, new in getattr(cls, "ALIASES", {}).items():
        if old in mapping:
            log.warning("%s: %r is deprecated, use %r (mapped)", owner, old, new)
            mapping[new] = mapping.pop(old)
    mapping = {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()}
    obj = cls(**mapping)
    listed = getattr(obj, "problems", None)  # a class that lists every problem: one error per field
    if listed is not None and (found := listed()):
        raise FieldProblems(owner, found)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except (ValueError, AssertionError) as exc:
            raise ConfigError(f"{owner}: {exc}") from None
    return obj


def restore(cls: type[H], mapping: Mapping[str, Any]) -> H:
    """`cls` rebuilt from `to_dict`'s output (a typed value that crossed a process boundary): it was
    checked where it was parsed, so it is not checked again (lists back to tuples, as `build` does)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()})


def to_dict(obj: Any) -> dict[str, Any]:
    """The dataclass as a plain dict (for result rows and config hashes)."""
    return dataclasses.asdict(obj)


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One documented field of a config dataclass, as `genbench list --hparams/--options` prints it."""

    name: str
    type: str
    default: str
    comment: str  # the comment on the field's line, else the comment block right above it


def field_docs(cls: type) -> list[FieldDoc]:
    """Every field of dataclass `cls` (inherited ones first) with its type, default and the comment
    that documents it in the source: the house style puts one on each default."""
    hints = typing.get_type_hints(cls)
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments |= _source_comments(klass)
    return [
        FieldDoc(f.name, _type_text(hints[f.name]), _default(f), comments.get(f.name, ""))
        for f in dataclasses.fields(cls)
    ]


def _type_text(tp: Any) -> str:
    """int, float, tuple[float, float], Literal['random', 'block'], ... as written in the source."""
    return str(tp).replace("typing.", "") if typing.get_origin(tp) else describe(tp)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "(required)"


def _source_comments(klass: type) -> dict[str, str]:
    """{field: comment} read from the class body's source lines."""
    import inspect
    import re

    try:
        lines = inspect.getsource(klass).splitlines()
    except (OSError, TypeError):  # defined where no source is kept (an interactive session)
        return {}
    out, above = {}, []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("# ").strip())
            continue
        m = re.match(r"([A-Za-z_]\w*)\s*:[^=#]+(?:=[^#]*)?(?:#\s*(.*))?$", text)
        if m and not text.startswith(("def ", "class ", "@")):
            out[m.group(1)] = (m.group(2) or " ".join(above)).strip()
        above = []
    return out
