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


# Drives the report's own app (its global `app`) as a reader would: a run's evaluation page,
# then its training page, where the two seeds' histories are one row with a seed toggle.
DRIVE = """
<script>
const wait = (ms) => new Promise((done) => setTimeout(done, ms));
const cells = (sel) => [...document.querySelectorAll(sel)].map((c) => c.textContent.trim());
async function info() {  // the path of the first row's item, as its info button opens it
  document.querySelectorAll("#app tr td:last-child a")[1].click();
  await wait(300);
  return app.state.resultPath;
}
window.addEventListener("load", () => setTimeout(async () => {
  const out = {};
  const page = {navbarMode: "subcategory", category: "4. Evaluation", subcategory: "simple_cnn"};
  app.setView(page);
  await wait(300);
  out.header = cells("#app th").filter(Boolean);
  out.rows = [...document.querySelectorAll("#app tr")]
    .map((r) => [...r.querySelectorAll("td")].map((c) => c.textContent.trim()).join("|"))
    .filter((r) => r.length > 1);
  const training = {navbarMode: "subcategory", category: "3. Training", subcategory: "simple_cnn"};
  app.setView(training);
  await wait(300);
  out.toggles = [...document.querySelectorAll("#app input[type=radio]")].map((i) => i.id);
  out.first = await info();
  app.setView(training);
  await wait(300);
  document.getElementById("toggle-seed-1").click();
  await wait(300);
  out.second = await info();
  document.body.dataset.result = JSON.stringify(out);
}, 300));
</script>
"""


def test_report_labels_filter_runs_splits_seeds_and_data_sets(done, tmp_path):
    """With 2 runs x 2 seeds the report groups each run's items on its own page, with columns
    for its labels (data set, split, seed) and, where a run's items differ by seed only, a
    seed toggle that switches the row to the other seed's file (headless Chromium)."""
    import html
    import json
    import re

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = tmp_path / "report.html"
    snakemake(done, "--report", str(report), guard=hangguard.COMMAND)
    page = tmp_path / "driven.html"
    page.write_text(report.read_text().replace("</body>", DRIVE + "</body>"))
    dom = chromium_run(chromium, tmp_path / "u", "--dump-dom", page)
    found = re.search(r'data-result="([^"]*)"', dom)
    assert found, "the page script did not finish"
    out = json.loads(html.unescape(found.group(1)))
    assert out["header"][:5] == ["run", "data set", "split", "seed", "table"], out["header"]
    seeds = {row.split("|")[3] for row in out["rows"] if row.startswith("simple_cnn|synthetic|")}
    assert seeds == {"0", "1"}, out["rows"]  # both replicates' metrics, on the run's own page
    assert all(row.startswith("simple_cnn|") for row in out["rows"])
    assert out["toggles"] == ["toggle-seed-0", "toggle-seed-1"]
    assert out["first"].endswith("simple_cnn/holdout/seed0/history.csv"), out["first"]
    assert out["second"].endswith("simple_cnn/holdout/seed1/history.csv"), out["second"]
