"""Broken suite files, table-driven: each exits 2 with exactly one line per error, every line
naming the file and the field, no traceback, before Ray is imported; a file with several independent
errors gets them all in one `validate`. Covers non-finite numbers, names, data roots, the feature
extractor's needs, test-set sizes, resources against the machine, search spaces and [tune]. No Ray."""
# ruff: noqa: E501  (the table of invalid suites keeps one case per line)

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench import cli
from bench.errors import ConfigError
from bench.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]

TOP = 'name = "t"\nseeds = [0, 1]\n'
DATASETS = '[[datasets]]\nname = "8gaussians"\n\n[[datasets]]\nname = "digits"\n'
MODELS = '[[models]]\nfamily = "flow"\n\n[[models]]\nfamily = "vae"\nlabel = "vae-small"\nhparams = { latent = 2 }\n'
BUDGETS = '[[budgets]]\nname = "short"\nsteps = 10\n'
FLOW = '[[models]]\nfamily = "flow"\n'
TUNE = '[tune]\nmetric = "nll"\nsamples = 4\n'
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0  # this machine's


def doc(top=TOP, datasets=DATASETS, models=MODELS, budgets=BUDGETS, extra=""):
    return "\n".join([top, datasets, models, budgets, extra])


def ds(name, options=""):
    return f'[[datasets]]\nname = "{name}"\n' + (f"options = {{ {options} }}\n" if options else "")


def spaced(space, hparams="", family="flow", extra=TUNE):
    """A one-model suite whose model has `space` (and a [tune] table unless extra says otherwise)."""
    hp = f"hparams = {{ {hparams} }}\n" if hparams else ""
    return doc(models=f'[[models]]\nfamily = "{family}"\n{hp}space = {{ {space} }}\n', extra=extra)


OLD_CASES = [
    ("unknown-top-key", doc(top=TOP + 'nmae = "x"\n'), "nmae"),
    ("missing-name", doc(top="seeds = [0]\n"), "name"),
    ("bad-name", doc(top='name = "a/b"\nseeds = [0]\n'), "name"),
    ("unknown-dataset-key", doc(datasets='[[datasets]]\nname = "digits"\noption = {}\n'), "datasets[0].option"),
    ("unknown-model-key", doc(models='[[models]]\nfamily = "flow"\nhparam = {}\n'), "models[0].hparam"),
    ("unknown-budget-key", doc(budgets='[[budgets]]\nname = "b"\nstep = 10\n'), "budgets[0].step"),
    ("unknown-resources-key", doc(extra="[resources]\ncpu_per_trial = 1\n"), "resources.cpu_per_trial"),
    ("unknown-eval-key", doc(extra="[eval]\nn_sample = 10\n"), "eval.n_sample"),
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
    ("eval-type", doc(extra="[eval]\nn_samples = 1.5\n"), "eval.n_samples"),
    ("eval-range", doc(extra="[eval]\nn_samples = 0\n"), "eval"),
    ("eval-trajectory-points", doc(extra="[eval]\ntrajectory_points = -1\n"), "eval"),
    ("eval-trajectory-samples", doc(extra="[eval]\ntrajectory_samples = 1\n"), "eval"),
    ("speed-batches-empty", doc(extra="[eval]\nspeed_batches = []\n"), "eval"),
    ("speed-batches-zero", doc(extra="[eval]\nspeed_batches = [250, 0]\n"), "eval"),
    ("speed-batches-float", doc(extra="[eval]\nspeed_batches = [250.5]\n"), "eval.speed_batches"),
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
    ("toml-syntax", doc(top='name = "t"\nseeds = [0\n'), "TOML syntax error"),
    (
        "toml-nested-1000-deep",
        doc(top='name = "t"\nseeds = [0]\nx = ' + "[" * 1000 + "]" * 1000 + "\n"),
        "TOML nested too deeply",
    ),
]


