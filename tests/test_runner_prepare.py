"""The driver builds each dataset's feature extractor before trials start (no Ray needed)."""

from __future__ import annotations

from bench.metrics import extractors
from bench.run.driver import prepare_extractors
from bench.suite import load_suite

SUITE = """
name = "prep"
seeds = [0, 1]
[[datasets]]
name = "digits"
[[models]]
family = "vae"
[[models]]
family = "gan"
[[budgets]]
name = "b"
steps = 1
[eval]
classifier_steps = 20
"""


def test_extractor_is_trained_once_before_the_trials(tmp_path, monkeypatch):
    path = tmp_path / "prep.toml"
    path.write_text(SUITE)
    cells = load_suite(path).cells()
    assert len(cells) == 4  # 2 models × 2 seeds on one dataset: one extractor
    calls = []
    real = extractors.train_classifier
    monkeypatch.setattr(extractors, "train_classifier", lambda *a, **k: calls.append(1) or real(*a, **k))
    prepare_extractors(cells, tmp_path / "cache")
    assert len(calls) == 1
    # a trial's lookup is now a cache hit: nothing is trained inside the trial
    from bench.datasets import make_dataset

    ex = extractors.resolve_extractor(make_dataset("digits"), cells[0].eval, tmp_path / "cache")
    assert len(calls) == 1 and ex.hash


def test_a_dataset_that_fails_to_load_is_left_to_the_trials(tmp_path, caplog):
    path = tmp_path / "prep.toml"
    path.write_text(SUITE)
    cell = load_suite(path).cells()[0]
    broken = type(cell)(**{**cell.__dict__, "dataset": "mnist", "dataset_options": {"root": str(tmp_path)}})
    prepare_extractors([broken], tmp_path / "cache")  # logs, does not raise
    assert "no feature extractor prepared for mnist" in caplog.text
