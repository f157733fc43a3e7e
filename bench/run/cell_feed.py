"""The suite's cells handed to Ray Tune one trial at a time (a Tune `Searcher`).

`tune.grid_search` over the cells deep-copies the whole search space once per variant, eagerly,
before the first trial: quadratic in the grid size (a 1 000-cell grid had started no trial after
90 s here, 10 000 cells never). `CellFeed` gives Tune the next cell when Tune asks for a trial, in
grid order, so start-up does not depend on the suite size. Resume is the row store's job, so the
feed keeps no state worth restoring: `save` records its position only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ray.tune.search import Searcher


class CellFeed(Searcher):
    """Suggests {"cell": cell_dict} for each cell once, then FINISHED."""

    def __init__(self, cells: Sequence[dict[str, Any]]):
        super().__init__()
        self.cells = cells
        self.next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if self.next >= len(self.cells):
            return Searcher.FINISHED
        self.next += 1
        return {"cell": self.cells[self.next - 1]}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # a grid has nothing to learn from results

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump({"next": self.next, "cells": len(self.cells)}, f)

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("genbench resumes from its row store, not from Tune's searcher state")
