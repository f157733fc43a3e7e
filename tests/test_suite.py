"""Valid suites (the shipped ones included) expand into a grid of typed cells with stable hashes;
the entry points exit 2 on an invalid suite (the table of broken suites: test_suite_invalid.py). No Ray."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from bench import cli
from bench.errors import ConfigError
from bench.families import FAMILIES
from bench.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]

TOP = 'name = "t"\nseeds = [0, 1]\n'
DATASETS = '[[datasets]]\nname = "8gaussians"\n\n[[datasets]]\nname = "digits"\n'
MODELS = '[[models]]\nfamily = "flow"\n\n[[models]]\nfamily = "vae"\nlabel = "vae-small"\nhparams = { latent = 2 }\n'
BUDGETS = '[[budgets]]\nname = "short"\nsteps = 10\n'


def doc(top=TOP, datasets=DATASETS, models=MODELS, budgets=BUDGETS, extra=""):
    return "\n".join([top, datasets, models, budgets, extra])


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
    assert {m.family for m in suite.models} == {"gan", "vae", "flow", "ddpm", "copy"}  # copy: the memorizer baseline
    assert [d.name for d in suite.datasets] == ["8gaussians", "digits"]
    assert len(suite.budgets) == 1 and len(suite.seeds) == 3
    assert len(suite.cells()) == 30 and suite.resources.gpus_per_trial == "auto"


@pytest.fixture
def paper_data(tmp_path):
    """The data root paper.toml expects: its dataset roots in torchvision's layout and its Inception
    weights, as empty files; the layout is what validation checks, no data is read."""
    from bench.datasets import DATASETS

    raw = tomllib.loads((ROOT / "suites" / "paper.toml").read_text())
    root = tmp_path / "data"
    for ds in raw["datasets"]:
        cls = DATASETS.get(ds["name"])
        (root / ds["options"]["root"] / cls.layout).mkdir(parents=True)
        for name in cls.files:
            (root / ds["options"]["root"] / cls.layout / name).write_bytes(b"")
    weights = root / raw["eval"]["feature_extractor_weights_path"]
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    return root


def test_shipped_paper_suite_validates_against_a_data_root(paper_data, monkeypatch, capsys):
    suite = load_suite(ROOT / "suites" / "paper.toml", data_root=paper_data)
    assert [d.name for d in suite.datasets] == ["mnist", "cifar10"]
    assert suite.datasets[0].options.root == str(paper_data / "mnist")  # absolute for Ray workers
    assert suite.eval.feature_extractor == "inception-v3-compat"
    assert suite.eval.feature_extractor_weights_path.startswith(str(paper_data))
    assert suite.resources.mixed_precision == "bf16" and suite.resources.gpus_per_trial == 1
    # the environment variable is the fallback for --data-root
    monkeypatch.setenv("GENBENCH_DATA_ROOT", str(paper_data))
    # a cluster suite (4 CPUs and a GPU per trial): --address leaves [resources] to the runner
    assert cli.main(["validate", str(ROOT / "suites" / "paper.toml"), "--address", "auto"]) == 0
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
    default = FAMILIES.get("flow").Hparams()
    assert flow["8gaussians"].hparams == dataclasses.replace(default, hidden=16)  # typed, defaults filled
    assert flow["digits"].hparams == dataclasses.replace(default, hidden=16, width=8)
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
    text = doc(
        datasets='[[datasets]]\nname = "folder"\noptions = { root = "imgs" }\n',
        extra='[eval]\nfeature_extractor = "raw"\nprc_neighborhood = 1\n',  # folders have no labels
    )
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "imgs").mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (8, 8), (i, i, i)).save(root / "imgs" / f"{i}.png")
    cells_a = load_suite(write(tmp_path, text), data_root=a).cells()
    cells_b = load_suite(write(tmp_path, text), data_root=b).cells()
    assert [c.trial_id for c in cells_a] == [c.trial_id for c in cells_b]
    assert cells_a[0].dataset_options.root == str(a / "imgs")


def test_cell_round_trips_through_a_dict(tmp_path):
    from bench.suite import Cell

    cell = load_suite(write(tmp_path, doc())).cells()[0]
    assert Cell.from_dict(cell.to_dict()) == cell


def old_ids(path: Path) -> list[tuple[str, str, str]]:
    """The hashing as it was before cells carried typed settings, re-implemented from the raw TOML
    (written dicts through the registries): cells must keep these ids, so old results stay resumable."""
    import hashlib
    import itertools
    import json

    from bench.datasets import build_options
    from bench.families import build_hparams
    from bench.hparams import build, to_dict
    from bench.metrics.config import EvalConfig

    def digest(obj):
        return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[
            :16
        ]

    raw = tomllib.loads(path.read_text())
    ev = {k: v for k, v in to_dict(build(EvalConfig, raw.get("eval", {}), owner="e")).items() if "weights" not in k}
    out = []
    for seed, b, d, m in itertools.product(raw["seeds"], raw["budgets"], raw["datasets"], raw["models"]):
        hp = {**m.get("hparams", {}), **m.get("overrides", {}).get(d["name"], {})}
        options = to_dict(build_options(d["name"], d.get("options", {})))
        config = {
            "family": m["family"],
            "hparams": to_dict(build_hparams(m["family"], hp)),
            "dataset": d["name"],
            "options": {k: v for k, v in options.items() if k != "root"},
            "steps": b.get("steps"),
            "seconds": None if "seconds" not in b else float(b["seconds"]),
            "eval": ev,
            "mixed_precision": raw.get("resources", {}).get("mixed_precision", "no"),
        }
        label, ch = m.get("label", m["family"]), digest(config)
        tid = digest({"label": label, "dataset": d["name"], "budget": b["name"], "seed": seed, "config": ch})
        out.append((f"{label}/{d['name']}/{b['name']}/seed{seed}", tid, ch))
    return out


def test_typed_cells_keep_the_trial_ids_of_untuned_suites(tmp_path):
    quick = ROOT / "suites" / "quick.toml"
    assert [(c.name, c.trial_id, c.config_hash) for c in load_suite(quick).cells()] == old_ids(quick)
    path = write(tmp_path, doc())
    assert [(c.name, c.trial_id, c.config_hash) for c in load_suite(path).cells()] == old_ids(path)


def test_cells_carry_typed_settings_and_cross_ray_as_plain_data(tmp_path):
    import json

    from bench.datasets import DATASETS
    from bench.metrics.config import EvalConfig
    from bench.suite import Cell

    text = doc(models=MODELS + "space = { lr = { loguniform = [1e-4, 1e-2] } }\n", extra="[tune]\nsamples = 3\n")
    for cell in load_suite(write(tmp_path, doc())).cells() + load_suite(write(tmp_path, text)).cells():
        assert isinstance(cell.hparams, FAMILIES.get(cell.family).Hparams)
        assert isinstance(cell.dataset_options, DATASETS.get(cell.dataset).Options)
        assert isinstance(cell.eval, EvalConfig)
        plain = json.loads(json.dumps(cell.to_dict()))  # JSON-able: nothing typed crosses to Ray
        assert Cell.from_dict(plain) == cell


def test_a_search_space_and_tune_table_are_typed_and_change_only_the_tuned_ids(tmp_path):
    from bench.suite import Dist, TuneSpec

    space = (
        "space = { lr = { loguniform = [1e-4, 1e-2] }, hidden = { choice = [16, 32] }, "
        "layers = { randint = [1, 4] } }\n"
    )
    models = '[[models]]\nfamily = "flow"\n' + space + '\n[[models]]\nfamily = "gan"\n'
    tuned = load_suite(write(tmp_path, doc(models=models, extra='[tune]\nmetric = "fid"\nseeds = [5, 6]\n')))
    plain = load_suite(write(tmp_path, doc(models='[[models]]\nfamily = "flow"\n\n[[models]]\nfamily = "gan"\n')))
    assert tuned.tune == TuneSpec(metric="fid", samples=8, search="random", scheduler="fifo", seeds=(5, 6))
    assert plain.tune is None
    flow = tuned.models[0]
    assert flow.space == {
        "lr": Dist("loguniform", (1e-4, 1e-2)),
        "hidden": Dist("choice", (16, 32)),
        "layers": Dist("randint", (1, 4)),
    }
    assert tuned.models[1].space == {}
    a, b = tuned.cells(), plain.cells()
    assert all(x.trial_id != y.trial_id for x, y in zip(a, b))  # space / [tune] enter the hash
    assert a[0].space == flow.space and a[0].tune == tuned.tune
    # randint bounds are fine for a float hyper-parameter; a choice of tuples for a tuple one
    ok = (
        '[[models]]\nfamily = "gan"\n'
        "space = { lr = { randint = [1, 3] }, betas = { choice = [[0.5, 0.9], [0.0, 0.99]] } }\n"
    )
    gan = load_suite(write(tmp_path, doc(models=ok, extra='[tune]\nmetric = "fid"\n'))).models[0]
    assert gan.space["betas"] == Dist("choice", ((0.5, 0.9), (0.0, 0.99)))


def test_a_sampled_configuration_goes_through_the_family_hparams(tmp_path):
    import numpy as np

    cell = load_suite(write(tmp_path, doc())).cells()[0]  # flow
    tuned = cell.with_hparams({"lr": np.float64(3e-3), "hidden": np.int64(32)})
    assert (tuned.hparams.lr, tuned.hparams.hidden) == (3e-3, 32) and type(tuned.hparams.hidden) is int
    assert tuned.hparams.batch_size == cell.hparams.batch_size and cell.hparams.hidden != 32
    with pytest.raises(ConfigError, match="lr"):
        cell.with_hparams({"lr": -1.0})
