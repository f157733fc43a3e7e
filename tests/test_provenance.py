"""Row provenance: one function for library versions, one for the device name."""

from __future__ import annotations

import importlib.metadata
import json

import torch

from bench.trial.provenance import device_name, versions


def test_versions_are_the_installed_ones_and_device_names_cpu():
    found = json.loads(versions())
    assert found["torch"] == importlib.metadata.version("torch")
    assert found["torch-fidelity"] == importlib.metadata.version("torch-fidelity")
    assert device_name(torch.device("cpu")) == "cpu"
