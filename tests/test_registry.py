"""Registries and typed configs: bad registrations are rejected, bad lookups and keys give one-line
ConfigErrors naming the culprit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from bench.datasets import DATASETS, build_options, make_dataset
from bench.errors import ConfigError
from bench.hparams import build, to_dict
from bench.registry import Registry


class Base:
    pass


class A(Base):
    pass


class B(Base):
    pass


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def test_registry_registers_and_looks_up():
    reg = Registry("widget", Base)
    assert reg.register("a", A) is A
    reg.register("b", B)
    assert reg.get("a") is A and reg.names() == ["a", "b"] and list(reg) == ["a", "b"]
    assert "a" in reg and "c" not in reg and len(reg) == 2


def test_registry_rejects_duplicates_and_wrong_types():
    reg = Registry("widget", Base)
    reg.register("a", A)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", B)
    with pytest.raises(TypeError, match="must be a subclass of Base"):
        reg.register("x", int)
    with pytest.raises(TypeError, match="must be a subclass of Base"):
        reg.register("y", A())  # an instance, not a class
    with pytest.raises(TypeError, match="non-empty string"):
        reg.register("", B)
    assert reg.names() == ["a"]  # nothing half-registered


def test_registry_unknown_name_is_one_line_config_error_listing_known_names():
    reg = Registry("widget", Base)
    reg.register("a", A)
    with pytest.raises(ConfigError) as e:
        reg.get("zz")
    assert one_line(e) == "unknown widget 'zz'; known: a"
    with pytest.raises(ConfigError, match="unknown dataset '9gaussians'; known: .*8gaussians") as e:
        make_dataset("9gaussians")
    one_line(e)


@dataclass
class Hp:
    batch_size: int = 32  # test default
    lr: float = 1e-3  # test default
    sizes: tuple[int, ...] = (8, 8)  # test default
    mode: Literal["a", "b"] = "a"  # test default
    cap: int | None = None  # test default

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def test_build_fills_defaults_converts_lists_and_accepts_ints_for_floats():
    assert build(Hp, None, owner="family 'x'") == Hp()
    hp = build(Hp, {"lr": 1, "sizes": [4, 2], "mode": "b", "cap": 3}, owner="family 'x'")
    assert hp.lr == 1 and hp.sizes == (4, 2) and hp.mode == "b" and hp.cap == 3
    assert to_dict(hp) == {"batch_size": 32, "lr": 1, "sizes": (4, 2), "mode": "b", "cap": 3}


def test_build_unknown_key_names_key_owner_and_known_keys():
    with pytest.raises(ConfigError) as e:
        build(Hp, {"batch_sise": 8}, owner="family 'x'")
    msg = one_line(e)
    assert "'batch_sise'" in msg and "family 'x'" in msg and "batch_size" in msg


@pytest.mark.parametrize(
    "key, value",
    [
        ("batch_size", 8.0),
        ("batch_size", True),
        ("lr", "fast"),
        ("lr", False),
        ("sizes", [1, "2"]),
        ("mode", "c"),
        ("cap", 1.5),
    ],
)
def test_build_wrong_type_names_key_and_owner(key, value):
    with pytest.raises(ConfigError) as e:
        build(Hp, {key: value}, owner="family 'x'")
    msg = one_line(e)
    assert f"{key!r}" in msg and "family 'x'" in msg


def test_build_turns_validate_failures_into_config_errors():
    with pytest.raises(ConfigError) as e:
        build(Hp, {"batch_size": 0}, owner="family 'x'")
    assert one_line(e) == "family 'x': batch_size must be >= 1, got 0"


@pytest.mark.parametrize("name", ["8gaussians", "checkerboard", "moons", "digits", "mnist", "cifar10", "folder"])
def test_every_dataset_is_registered_and_rejects_unknown_options(name):
    assert name in DATASETS
    build_options(name)  # defaults are valid options
    with pytest.raises(ConfigError) as e:
        build_options(name, {"n_trian": 5})
    msg = one_line(e)
    assert "'n_trian'" in msg and f"dataset {name!r}" in msg


def test_every_registered_dataset_reports_its_facts_without_loading(tmp_path):
    """Validation asks each dataset class for its facts; a root-less dataset answers with an
    OptionError on `root`, the others with kind, labels and test size."""
    from bench.datasets import OptionError

    expected = {"8gaussians": 5000, "checkerboard": 5000, "moons": 5000, "digits": 360}
    for name in DATASETS.names():
        options = build_options(
            name, {"root": str(tmp_path)} if name in ("mnist", "fashion-mnist", "cifar10", "folder") else {}
        )
        if name in expected:
            facts = DATASETS.get(name).facts(options)
            assert facts.n_test == expected[name] and facts.labels
            assert make_dataset(name, options).test().shape[0] == facts.n_test  # the loader agrees
        else:
            with pytest.raises(OptionError) as info:
                DATASETS.get(name).facts(options)
            assert info.value.option == "root"
