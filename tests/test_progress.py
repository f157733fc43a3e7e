"""The driver's progress display (no Ray): budget-weighted work, per-trial status, a ticking clock."""

from __future__ import annotations

import io

import pytest

from bench.run import progress
from bench.run.progress import ProgressBar


def _display(budgets):
    out = io.StringIO()
    bar = ProgressBar(budgets, {t: f"name-{t}" for t in budgets}, file=out)
    return bar, out


def test_work_is_weighted_by_each_trials_budget_not_averaged_over_trials():
    bar, _ = _display({"a": (100, None), "b": (900, None)})
    bar.report("a", {"step": 50, "budget_steps": 100, "train_s": 1.0, "loss": 2.0})
    assert bar.work_done() == pytest.approx(50.0)
    bar.finish("a", "ok", "ok a")
    bar.report("b", {"step": 450, "budget_steps": 900, "train_s": 9.0, "loss": 1.0})
    # 100 + 450 of 1000 budget steps: 55 %; a plain average over trials would say (1 + 0.5) / 2 = 75 %
    assert bar.work_done() / bar.bar.total == pytest.approx(0.55)
    assert bar.bar.n == pytest.approx(550.0)


def test_a_time_budget_counts_by_train_seconds_and_the_first_reached_limit_wins():
    bar, _ = _display({"t": (None, 60.0), "both": (1000, 10.0)})
    bar.report("t", {"step": 7, "budget_steps": None, "train_s": 15.0, "loss": 0.5})
    assert bar.fraction("t") == pytest.approx(0.25)
    bar.report("both", {"step": 100, "budget_steps": 1000, "train_s": 5.0, "loss": 0.5})
    assert bar.fraction("both") == pytest.approx(0.5)  # half the seconds before a tenth of the steps


def test_the_status_line_shows_each_running_trials_step_budget_and_loss():
    bar, out = _display({"a": (100, None), "b": (200, None), "c": (300, None)})
    bar.pending(1)
    bar.report("a", {"step": 20, "budget_steps": 100, "train_s": 1.0, "loss": 1.23456})
    bar.report("b", {"step": 40, "budget_steps": 200, "train_s": 2.0, "loss": float("nan")})
    line = bar.status_line()
    assert "0/3 done" in line and "2 running" in line and "1 pending" in line
    assert "name-a 20/100 loss 1.235" in line and "name-b 40/200" in line and "name-b 40/200 loss" not in line
    bar.finish("a", "failed", "failed name-a: boom")
    assert "1 failed" in bar.status_line() and "name-a 20/100" not in bar.status_line()
    assert "failed name-a: boom" in out.getvalue()


def test_the_clock_keeps_ticking_while_no_trial_reports(monkeypatch):
    bar, out = _display({"a": (100, None)})
    bar.report("a", {"step": 1, "budget_steps": 100, "train_s": 0.1, "loss": 1.0})
    start = bar.bar.start_t
    bar.bar._time = lambda: start + 125.0  # tqdm's clock: 2 min 5 s later, no report in between
    now = progress.time.monotonic()
    monkeypatch.setattr(progress.time, "monotonic", lambda: now + 0.1)
    drawn = len(out.getvalue())
    bar.tick()  # within the tick: no redraw
    assert len(out.getvalue()) == drawn
    monkeypatch.setattr(progress.time, "monotonic", lambda: now + progress.REDRAW_S + 0.1)
    bar.tick()
    assert "02:05" in out.getvalue()[drawn:]
