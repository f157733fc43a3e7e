"""The package's floor plan, checked: no import circle among bench's modules, Ray imported only
inside bench/run/, each shared name defined once, vocabularies implemented exactly as owned."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bench"
RAY_HOME = "bench.run"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """bench modules (and 'ray') that `path` imports, at module level or inside functions: an import
    `from a.b import c` names a.b.c when that is a module, else a.b."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            ]
        else:
            continue
        for name in names:
            if name == "ray" or name.startswith("ray."):
                out.add("ray")
            elif name in modules:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_no_import_circle_among_bench_modules():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "ray":
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_check_sees_a_circle_and_a_ray_import(tmp_path):
    """The walker itself: a planted circle and a planted ray import are found."""
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "a.py").write_text("from bench.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from bench import a\n    import ray.tune\n")
    modules = {_module_name_in(p, tmp_path): p for p in pkg.glob("*.py")}
    assert _imports(pkg / "a.py", modules) == {"bench.b"}
    assert _imports(pkg / "b.py", modules) == {"bench.a", "ray"}


def _module_name_in(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def test_only_bench_run_imports_ray():
    outside = sorted(m for m, deps in _graph().items() if "ray" in deps and not m.startswith(RAY_HOME))
    assert not outside, f"modules outside {RAY_HOME} import ray: {outside}"


ONCE = (
    # the result store: one owner for trial and tuning rows (bench.store)
    "ROWS_DIR",
    "TABLE",
    "CSV",
    "FINISHED",
    "_PANDAS_DTYPE",
    "PANDAS_DTYPE",
    "row_path",
    "write_row",
    "read_rows",
    "read_stored_row",
    "rebuild_tables",
    "to_frame",
    # Ray Tune's experiment (bench.run.experiment)
    "experiment_name",
    "_experiment_name",
    "ROW_KEY",
    "tune_environment",
    # vocabularies
    "SCHEDULERS",
    "SEARCHES",
    "DIST_KINDS",
    "DISTRIBUTIONS",
    "TUNE_METRICS",
    "VAL_METRICS",
    "BLANK",
)


@pytest.mark.parametrize("name", ONCE)
def test_each_shared_name_is_defined_at_most_once(name):
    pattern = re.compile(rf"^\s*(def {name}\(|{name}\s*(:[^=]*)?=)", re.M)
    where = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())]
    assert len(where) <= 1, where


def test_tuning_implements_exactly_the_vocabularies_suite_files_name():
    from bench.run import tuning
    from bench.suite.space import DIST_KINDS, SCHEDULERS, SEARCHES

    assert set(tuning.DOMAIN_OF) == set(DIST_KINDS)
    assert set(tuning.SEARCHER_OF) == set(SEARCHES)
    assert set(tuning.SCHEDULER_OF) == set(SCHEDULERS)


def test_list_builds_no_model(monkeypatch, capsys):
    """`genbench list` reads the families' class facts: a constructor that raises is never called."""
    from bench import cli
    from bench.families import FAMILIES

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was built")

    for name in FAMILIES.names():
        monkeypatch.setattr(FAMILIES.get(name), "__init__", refuse)
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^\s+{name}\s+points:", out, re.M) for name in FAMILIES.names())
