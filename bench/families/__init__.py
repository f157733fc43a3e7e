"""Family registry. Adding a family: one new module here and one `FAMILIES.register` line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.datasets.base import DataSpec
from bench.families.base import Family
from bench.families.copy import Copy
from bench.families.ddpm import DDPM
from bench.families.flow import RealNVP
from bench.families.flowmatch import FlowMatching
from bench.families.gan import GAN
from bench.families.gmm import GMM
from bench.families.vae import VAE
from bench.hparams import build
from bench.registry import Registry

FAMILIES: Registry[Family] = Registry("family", Family)
FAMILIES.register("gan", GAN)
FAMILIES.register("vae", VAE)
FAMILIES.register("flow", RealNVP)
FAMILIES.register("ddpm", DDPM)
FAMILIES.register("flowmatch", FlowMatching)
# baselines: the bounds every comparison is read against (a memoriser, a classical density model)
FAMILIES.register("copy", Copy)
FAMILIES.register("gmm", GMM)


def build_hparams(name: str, hparams: Mapping[str, Any] | None = None):
    """Checked hyper-parameter dataclass for family `name` (unknown keys raise ConfigError)."""
    return build(FAMILIES.get(name).Hparams, hparams, owner=f"family {name!r}")


def make_family(name: str, spec: DataSpec, hparams: Any = None) -> Family:
    """Build family `name` for data `spec` from its built Hparams (as a Cell carries them) or a plain
    mapping; seed torch before calling for reproducible init."""
    cls = FAMILIES.get(name)
    return cls(spec, hparams if isinstance(hparams, cls.Hparams) else build_hparams(name, hparams))


__all__ = ["FAMILIES", "Family", "build_hparams", "make_family"]
