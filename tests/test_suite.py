"""Suite files: every invalid case exits 2 with one line naming the file and field, before Ray
starts; valid suites (the shipped ones included) expand into a grid with stable hashes. No Ray."""
# ruff: noqa: E501  (the table of invalid suites keeps one case per line)

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench import cli
from bench.errors import ConfigError
from bench.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]

TOP = 'name = "t"\nseeds = [0, 1]\n'
DATASETS = '[[datasets]]\nname = "8gaussians"\n\n[[datasets]]\nname = "digits"\n'
MODELS = '[[models]]\nfamily = "flow"\n\n[[models]]\nfamily = "vae"\nlabel = "vae-small"\nhparams = { latent = 2 }\n'
BUDGETS = '[[budgets]]\nname = "short"\nsteps = 10\n'


def doc(top=TOP, datasets=DATASETS, models=MODELS, budgets=BUDGETS, extra=""):
    return "\n".join([top, datasets, models, budgets, extra])


# (case id, suite text, a string the one-line message must contain: the field at fault)
INVALID = [
    ("unknown-top-key", doc(top=TOP + 'nmae = "x"\n'), "nmae"),
    ("missing-name", doc(top="seeds = [0]\n"), "name"),
    ("bad-name", doc(top='name = "a/b"\nseeds = [0]\n'), "name"),
    ("unknown-dataset-key", doc(datasets='[[datasets]]\nname = "digits"\noption = {}\n'), "datasets[0].option"),
    ("unknown-model-key", doc(models='[[models]]\nfamily = "flow"\nhparam = {}\n'), "models[0].hparam"),
    ("unknown-budget-key", doc(budgets='[[budgets]]\nname = "b"\nstep = 10\n'), "budgets[0].step"),
    ("unknown-resources-key", doc(extra="[resources]\ncpu_per_trial = 1\n"), "resources.cpu_per_trial"),
    ("unknown-eval-key", doc(extra="[eval]\nn_sample = 10\n"), "n_sample"),
    ("unknown-hparam", doc(models='[[models]]\nfamily = "flow"\nhparams = { hiden = 3 }\n'), "models[0].hparams"),
    (
        "unknown-dataset-option",
        doc(datasets='[[datasets]]\nname = "8gaussians"\noptions = { ntrain = 5 }\n'),
        "datasets[0].options",
    ),
    ("unknown-family", doc(models='[[models]]\nfamily = "gann"\n'), "models[0].family"),
    ("unknown-dataset", doc(datasets='[[datasets]]\nname = "imagenet"\n'), "datasets[0].name"),
    ("seeds-type", doc(top='name = "t"\nseeds = "0"\n'), "seeds"),
    ("seeds-float", doc(top='name = "t"\nseeds = [0.5]\n'), "seeds"),
    ("steps-type", doc(budgets='[[budgets]]\nname = "b"\nsteps = "100"\n'), "budgets[0].steps"),
    ("steps-float", doc(budgets='[[budgets]]\nname = "b"\nsteps = 1.5\n'), "budgets[0].steps"),
    ("hparam-type", doc(models='[[models]]\nfamily = "flow"\nhparams = { batch_size = "64" }\n'), "models[0].hparams"),
    (
        "hparam-range",
        doc(models='[[models]]\nfamily = "flow"\nhparams = { coupling_layers = 1 }\n'),
        "models[0].hparams",
    ),
    ("cpus-type", doc(extra='[resources]\ncpus_per_trial = "1"\n'), "resources.cpus_per_trial"),
    ("gpus-value", doc(extra='[resources]\ngpus_per_trial = "many"\n'), "resources.gpus_per_trial"),
    ("gpus-negative", doc(extra="[resources]\ngpus_per_trial = -1\n"), "resources.gpus_per_trial"),
    ("eval-type", doc(extra="[eval]\nn_samples = 1.5\n"), "n_samples"),
    ("eval-range", doc(extra="[eval]\nn_samples = 0\n"), "n_samples"),
    ("models-not-tables", doc(top=TOP + 'models = "flow"\n', models=""), "models"),
    ("resources-not-table", doc(top=TOP + "resources = 3\n"), "resources"),
    ("steps-zero", doc(budgets='[[budgets]]\nname = "b"\nsteps = 0\n'), "budgets[0].steps"),
    ("steps-negative", doc(budgets='[[budgets]]\nname = "b"\nsteps = -5\n'), "budgets[0].steps"),
    ("seconds-zero", doc(budgets='[[budgets]]\nname = "b"\nseconds = 0\n'), "budgets[0].seconds"),
    ("seconds-negative", doc(budgets='[[budgets]]\nname = "b"\nseconds = -1.5\n'), "budgets[0].seconds"),
    ("budget-without-limit", doc(budgets='[[budgets]]\nname = "b"\n'), "budgets[0]"),
    ("empty-seeds", doc(top='name = "t"\nseeds = []\n'), "seeds"),
    ("no-seeds", doc(top='name = "t"\n'), "seeds"),
    ("no-models", doc(models=""), "models"),
    ("no-datasets", doc(datasets=""), "datasets"),
    ("no-budgets", doc(budgets=""), "budgets"),
    ("duplicate-label", doc(models='[[models]]\nfamily = "flow"\n\n[[models]]\nfamily = "flow"\n'), "models[1]"),
    ("duplicate-budget", doc(budgets=BUDGETS + '\n[[budgets]]\nname = "short"\nseconds = 5\n'), "budgets[1]"),
    ("duplicate-dataset", doc(datasets=DATASETS + '\n[[datasets]]\nname = "digits"\n'), "datasets[2]"),
    ("duplicate-seed", doc(top='name = "t"\nseeds = [1, 1]\n'), "seeds[1]"),
    (
        "missing-root",
        doc(datasets='[[datasets]]\nname = "mnist"\noptions = { root = "no/such/dir" }\n'),
        "datasets[0].options.root",
    ),
    ("empty-root", doc(datasets='[[datasets]]\nname = "cifar10"\n'), "datasets[0].options.root"),
    (
        "missing-weights",
        doc(extra='[eval]\nfeature_extractor = "inception-v3-compat"\nfeature_extractor_weights_path = "nope.pth"\n'),
        "eval.feature_extractor_weights_path",
    ),
    ("mixed-precision", doc(extra='[resources]\nmixed_precision = "fp32"\n'), "resources.mixed_precision"),
    ("report-every-zero", doc(extra="[resources]\nreport_every_steps = 0\n"), "resources.report_every_steps"),
    ("report-every-float", doc(extra="[resources]\nreport_every_steps = 1.5\n"), "resources.report_every_steps"),
    (
        "checkpoint-negative",
        doc(extra="[resources]\ncheckpoint_every_steps = -1\n"),
        "resources.checkpoint_every_steps",
    ),
    (
        "override-unknown-dataset",
        doc(models='[[models]]\nfamily = "flow"\noverrides.mnist = { hidden = 8 }\n'),
        "models[0].overrides.mnist",
    ),
    (
        "override-bad-hparam",
        doc(models='[[models]]\nfamily = "flow"\noverrides.digits = { hiden = 8 }\n'),
        "models[0].overrides.digits",
    ),
    ("toml-syntax", doc(top='name = "t"\nseeds = [0\n'), "line "),
]


