"""SIGINT (Ctrl-C) and SIGTERM (SLURM, Kubernetes) during `run`: a clean stop, exit 130 / 143.

`StopOnSignal` (a context manager, main thread only) installs the handlers; the CLI wraps `run`
in it. While Ray Tune runs the trials (`graceful()`), the first signal only sets `signum`: the
Tune stopper `SignalStop` then ends the experiment (running trials are stopped, none is started),
the driver writes the tables from rows/ and exits 128 + signal number. Outside that phase (start-
up, the final tables) the first signal raises `Interrupted` at once: there is nothing to wind down.
A second signal, at any later moment (Ray's shutdown at exit included), exits at once: the
processes this driver started (a private local Ray) are killed and the driver leaves with os._exit.
Every finished row is already on disk (atomic files); the next run rebuilds the tables from rows/.

Ray's `ray.init` installs its own SIGTERM handler (exit 15 with a C++ stack dump), so `graceful()`
re-installs ours after Ray has started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

import psutil
from ray import tune

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal outside the trial phase; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class StopOnSignal:
    """SIGINT/SIGTERM handlers for one run; `signum` is the first signal received (None: none)."""

    def __init__(self):
        self.signum: int | None = None
        self._graceful = False  # inside graceful(): let Ray Tune wind the trials down
        self._previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def __enter__(self) -> StopOnSignal:
        self._previous = {s: signal.getsignal(s) for s in SIGNALS}
        self._install()
        return self

    def __exit__(self, *exc) -> None:
        if self.signum is not None:  # interrupted: keep ours, so that a second signal during
            return  # Ray's shutdown at exit still exits at once
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @contextlib.contextmanager
    def graceful(self) -> Iterator[None]:
        """The trial phase: the first signal asks SignalStop to end the experiment."""
        self._install()  # after ray.init, which replaced the SIGTERM handler
        self._graceful = True
        try:
            yield
        finally:
            self._graceful = False

    def _install(self) -> None:
        for s in SIGNALS:
            signal.signal(s, self._handle)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:  # the second signal: leave now, rows are safe on disk
            sys.stderr.write(f"genbench: {name} again: exiting at once (the next run rebuilds the tables)\n")
            sys.stderr.flush()
            _kill_descendants()
            os._exit(128 + signum)
        self.signum = signum
        if not self._graceful:
            raise Interrupted(signum)
        log.warning("%s: stopping the running trials (finished rows are kept); %s again exits at once", name, name)


def _kill_descendants() -> None:
    """SIGKILL every process this one started (a private Ray: GCS, raylet, agents, workers);
    a cluster joined with --address runs its processes elsewhere and is not touched."""
    try:
        children = psutil.Process().children(recursive=True)  # listed before any of them dies
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


class SignalStop(tune.Stopper):
    """Ray Tune stopper: ends the whole experiment once a stop signal arrived."""

    def __init__(self, stop: StopOnSignal):
        self.stop = stop

    def __getstate__(self):  # Tune pickles the run config; the handlers stay in this process
        return {"stop": None}

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.stop is not None and self.stop.signum is not None