# (case id, suite text, the field each error line must name: one string per expected line)
NEW_CASES = [
    # non-finite numbers anywhere: each is one line naming the exact field
    ("nan-hparam", doc(models=FLOW + "hparams = { grad_clip = nan }\n"), "models[0].hparams.grad_clip"),
    ("inf-lr", doc(models=FLOW + "hparams = { lr = inf }\n"), "models[0].hparams.lr"),
    ("inf-s-clamp", doc(models=FLOW + "hparams = { s_clamp = inf }\n"), "models[0].hparams.s_clamp"),
    ("nan-override", doc(models=FLOW + "overrides.digits = { lr = nan }\n"), "models[0].overrides.digits.lr"),
    ("seconds-inf", doc(budgets='[[budgets]]\nname = "b"\nseconds = inf\n'), "budgets[0].seconds"),
    ("seconds-nan", doc(budgets='[[budgets]]\nname = "b"\nsteps = 5\nseconds = nan\n'), "budgets[0].seconds"),
    ("nan-option", doc(datasets=ds("moons", "noise = nan")), "datasets[0].options.noise"),
    ("nan-option-fraction", doc(datasets=ds("digits", "test_fraction = nan")), "datasets[0].options.test_fraction"),
    ("nan-cpus", doc(extra="[resources]\ncpus_per_trial = nan\n"), "resources.cpus_per_trial"),
    ("inf-gpus", doc(extra="[resources]\ngpus_per_trial = inf\n"), "resources.gpus_per_trial"),
    ("nan-eval", doc(extra="[eval]\nn_samples = nan\n"), "eval.n_samples"),
    (
        "inf-betas",
        doc(models='[[models]]\nfamily = "gan"\nhparams = { betas = [0.5, inf] }\n'),
        "models[0].hparams.betas[1]",
    ),
    # names: control characters, a newline before the end, length
    ("name-newline", doc(top='name = "t\\n"\nseeds = [0]\n'), "name"),
    ("name-tab", doc(top='name = "a\\tb"\nseeds = [0]\n'), "name"),
    ("label-newline", doc(models=FLOW + 'label = "f\\n"\n'), "models[0].label"),
    ("budget-name-newline", doc(budgets='[[budgets]]\nname = "b\\n"\nsteps = 1\n'), "budgets[0].name"),
    ("name-too-long", doc(top=f'name = "{"n" * 300}"\nseeds = [0]\n'), "name"),
    ("label-too-long", doc(models=FLOW + f'label = "{"l" * 65}"\n'), "models[0].label"),
    ("budget-name-too-long", doc(budgets=f'[[budgets]]\nname = "{"b" * 65}"\nsteps = 1\n'), "budgets[0].name"),
    ("control-char-key", doc(models=FLOW + 'hparams = { "hid\\nden" = 3 }\n'), "models[0].hparams.hid\\nden"),
    # data roots: a file, an empty folder, a folder without the expected files
    ("mnist-root-is-file", doc(datasets=ds("mnist", 'root = "a-file"')), "datasets[0].options.root"),
    ("mnist-root-empty", doc(datasets=ds("mnist", 'root = "empty"')), "datasets[0].options.root"),
    ("mnist-root-partial", doc(datasets=ds("mnist", 'root = "mnist-partial"')), "datasets[0].options.root"),
    ("mnist-no-root", doc(datasets=ds("mnist")), "datasets[0].options.root"),
    ("cifar-root-empty", doc(datasets=ds("cifar10", 'root = "empty"')), "datasets[0].options.root"),
    ("folder-root-empty", doc(datasets=ds("folder", 'root = "empty"')), "datasets[0].options.root"),
    # the feature extractor's needs and the metrics' test-set size
    ("folder-default-eval", doc(datasets=ds("folder", 'root = "imgs"')), "eval.feature_extractor"),
    (
        "folder-classifier",
        doc(datasets=ds("folder", 'root = "imgs"'), extra='[eval]\nfeature_extractor = "classifier"\n'),
        "eval.feature_extractor",
    ),
    (
        "classifier-on-points",
        doc(datasets=ds("8gaussians"), extra='[eval]\nfeature_extractor = "classifier"\n'),
        "eval.feature_extractor",
    ),
    (
        "six-image-folder",
        doc(datasets=ds("folder", 'root = "six"'), extra='[eval]\nfeature_extractor = "raw"\n'),
        "datasets[0].options",
    ),
    ("tiny-toy-test-set", doc(datasets=ds("8gaussians", "n_test = 3")), "datasets[0].options"),
    (
        "prc-k-vs-test-set",
        doc(datasets=ds("8gaussians", "n_test = 10"), extra="[eval]\nprc_neighborhood = 10\n"),
        "datasets[0].options",
    ),
    ("too-few-samples", doc(extra="[eval]\nn_samples = 3\n"), "eval.n_samples"),
    # resources against this machine (no --address)
    ("cpus-beyond-machine", doc(extra="[resources]\ncpus_per_trial = 1000\n"), "resources.cpus_per_trial"),
    ("gpus-beyond-machine", doc(extra=f"[resources]\ngpus_per_trial = {GPUS + 1}\n"), "resources.gpus_per_trial"),
    # search spaces
    ("space-unknown-dist", spaced("lr = { normal = [0.0, 1.0] }"), "models[0].space.lr"),
    ("space-wrong-order", spaced("lr = { uniform = [0.1, 0.01] }"), "models[0].space.lr"),
    ("space-equal-bounds", spaced("lr = { loguniform = [0.1, 0.1] }"), "models[0].space.lr"),
    ("space-inf-bound", spaced("lr = { uniform = [0.001, inf] }"), "models[0].space.lr.uniform[1]"),
    ("space-loguniform-zero", spaced("lr = { loguniform = [0.0, 0.1] }"), "models[0].space.lr"),
    ("space-not-hparam", spaced("lrr = { uniform = [0.001, 0.01] }"), "models[0].space.lrr"),
    ("space-float-for-int", spaced("hidden = { uniform = [8, 64] }"), "models[0].space.hidden"),
    ("space-randint-float-bounds", spaced("hidden = { randint = [8.5, 64] }"), "models[0].space.hidden"),
    ("space-choice-type", spaced('hidden = { choice = [64, "128"] }'), "models[0].space.hidden"),
    ("space-choice-empty", spaced("hidden = { choice = [] }"), "models[0].space.hidden"),
    ("space-out-of-range", spaced("lr = { uniform = [-0.01, 0.01] }"), "models[0].space.lr"),
    ("space-and-hparams", spaced("lr = { loguniform = [1e-4, 1e-2] }", hparams="lr = 1e-3"), "models[0].space.lr"),
    ("space-two-dists", spaced("lr = { uniform = [0.1, 0.2], loguniform = [0.1, 0.2] }"), "models[0].space.lr"),
    ("space-not-table", spaced("lr = 0.1"), "models[0].space.lr"),
    ("space-without-tune", spaced("lr = { uniform = [0.001, 0.01] }", extra=""), "models[0].space"),
    ("gan-tuned-on-nll", spaced("lr = { uniform = [0.001, 0.01] }", family="gan"), "models[0].family"),
    # [tune]
    ("tune-metric", spaced("lr = { uniform = [0.001, 0.01] }", extra='[tune]\nmetric = "loss"\n'), "tune.metric"),
    ("tune-samples-zero", spaced("lr = { uniform = [0.001, 0.01] }", extra="[tune]\nsamples = 0\n"), "tune.samples"),
    ("tune-samples-float", spaced("lr = { uniform = [0.001, 0.01] }", extra="[tune]\nsamples = 2.5\n"), "tune.samples"),
    (
        "tune-samples-absurd",
        spaced("lr = { uniform = [0.001, 0.01] }", extra="[tune]\nsamples = 1000000000\n"),
        "tune.samples",
    ),
    ("tune-search", spaced("lr = { uniform = [0.001, 0.01] }", extra='[tune]\nsearch = "grid"\n'), "tune.search"),
    (
        "tune-scheduler",
        spaced("lr = { uniform = [0.001, 0.01] }", extra='[tune]\nscheduler = "pbt"\n'),
        "tune.scheduler",
    ),
    ("tune-seeds", spaced("lr = { uniform = [0.001, 0.01] }", extra="[tune]\nseeds = [0, 0]\n"), "tune.seeds"),
    ("tune-unknown-key", spaced("lr = { uniform = [0.001, 0.01] }", extra="[tune]\nsample = 4\n"), "tune.sample"),
    (
        "tune-not-table",
        spaced("lr = { uniform = [0.001, 0.01] }", extra="").replace("[[datasets]]", 'tune = "yes"\n[[datasets]]', 1),
        "tune",
    ),
    ("tune-without-space", doc(extra=TUNE), "tune"),
    (
        "gan-nll-with-broken-space",
        spaced("hidden = { uniform = [8, 64] }", hparams="lr = inf", family="gan"),
        ("models[0].hparams.lr", "models[0].space.hidden", "models[0].family"),
    ),
]

