"""Which Ray the driver runs on, and joining it with errors a user can act on.

- `--address auto|host:port|ray://host:port`, else Ray's own `RAY_ADDRESS` (which `ray job submit`
  sets for its entrypoint): that cluster.
- Neither: a private local Ray (`address="local"`), never a `ray start` cluster that happens to run
  on the machine (a bare `ray.init()` would join the latest one recorded in Ray's temp folder).

Joining fails fast and in one line: `ray.init` retries a dead address for ~20-50 s and reports only
"Failed to connect", dropping the cause (e.g. a token-authentication refusal). So before it, a TCP
probe of host:port (seconds) and one GCS request, which fails at once with Ray's own error text.
`trial_resources` sizes a trial against the cluster joined (before anything is written).
"""

from __future__ import annotations

import logging
import os
import socket

import ray
import torch

from bench.errors import ConfigError
from bench.suite.model import Suite

log = logging.getLogger(__name__)

ADDRESS_ENV = "RAY_ADDRESS"  # Ray's variable; `ray job submit` sets it for the entrypoint
PROBE_TIMEOUT_S = 5.0  # TCP connect to the cluster's address; a live head answers in milliseconds
CLIENT_PREFIX = "ray://"  # Ray Client addresses: a proxy, not the GCS


def resolve_address(address: str | None) -> str | None:
    """--address, else $RAY_ADDRESS, else None (a private local Ray)."""
    return address or os.environ.get(ADDRESS_ENV) or None


def connect(address: str | None) -> None:
    """Join `address` (see resolve_address) or start a private local Ray; ConfigError in one line."""
    if ray.is_initialized():  # tests and notebooks bring their own cluster
        return
    if not address:
        try:  # trial output stays in Ray's logs: errors reach the console through the rows
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise ConfigError(f"cannot start a local Ray ({_one_line(exc)})") from None
        return
    target = _gcs_address(address)
    _probe_tcp(address, target)
    if not address.startswith(CLIENT_PREFIX):
        _probe_gcs(address, target)
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as exc:
        raise ConfigError(f"Ray address {address}: cannot join the cluster ({_one_line(exc)})") from None
    log.info("joined the Ray cluster at %s", target)


def _gcs_address(address: str) -> str:
    """host:port behind `address`; "auto" is the cluster recorded by the latest `ray start`."""
    if address.startswith(CLIENT_PREFIX):
        return address[len(CLIENT_PREFIX) :]
    if address != "auto":
        return address
    from ray._private.services import canonicalize_bootstrap_address_or_die  # Ray's own lookup of "auto"

    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except Exception as exc:
        raise ConfigError(f"Ray address auto: no running Ray cluster found ({_one_line(exc)})") from None


def _probe_tcp(address: str, target: str) -> None:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address}: expected auto, host:port or ray://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(f"Ray address {address}: nothing answers at {target} ({_one_line(exc)})") from None


def _probe_gcs(address: str, target: str) -> None:
    """One request to the cluster's GCS: fails at once with Ray's reason (authentication, version)."""
    from ray._raylet import GcsClient  # what ray.init uses to join; raises instead of retrying

    try:
        GcsClient(address=target).internal_kv_get(b"genbench-probe", None)
    except Exception as exc:
        raise ConfigError(f"Ray address {address}: the cluster refused the connection ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    """Type: message of the exception and of its causes, whitespace folded to one line."""
    parts = []
    while exc is not None and len(parts) < 3:
        parts.append(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        exc = exc.__cause__
    return " <- ".join(parts)


def trial_resources(suite: Suite, address: str | None) -> tuple[float, float]:
    """(cpus, gpus) per trial; gpus "auto" = 1 where there is a GPU. Impossible requests fail now
    rather than leaving trials pending forever."""
    available = ray.cluster_resources()
    gpus = suite.resources.gpus_per_trial
    if gpus == "auto":
        has_gpu = available.get("GPU", 0) >= 1 if address else torch.cuda.is_available()
        gpus = 1 if has_gpu else 0
    cpus = float(suite.resources.cpus_per_trial)
    for key, need in (("CPU", cpus), ("GPU", float(gpus))):
        if need > available.get(key, 0):
            raise ConfigError(
                f"{suite.source}: resources: a trial needs {need:g} {key} but the "
                f"Ray cluster has {available.get(key, 0):g}"
            )
    log.info(
        "each trial gets %g CPU and %g GPU (cluster: %g CPU, %g GPU)",
        cpus,
        gpus,
        available.get("CPU", 0),
        available.get("GPU", 0),
    )
    return cpus, float(gpus)
