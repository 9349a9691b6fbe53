"""The Snakemake report of a (tiny) whole run: every final table and figure is in it under its
stage's category with labels and a caption, and headless Chromium shows the figures.

Chromium comes from Debian (`chromium`); installed here when root, skipped otherwise. Screenshots
go to pytest's tmp_path (never into the checkout); set TASK2SIM_REPORT_SHOTS=<dir> to keep them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from conftest import Workflow
from PIL import Image
from tiny_workflow import parse_workflow

pytestmark = pytest.mark.workflow

# One category per stage (the noise stage's table sits with the rewards it qualifies).
STAGE_CATEGORIES = {"Tasks", "Renders", "Rewards", "Task2Vec", "Policy", "Final comparison", "ASG"}
# What a final table or figure is.
REPORTED_SUFFIXES = (".png", ".tsv", ".md")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--hide-scrollbars"]
WINDOW = (1400, 1000)


def _js_value(html: str, name: str):
    """A `var <name> = {...};` literal of the report's data block."""
    for m in re.finditer(rf"var {name} = (?=[{{\[])", html):
        return json.JSONDecoder().raw_decode(html, m.end())[0]
    raise AssertionError(f"no `var {name} = ` object in the report")


@pytest.fixture(scope="module")
def report(tiny_run: Workflow) -> tuple[Workflow, Path, str]:
    res = tiny_run.run("--report", "report.html", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    path = tiny_run.root / "report.html"
    return tiny_run, path, path.read_text()


def test_every_final_table_and_figure_is_in_the_report(report):
    wf, _, html = report
    categories, results = _js_value(html, "categories"), _js_value(html, "results")
    assert STAGE_CATEGORIES <= set(categories), sorted(categories)
    finals = [t for t in parse_workflow(wf)["final_targets"] if t.endswith(REPORTED_SUFFIXES)]
    assert finals
    missing = [t for t in finals if t not in results]
    assert not missing, f"final tables/figures without report(): {missing}"
    for path, entry in results.items():
        assert entry["labels"], f"{path}: report() without labels"
        assert entry["caption"].strip(), f"{path}: report() without a caption"
    # every result sits in exactly one stage category
    placed = {p: c for c, subs in categories.items() for paths in subs.values() for p in paths}
    assert set(placed) == set(results) and set(placed.values()) <= STAGE_CATEGORIES


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe:
        return exe
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and we are not root to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "-o", "DPkg::Lock::Timeout=300", "-qq", "update"],
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-qq", "install", "-y", "--no-install-recommends",
                 "chromium"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            pytest.skip(f"cannot install chromium: {(r.stderr or r.stdout).strip()[-300:]}")
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("chromium not on PATH after apt-get install chromium")
    return exe


# Opens one result the way a click on it does (its caption and labels in the side bar, the image
# in the content pane), then records in the page title whether the browser decoded the image.
_SHOW = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var path = %s;
    app.setView({navbarMode: "resultinfo", resultPath: path, content: "img",
                 contentPath: results[path].data_uri});
    var tries = 0;
    (function check() {
      var img = document.querySelector("#app img[src^='data:image/png']");
      if (img && img.complete && img.naturalWidth > 0) {
        document.title = "decoded " + img.naturalWidth + "x" + img.naturalHeight;
      } else if (tries++ < 50) { setTimeout(check, 100); }
    })();
  }, 200);
});
</script></body>"""


def _open_result(chromium: str, html: str, path: str, out_dir: Path) -> tuple[str, Path]:
    """The DOM and a screenshot of the report showing ``path``."""
    stem = re.sub(r"\W+", "_", path)
    page = out_dir / f"{stem}.html"
    # the last </body>: the embedded libraries hold the string too
    head, body_end, tail = html.rpartition("</body>")
    assert body_end, "no </body> in the report"
    page.write_text(head + _SHOW % json.dumps(path) + tail)
    common = [chromium, *CHROMIUM_FLAGS, f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=8000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = out_dir / f"{stem}.png"
    r = subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                       timeout=120, cwd=out_dir)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    return dom.stdout, shot


def _content_pixels(shot: Path) -> np.ndarray:
    """The screenshot right of the side bar (where the report shows the opened result)."""
    with Image.open(shot) as im:
        img = np.asarray(im.convert("RGB")).astype(np.int16)
    assert img.shape[:2] == (WINDOW[1], WINDOW[0]), img.shape
    # with a result's info open the side bar takes the left ~45% of the window
    return img[:, WINDOW[0] // 2:]


def test_report_figures_render_in_chromium(report, tmp_path):
    _, _, html = report
    chromium = _chromium()
    results = _js_value(html, "results")
    categories = _js_value(html, "categories")
    out_dir = Path(os.environ.get("TASK2SIM_REPORT_SHOTS", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    # one figure of every stage
    figures = {c: next(p for paths in subs.values() for p in paths if p.endswith(".png"))
               for c, subs in categories.items() if c in STAGE_CATEGORIES}
    assert set(figures) == STAGE_CATEGORIES
    for category, path in sorted(figures.items()):
        dom, shot = _open_result(chromium, html, path, out_dir)
        with Image.open(report[0].root / path) as fig:
            size = fig.size
        assert f"<title>decoded {size[0]}x{size[1]}</title>" in dom, f"{path}: the browser did not decode the image"
        # the caption's first words and the labels are in the side bar
        caption_words = unescape(re.sub(r"<[^>]+>", " ", results[path]["caption"])).split()[:4]
        text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", dom)))
        assert " ".join(caption_words) in text, (path, caption_words)
        for value in results[path]["labels"].values():
            assert str(value) in text, (path, value)
        # the figure is on screen: the content pane is not blank (non-white pixels in many colours,
        # spread over a good part of the pane; line plots on white leave only ~2% of it inked)
        pane = _content_pixels(shot)
        ink = np.abs(pane - 255).sum(axis=2) > 30
        colours = len(np.unique(pane.reshape(-1, 3), axis=0))
        cols = np.flatnonzero(ink.any(axis=0))
        spread = (cols[-1] - cols[0]) / ink.shape[1] if cols.size else 0.0
        assert ink.mean() > 0.005 and colours > 50 and spread > 0.33, (
            f"{category}: {path} looks blank ({ink.mean():.3f} inked, {colours} colours, {spread:.2f} wide)")
