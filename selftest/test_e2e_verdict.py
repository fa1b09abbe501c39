"""The run's verdict through the real gate and twin: the checklist, VERDICT line and verdict.json."""

from __future__ import annotations

import json
from typing import Any

from selftest.conftest import Run, Sandbox

ITEMS = ["All health endpoints responding < 2 seconds", "WebSocket connections successful",
         "Zero HTTP 503 errors for 10 minutes", "Database utilization < 75%",
         "Golden Path validation passes end-to-end"]


def verdict(box: Sandbox) -> dict[str, Any]:
    return json.loads((box.reports / "verdict.json").read_text())


def checklist(run: Run) -> list[str]:
    """The checklist lines the terminal printed, in order, and the VERDICT line last."""
    lines = run.output.splitlines()
    start = max(i for i, line in enumerate(lines) if "Success Confirmation (runbook)" in line)
    return lines[start + 1:]


def test_the_incident_is_a_fail_with_every_item_of_the_checklist_failing(incident: Sandbox) -> None:
    (incident.reports / "verdict.json").unlink(missing_ok=True)
    run = incident.gate()
    assert run.returncode == 1
    lines = checklist(run)
    assert [line[2:].split(" — ")[0] for line in lines[:5]] == ITEMS
    assert all(line.startswith("❌") for line in lines[:5]), lines
    assert "0/5 connected" in lines[1] and "88 of 100 connections in use" in lines[3]
    assert lines[-1].startswith("VERDICT: FAIL — ") and lines[-1] == run.output.rstrip().splitlines()[-1]
    v = verdict(incident)
    assert v["schema"] == "goldenpath.verdict/1" and v["verdict"] == "FAIL"
    assert [i["status"] for i in v["checklist"]] == ["fail"] * 5
    assert v["target"] == {"name": "sim", "project": "netra-staging", "region": "us-central1", "twin": True,
                           "services": ["netra-backend-staging", "auth-service-staging"]}
    assert v["mutations"] == [] and v["escalations"] == [] and v["mode"]["remediate"] == "off"
    assert v["counts"]["failed"] >= 20 and v["started"] < v["ended"]
    failed = {c["test"].split("::")[-1] for c in v["criteria"] if c["outcome"] == "failed"}
    assert "test_single_active_revision[netra-backend-staging]" in failed
    assert "test_zero_503_errors_for_10_minutes[netra-backend-staging]" in failed


def test_after_the_fix_only_the_503_window_is_open_and_says_how_clean_it_is(incident: Sandbox) -> None:
    run = incident.gate("--remediate", "--yes")
    assert run.returncode == 0, run.output  # nothing failed; the window is inconclusive
    lines = checklist(run)
    assert [line[:1] for line in lines[:5]] == ["✅", "✅", "❔", "✅", "✅"], lines
    assert "503-free for " in lines[2] and " of 10 min" in lines[2]
    assert lines[-1].startswith("VERDICT: INCONCLUSIVE — Zero HTTP 503 errors for 10 minutes: "
                                "netra-backend-staging: not yet clean: 503-free for ")
    assert "--soak" in lines[-1]
    v = verdict(incident)
    window = v["checklist"][2]
    assert v["verdict"] == "INCONCLUSIVE" and window["status"] == "inconclusive"
    assert window["value"].startswith("503-free for ") and window["value"].endswith("requests)")
    # this run's journal, whole (run.end is written after the verdict, when pytest unconfigures)
    assert len(v["mutations"]) == len([r for r in incident.journal_all() if r["event"] != "run.end"]) > 0
    assert {m["run"] for m in v["mutations"]} == {v["run"]}


def test_with_a_faster_twin_clock_the_soak_waits_for_a_clean_window_and_passes(incident: Sandbox) -> None:
    incident.reset("incident-1278", clock_scale=10)  # ten twin minutes pass in one real minute
    run = incident.gate("--remediate", "--yes", "--soak")
    assert run.returncode == 0, run.output
    assert "soak: netra-backend-staging: 503-free for " in run.output  # it waited, and said so
    lines = checklist(run)
    assert all(line.startswith("✅") for line in lines[:5]), lines
    assert "503-free for 10 min of 10 min" in lines[2]
    assert lines[-1].startswith("VERDICT: PASS — ")
    assert verdict(incident)["verdict"] == "PASS"


def test_a_rollback_that_cannot_restore_escalates(incident: Sandbox) -> None:
    incident.reset("rollback-fails")
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert run.returncode == 1
    assert "rollback verified: NO" in run.output
    last = run.output.rstrip().splitlines()[-1]
    assert last.startswith("VERDICT: ESCALATE — service unavailable after Phase 1"), last
    v = verdict(incident)
    assert v["verdict"] == "ESCALATE"
    assert any("rollback of 'netra-backend-staging: route 100 % of traffic" in e and "failed" in e
               for e in v["escalations"])
    assert [m["event"] for m in v["mutations"] if "step" in m and "operation" not in m["event"]] == [
        "apply.before", "apply.after", "rollback.before", "rollback.failed", "rollback.reconciled"]
    # the phase's failures say why, which is how the report files them under "Escalation"
    assert "(ESCALATE: service unavailable after Phase 1" in run.output


def test_a_phase_only_run_is_not_a_pass(incident: Sandbox) -> None:
    incident.reset("healthy")
    run = incident.gate("-m", "phase1")
    assert run.returncode == 0 and "6 passed" in run.output, run.output
    lines = checklist(run)
    assert all(line.startswith("➖") for line in lines[:5])
    assert lines[-1].startswith("VERDICT: INCONCLUSIVE — every criterion that ran passed, but the Success "
                                "Confirmation was not fully checked")
