"""The read-only gate under pytest-xdist: the verdict a plain run gives, and JUnit that tells
INCONCLUSIVE from an ordinary skip (issue #12).

Under xdist the tests run in worker processes and the verdict is written by the controller, which
sees only the reports the workers send: these tests show that what the checklist needs travels on them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from selftest.conftest import Run, Sandbox


def checklist(run: Run) -> list[str]:
    """The checklist lines the terminal printed, in order, and the VERDICT line last."""
    lines = run.output.splitlines()
    start = max(i for i, line in enumerate(lines) if "Success Confirmation (runbook)" in line)
    return lines[start + 1:]


def timeless(line: str) -> str:
    """A line without its measured durations ("slowest 0.16 s"): two runs never take the same time."""
    return re.sub(r"\d+\.\d+ s\b", "#.## s", line)


def test_the_read_only_gate_under_xdist_gives_the_verdict_and_checklist_of_a_plain_run(incident: Sandbox) -> None:
    incident.reset("healthy")
    seen: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for name, args in {"plain": (), "xdist": ("-n", "2")}.items():
        (incident.reports / "verdict.json").unlink(missing_ok=True)
        run = incident.gate("-m", "not phase4", *args)
        assert run.returncode == 0, run.output
        if args:
            assert "2 workers [26 items]" in run.output, run.output  # it really ran on two workers
        verdict = json.loads((incident.reports / "verdict.json").read_text())
        seen[name] = [timeless(line) for line in checklist(run)], verdict
    (plain_lines, plain), (xdist_lines, xdist) = seen["plain"], seen["xdist"]
    # Before the fix: INCONCLUSIVE under xdist, every checklist item ➖ (the controller saw none).
    assert plain_lines[-1] == "VERDICT: PASS — all 26 criteria pass and the Success Confirmation holds"
    assert all(line.startswith("✅") for line in plain_lines[:5]), plain_lines
    assert xdist_lines == plain_lines
    assert xdist["verdict"] == plain["verdict"] == "PASS" and xdist["reason"] == plain["reason"]
    for doc in (plain, xdist):
        for item in doc["checklist"]:
            item["value"], item["reason"] = timeless(item["value"]), timeless(item["reason"])
    assert xdist["checklist"] == plain["checklist"]
    assert [(c["test"], c["outcome"]) for c in xdist["criteria"]] == [(c["test"], c["outcome"]) for c in plain["criteria"]]
    assert xdist["counts"] == plain["counts"] == {"passed": 26}
    # one run, one id: the workers took the controller's
    assert xdist["run"] != plain["run"] and (incident.reports / f"verdict-{xdist['run']}.json").exists()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_junit_marks_an_inconclusive_test_with_a_property(
        incident: Sandbox, tmp_path: Path, workers: tuple[str, ...]) -> None:
    incident.reset("healthy")
    # More requests than the window can hold: the 503 window is INCONCLUSIVE (not enough evidence).
    strict = incident.write_targets("targets-strict.toml", incident.targets.read_text().replace(
        "[targets.sim]\n", "[targets.sim]\nthresholds = { min_requests = 1000000 }\n", 1))
    junit = tmp_path / "junit.xml"
    # (two items only: the health item times real requests, which a loaded machine can push past 2 s)
    run = incident.gate("-m", "confirmation", "-k", "zero_503 or websocket", "--junitxml", str(junit), *workers,
                        targets=strict)
    assert run.returncode == 0, run.output
    assert re.search(r"\b1 passed, (\d+ deselected, )?1 inconclusive in ", run.output), run.output
    assert "\nVERDICT: INCONCLUSIVE — " in run.output, run.output
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    window = cases["test_zero_503_errors_for_10_minutes[netra-backend-staging]"]
    skipped = window.find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("INCONCLUSIVE: "), ET.tostring(window)
    props = {p.get("name"): p.get("value") for p in window.iter("property")}
    assert props == {"goldenpath_outcome": "inconclusive", "criterion": "confirmation.zero_503_window",
                     "title": "Zero HTTP 503 errors for 10 minutes: netra-backend-staging"}, ET.tostring(window)
    # a pass has no outcome property (nor has an ordinary skip: it comes only with INCONCLUSIVE)
    passed = cases["test_websocket_connections_successful"]
    props = {p.get("name"): p.get("value") for p in passed.iter("property")}
    assert passed.find("skipped") is None and "goldenpath_outcome" not in props, ET.tostring(passed)
    assert props["title"] == "WebSocket connections successful", ET.tostring(passed)
