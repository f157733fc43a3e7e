"""Where trials put what they make: weights, samples and Ray Tune's checkpoints (`run --storage URI`).

The URI is a folder (local or shared, e.g. NFS) or an object store that pyarrow reaches:
`s3://bucket/prefix`, `gs://bucket/prefix`, ... S3-compatible servers take pyarrow's URI options,
`s3://bucket/prefix?endpoint_override=host:port&scheme=http`, or the `AWS_ENDPOINT_URL` variable;
credentials come from the usual variables/files of each node (never from genbench's files).
Default: the suite's results folder, i.e. today's single-machine layout.

A storage URI is shared: every results folder that runs with it gets its own prefix under it,
`<suite>-<identity>` (bench.store.folder: the folder's random identity), and everything the run
writes there lives under that prefix, so `--restart` of one suite never touches another's files.
Layout under the prefix: `weights/<trial_id>.pt`, `samples/<trial_id>/`, `ray/` (Tune's experiment
and checkpoints) and, for folders only, `cache/` (metric caches; with an object store each node
keeps them in its own cache folder). Rows, tables, report and logs stay in the driver's results
folder. A row names its files relative to the results folder when storage is that folder, by
absolute path for another folder and by URI for an object store; `fetch` reads any of these.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

from bench.errors import ConfigError
from bench.store import confine, folder

log = logging.getLogger(__name__)

ARTIFACT_COLUMNS = ("weights_path", "samples_npy", "samples_png")  # row columns naming stored files
OWNED = ("weights", "samples", "ray")  # what --restart removes from the run's prefix


@dataclass(frozen=True)
class Storage:
    """A storage root. `uri`: None = the results folder itself; else a folder path or a URI, the
    run's own prefix included (open_storage adds it; workers get this URI)."""

    results_dir: Path  # the suite's results folder on the driver (absolute)
    uri: str | None = None  # as given on the command line

    @property
    def is_results_folder(self) -> bool:
        return self.uri is None or (not self.remote and Path(self.root) == Path(self.results_dir))

    @property
    def remote(self) -> bool:
        return self.uri is not None and "://" in self.uri and not self.uri.startswith("file://")

    @property
    def root(self) -> str:
        """The root as pyarrow's filesystem names it (an absolute path, or bucket/prefix)."""
        return self._fs_root[1]

    @property
    def fs(self) -> pafs.FileSystem:
        return self._fs_root[0]

    @functools.cached_property
    def _fs_root(self) -> tuple[pafs.FileSystem, str]:
        if not self.remote:
            folder = self.results_dir if self.uri is None else Path(self.uri.removeprefix("file://"))
            return pafs.LocalFileSystem(), str(folder.expanduser().resolve())
        try:
            fs, root = pafs.FileSystem.from_uri(self.uri)
        except (ValueError, OSError) as exc:  # unknown scheme, bad option, missing bucket name
            raise ConfigError(f"--storage {self.public_uri}: {' '.join(str(exc).split())}") from None
        return fs, root.rstrip("/")

    @property
    def public_uri(self) -> str:
        """The URI without credentials (pyarrow takes them as s3://KEY:SECRET@bucket/prefix)."""
        if not self.remote:
            return self.root
        parts = urlsplit(self.uri)
        return urlunsplit(parts._replace(netloc=parts.hostname or ""))

    def check(self) -> None:
        """Fail now, in one line, when the root cannot be written (before any trial runs)."""
        probe = f"{self.root}/.genbench-write-check"
        try:
            self.fs.create_dir(self.root, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            self.fs.delete_file(probe)
        except OSError as exc:
            raise ConfigError(
                f"--storage {self.public_uri}: cannot write there ({' '.join(str(exc).split())})"
            ) from None

    # --- what Tune and the trials get ---------------------------------------------------------------
    def tune_run_config(self) -> dict[str, Any]:
        """RunConfig keyword arguments: Tune's experiment folder and checkpoints under <root>/ray."""
        if not self.remote:
            return {"storage_path": f"{self.root}/ray"}  # absolute: Tune rejects relative paths
        return {"storage_path": f"{self.root}/ray", "storage_filesystem": self.fs}

    def cache_dir(self, suite: str) -> Path:
        """Metric caches: under a folder root (shared by every node that mounts it), else node-local."""
        if not self.remote:
            return Path(self.root) / "cache"
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return base / "genbench" / suite

    def name_of(self, rel: str) -> str:
        """What a row records for the stored file `rel` (see the module docstring)."""
        if self.is_results_folder:
            return rel
        if not self.remote:
            return f"{self.root}/{rel}"
        parts = urlsplit(self.public_uri)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{rel}"))

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(f"{self.root}/{rel}").type != pafs.FileType.NotFound

    def publish(self, scratch: Path, row: dict[str, Any]) -> dict[str, Any]:
        """Copy the files a trial wrote under `scratch` (weights/, samples/) to the storage root and
        point the row's artifact columns at their stored names."""
        out = dict(row)
        for col in ARTIFACT_COLUMNS:
            rel = row.get(col) or ""
            if not rel:
                continue
            local = scratch / rel
            if not local.is_file():
                log.warning("%s names %s, which the trial did not write", col, local)
                continue
            target = f"{self.root}/{rel}"
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(
                str(local), target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs
            )
            out[col] = self.name_of(rel)
        return out

    def clear(self) -> None:
        """Remove earlier weights, samples and Tune files under the run's prefix (caches stay)."""
        for name in OWNED:
            path = f"{self.root}/{name}"
            if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                self.fs.delete_dir(path)


def open_storage(uri: str | None, results_dir: Path, ident: str) -> Storage:
    """The run's storage (None: the results folder), under the prefix of the folder with identity
    `ident` (bench.store.folder.identity), checked for writing when it is another root."""
    results_dir = Path(results_dir).resolve()
    store = Storage(results_dir=results_dir, uri=uri or None)
    if store.is_results_folder:
        return store
    _ = store.fs  # an unknown scheme or a bad option: one line naming the URI as given
    store = Storage(results_dir=results_dir, uri=_with_prefix(uri, folder.storage_prefix(results_dir, ident)))
    store.check()
    return store


def _with_prefix(uri: str, prefix: str) -> str:
    """`uri` with `prefix` appended to its path (its credentials and options kept)."""
    if "://" not in uri or uri.startswith("file://"):
        return str(Path(uri.removeprefix("file://")).expanduser() / prefix)
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{prefix}"))


def restart(store: Storage) -> None:
    """--restart: the results folder's earlier results, and this run's prefix in its storage."""
    folder.clear(store.results_dir)
    if not store.is_results_folder:
        store.clear()


def fetch(name: str, results_dir: Path, *, row: str = "") -> Path | None:
    """A local path to the file a row names (relative, absolute or URI); None when it is missing,
    or when it lies outside the results folder and its storage prefix (bench.store.confine: warned,
    naming `row`). Object-store files are downloaded once per process into a temporary folder."""
    try:
        if "://" not in name or name.startswith("file://"):
            path = confine.local_path(name, results_dir)
            return path if path.is_file() else None
        confine.check_uri(name, results_dir)
    except confine.Outside as exc:
        log.warning("%s names %r, refused: %s", row or "a row", name, exc)
        return None
    return _download(name)


@functools.cache
def _download(uri: str) -> Path | None:
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        local = _download_dir() / f"{abs(hash(uri)):x}" / path.rsplit("/", 1)[-1]
        local.parent.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        return local
    except (OSError, ValueError) as exc:  # unreachable store, credentials: the report says "missing"
        log.warning("cannot fetch %s: %s", uri, " ".join(str(exc).split()))
        return None


@functools.cache
def _download_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="genbench-fetch-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder
