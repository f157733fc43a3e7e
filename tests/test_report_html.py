"""The report as people read it: section order, Markdown rendered by a library (no literal
asterisks), every figure present, claims one row each with the rest collapsed, LaTeX that fits a
page, and the page rendered by headless Chromium (skipped with the reason when not installed)."""

from __future__ import annotations

import base64
import html.parser
import io
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from report_synth import frame, quick_like, row, write_folder

from bench.report import write_report
from bench.report.claims import CLAIMS
from bench.report.data import normalize
from bench.report.evidence import NOT_MEASURED
from bench.report.latex import to_latex
from bench.report.tables import summarize, summary_tables

SECTIONS = ["Summary", "Figures", "What each measure can see", "Claims", "Notes"]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


class Page(html.parser.HTMLParser):
    """h2 titles, img sources, the visible text (outside <style>), and <details> count."""

    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.imgs: list[str] = []
        self.text: list[str] = []
        self.details = 0
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        self.details += tag == "details"

    def handle_endtag(self, tag):
        self._tag = ""

    def handle_data(self, data):
        if self._tag == "h2":
            self.h2.append(data.strip())
        if self._tag != "style":
            self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    results = write_folder(tmp_path_factory.mktemp("html"), quick_like())
    write_report(results)
    return results


def test_sections_in_reading_order_and_markdown_rendered(report_dir):
    page = parse(report_dir / "report.html")
    assert page.h2 == SECTIONS
    text = "".join(page.text)
    assert "**" not in text and "*inconclusive*" not in text  # emphasis became elements
    raw = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "<strong>" in raw and "<em>inconclusive</em>" in raw and "<table>" in raw
    assert page.details == 1  # per-comparison detail collapsed under the claims
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == SECTIONS
    assert "Suite** synth" in md.split("## Summary")[0] and "not tuned" in md.split("## Summary")[0]


def test_every_figure_is_embedded_and_decodes(report_dir):
    page = parse(report_dir / "report.html")
    drawn = sorted((report_dir / "figures").glob("*.png"))
    assert len(page.imgs) == len(drawn) > 0
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.size[0] > 50


def test_claims_one_row_each_and_unmeasured_in_one_line(tmp_path):
    # GAN and flow only: most claims cannot be measured
    rows = [
        row(f, seed=s, samples_per_s=v)
        for f, vs in (("gan", [900, 1000, 1100]), ("flow", [90, 100, 110]))
        for s, v in enumerate(vs)
    ]
    results = write_folder(tmp_path, frame(rows))
    write_report(results)
    claims = pd.read_csv(results / "claims.csv")
    assert list(claims["claim_id"]) == [c.claim_id for c in CLAIMS]  # claims.csv keeps every claim
    assert {"verdict", "evidence", "p_value", "p_adjusted", "detectable"} <= set(claims.columns)
    md = (results / "report.md").read_text(encoding="utf-8")
    claims_md = md.split("## Claims")[1].split("## Notes")[0]
    unmeasured = claims[claims["verdict"] == NOT_MEASURED]["claim_id"].tolist()
    assert len(unmeasured) >= 5
    [line] = [x for x in claims_md.splitlines() if x.startswith("Not measurable")]
    assert all(cid in line for cid in unmeasured)
    table_rows = [x for x in claims_md.split("<details>")[0].splitlines() if x.startswith("| ")][1:]
    assert len(table_rows) == len(claims) - len(unmeasured)  # header excluded
    detail = pd.read_csv(results / "claims_detail.csv")
    assert {"p_adjusted", "detectable", "reference"} <= set(detail.columns)


def test_tuning_section_sits_between_figures_and_claims(tmp_path):
    df = quick_like().assign(tuned=True)
    results = write_folder(tmp_path, df)
    write_report(results)
    page = parse(results / "report.html")
    assert page.h2 == ["Summary", "Figures", "Tuning", "What each measure can see", "Claims", "Notes"]
    assert "tuned hyper-parameters" in (results / "report.md").read_text(encoding="utf-8").split("## Summary")[0]


def test_latex_tables_fit_a_page(report_dir):
    tex = (report_dir / "tables.tex").read_text(encoding="utf-8")
    assert tex.count("\\begin{landscape}") == tex.count("\\resizebox{\\linewidth}") == 2  # one per summary
    assert "\\begin{tabularx}{\\linewidth}" in tex and "X@{}}" in tex
    key = tex.split("\\end{tabularx}")[1]
    assert all(f"C{i}:" in key for i in range(1, len(CLAIMS) + 1))  # claims abbreviated, spelled out once
    df = normalize(quick_like())
    for t in summary_tables(summarize(df), df):
        assert max(len(h) for h in t.cells.columns) <= 16, list(t.cells.columns)
    assert not re.search(r"[±↓↑—†×]", tex)  # pdflatex-safe


def test_latex_escapes_special_characters():
    cells = pd.DataFrame({"model": ["ddpm_T200"], "note": ["50% & more"]})
    tex = to_latex(cells, None, "caption_with_under", "tab:x")
    assert r"ddpm\_T200" in tex and r"50\% \& more" in tex and r"caption\_with\_under" in tex


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it when run as root)")
def test_chromium_renders_the_report(report_dir, tmp_path):
    shot = tmp_path / "report.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = (report_dir / "report.html").as_uri()
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1400,3000", url], check=True, timeout=120, capture_output=True
    )
    with Image.open(shot) as im:
        assert im.size == (1400, 3000)
        colours = im.convert("L").getextrema()
    assert colours[0] < 50 and colours[1] > 200  # text and figures drawn, not a blank page
    dom = subprocess.run([*base, "--dump-dom", url], check=True, timeout=120, capture_output=True, text=True).stdout
    rendered = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", dom)
    assert "**" not in rendered
    assert [m for m in re.findall(r"<h2>([^<]+)</h2>", rendered)] == SECTIONS
