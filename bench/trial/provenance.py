"""Where a row was measured: library versions and device, stamped once per row (by bench.trial)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json

import torch

# libraries whose versions decide the numbers on a row
VERSIONED = ("torch", "torch-fidelity", "torchvision", "ray", "accelerate", "numpy", "genbench")


def versions() -> str:
    """JSON {library: version} of the installed VERSIONED libraries (absent ones left out)."""
    found = {}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return json.dumps(found, sort_keys=True)


def device_name(device: torch.device) -> str:
    """ "cpu", or "cuda:<device name>"."""
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
