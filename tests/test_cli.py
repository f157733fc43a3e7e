"""The command line: `list`, `--help` on every command, `report` without a results folder. No Ray."""

from __future__ import annotations

import re

import pytest

from bench import cli
from bench.datasets import DATASETS
from bench.families import FAMILIES


def test_list_shows_families_with_estimator_and_datasets_with_shape_and_unit(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    # (points, images): flow and gmm train on dequantized images, so their image NLL is a bound
    estimators = {
        "gan": ("none", "none"),
        "vae": ("iwae", "iwae"),
        "flow": ("exact", "dequantized"),
        "ddpm": ("vlb", "vlb"),
        "copy": ("none", "none"),
        "gmm": ("exact", "dequantized"),
    }
    for name, (points, images) in estimators.items():  # known answers for the shipped families
        assert re.search(rf"^\s+{name}\s+points:\s+{points}\s+image:\s+{images}\s", out, re.M), name
    for name in FAMILIES.names():  # and a line for every registered one
        assert re.search(rf"^\s+{re.escape(name)}\s+points:", out, re.M), name
    expected = {
        "8gaussians": ("(2,)", "nats"),
        "checkerboard": ("(2,)", "nats"),
        "moons": ("(2,)", "nats"),
        "digits": ("(1, 8, 8)", "bits_per_dim"),
        "mnist": ("(1, 28, 28)", "bits_per_dim"),
        "fashion-mnist": ("(1, 28, 28)", "bits_per_dim"),
        "cifar10": ("(3, 32, 32)", "bits_per_dim"),
        "folder": ("(3, 32, 32)", "bits_per_dim"),
    }
    assert set(expected) == set(DATASETS.names())
    for name, (shape, unit) in expected.items():
        assert re.search(rf"^\s+{name}\s+{re.escape(shape)}\s+{unit}", out, re.M), name


@pytest.mark.parametrize("command", [[], ["validate"], ["run"], ["list"], ["report"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: genbench" in capsys.readouterr().out


def test_run_options_resume_and_restart_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "s.toml", "--resume", "--restart"])
    assert exit_info.value.code == 2


def test_report_on_a_missing_folder_is_an_input_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"genbench {version('genbench')}"


def test_validate_cells_survives_a_closed_pipe():
    """`genbench validate --cells | head`: the reader goes away; no traceback, exit 141 (SIGPIPE's)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "validate", "--cells", str(root / "suites" / "quick.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=root,
    )
    proc.stdout.close()  # before the first line is written: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("family", ["flow", "gmm"])
def test_list_shows_the_estimator_that_the_rows_report_on_each_kind_of_data(family, capsys):
    """What `list` says per data kind is the label of the family's own NLL (the row's nll_kind)."""
    import torch

    from bench.datasets import make_dataset
    from bench.families import make_family

    assert cli.main(["list"]) == 0
    line = next(line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] == [family])
    for dataset in ("8gaussians", "digits"):
        data = make_dataset(dataset)
        model = make_family(family, data.spec)
        model.train_step(data.train()[:64])  # the GMM fits its mixture on what it was handed
        (label, *_) = model.nll(data.test()[:8], torch.Generator().manual_seed(0))
        kind = line[line.index(f"{data.spec.kind}:") + 1]
        assert kind == label, (dataset, line)
