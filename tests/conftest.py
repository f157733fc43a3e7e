"""Shared fixtures. Ray starts at most once per test session, and only for tests marked `ray`."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_thread():
    """One torch and one BLAS thread per test: the networks under test are tiny, and on 2 shared
    cores contended intra-op threads ran ~20x slower than one. Ray trials set their own count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole session (num_cpus=2: the CI machine); yields its GCS address so
    subprocess drivers (`run --address ...`) can join it instead of starting their own."""
    import ray

    # address="local": a private instance, never a `ray start` cluster that runs on the machine
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()


def pytest_collection_modifyitems(items):
    """A test using the Ray fixture must carry the `ray` marker (so `-m "not ray"` skips Ray)."""
    for item in items:
        uses_ray = "ray_cluster" in getattr(item, "fixturenames", ())
        if uses_ray and item.get_closest_marker("ray") is None:
            raise pytest.UsageError(f"{item.nodeid} uses ray_cluster but lacks @pytest.mark.ray")


def family_names(module, *, baseline: bool | None = None) -> list[str]:
    """The families a family-generic test runs over: every registered family, or the module's own
    `FAMILIES_UNDER_TEST` ({name: class}, registered by that module for its tests); `baseline`
    keeps only baselines (True) or only learned families (False)."""
    from bench.families import FAMILIES

    own = getattr(module, "FAMILIES_UNDER_TEST", None)
    classes = dict(own) if own else {name: FAMILIES.get(name) for name in FAMILIES.names()}
    return [name for name, cls in classes.items() if baseline is None or cls.baseline == baseline]


def pytest_generate_tests(metafunc):
    """A test taking `family` without its own parametrize runs once per family of the registry
    (`@pytest.mark.families(baseline=False)`: the learned families only). No test lists family names."""
    if "family" not in metafunc.fixturenames:
        return
    if any("family" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")):
        return
    marker = metafunc.definition.get_closest_marker("families")
    baseline = marker.kwargs.get("baseline") if marker else None
    metafunc.parametrize("family", family_names(metafunc.module, baseline=baseline))
