"""bench.run.signals without Ray running: which signal does what, and the handlers are put back."""

from __future__ import annotations

import os
import signal

import pytest

from bench.run.signals import Interrupted, SignalStop, StopOnSignal


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_outside_the_trials_interrupts_at_once_with_128_plus_its_number(sig, code):
    before = signal.getsignal(sig)
    try:
        with pytest.raises(Interrupted) as info, StopOnSignal() as stop:
            os.kill(os.getpid(), sig)
            signal.sigtimedwait([], 0)  # let Python run the handler here
        assert info.value.exit_code == code and stop.signum == sig and stop.exit_code == code
        assert signal.getsignal(sig) is not before  # interrupted: ours stay, a second signal exits at once
    finally:
        signal.signal(sig, before)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_during_the_trials_a_signal_asks_tune_to_stop(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stopper = None
    try:
        with StopOnSignal() as stop:
            stopper = SignalStop(stop)
            with stop.graceful():
                assert not stopper.stop_all()
                os.kill(os.getpid(), sig)  # no exception: Tune winds the trials down
                signal.sigtimedwait([], 0)
                assert stopper.stop_all() and not stopper("trial", {})
            assert stop.exit_code == 128 + sig
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_handlers_are_restored_after_a_run_without_signals():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopOnSignal() as stop:
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert stop.signum is None and {s: signal.getsignal(s) for s in before} == before
