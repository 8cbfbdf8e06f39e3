"""The HTML report, rendered by a real headless browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_workflow import FIGURES, NAMES

from cxr14.testing import hangguard
from cxr14.testing.workflow import snakemake

pytestmark = pytest.mark.slow


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def chromium_run(chromium: str, profile: Path, *args: str | Path) -> str:
    """Headless Chromium with its own profile folder on ``args`` (a page's path last)."""
    *flags, page = args
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, Path(page).as_uri()]
    return hangguard.run(cmd, guard=hangguard.COMMAND, check=True).stdout


def test_html_report_renders_in_chromium(done, tmp_path):
    """snakemake --report gives one self-contained HTML file; a real headless browser renders
    it (non-blank screenshot, the app's categories in the DOM) and decodes every figure."""
    import base64
    import re

    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = done / "report.html"
    snakemake(done, "--report", str(report), guard=hangguard.COMMAND)
    html = report.read_text()
    shot = tmp_path / "shot.png"
    chromium_run(
        chromium, tmp_path / "u1", "--window-size=1280,900", f"--screenshot={shot}", report
    )
    with Image.open(shot) as im:
        assert im.size == (1280, 900) and np.asarray(im.convert("L")).std() > 10
    dom = chromium_run(chromium, tmp_path / "u2", "--dump-dom", report)
    # The landing page names the data set, the split and the date; every item has a caption.
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dom))
    assert "Data set of this run:" in text and "the synthetic demo set" in text
    assert "split patient_random" in text
    # Each run with its own loss (the W-CEL is not every run's).
    assert "simple_cnn = simple_cnn with loss wcel;" in text
    assert "simple_cnn_bce = simple_cnn with loss bce" in text
    assert re.search(r"report made on 20\d\d-\d\d-\d\d", text)
    # The provenance of the invocation that made the report.
    assert re.search(r"Made from: cxr14 \S+, (commit [0-9a-f]{40}|not a git work tree)", text)
    assert re.search(r"configuration sha256 [0-9a-f]{16}; Python 3", text)
    for caption in (
        "of its maximum and the box of its largest region",  # localisation table
        "Per-class test AUROC of each model of this run",  # summary figure
        "one row per epoch: learning rate",  # history.csv
        "as a Markdown document",  # summary.md
    ):
        assert caption in html, caption
    for category in (
        "1. Data",
        "2. Splits and sampling",
        "3. Training",
        "4. Evaluation",
        "5. Summary",
    ):
        assert category in dom, category
    # Every embedded figure decodes in the browser (naturalWidth > 0).
    uris = re.findall(r'"data_uri": "(data:image/png;[^"]+)"', html)
    # Per run: history, roc, calibration, filters, cam; overall: class counts, average image,
    # oversampling, AUROC comparison, forest plot, label efficiency.
    assert len(uris) == len(FIGURES) * len(NAMES) + 6
    assert "Label efficiency: test mean AUROC" in html
    for uri in uris:
        assert base64.b64decode(uri.split("base64,", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "figures.html"
    imgs = "".join(f'<img src="{u}">' for u in uris)
    page.write_text(
        f"<html><body>{imgs}<script>window.onload = () => {{ document.body.dataset.widths = "
        "[...document.images].map(i => i.complete ? i.naturalWidth : 0).join(','); };"
        "</script></body></html>"
    )
    dom = chromium_run(chromium, tmp_path / "u3", "--dump-dom", page)
    widths = [int(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    assert len(widths) == len(uris) and min(widths) > 300


# Drives the report's own app (its global `app`) as a reader would, by way of the menu: a run's
# evaluation and training pages, then a search for one replicate and that replicate's first item.
# Each page: its rows as {label: value}.
DRIVE = """
<script>
const wait = (ms) => new Promise((done) => setTimeout(done, ms));
function table() {
  const header = [...document.querySelectorAll("#app th")].map((c) => c.textContent.trim());
  return [...document.querySelectorAll("#app tr")]
    .map((r) => [...r.querySelectorAll("td")].map((c) => c.textContent.trim()))
    .filter((cells) => cells.length > 1)
    .map((cells) => Object.fromEntries(header.map((h, i) => [h, cells[i]]).filter(([h]) => h)));
}
async function show(view) {
  app.setView({navbarMode: "menu"});
  await wait(300);
  app.setView(view);
  await wait(300);
  return table();
}
window.addEventListener("load", () => setTimeout(async () => {
  const out = {};
  try {
    const page = (category) => ({navbarMode: "subcategory", category, subcategory: "simple_cnn"});
    out.evaluation = await show(page("4. Evaluation"));
    out.training = await show(page("3. Training"));
    const term = "simple_cnn_bce/holdout/seed1/";
    out.search = await show({navbarMode: "searchresults", searchTerm: term});
    document.querySelectorAll("#app tr td:last-child a")[1].click();  // the first row's info
    await wait(300);
    out.opened = app.state.resultPath;
  } catch (error) { out.error = String(error); }
  document.body.dataset.result = JSON.stringify(out);
}, 300));
</script>
"""


def test_report_labels_sort_and_filter_runs_splits_seeds_and_data_sets(done, tmp_path):
    """With 2 runs x 2 seeds the report gives each run a page whose items are a table with a
    column per label (run, data set, split, seed), both seeds' rows on it, and its search
    narrows the report to one replicate's files (headless Chromium driving the report's app)."""
    import html
    import json
    import re

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = tmp_path / "report.html"
    snakemake(done, "--report", str(report), guard=hangguard.COMMAND)
    head, tail = report.read_text().rsplit("</body>", 1)  # the page's own, not a caption's
    page = tmp_path / "driven.html"
    page.write_text(head + DRIVE + "</body>" + tail)
    dom = chromium_run(chromium, tmp_path / "u", "--dump-dom", page)
    found = re.search(r'data-result="([^"]*)"', dom)
    assert found, "the page script did not finish"
    out = json.loads(html.unescape(found.group(1)))
    assert "error" not in out, out
    key = ("data set", "split", "seed")
    assert {row["run"] for row in out["evaluation"]} == {"simple_cnn"}  # the run's own page
    metrics = [r for r in out["evaluation"] if r["table"].startswith("metrics (AUROC")]
    assert [tuple(r[k] for k in key) for r in metrics] == [
        ("synthetic", "holdout", s) for s in "01"
    ]
    histories = [r for r in out["training"] if r.get("table") == "history"]
    assert [(r["run"], r["split"], r["seed"]) for r in histories] == [
        ("simple_cnn", "holdout", s) for s in "01"
    ], out["training"]
    assert out["search"], "the search found nothing"
    assert {(r["run"], r["split"], r["seed"]) for r in out["search"]} == {
        ("simple_cnn_bce", "holdout", "1")
    }, out["search"]
    assert "/simple_cnn_bce/holdout/seed1/" in out["opened"], out["opened"]