@pytest.fixture
def no_ray(monkeypatch):
    """Replace ray.init and Tuner so that any attempt to start Ray is recorded (and fails)."""
    import ray
    from ray import tune

    calls = []

    def refuse(*args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError("Ray must not start for an invalid suite")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(tune, "Tuner", refuse)
    return calls


@pytest.mark.parametrize("text, field", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_suite_exits_2_naming_file_and_field_without_ray(tmp_path, capsys, no_ray, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    data_root = tmp_path / "data"
    data_root.mkdir()
    for command in (["validate"], ["run", "--results", str(tmp_path / "results")]):
        code = cli.main([command[0], str(path), "--data-root", str(data_root), *command[1:]])
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert "\n" not in err and err.startswith("genbench: error: "), err
        assert str(path) in err and field in err, err
    assert no_ray == []
    assert not (tmp_path / "results").exists()


def test_toml_syntax_error_reports_its_line(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(doc(top='name = "t"\nseeds = [0]\nfoo bar\n'))
    with pytest.raises(ConfigError, match=r"s\.toml: TOML syntax error: .*line 3"):
        load_suite(path)


def test_missing_file_is_an_input_error(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_run_bench_script_exits_2_on_invalid_suite(tmp_path):
    """The real entry point, in a fresh process: status 2, one line, no Ray output."""
    path = tmp_path / "bad.toml"
    path.write_text(doc(extra='[resources]\nmixed_precision = "fp8"\n'))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "run", str(path), "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "resources.mixed_precision" in lines[0] and "'fp8'" in lines[0]
    assert "ray" not in proc.stderr.lower().replace("array", "") and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- valid suites, grid


def test_shipped_quick_suite_validates():
    suite = load_suite(ROOT / "suites" / "quick.toml")
    assert {m.family for m in suite.models} == {"gan", "vae", "flow", "ddpm"}
    assert [d.name for d in suite.datasets] == ["8gaussians", "digits"]
    assert len(suite.budgets) == 1 and len(suite.seeds) == 3
    assert len(suite.cells()) == 24 and suite.resources.gpus_per_trial == "auto"


@pytest.fixture
def paper_data(tmp_path):
    """The data root paper.toml expects: its relative dataset roots as folders and its Inception
    weights as an (empty) file; existence is what validation checks, no data is read."""
    raw = tomllib.loads((ROOT / "suites" / "paper.toml").read_text())
    root = tmp_path / "data"
    for ds in raw["datasets"]:
        (root / ds["options"]["root"]).mkdir(parents=True)
    weights = root / raw["eval"]["feature_extractor_weights_path"]
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    return root


def test_shipped_paper_suite_validates_against_a_data_root(paper_data, monkeypatch, capsys):
    suite = load_suite(ROOT / "suites" / "paper.toml", data_root=paper_data)
    assert [d.name for d in suite.datasets] == ["mnist", "cifar10"]
    assert suite.datasets[0].options["root"] == str(paper_data / "mnist")  # absolute for Ray workers
    assert suite.eval.feature_extractor == "inception-v3-compat"
    assert suite.eval.feature_extractor_weights_path.startswith(str(paper_data))
    assert suite.resources.mixed_precision == "bf16" and suite.resources.gpus_per_trial == 1
    # the environment variable is the fallback for --data-root
    monkeypatch.setenv("GENBENCH_DATA_ROOT", str(paper_data))
    assert cli.main(["validate", str(ROOT / "suites" / "paper.toml")]) == 0
    assert "48 trials" in capsys.readouterr().out
    monkeypatch.setenv("GENBENCH_DATA_ROOT", str(paper_data / "elsewhere"))
    with pytest.raises(ConfigError, match=r"paper\.toml: datasets\[0\]\.options\.root: missing data root"):
        load_suite(ROOT / "suites" / "paper.toml")


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_is_the_full_product_with_overrides_per_dataset(tmp_path):
    models = (
        '[[models]]\nfamily = "flow"\nhparams = { hidden = 16 }\noverrides.digits = { width = 8 }\n'
        '\n[[models]]\nfamily = "gan"\n'
    )
    budgets = BUDGETS + '\n[[budgets]]\nname = "timed"\nseconds = 2.5\n'
    cells = load_suite(write(tmp_path, doc(models=models, budgets=budgets))).cells()
    assert len(cells) == 2 * 2 * 2 * 2
    assert len({c.trial_id for c in cells}) == len(cells)
    flow = {c.dataset: c for c in cells if c.label == "flow" and c.seed == 0 and c.budget == "short"}
    assert flow["8gaussians"].hparams == {"hidden": 16}
    assert flow["digits"].hparams == {"hidden": 16, "width": 8}
    timed = next(c for c in cells if c.budget == "timed")
    assert timed.steps is None and timed.seconds == 2.5
    assert [c.seed for c in cells[:8]] == [0] * 8  # seed-major: a partial run covers the grid


def test_trial_ids_are_stable_and_track_the_config(tmp_path):
    def ids(text, name="s.toml"):
        return [(c.name, c.trial_id, c.config_hash) for c in load_suite(write(tmp_path, text, name)).cells()]

    base = ids(doc())
    assert base == ids(doc())  # same text, same ids
    # key order and explicitly written defaults change nothing; the suite name is not part of the id
    reordered = doc(
        top='seeds = [0, 1]\nname = "other"\n',
        models='[[models]]\nfamily = "flow"\nhparams = { hidden = 128, lr = 1e-3 }\n\n'
        '[[models]]\nhparams = { latent = 2 }\nlabel = "vae-small"\nfamily = "vae"\n',
    )
    assert ids(reordered) == base
    # a changed hyper-parameter, budget or eval setting is a different cell
    changed = ids(doc(models=MODELS.replace("latent = 2", "latent = 3")))
    assert [a[1] == b[1] for a, b in zip(base, changed)] == [c[0].startswith("flow") for c in base]
    assert all(a[2] != b[2] for a, b in zip(base, ids(doc(extra="[eval]\nn_samples = 7\n"))))
    assert all(a[1] != b[1] for a, b in zip(base, ids(doc(budgets=BUDGETS.replace("10", "11")))))


def test_moving_the_data_root_keeps_trial_ids(tmp_path):
    text = doc(datasets='[[datasets]]\nname = "folder"\noptions = { root = "imgs" }\n')
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "imgs").mkdir(parents=True)
    (b / "imgs").mkdir(parents=True)
    cells_a = load_suite(write(tmp_path, text), data_root=a).cells()
    cells_b = load_suite(write(tmp_path, text), data_root=b).cells()
    assert [c.trial_id for c in cells_a] == [c.trial_id for c in cells_b]
    assert cells_a[0].dataset_options["root"] == str(a / "imgs")


def test_cell_round_trips_through_a_dict(tmp_path):
    from bench.suite import Cell

    cell = load_suite(write(tmp_path, doc())).cells()[0]
    assert Cell.from_dict(cell.to_dict()) == cell
