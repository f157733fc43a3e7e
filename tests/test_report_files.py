"""`write_report` on synthetic results folders: every file, valid PNGs, a self-contained HTML,
numbers that match the rows, and byte-identical CSVs on a rerun."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_synth import frame, quick_like, row, write_folder
from scipy import stats as sps

from bench.report import OUTPUTS, write_report
from bench.report.claims import CLAIMS
from bench.report.data import normalize
from bench.report.evidence import SUPPORTED, VERDICTS

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_FIGURES = {
    "fid_vs_speed",
    "nll",
    "ddpm_steps",
    "loss_curves",
    "seed_spread",
    "samples_digits",
    "scatter_8gaussians",
}


def assert_png(data: bytes) -> None:
    assert data[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        assert im.size[0] > 50 and im.size[1] > 50


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    results = write_folder(tmp_path_factory.mktemp("quick"), quick_like())
    assert write_report(results) == results / "report.md"
    return results


def test_every_file_is_written(report_dir):
    for name in OUTPUTS:
        assert (report_dir / name).stat().st_size > 0, name
    drawn = {p.stem for p in (report_dir / "figures").glob("*.png")}
    assert drawn == EXPECTED_FIGURES


def test_every_figure_is_a_valid_png(report_dir):
    for path in (report_dir / "figures").glob("*.png"):
        assert_png(path.read_bytes())


def test_html_is_self_contained(report_dir):
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", text)
    embedded = [r for r in refs if r.startswith("data:image/png;base64,")]
    assert len(embedded) == len(EXPECTED_FIGURES)
    for ref in refs:
        if ref in embedded:
            assert_png(base64.b64decode(ref.split(",", 1)[1]))
        else:  # anything not embedded must exist next to the report
            assert (report_dir / ref).is_file(), ref


def test_markdown_links_exist(report_dir):
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(EXPECTED_FIGURES)
    assert all((report_dir / link).is_file() for link in links)


def test_rerun_gives_identical_csvs(report_dir, tmp_path):
    before = {n: (report_dir / n).read_bytes() for n in ("claims.csv", "summary.csv", "claims_detail.csv")}
    copy = shutil.copytree(report_dir, tmp_path / "again")  # same trials, report files present
    # Another process with another string-hash seed: no set/dict order may leak into the files.
    code = "import sys; from bench.report import write_report; write_report(sys.argv[1])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(copy)], check=True, env=env, cwd=ROOT)
    for name, data in before.items():
        assert (copy / name).read_bytes() == data, name


def test_claims_csv_has_one_row_per_claim(report_dir):
    claims = pd.read_csv(report_dir / "claims.csv")
    assert list(claims["claim_id"]) == [c.claim_id for c in CLAIMS]
    assert set(claims["verdict"]) <= set(VERDICTS)
    verdict = dict(zip(claims["claim_id"], claims["verdict"]))
    # built in: GAN ~10x faster than the flow, VAE sharpness 0.4 vs GAN 0.9, flow mass 0.998
    assert verdict["gan-faster-than-flow"] == SUPPORTED
    assert verdict["vae-samples-blurred"] == SUPPORTED
    assert verdict["flow-exact-likelihood"] == SUPPORTED


def test_summary_numbers_match_the_rows(report_dir):
    summary = pd.read_csv(report_dir / "summary.csv", keep_default_na=True)
    df = normalize(quick_like())
    ok = df[(df["status"] == "ok") & (df["dataset"] == "8gaussians") & (df["family"] == "flow")]
    s = summary[(summary["dataset"] == "8gaussians") & (summary["label"] == "flow")].iloc[0]
    x = ok["fid"].to_numpy()
    low, high = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert (s["fid_mean"], s["fid_ci_low"], s["fid_ci_high"]) == pytest.approx(
        (x.mean(), low, high), rel=1e-5
    )  # CSV keeps 6 significant digits
    assert s["fid_n"] == 3
    gan = summary[summary["family"] == "gan"]
    assert gan["nll_mean"].isna().all() and (gan["nll_n"] == 0).all()  # no likelihood: not 0
    counts = summary.set_index(["dataset", "label"])
    assert counts.loc[("digits", "gan"), "n_diverged"] == 1
    assert counts.loc[("digits", "vae"), "n_failed"] == 1


def test_rendered_tables_mark_best_and_missing(report_dir):
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    summary = md.split("## Summary")[1].split("## Figures")[0]
    gan_rows = [line for line in summary.splitlines() if line.startswith("| gan ")]
    assert len(gan_rows) == 2
    assert all(line.split("|")[2].strip() == "—" for line in gan_rows)  # GAN NLL: a dash, not 0
    assert "NLL [nats] ↓" in md and "NLL [bits/dim] ↓" in md and "| estimator" in md
    # best FID (lowest mean) and best samples/s (highest) of 8gaussians are bold, nothing else
    ok = normalize(quick_like())
    ok = ok[(ok["status"] == "ok") & (ok["dataset"] == "8gaussians")]
    means = ok.groupby("label")[["fid", "samples_per_s"]].mean()
    table = summary.split("### 8gaussians / short")[1].split("###")[0].splitlines()
    header = [h.strip() for h in next(x for x in table if x.startswith("| model")).split("|")]
    cells = {
        r.split("|")[1].strip(): [c.strip() for c in r.split("|")]
        for r in table
        if r.startswith("| ") and not r.startswith("| model")
    }
    for col, best in (
        ("FID ↓", means["fid"].idxmin()),
        ("samples/s ↑", means["samples_per_s"].idxmax()),
    ):
        i = header.index(col)
        bold = {label for label, c in cells.items() if c[i].startswith("**")}
        assert bold == {best}, col
    tex = (report_dir / "tables.tex").read_text(encoding="utf-8")
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{", r"$\pm$"):
        assert token in tex
    assert "±" not in tex and "↓" not in tex


def test_report_without_optional_data_skips_figures(tmp_path):
    # GAN only, no curves, no sample files: every figure that needs absent data is skipped
    rows = [row("gan", seed=s, loss_curve="", fid=np.nan) for s in range(2)]
    rows.append(row("gan", seed=2, status="failed", error="boom", fid=np.nan))
    results = write_folder(tmp_path, frame(rows))
    write_report(results)
    for name in OUTPUTS:
        assert (results / name).is_file(), name
    claims = pd.read_csv(results / "claims.csv")
    assert len(claims) == len(CLAIMS) and set(claims["verdict"]) == {"not measured"}
    md = (results / "report.md").read_text(encoding="utf-8")
    assert "Figures not drawn" in md and "no ok trial reports an NLL" in md
    assert "Failed and diverged trials" in md
    for path in (results / "figures").glob("*.png"):
        assert_png(path.read_bytes())
    html = (results / "report.html").read_text(encoding="utf-8")
    assert not re.findall(r"""src=['"](?!data:)""", html)


def test_empty_results_folder_gives_an_empty_report(tmp_path):
    write_folder(tmp_path, frame([]))
    write_report(tmp_path)
    assert pd.read_csv(tmp_path / "summary.csv").empty
    assert len(pd.read_csv(tmp_path / "claims.csv")) == len(CLAIMS)


def test_parsed_json_columns_are_accepted():
    df = quick_like()
    df["loss_curve"] = [{"loss": [[0, 1.0]]}] * len(df)  # a loader that parsed the JSON text
    assert normalize(df)["loss_curve"].iloc[0] == '{"loss": [[0, 1.0]]}'


def test_no_best_nll_across_estimators_of_different_kinds():
    """An exact NLL, an IWAE bound and a VLB are different quantities: the best is marked only among
    rows of one estimator kind."""
    from bench.report.tables import _best_mask

    summary = pd.DataFrame(
        {
            "family": ["flow", "vae", "ddpm", "flow"],
            "label": ["flow", "vae", "ddpm", "flow-b"],
            "nll_kind": ["exact", "iwae-64", "vlb", "exact"],
            "nll_mean": [2.9, 2.8, 3.0, 2.95],
        }
    )
    assert _best_mask(summary, "nll").tolist() == [True, False, False, False]
    assert not _best_mask(summary.iloc[:3], "nll").any()  # one row per kind: nothing to compare


def test_the_headline_counts_every_status_so_the_parts_sum_to_the_trials():
    """A no-steps row (or any status outside ok/failed/diverged) is counted, not dropped: 2 + 0 + 0 + 1 = 3."""
    from report_synth import frame, row

    from bench.report.sections import _trial_counts

    df = frame([row("gan", seed=0), row("gan", seed=1), row("gan", seed=2, status="no-steps")])
    assert _trial_counts(df) == "3 trials (2 ok, 0 failed, 0 diverged, 1 no-steps)"
