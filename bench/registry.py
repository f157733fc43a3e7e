"""Explicit name -> class registries (families, datasets, feature extractors).

A registry checks what it is given: a duplicate name or an object of the wrong type is rejected at
registration time, and an unknown name raises a `ConfigError` that lists the known names. There is
no if/elif dispatch over names anywhere else in the package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from bench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of name -> subclass of `base`, with checked registration and lookup."""

    def __init__(self, kind: str, base: type[T]):
        self.kind = kind  # what the entries are called in error messages ("family", "dataset")
        self.base = base
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str, cls: type[T]) -> type[T]:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}, got {cls!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
        self._entries[name] = cls
        return cls

    @contextlib.contextmanager
    def registered(self, name: str, cls: type[T]) -> Iterator[type[T]]:
        """`cls` registered as `name` inside the block only (an entry a test brings along)."""
        self.register(name, cls)
        try:
            yield cls
        finally:
            del self._entries[name]

    def get(self, name: str) -> type[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