# a file with three independent mistakes: all three in one validate
THREE_ERRORS = (
    "three-errors",
    doc(
        models=FLOW + "hparams = { lr = nan }\n",
        budgets='[[budgets]]\nname = "b/c"\nsteps = 1\n',
        extra="[eval]\nn_sample = 1\n",
    ),
    ("models[0].hparams.lr", "budgets[0].name", "eval.n_sample"),
)
CASES = [(i, t, (f,) if isinstance(f, str) else f) for i, t, f in OLD_CASES + NEW_CASES + [THREE_ERRORS]]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Data roots the cases point at: a file, an empty folder, a partial MNIST tree, a 6-image and a
    40-image folder (no labels)."""
    root = tmp_path_factory.mktemp("data")
    (root / "a-file").write_text("not a folder")
    (root / "empty").mkdir()
    (root / "mnist-partial" / "MNIST" / "raw").mkdir(parents=True)
    (root / "mnist-partial" / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"")
    for folder, n in (("six", 6), ("imgs", 40)):
        (root / folder).mkdir()
        for i in range(n):
            Image.new("RGB", (8, 8), (i, 2 * i, 3 * i)).save(root / folder / f"{i}.png")
    return root


def field_of(line: str, path: Path) -> str:
    """The field named by an error line `genbench: error: <path>: <field>: <message>`."""
    head = f"genbench: error: {path}: "
    assert line.startswith(head), line
    return line[len(head) :].split(": ")[0]


def check_lines(err: str, path: Path, fields: tuple[str, ...]) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == len(fields), err  # exactly one line per error
    for line, expected in zip(lines, fields):
        assert field_of(line, path).startswith(expected), (expected, line)
    assert "Traceback" not in err


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


def test_the_table_is_large_and_its_ids_unique():
    assert len(NEW_CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("text, fields", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_suite_exits_2_with_one_line_per_error(tmp_path, capsys, no_ray, data_root, text, fields):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for command in (["validate"], ["run", "--results", str(tmp_path / "results")]):
        code = cli.main([command[0], str(path), "--data-root", str(data_root), *command[1:]])
        err = capsys.readouterr().err
        assert code == 2, err
        check_lines(err, path, fields)
    assert no_ray == []
    assert not (tmp_path / "results").exists()


VALIDATE_ALL = """
import contextlib, io, json, sys, traceback
from bench import cli
out = []
for path in sys.argv[2:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(["validate", path, "--data-root", sys.argv[1]])
        except BaseException:
            code, _ = -1, err.write(traceback.format_exc())
    out.append([code, err.getvalue()])
print(json.dumps({"results": out, "ray_imported": "ray" in sys.modules}))
"""


def test_every_case_in_a_fresh_process_without_importing_ray(tmp_path, data_root):
    """One interpreter validates every broken file: exit 2 each, the lines, no traceback, and the
    `ray` module was never imported."""
    paths = []
    for i, (_, text, _) in enumerate(CASES):
        paths.append(tmp_path / f"case{i}.toml")
        paths[-1].write_text(text)
    proc = subprocess.run(
        [sys.executable, "-c", VALIDATE_ALL, str(data_root), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ray_imported"] is False
    for (case, _, fields), path, (code, err) in zip(CASES, paths, report["results"]):
        assert code == 2, (case, err)
        check_lines(err, path, fields)


def test_messages_name_dataset_options_as_options_and_say_how_to_supply_a_root(tmp_path, data_root):
    path = tmp_path / "s.toml"
    path.write_text(doc(datasets=ds("8gaussians", "ntrain = 5")))
    with pytest.raises(ConfigError) as info:
        load_suite(path, data_root=data_root)
    assert "unknown option 'ntrain'" in str(info.value) and "hyper-parameter" not in str(info.value)
    path.write_text(doc(datasets=ds("mnist", 'root = "empty"')))
    with pytest.raises(ConfigError) as info:
        load_suite(path, data_root=data_root)
    assert "options.root" in str(info.value) and "--data-root" in str(info.value)


def test_folder_with_default_eval_says_which_setting_to_change(tmp_path, data_root):
    path = tmp_path / "s.toml"
    path.write_text(doc(datasets=ds("folder", 'root = "imgs"')))
    with pytest.raises(ConfigError, match=r'no class labels.*eval\.feature_extractor = "raw"'):
        load_suite(path, data_root=data_root)
    path.write_text(doc(datasets=ds("folder", 'root = "imgs"'), extra='[eval]\nfeature_extractor = "raw"\n'))
    assert load_suite(path, data_root=data_root).datasets[0].options.root == str(data_root / "imgs")


def test_resources_are_checked_against_the_cluster_with_an_address(tmp_path, capsys):
    """With --address the machine check is left to the runner (after connecting)."""
    path = tmp_path / "s.toml"
    path.write_text(doc(extra=f"[resources]\ncpus_per_trial = 1000\ngpus_per_trial = {GPUS + 1}\n"))
    assert cli.main(["validate", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    assert cli.main(["validate", str(path), "--address", "auto"]) == 0


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + doc().encode())
    assert load_suite(path).name == "t"


@pytest.mark.parametrize("depth", [1000, 3000])
@pytest.mark.parametrize("kind", ["array", "table"])
def test_deeply_nested_toml_is_one_line(tmp_path, capsys, depth, kind):
    nested = "[" * depth + "]" * depth if kind == "array" else "{ a = " * depth + "1" + " }" * depth
    path = tmp_path / "deep.toml"
    path.write_text(doc(extra=f"deep = {nested}\n"))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and "nested too deeply" in err, err[-500:]


def test_three_independent_errors_come_in_one_validate(tmp_path, capsys):
    _, text, fields = THREE_ERRORS
    path = tmp_path / "three.toml"
    path.write_text(text)
    assert cli.main(["validate", str(path)]) == 2
    check_lines(capsys.readouterr().err, path, fields)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert len(info.value.lines) == 3


def test_a_datasets_bad_option_hides_no_model_error_and_makes_no_follow_on_error(tmp_path, capsys):
    """A dataset entry with a bad option still names a dataset of the suite: the models' errors are
    found in the same pass, and an override for that dataset is not reported as 'not a dataset'."""
    path = tmp_path / "sections.toml"
    path.write_text(
        'name = "q"\nseeds = [0]\n'
        '[[datasets]]\nname = "8gaussians"\noptions = { ntest = 5 }\n'
        '[[models]]\nfamily = "gan"\nhparams = { lr = "fast" }\noverrides.8gaussians = { latent = 4 }\n'
        '[[models]]\nfamily = "vae"\nhparams = { batch_size = 0 }\n'
        '[[budgets]]\nname = "b"\nsteps = 10\n'
    )
    assert cli.main(["validate", str(path)]) == 2
    check_lines(
        capsys.readouterr().err, path, ("datasets[0].options.ntest", "models[0].hparams.lr", "models[1].hparams")
    )


def test_every_bad_eval_setting_is_its_own_line(tmp_path, capsys):
    """Four bad [eval] values: four lines, each naming its setting (not one line for the table)."""
    path = tmp_path / "eval.toml"
    path.write_text(
        'name = "q"\nseeds = [0]\n[[datasets]]\nname = "8gaussians"\n[[models]]\nfamily = "gan"\n'
        '[[budgets]]\nname = "b"\nsteps = 10\n'
        '[eval]\nn_samples = -1\nsample_batch = 0\niwae_k = -3\nimpute_mask = "stripes"\n'
    )
    assert cli.main(["validate", str(path)]) == 2
    fields = ("eval.n_samples", "eval.sample_batch", "eval.iwae_k", "eval.impute_mask")
    check_lines(capsys.readouterr().err, path, fields)
