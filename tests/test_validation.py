"""The two dataset views of tuning (bench.trial.validation), without Ray: what a tuning trial trains on and
what the validation FID measures against."""

from __future__ import annotations

import pytest
import torch

from bench.datasets import make_dataset
from bench.trial.validation import HiddenSplitError, TuningView, ValidationAsTest


@pytest.fixture(scope="module")
def toy():
    return make_dataset("8gaussians", {"n_train": 500, "n_test": 100})


def test_tuning_view_trains_on_the_rest_of_train_keeps_val_and_hides_test(toy):
    view = TuningView(toy)
    train, val = view.train(), view.val()
    assert view.spec == toy.spec and torch.equal(view.modes, toy.modes)
    assert len(train) + len(val) == len(toy.train()) and len(val) == round(toy.VAL_FRACTION * 500)
    # together the two splits are train() again, row for row (as multisets of points)
    rows = sorted(map(tuple, torch.cat([train, val]).tolist()))
    assert rows == sorted(map(tuple, toy.train().tolist()))
    assert view.train_labels() is None  # the base's labels would not line up with tuning_train()
    with pytest.raises(HiddenSplitError):
        view.test()


@pytest.mark.parametrize("name", ["8gaussians", "digits"])
def test_validation_as_test_measures_against_val_with_the_full_training_split(name):
    base = make_dataset(name, {"n_train": 500, "n_test": 100} if name == "8gaussians" else None)
    view = ValidationAsTest(base)
    assert view.spec == base.spec and torch.equal(view.train(), base.train())
    assert torch.equal(view.train_labels(), base.train_labels()) and torch.equal(view.val(), base.val())
    test, labels = view.test(), view.test_labels()
    assert torch.equal(test, base.val()) and len(labels) == len(test)
    # every (example, label) pair of the view's test split is a (training example, its label) pair
    label_of = {x.numpy().tobytes(): int(y) for x, y in zip(base.train(), base.train_labels())}
    assert [label_of[x.numpy().tobytes()] for x in test] == labels.tolist()
    if name == "8gaussians":
        assert torch.equal(view.modes, base.modes)
    else:
        assert view.modes is None
