"""Which files a row may name: only its results folder's own files.

Results folders are shared between people, and the report embeds the images a row names, so a row
is data, never a pointer to anything on the reader's machine or accounts. A name is read only when
- it is relative and resolves (symlinks resolved) inside the results folder, or
- it is an absolute path or an object-store URI inside the folder's own storage prefix
  `<suite>-<identity>/` (bench.store.folder), in its `weights/` or `samples/`, the place
  bench.store.storage writes them (for a path: symlinks resolved, still inside that prefix).
Anything else raises Outside with the reason; bench.store.storage.fetch warns and skips it.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import urlsplit

from bench.store.folder import read_identity, storage_prefix

STORED_DIRS = ("weights", "samples")  # the folders of a storage prefix that rows name files in


class Outside(Exception):
    """A name that points outside the results folder and its storage prefix (the message says how)."""


def local_path(name: str, results_dir: Path) -> Path:
    """The resolved local file `name` (relative, absolute or file://) names; Outside if not allowed."""
    path = Path(name.removeprefix("file://"))
    if not path.is_absolute():
        base = Path(results_dir).resolve()
        target = (base / path).resolve()
        if not target.is_relative_to(base):
            raise Outside(f"it resolves to {target}, outside the results folder {base}")
        return target
    lexical = Path(os.path.normpath(path))  # '..' folded first: the prefix must be a real ancestor
    i = _prefix_index(lexical.parts, results_dir)
    allowed = Path(*lexical.parts[: i + 2]).resolve()  # <root>/<prefix>/<weights|samples>, links resolved
    target = lexical.resolve()
    if not target.is_relative_to(allowed):
        raise Outside(f"it resolves to {target}, outside {allowed}")
    return target


def check_uri(uri: str, results_dir: Path) -> None:
    """Outside unless the object-store `uri` names a file in the folder's prefix (no credentials, no '..')."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise Outside("it carries credentials (rows never do)")
    key = parts.path
    if posixpath.normpath(key) != key or "//" in key:
        raise Outside("its path has '.', '..' or empty components")
    _prefix_index((parts.netloc, *key.strip("/").split("/")), results_dir)


def _prefix_index(parts: tuple[str, ...], results_dir: Path) -> int:
    """Index of the folder's storage prefix in `parts`, followed by weights/ or samples/ and a file."""
    results_dir = Path(results_dir).resolve()  # its name is the suite's
    ident = read_identity(results_dir)
    if ident is None:
        raise Outside(f"it is outside the results folder {results_dir}, which has no storage identity")
    prefix = storage_prefix(results_dir, ident)
    for i, part in enumerate(parts[:-2]):
        if part == prefix and parts[i + 1] in STORED_DIRS:
            return i
    raise Outside(f"it is outside the results folder and its storage prefix {prefix}/{{weights,samples}}/")
