"""The suite language's reference: every key with type, default and its source comment, printed by
`genbench list --hparams/--options` and kept in docs/running.md (generated, checked for drift)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench import cli
from bench.datasets import DATASETS
from bench.families import FAMILIES
from bench.hparams import field_docs
from bench.metrics.config import EvalConfig
from bench.suite import reference

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Base:
    # a comment block above a field
    # over two lines
    ema: float = 0.5


@dataclasses.dataclass
class Example(Base):
    width: int = 32  # channels of the conv net
    betas: tuple[float, float] = (0.5, 0.9)  # Adam betas; β1 = 0.5
    names: tuple[str, ...] = dataclasses.field(default_factory=tuple)  # a factory default
    root: str = ""


def test_field_docs_read_types_defaults_and_the_comments_of_the_source():
    docs = {d.name: d for d in field_docs(Example)}
    assert list(docs) == ["ema", "width", "betas", "names", "root"]  # inherited fields first
    assert docs["ema"].comment == "a comment block above a field over two lines"
    assert (docs["width"].type, docs["width"].default, docs["width"].comment) == (
        "int",
        "32",
        "channels of the conv net",
    )
    assert docs["betas"].type == "tuple[float, float]" and docs["betas"].default == "(0.5, 0.9)"
    assert docs["betas"].comment == "Adam betas; β1 = 0.5"
    assert docs["names"].default == "()" and docs["names"].comment == "a factory default"
    assert docs["root"].comment == ""


def test_every_key_of_every_family_dataset_and_eval_is_documented():
    """The house style: a comment on each default. A field without one fails here by name."""
    owners = [EvalConfig, *(FAMILIES.get(n).Hparams for n in FAMILIES.names())]
    owners += [DATASETS.get(n).Options for n in DATASETS.names()]
    undocumented = [f"{o.__qualname__}.{d.name}" for o in owners for d in field_docs(o) if not d.comment]
    assert undocumented == []


def test_the_docs_hold_the_generated_reference():
    """docs/running.md's block equals what the dataclasses say now (regenerate with
    `python -m bench.suite.reference docs/running.md`)."""
    text = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    start, end = text.index(reference.BEGIN), text.index(reference.END) + len(reference.END)
    assert text[start:end] == reference.markdown()


def test_list_prints_one_familys_hparams_and_one_datasets_options(capsys):
    assert cli.main(["list", "--hparams", "gan", "--options", "8gaussians"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "family 'gan': hparams" and out[1].split() == ["key", "type", "default", "comment"]
    lr = next(line for line in out if line.startswith("lr "))
    assert lr.split()[:3] == ["lr", "float", repr(FAMILIES.get("gan").Hparams().lr)]
    assert "dataset '8gaussians': options" in out and any(line.startswith("n_train ") for line in out)


@pytest.mark.parametrize("args", [["--hparams", "gn"], ["--options", "nope"]])
def test_an_unknown_name_is_one_line_exit_2(capsys, args):
    assert cli.main(["list", *args]) == cli.EXIT_INVALID
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "known:" in captured.err
