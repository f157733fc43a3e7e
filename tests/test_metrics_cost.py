"""Training cost (TrainMonitor) and sampling cost (samples/s, cost vs steps) on timed fakes."""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import pytest
import torch
from metrics_fakes import GaussianFamily, RingPoints, SleepySampler

from bench.metrics import TrainMonitor, speed

SPEC = RingPoints(n_train=10, n_test=10).spec


def family():
    return GaussianFamily(SPEC, torch.zeros(2), 1.0)


# --- TrainMonitor ---------------------------------------------------------------------------------
def test_divergence_is_reported_at_the_first_non_finite_loss():
    mon = TrainMonitor(family(), "cpu", batch_size=8)
    mon.start()
    reasons = [mon.step(s, {"loss": float("nan") if s in (7, 9) else 1.0, "aux": 0.5}) for s in range(12)]
    mon.stop()
    assert reasons[:7] == [None] * 7 and "loss" in reasons[7]
    out = mon.summary()
    assert out["diverged_step"] == 7 and out["train_steps"] == 12
    assert json.loads(out["loss_curve"])["loss"][7] == [7, None]  # NaN is null in JSON


def test_no_divergence_gives_minus_one():
    mon = TrainMonitor(family(), "cpu", batch_size=8)
    mon.start()
    for s in range(5):
        assert mon.step(s, {"loss": 1.0}) is None
    mon.stop()
    assert mon.summary()["diverged_step"] == -1


def test_paused_time_is_excluded_from_train_time():
    mon = TrainMonitor(family(), "cpu", batch_size=10)
    mon.start()
    time.sleep(0.2)
    mon.step(0, {"loss": 1.0})
    with mon.paused():
        time.sleep(0.5)
    mon.step(1, {"loss": 1.0})
    mon.stop()
    out = mon.summary()
    assert 0.19 <= out["train_s"] < 0.4  # the 0.5 s pause is not in it
    assert out["examples_per_s"] == pytest.approx(2 * 10 / out["train_s"])


def test_loss_curve_is_downsampled_to_max_points_keeping_ends_and_values():
    mon = TrainMonitor(family(), "cpu", batch_size=1, max_points=300)
    mon.start()
    for s in range(1000):
        mon.step(s, {"loss": float(s), "d_loss": float(-s)})
    mon.stop()
    curve = json.loads(mon.summary()["loss_curve"])
    assert set(curve) == {"loss", "d_loss"}
    for name, sign in (("loss", 1), ("d_loss", -1)):
        pts = curve[name]
        assert 250 <= len(pts) <= 300
        assert pts[0] == [0, 0.0] and pts[-1] == [999, sign * 999.0]
        assert all(v == sign * s for s, v in pts)  # each point is the recorded value at its step
    short = TrainMonitor(family(), "cpu", batch_size=1)
    short.start()
    for s in range(10):
        short.step(s, {"loss": 1.0})
    assert len(json.loads(short.summary()["loss_curve"])["loss"]) == 10  # nothing dropped when short


def _oscillation(values: list[float]) -> float:
    mon = TrainMonitor(family(), "cpu", batch_size=1)
    mon.start()
    for s, v in enumerate(values):
        mon.step(s, {"loss": v})
    return mon.summary()["loss_oscillation"]


def test_loss_oscillation_is_tail_step_noise_over_the_runs_spread():
    # first half: a linear descent 100 -> 2; last half alternates 1, 3: differences ±2, std 2
    values = [100.0 - 2 * s for s in range(50)] + [1.0 if s % 2 else 3.0 for s in range(50)]
    lo, hi = np.percentile(values, [5, 95])
    assert _oscillation(values) == pytest.approx(np.diff(values[50:]).std() / (hi - lo))  # ≈ 2 / (hi − lo)
    # white noise around a constant: std(diff) / (q95 − q5) = √2σ / (2·1.645σ) ≈ 0.43
    noise = np.random.default_rng(0).standard_normal(20_000)
    assert _oscillation(list(noise)) == pytest.approx(math.sqrt(2) / (2 * 1.6449), rel=0.03)


@pytest.mark.parametrize("offset", [-1e3, 133.0, 1e4])
def test_adding_a_constant_or_a_scale_to_the_loss_changes_nothing(offset):
    """The flow's NLL carries −D·log Δ, the GAN's loss_d sits at 2 log 2: constants must not matter."""
    values = list(5 * np.exp(-np.arange(400) / 50) + 0.1 * np.random.default_rng(1).standard_normal(400))
    base = _oscillation(values)
    assert _oscillation([v + offset for v in values]) == pytest.approx(base, rel=1e-6)
    assert _oscillation([7.0 * v for v in values]) == pytest.approx(base, rel=1e-9)


def test_peak_memory_sees_an_allocation_held_during_training():
    mon = TrainMonitor(family(), "cpu", batch_size=1)
    mon.start()
    block = torch.ones(64 * 2**20)  # 64 Mi float32 = 256 MiB, written so it is resident
    for s in range(60):  # crosses an RSS poll while the block is alive
        mon.step(s, {"loss": 1.0})
    del block
    mon.stop()
    assert mon.summary()["train_mem_growth_mb"] >= 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_process_peak_sees_a_freed_allocation_and_resets():
    """The peak keeps a 256 MiB block after it is freed; a reset (next trial in a reused worker)
    forgets it, so trials do not inherit each other's peaks."""
    from bench.metrics.cost import process_peak_mb, reset_process_peak

    reset_process_peak("cpu")
    before = process_peak_mb("cpu")
    block = torch.ones(64 * 2**20)  # 256 MiB, written so it is resident
    del block  # large blocks go back to the OS on free
    peak = process_peak_mb("cpu")
    assert peak >= before + 200
    reset_process_peak("cpu")
    assert process_peak_mb("cpu") < peak - 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="smaps_rollup is Linux-only")
def test_unique_memory_is_psutils_uss_and_counts_private_pages_only():
    """USS against psutil's (the reference); a private 256 MiB block adds to it; it never exceeds
    RSS, which also counts the shared library pages."""
    import psutil

    from bench.metrics.cost import process_unique_mb

    assert process_unique_mb() == pytest.approx(psutil.Process().memory_full_info().uss / 2**20, abs=2)
    before = process_unique_mb()
    block = torch.ones(64 * 2**20)  # 256 MiB, written so it is resident
    assert process_unique_mb() >= before + 250
    rss = psutil.Process().memory_info().rss / 2**20
    assert process_unique_mb() <= rss
    del block


# --- sampling speed -------------------------------------------------------------------------------
class LaunchBoundSampler:
    """sample(b) takes `launch` + `per_sample`·b virtual seconds (× a per-call jitter), of which a
    per-batch share is CPU time; the first call at each batch size costs 1 s more (a warm-up)."""

    def __init__(self, launch=0.01, per_sample=None, cpu_share=None, jitter=(1.0, 1.1, 0.9, 1.2, 1.0)):
        self.launch, self.per_sample, self.cpu_share = launch, per_sample or {}, cpu_share or {}
        self.jitter, self.wall, self.cpu, self.calls = jitter, 0.0, 0.0, []

    def seconds(self, b: int, k: int) -> float:
        return (self.launch + self.per_sample.get(b, 1e-4) * b) * self.jitter[k % len(self.jitter)]

    def sample(self, b: int):
        warm = b not in self.calls
        k = self.calls.count(b) - 1  # index of the timed repeat at this batch
        self.calls.append(b)
        seconds = 1.0 if warm else self.seconds(b, k)
        self.wall += seconds
        self.cpu += seconds * self.cpu_share.get(b, 1.0)
        return torch.zeros(b, 2)

    @property
    def clocks(self):
        return (lambda: self.wall, lambda: self.cpu)


SWEEP = dict(per_sample={10: 1e-4, 100: 1e-4, 1000: 2e-4}, cpu_share={10: 1.0, 100: 1.0, 1000: 0.3})


def test_sweep_keeps_the_best_batch_by_the_cpu_clock_with_median_and_spread():
    """Wall clock: batch 100 is best (launch-bound at 10, slower per sample at 1000); CPU time: 1000
    is (it waits 70 % of its wall time). On a CPU the CPU clock decides; each repeat is timed alone."""
    s = LaunchBoundSampler(**SWEEP)
    got = speed.sweep(s.sample, [1000, 10, 100, 100], 5, torch.device("cpu"), clocks=s.clocks)
    assert s.calls == [10] * 6 + [100] * 6 + [1000] * 6  # ascending, distinct, one untimed warm-up each
    assert got.clock == "cpu" and got.batch == 1000
    call = 0.01 + 2e-4 * 1000  # the median jitter is 1.0
    assert got.samples_per_s == pytest.approx(1000 / call, rel=1e-9)
    assert got.samples_per_cpu_s == pytest.approx(1000 / (0.3 * call), rel=1e-9)
    assert got.spread == pytest.approx((1 / 0.9 - 1 / 1.2) / 1.0, rel=1e-9)  # (max − min) / median
    assert got.columns()["speed_batch"] == 1000 and got.columns()["speed_clock"] == "cpu"


def test_on_an_accelerator_the_wall_clock_decides():
    s = LaunchBoundSampler(**SWEEP)
    got = speed.sweep(s.sample, [10, 100, 1000], 5, torch.device("meta"), clocks=s.clocks)  # not a CPU
    assert got.clock == "wall" and got.batch == 100
    assert got.samples_per_s == pytest.approx(100 / (0.01 + 1e-4 * 100), rel=1e-9) == got.rate
    assert speed.deciding_clock(torch.device("cuda")) == "wall" and speed.deciding_clock(torch.device("cpu")) == "cpu"


def test_sweep_stops_before_a_batch_predicted_over_the_budget():
    s = LaunchBoundSampler(**SWEEP)
    # at 100 a call takes 0.02 s: batch 1000 is predicted at 6 × 0.2 = 1.2 s
    got = speed.sweep(s.sample, [10, 100, 1000], 5, torch.device("cpu"), budget_s=1.0, clocks=s.clocks)
    assert s.calls == [10] * 6 + [100] * 6 and got.batch == 100
    # predicted on the deciding clock: a sampler that waits 90 % of its wall time costs 0.12 CPU-s at 1000
    waiting = LaunchBoundSampler(per_sample=SWEEP["per_sample"], cpu_share={10: 1.0, 100: 0.1, 1000: 0.1})
    speed.sweep(waiting.sample, [10, 100, 1000], 5, torch.device("cpu"), budget_s=1.0, clocks=waiting.clocks)
    assert waiting.calls[-6:] == [1000] * 6
    with pytest.raises(ValueError):
        speed.sweep(s.sample, [], 5, torch.device("cpu"), clocks=s.clocks)


def test_the_evaluation_draw_supplies_the_first_repeats_of_its_batch():
    s = LaunchBoundSampler(**SWEEP)
    x, drawn = speed.timed_draw(s.sample, 350, 100, torch.device("cpu"), clocks=s.clocks)
    assert x.shape == (350, 2) and s.calls == [100, 100, 100, 50]
    assert drawn.batch == 100 and drawn.wall_s == pytest.approx((0.02, 0.022))  # not the warm-up, not the 50
    got = speed.sweep(s.sample, [10, 100], 5, torch.device("cpu"), drawn=drawn, clocks=s.clocks)
    assert s.calls[4:] == [10] * 6 + [100] * 3  # 2 drawn + 3 new repeats at 100, no second warm-up
    assert got.batch == 100 and got.samples_per_s == pytest.approx(100 / 0.02, rel=1e-9)
    assert got.spread == pytest.approx(1 / 0.9 - 1 / 1.2, rel=1e-9)  # all five jitters, as without the draw
    assert speed.timed_draw(s.sample, 30, 100, torch.device("cpu"), clocks=s.clocks)[1] is None  # no full batch


def test_a_batch_out_of_device_memory_ends_the_sweep():
    s = LaunchBoundSampler(**SWEEP)

    def sample(b):
        if b >= 1000:
            raise torch.OutOfMemoryError("no room")
        return s.sample(b)

    got = speed.sweep(sample, [10, 100, 1000, 4000], 5, torch.device("cpu"), clocks=s.clocks)
    assert got.batch == 100 and s.calls == [10] * 6 + [100] * 6
    with pytest.raises(torch.OutOfMemoryError):  # nothing fits: the trial fails, as it would have
        speed.sweep(sample, [1000], 5, torch.device("cpu"), clocks=s.clocks)


def test_sampling_cost_grows_linearly_with_steps():
    sampler = SleepySampler(SPEC, per_step=0.004, T=50)
    per_batch = {}
    for steps in speed.steps_grid((5, 20, 80), sampler.sampling_steps()):
        timing = speed.time_batch(
            lambda b, s=steps: sampler.sample(b, steps=s),
            10,
            2,
            torch.device("cpu"),
            warmup=False,
            clocks=(sampler.clock, sampler.clock),
        )
        per_batch[steps] = 10 / speed.summarize(timing, "wall").samples_per_s
    assert sorted(per_batch) == [5, 20, 50]  # 80 > T dropped, T added
    for steps, seconds in per_batch.items():
        assert seconds == pytest.approx(0.004 * steps, rel=1e-9)
    assert math.isclose(per_batch[50] / per_batch[5], 10, rel_tol=1e-9)


def test_flops_of_an_mlp_sampler_are_two_in_out_per_linear_layer():
    from bench.metrics.evaluate import flops_per_sample
    from bench.metrics.flops import flops_of

    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    closed_form = 2 * (4 * 16 + 16 * 3)  # one multiply-add per weight per example

    def sample(b):
        return net(torch.randn(b, 4))

    assert flops_of(lambda: sample(50)) == pytest.approx(50 * closed_form, rel=0.01)
    assert flops_per_sample(sample) == pytest.approx(closed_form, rel=0.01)
    conv = torch.nn.Conv2d(1, 2, 3)  # 2 · (1·3·3) per output pixel and channel, 6×6 outputs
    assert flops_of(lambda: conv(torch.zeros(1, 1, 8, 8))) == pytest.approx(2 * 9 * 2 * 36, rel=0.01)


def test_draw_returns_exactly_n_normal_tensors():
    sampler = SleepySampler(SPEC)
    x = speed.draw(lambda b: sampler.sample(b), 23, 10)
    assert x.shape == (23, 2) and not x.is_inference()
    assert [n for n, _ in sampler.calls] == [10, 10, 3]


class VirtualClocks:
    """(wall, CPU) clocks a test advances by hand."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def tick(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def test_a_stopped_process_is_a_stall_not_training_time():
    """100 steps of 10 ms (CPU busy), then one step across a 77 s stop (no CPU time), then 100 more:
    stalled_s is the stop minus a typical step and train_s leaves it out. A slow step that computes
    (CPU time growing with wall time) is training, however long."""
    c = VirtualClocks()
    mon = TrainMonitor(family(), "cpu", batch_size=1, clocks=(lambda: c.wall, lambda: c.cpu))
    mon.start()
    for i in range(201):
        c.tick(77.01, 0.01) if i == 100 else c.tick(0.01, 0.01)
        mon.step(i, {"loss": 1.0})
    c.tick(5.0, 5.0)  # a slow step that computes
    mon.step(201, {"loss": 1.0})
    mon.stop()
    summary = mon.summary()
    assert summary["stalled_s"] == pytest.approx(77.0, abs=1e-6)
    assert summary["train_s"] == pytest.approx(200 * 0.01 + 0.01 + 5.0, abs=1e-6)
    state = mon.state_dict()
    resumed = TrainMonitor(family(), "cpu", batch_size=1)
    resumed.load_state_dict(state)
    assert resumed.summary()["stalled_s"] == pytest.approx(77.0, abs=1e-6)  # carried over a resume


STOPPED_CHILD = """
import sys, time, torch
from metrics_fakes import GaussianFamily
from bench.metrics import TrainMonitor
mon = TrainMonitor(GaussianFamily.__new__(GaussianFamily), "cpu", batch_size=1)
mon.family.check_divergence = lambda losses: None
x = torch.randn(128, 128)
mon.start()
print("go", flush=True)
t0, i = time.perf_counter(), 0
while time.perf_counter() - t0 < 4.0:
    for _ in range(20):
        x = torch.tanh(x @ x.T / 128)  # real CPU work per step
    mon.step(i, {"loss": float(x[0, 0])})
    i += 1
mon.stop()
print(mon.stalled_s, mon.train_s, flush=True)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="SIGSTOP/SIGCONT on Linux")
def test_a_sigstopped_training_process_is_flagged_and_its_stop_is_not_train_time(tmp_path):
    import os
    import signal
    import subprocess
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": f"{tests}{os.pathsep}{tests.parent}", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", STOPPED_CHILD], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "go"
    time.sleep(1.0)
    child.send_signal(signal.SIGSTOP)
    time.sleep(2.5)
    child.send_signal(signal.SIGCONT)
    stalled, train = map(float, child.stdout.readline().split())
    assert child.wait(timeout=60) == 0
    assert 2.0 < stalled < 3.0, stalled  # the stop, less about one step
    assert train < 4.0 - 2.0, train  # 4 s of wall clock, 2.5 s of it stopped
