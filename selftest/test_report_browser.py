"""The stakeholders' report, end to end: the real gate on the incident → Allure results → the single-file
report (bin/report-html, as bin/report makes it) → opened in headless Chromium as a person would.

Needs Node.js (the report's npm dependencies install themselves from reports/package-lock.json) and
Debian's Chromium at /usr/bin/chromium (`.ci/run` installs it). The screenshots are printed as
`screenshot: PATH` (shown by `pytest -rA`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from goldenpath import reporthtml
from goldenpath.criteria import phase1, phase3
from selftest.conftest import ROOT, Sandbox

CHROMIUM = Path(os.environ.get("GOLDENPATH_CHROMIUM", "/usr/bin/chromium"))
# The report's test titles are the runbook's words and the subject (each criterion's record).
FAILED = phase1.BY_ID[phase1.SINGLE_ACTIVE_REVISION].display("netra-backend-staging")
LATENCY = phase1.BY_ID[phase1.HEALTH_FAST].display("netra-backend-staging")
GOLDEN = phase3.BY_ID[phase3.GOLDEN_PATH].display("")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the report's browser test needs Debian's Chromium. Install it with "
                    "`apt-get install -y --no-install-recommends chromium` (as root; .ci/run does this).",
                    pytrace=False)


def report_html(results: Path, reports: Path) -> subprocess.CompletedProcess[str]:
    """The same step bin/report runs after the gate."""
    return subprocess.run([str(ROOT / "bin" / "report-html"), str(results)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**os.environ, "GOLDENPATH_REPORTS": str(reports)})


def test_report_is_self_contained_and_renders(incident: Sandbox, tmp_path: Path) -> None:
    require_chromium()
    results = incident.reports / "allure-results"
    run = incident.gate("-m", "phase1 or phase3", "--alluredir", str(results), "--clean-alluredir", "-q")
    assert run.returncode == 1, run.output  # the incident fails its criteria
    # What the gate writes beside the results for Allure.
    props = (results / "environment.properties").read_text()
    assert "Target=sim" in props and "Infrastructure=twin (rehearsal)" in props
    assert json.loads((results / "executor.json").read_text())["name"] == "goldenpath"
    assert (results / "categories.json").read_text() == (ROOT / "reports" / "categories.json").read_text()

    reports = tmp_path / "report"
    for n in (1, 2):  # twice: the second report has the first in its history
        made = report_html(results, reports)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "removed tracker: script loading https://www.googletagmanager.com/gtag/js" in made.stdout
        assert "loads nothing from outside the file" in made.stdout
        assert len((reports / "history" / "history.jsonl").read_text().splitlines()) == n
    index = reports / "html" / "index.html"
    html = index.read_text()
    assert "googletagmanager" not in html and "gtag(" not in html
    assert reporthtml.external_loads(html) == []
    assert not list((reports / "html").glob("*.woff*")) and not (reports / "html" / "data").exists()

    shots = tmp_path / "screenshots"
    proc = subprocess.run(["node", str(ROOT / "reports" / "browser-check.mjs"), str(index), str(shots),
                           "--open", FAILED, "--open", LATENCY, "--open", GOLDEN],
                          cwd=ROOT / "reports", capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout)
    for path in seen["screenshots"]:
        print(f"screenshot: {path}")

    assert seen["external_requests"] == [], "the report tried to load from outside the file"
    assert seen["page_errors"] == []
    assert seen["title"] == "goldenpath — Issue #1278"
    # The phases and criteria, as the tree's groups (epic → feature → story).
    for group in ("Issue #1278", "Phase 1: Immediate Stabilization", "Phase 3: Service Recovery",
                  "Single active Cloud Run revision", "Golden Path validation passes end-to-end"):
        assert group in seen["groups"], seen["groups"]
    assert FAILED in seen["tests"] and LATENCY in seen["tests"]
    # The environment and the executor, as the report's metadata.
    meta = seen["metadata"]
    assert meta["Target"] == "sim" and meta["Infrastructure"].startswith("twin (rehearsal)")
    assert meta["Remediation"] == "off (read-only)" and meta["Project"] == "netra-staging"
    assert "goldenpath" in meta["executor"]
    # The categories (from reports/categories.json through allurerc.mjs).
    assert "Infrastructure failing a criterion" in seen["categories_text"]

    opened = {o["name"]: o for o in seen["opened"]}
    failed = opened[FAILED]
    assert failed["status"] == "failed"
    assert "2 revisions serve traffic" in failed["error"]
    assert "evidence: netra-backend-staging" in failed["attachments"]
    assert "Category: Infrastructure failing a criterion" in failed["text"]

    latency = opened[LATENCY]
    assert "latency: netra-backend-staging" in latency["attachments"]
    chart = next(i for i in latency["images"] if i["attachment"] == "latency: netra-backend-staging")
    assert chart["complete"] and chart["width"] > 0 and chart["height"] > 0  # the SVG rendered

    golden = opened[GOLDEN]
    assert "the Golden Path, leg by leg" in golden["attachments"]
    assert any(i["attachment"] == "the Golden Path, leg by leg" and i["width"] > 0 for i in golden["images"])


def test_bin_report_keeps_the_gate_exit_code(incident: Sandbox, tmp_path: Path) -> None:
    """`bin/report` itself: the gate fails on the incident, the report is still made, the exit code is 1."""
    reports = tmp_path / "reports"
    proc = subprocess.run([str(ROOT / "bin" / "report"), "--targets-file", str(incident.targets), "--target=sim",
                           "-m", "phase1"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env={**os.environ,
                                                         "GOLDENPATH_REPORTS": str(reports)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"goldenpath report: file://{reports}/html/index.html" in out
    assert (reports / "html" / "index.html").is_file()
    assert (reports / "history" / "history.jsonl").is_file()
    assert (reports / "allure-results" / "environment.properties").is_file()
    # The gate's own reports go there too (--reports-dir), not into the repository's reports/.
    assert f"journal {reports}/journal.jsonl" in out
