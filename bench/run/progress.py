"""The driver's progress display: one bar over the suite's work, per running trial step / budget and
main loss, and a clock that keeps ticking while trials train.

The bar counts work, not trials: each trial weighs its budget (steps; seconds for a time-only
budget), and a running trial counts with the part of its budget it has reported (the larger of
step / budget_steps and train_s / budget_s: training ends at whichever is reached first). The ETA
is tqdm's: remaining work over the average rate since the start (smoothing off), so a suite with one
long trial among short ones is not estimated as a plain average over trials.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any, TextIO

from tqdm.auto import tqdm

REDRAW_S = 1.0  # the clock's tick: redraw at least this often while trials run
SHOWN_TRIALS = 4  # running trials named on the status line; the rest are counted
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}"  # tqdm adds ", "


class ProgressBar:
    """Feed it trials' budgets, their reports and their ends; it draws (lazily, on first use)."""

    def __init__(
        self, budgets: dict[str, tuple[int | None, float | None]], names: dict[str, str], file: TextIO | None = None
    ):
        self.budgets = budgets  # trial_id -> (steps, seconds) of its budget
        self.names = names  # trial_id -> display name
        self.file = file  # None: stderr
        self.weight = {tid: _weight(*b) for tid, b in budgets.items()}
        self.reports: dict[str, dict[str, Any]] = {}  # running trial -> its latest report
        self.finished: Counter = Counter()  # status -> count
        self.done: set[str] = set()
        self.waiting = 0  # trials Tune has not started yet
        self._bar = None
        self._drawn_at = -math.inf

    def __getstate__(self):  # Tune pickles its callbacks with the experiment; a bar holds a stream
        return {**self.__dict__, "_bar": None, "file": None}

    @property
    def bar(self):
        if self._bar is None:
            total = sum(self.weight.values()) or 1.0
            self._bar = tqdm(
                total=total, desc="suite", bar_format=BAR_FORMAT, smoothing=0, dynamic_ncols=True, file=self.file
            )
        return self._bar

    def report(self, trial_id: str, metrics: dict[str, Any]) -> None:
        """An intermediate report of a running trial (keys step, budget_steps, train_s, loss)."""
        self.reports[trial_id] = metrics
        self._draw()

    def finish(self, trial_id: str, status: str, message: str) -> None:
        self.reports.pop(trial_id, None)
        if trial_id not in self.done:
            self.done.add(trial_id)
            self.finished[status] += 1
        self.bar.write(message, file=self.file)  # None: stdout, as tqdm does
        self._draw()

    def pending(self, waiting: int) -> None:
        self.waiting = waiting

    def tick(self) -> None:
        """Called often by the driver's loop; redraws once the clock has moved a tick."""
        if time.monotonic() - self._drawn_at >= REDRAW_S:
            self._draw()

    def work_done(self) -> float:
        finished = sum(self.weight[t] for t in self.done)
        return finished + sum(self.weight[t] * self.fraction(t) for t in self.reports)

    def fraction(self, trial_id: str) -> float:
        """Part of the trial's budget it has trained, in [0, 1], from its latest report."""
        steps, seconds = self.budgets[trial_id]
        m = self.reports.get(trial_id, {})
        parts = []
        if steps and m.get("step") is not None:
            parts.append(m["step"] / steps)
        if seconds and m.get("train_s") is not None:
            parts.append(m["train_s"] / seconds)
        return min(1.0, max(parts, default=0.0))

    def status_line(self) -> str:
        counts = [f"{len(self.done)}/{len(self.budgets)} done"]
        counts += [f"{n} {s}" for s, n in sorted(self.finished.items()) if s != "ok"]
        counts += [f"{len(self.reports)} running", f"{self.waiting} pending"]
        trials = [self._trial_text(t) for t in sorted(self.reports, key=lambda t: self.names.get(t, t))]
        if len(trials) > SHOWN_TRIALS:
            trials = [*trials[:SHOWN_TRIALS], f"+{len(trials) - SHOWN_TRIALS} more"]
        return " | ".join([", ".join(counts), *trials])

    def _trial_text(self, trial_id: str) -> str:
        m = self.reports[trial_id]
        steps, _ = self.budgets[trial_id]
        step = m.get("step")
        where = (
            f"{step}/{steps}" if steps else f"{step} steps, {m.get('train_s', 0):.0f}s/{self.budgets[trial_id][1]:g}s"
        )
        loss = m.get("loss")
        loss_text = f" loss {loss:.4g}" if isinstance(loss, (int, float)) and math.isfinite(loss) else ""
        return f"{self.names.get(trial_id, trial_id)} {where}{loss_text}"

    def _draw(self) -> None:
        bar = self.bar
        bar.n = self.work_done()
        bar.set_postfix_str(self.status_line(), refresh=False)
        bar.refresh()
        self._drawn_at = time.monotonic()

    def close(self) -> None:
        if self._bar is not None:
            self._draw()
            self._bar.close()


def _weight(steps: int | None, seconds: float | None) -> float:
    """A trial's share of the suite's work: its budget (steps; seconds for a time-only budget)."""
    return float(steps if steps else seconds or 1.0)
