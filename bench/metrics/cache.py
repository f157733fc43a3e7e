"""Content hashes, cache names and a cross-process lock for the on-disk metric caches.

Every cache entry is named by what went into it (dataset, extractor and its weights hash, example
count, a hash of the data bytes), so a changed test split or retrained extractor can never reuse a
stale entry: it simply misses. Concurrent trials (Ray runs several per machine) serialise the
expensive fill with an advisory file lock; readers of a complete entry never wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

HASH_CHARS = 16  # hex characters kept in names and on rows (64 bits: collisions are not a concern here)


def tensor_hash(*tensors: torch.Tensor) -> str:
    """Hash of dtypes, shapes and bytes of the tensors (order matters)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        flat = t.detach().cpu().contiguous().reshape(-1)  # 0-d tensors cannot be viewed as bytes
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()[:HASH_CHARS]


def state_dict_hash(state: Mapping[str, torch.Tensor]) -> str:
    """Hash of a state dict's names and tensors, independent of how it was serialised."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode() + b"\0" + tensor_hash(state[name]).encode())
    return h.hexdigest()[:HASH_CHARS]


def file_hash(path: str | os.PathLike) -> str:
    """Hash of a file's bytes (read in 1 MiB chunks: Inception weights are ~100 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:HASH_CHARS]


def safe_name(*parts: object) -> str:
    """Join parts into a file-name-safe cache name (torch-fidelity rejects path separators)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on `path` (created if missing), released on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def atomic_torch_save(obj: object, path: Path) -> None:
    """torch.save to a temp file then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
