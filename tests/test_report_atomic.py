"""A report killed at any point never leaves a report that links a missing file: the report is
staged in a temporary folder and moved into place, report.md last, stale figures removed after."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from report_synth import frame, row, write_folder

from bench.report import writer
from bench.report.writer import STAGING, write_report

ROOT = Path(__file__).resolve().parents[1]
KILLS = 4


def small_frame():
    """GAN only, without sample files: few figures."""
    return frame([row("gan", seed=s, fid=2.0 + s, samples_npy="") for s in range(3)])


def other_frame():
    """GAN and flow on 2-D data with sample files: other figures (scatter, NLL) than small_frame's."""
    rows = [row(f, seed=s, fid=2.0 + s, samples_npy=f"samples/{f}-{s}.npy") for f in ("gan", "flow") for s in range(2)]
    return frame(rows)


def assert_links_exist(results: Path) -> None:
    """Whatever report files exist only link files that exist (the HTML embeds its figures)."""
    md = results / "report.md"
    if md.exists():
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md.read_text(encoding="utf-8")):
            assert (results / link).is_file(), f"report.md links missing {link}"
    page = results / "report.html"
    if page.exists():
        for src in re.findall(r"""src=['"]([^'"]+)['"]""", page.read_text(encoding="utf-8")):
            assert src.startswith("data:") or (results / src).is_file(), src


def _state(results: Path, df, tmp: Path) -> tuple[Path, Path]:
    """(a results folder with a finished report of small_frame, a staged report of `df` for it)."""
    write_report(write_folder(results, small_frame()))
    write_folder(results, df)
    stage = tmp / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / writer.FIGURES).mkdir(parents=True)
    writer._build(results, stage)
    return results, stage


def test_interrupted_publish_never_leaves_dangling_links(tmp_path, monkeypatch):
    """Deterministic: the move into place stops before each of its renames in turn."""
    results, stage = _state(tmp_path / "results", other_frame(), tmp_path)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(results, snapshot)
    n_renames = len(list((stage / writer.FIGURES).iterdir())) + len(writer.OUTPUTS)
    real_replace = os.replace
    for stop in range(n_renames + 1):
        shutil.rmtree(results)
        shutil.copytree(snapshot, results)
        shutil.copytree(stage, results / STAGING)
        calls = {"n": 0}

        def replace(src, dst, stop=stop, calls=calls):
            if calls["n"] == stop:
                raise KeyboardInterrupt  # the process dies here
            calls["n"] += 1
            real_replace(src, dst)

        monkeypatch.setattr(writer.os, "replace", replace)
        try:
            writer._publish(results / STAGING, results)
        except KeyboardInterrupt:
            assert stop < n_renames
        else:
            assert stop == n_renames and not (results / STAGING).exists()
        assert_links_exist(results)
    md = (results / "report.md").read_text(encoding="utf-8")
    assert "scatter_8gaussians.png" in md  # the new report, with figures the old one did not have


@pytest.mark.slow
def test_killing_report_at_random_points(tmp_path):
    results = write_folder(tmp_path, small_frame())
    code = "import sys; from bench.report import write_report; write_report(sys.argv[1])"
    cmd = [sys.executable, "-c", code, str(results)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    full = time.monotonic() - start
    rng = np.random.default_rng(0)
    for i, delay in enumerate(rng.uniform(0.3, 1.0, KILLS) * full):
        write_folder(results, other_frame() if i % 2 == 0 else small_frame())
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_links_exist(results)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)  # a later report cleans up after the killed ones
    assert_links_exist(results)
    assert (results / "report.md").is_file() and not (results / STAGING).exists()


@pytest.mark.parametrize(("err", "reason"), [(28, "No space left on device"), (30, "Read-only file system")])
def test_a_full_or_read_only_folder_is_one_line_exit_2_and_leaves_no_staging(
    tmp_path, monkeypatch, capsys, err, reason
):
    """ENOSPC / EROFS at a write of the report (injected at the figure writes: root ignores file
    modes, and a tmpfs mount needs privileges a test cannot assume): `genbench report` prints one
    line naming the path, exits 2, removes the staging folder; the report in place is unchanged."""
    from bench import cli
    from bench.report import figures

    results = write_folder(tmp_path / "results", small_frame())
    write_report(results)
    before = (results / "report.md").read_bytes()
    write_folder(results, other_frame())

    def full(df, results_dir, fig_dir):
        (fig_dir / "partial.png").write_bytes(b"x" * 1000)  # what a write had managed before the disk filled
        raise OSError(err, reason, str(fig_dir / "scatter_8gaussians.png"))

    monkeypatch.setattr(figures, "draw_all", full)
    assert cli.main(["report", str(results)]) == cli.EXIT_INVALID
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "scatter_8gaussians.png" in lines[0], lines
    assert not (results / STAGING).exists() and (results / "report.md").read_bytes() == before


def test_run_passes_a_full_folder_on_as_exit_2_and_says_the_rows_are_kept(tmp_path, monkeypatch):
    """`run` writes the report after its trials: a StorageError there reaches the command line
    (exit 2, one line), other report failures are logged and the run's exit code stands."""
    from bench.errors import StorageError
    from bench.run import driver

    results = write_folder(tmp_path / "results", small_frame())
    monkeypatch.setattr(writer.figures, "draw_all", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(StorageError, match="No space left.*the rows are kept") as e:
        driver.write_report(results)
    assert "\n" not in str(e.value)
    monkeypatch.setattr(writer.figures, "draw_all", lambda *a: (_ for _ in ()).throw(ValueError("a bug")))
    assert driver.write_report(results) is None
