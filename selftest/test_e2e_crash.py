"""A SIGKILL at each journal point of a Phase 1 and a Phase 2 remediation, then ``--recover``.

The gate is killed by its own failpoint (``GOLDENPATH_FAILPOINT=EVENT#N``, a real SIGKILL right
after that journal record is on disk: goldenpath/failpoint.py). The next run must refuse to
remediate and name the interrupted run; ``--recover`` must leave each step's resource in its
before- or its after-state (never in between), verified, and journal which (issue #11).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from selftest.conftest import Sandbox, _ensure_twin

BACKEND = "netra-backend-staging"
OLD, NEW = "netra-backend-staging-00749-6tr", "netra-backend-staging-00750-69k"
BROKEN = "netra-backend-staging-00751-brk"


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    _ensure_twin(sandbox)
    sandbox.fresh_journal()
    return sandbox


def verdict(box: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((box.reports / "verdict.json").read_text())
    return data


def resolved(box: Sandbox) -> list[dict[str, Any]]:
    return [r for r in box.journal_all() if r["event"] == "recover.resolved"]


def crash_and_recover(box: Sandbox, point: str, *selection: str) -> tuple[str, str]:
    """Kill the remediation at ``point``, check the next run refuses, recover; the two outputs."""
    killed = box.gate(*selection, "--remediate", "--yes", env={"GOLDENPATH_FAILPOINT": point})
    assert killed.returncode == -9, killed.output
    assert not (box.reports / f"verdict-{_run_of(box)}.json").exists()  # a killed run leaves no verdict
    refused = box.gate(*selection, "--remediate", "--yes")
    assert "an interrupted remediation (run " + _run_of(box, first=True) in refused.output, refused.output
    assert verdict(box)["verdict"] == "ESCALATE"
    recovered = box.gate(*selection, "--recover", "--yes")
    assert "NOT RESOLVED" not in recovered.output, recovered.output
    assert "an interrupted remediation" not in " ".join(verdict(box)["escalations"]), recovered.output
    return refused.output, recovered.output


def _run_of(box: Sandbox, first: bool = True) -> str:
    runs = [r["run"] for r in box.journal_all()]
    return runs[0] if first else runs[-1]


# Phase 1 from the incident: route 50/50 → 100 % on NEW (apply.*#1), then delete OLD (apply.*#2).
PHASE1 = [
    # point            serving after recover      OLD still there   what --recover found
    ("apply.before#1", {OLD: 50, NEW: 50}, True, "the change had not landed"),
    ("apply.after#1", {NEW: 100}, True, "the change landed and the phase's criteria hold"),
    ("apply.before#2", {NEW: 100}, True, "the change had not landed"),
    ("apply.after#2", {NEW: 100}, False, "the change landed and cannot be undone"),
]


@pytest.mark.parametrize("point,serving,old_kept,found", PHASE1, ids=[p[0] for p in PHASE1])
def test_phase1_killed_then_recovered(box: Sandbox, point: str, serving: dict[str, int], old_kept: bool,
                                      found: str) -> None:
    box.reset("incident-1278")
    crash_and_recover(box, point, "-m", "phase1")
    assert box.serving() == serving
    assert (OLD in box.revisions()) is old_kept
    assert any(found in r["action"] for r in resolved(box)), resolved(box)


# Phase 1 on a broken latest revision: the route lands, verification fails, the rollback restores.
BROKEN_POINTS = [
    ("apply.after#1", "restored the state before the change"),
    ("rollback.before#1", "restored the state before the change"),
    ("rollback.after#1", "the rollback had landed"),
]


@pytest.mark.parametrize("point,found", BROKEN_POINTS, ids=[p[0] for p in BROKEN_POINTS])
def test_broken_latest_killed_then_recovered_to_the_split_before(box: Sandbox, point: str, found: str) -> None:
    box.reset("broken-latest")
    before = box.serving()
    crash_and_recover(box, point, "-m", "phase1")
    assert box.serving() == before  # the verified state before the change, never the broken one
    assert any(found in r["action"] for r in resolved(box)), resolved(box)


def test_killed_after_taking_the_lock_leaves_nothing_to_recover_but_the_lock(box: Sandbox) -> None:
    box.reset("incident-1278")
    killed = box.gate("-m", "phase1", "--remediate", "--yes", env={"GOLDENPATH_FAILPOINT": "run.start"})
    assert killed.returncode == -9
    refused = box.gate("-m", "phase1", "--remediate", "--yes")
    assert "stale remediation lock" in refused.output and "--break-lock" in refused.output, refused.output
    assert box.serving() == {OLD: 50, NEW: 50}
    broken = box.gate("-m", "phase1", "--remediate", "--yes", "--break-lock")
    assert box.serving() == {NEW: 100}, broken.output
    assert any(r["event"] == "lock.broken" and r["by"] == "--break-lock" for r in box.journal_all())


# Phase 2 from the incident (phase 1 first, so apply #1-#2 are Phase 1's): scale the connector
# (one-way, #3), then max_connections (restarts, #4).
PHASE2 = [
    ("apply.before#3", "the change had not landed"),
    ("apply.after#3", "the change landed and cannot be undone"),
    ("apply.before#4", "the change had not landed"),
    ("apply.after#4", "the change landed and the phase's criteria hold"),
]


@pytest.mark.parametrize("point,found", PHASE2, ids=[p[0] for p in PHASE2])
def test_phase2_killed_then_recovered(box: Sandbox, point: str, found: str) -> None:
    box.reset("incident-1278")
    before = box.status()
    crash_and_recover(box, point, "-m", "phase1 or phase2")
    after = box.status()
    step = [r for r in box.journal() if r["event"] == "apply.before"][int(point[-1]) - 1]
    assert any(found in r["action"] and r["recovers"]["step"] == step["step"] for r in resolved(box)), resolved(box)
    sql_before, sql_after = _flags(before), _flags(after)
    # The database flags are exactly as before, or exactly as planned: never in between.
    planned = {f["name"]: f["value"] for f in next(
        (r["planned"]["databaseFlags"] for r in box.journal() if r["step"] == "set-database-flags"
         and r["event"] == "apply.before"), [])}
    assert sql_after in (sql_before, planned or sql_before)


def test_killed_while_a_policy_waits_for_its_new_metric_then_recovered(box: Sandbox) -> None:
    # Phase 4 on healthy staging: Google's 10 minutes for a new metric at a clock 60 times as fast
    # (10 real seconds). The WebSocket policy reads two new metrics: its create is refused, and the gate
    # is killed right after the first refusal (a failpoint in the paced retry), mid-wait.
    box.reset("healthy", clock_scale=60, propagation=None)
    crash_and_recover(box, "monitoring.policy.refused", "-m", "phase4")
    killed_run = _run_of(box, first=True)
    ws = [r for r in box.journal_all() if r["run"] == killed_run and r.get("step") == "create-alert-policy"
          and "WebSocket" in r["summary"]]
    assert [r["event"] for r in ws] == ["apply.before"], ws  # no after: it was waiting when killed
    found = [r for r in resolved(box) if r["recovers"]["step"] == "create-alert-policy"
             and r["recovers"]["resource"] == ws[0]["resource"]]
    assert len(found) == 1 and "the change had not landed" in found[0]["action"], resolved(box)
    # The refused creates made nothing: no WebSocket policy, and none twice.
    names = [p["displayName"] for p in box.status()["monitoring"]["alertPolicies"]]
    assert "WebSocket Failure Rate Alert" not in names and len(names) == len(set(names)), names


def test_killed_with_two_rollouts_under_way_then_recovered(box: Sandbox) -> None:
    # Phase 3 rolls out the backend and the auth service at once (apply.before #5 and #6, after Phase
    # 1's two steps and Phase 2's two). Killed right after the second apply.before is on disk: both
    # steps are open in the journal, each maybe under way. --recover settles each on its own, and
    # leaves each service on its revision from before or on its new one, never in between.
    box.reset("incident-1278")
    crash_and_recover(box, "apply.before#6", "-m", "phase1 or phase2 or phase3")
    opened = [r for r in box.journal() if r["event"] == "apply.before" and r["phase"] == 3]
    assert len(opened) == 2 and len({r["resource"] for r in opened}) == 2, opened
    settled = {r["recovers"]["resource"] for r in resolved(box)}
    assert {r["resource"] for r in opened} <= settled, resolved(box)
    after = box.status()
    for r in opened:
        svc = next(s for s in after["run"]["services"] if s["name"] == r["resource"])
        serving = [t["revision"] for t in svc.get("trafficStatuses", []) if t.get("percent")]
        assert len(serving) == 1, svc.get("trafficStatuses")  # one revision holds all traffic: no half-rollout


def _flags(status: dict[str, Any]) -> dict[str, str]:
    inst = status["sqladmin"]["instances"][0]
    return {f["name"]: f.get("value", "") for f in inst["settings"].get("databaseFlags", [])}


# ---- timeouts --------------------------------------------------------------------------------

def _short_timeouts(box: Sandbox, api_seconds: float) -> Any:
    text = box.targets.read_text() + f"\n[targets.sim.timeouts]\napi_seconds = {api_seconds}\n"
    return box.write_targets(f"targets-api-{api_seconds:g}.toml", text)


def test_a_write_whose_answer_times_out_is_read_back_landed_and_counted_once(box: Sandbox) -> None:
    # The patch is carried out, but its answer takes longer than the gate waits for one call.
    slow = '[[faults]]\nmethod = "run.projects.locations.services.patch"\ndelay_seconds = 6.0\ntimes = 1\n'
    box.reset(str(box.with_faults("incident-1278", slow)), propagation=None)
    run = box.gate("-m", "phase1", "--remediate", "--yes", targets=_short_timeouts(box, 2))
    assert box.serving() == {NEW: 100}
    recs = [r for r in box.journal() if r["step"] == "route-traffic"]
    assert [r["event"] for r in recs] == ["apply.before", "apply.failed", "apply.reconciled", "apply.after"], run.output
    assert recs[2]["found"] == "landed"
    assert "timed out" in recs[1]["error"]
    assert box.status()["requests"]["by_method"]["run.projects.locations.services.patch"] == 1  # not resent
    assert run.returncode == 0, run.output


def test_a_slow_read_is_cut_at_api_seconds_and_said_so(box: Sandbox) -> None:
    slow = '[[faults]]\nmethod = "logging.entries.list"\ndelay_seconds = 30.0\n'
    box.reset(str(box.with_faults("healthy", slow)), propagation=None)
    run = box.gate("-m", "phase1", targets=_short_timeouts(box, 2))
    assert "timed out" in run.output, run.output
    assert "VERDICT: INCONCLUSIVE" in run.output or "VERDICT: FAIL" in run.output
    assert "VERDICT: PASS" not in run.output


# ---- two operators at once -------------------------------------------------------------------

def test_a_second_remediation_is_refused_while_the_first_holds_the_lock(box: Sandbox) -> None:
    import subprocess
    import sys
    import time

    from selftest.conftest import ROOT

    # The first run's route takes a while to answer: the second starts while it is mid-change.
    slow = '[[faults]]\nmethod = "run.projects.locations.services.patch"\ndelay_seconds = 6.0\ntimes = 1\n'
    box.reset(str(box.with_faults("incident-1278", slow)), propagation=None)
    for old in box.reports.glob("verdict*.json"):
        old.unlink()
    cmd = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", "--targets-file", str(box.targets),
           "--reports-dir", str(box.reports), "-m", "phase1", "--remediate", "--yes"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(r["event"] == "apply.before" for r in box.journal()) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The same target (same twin, same lock) without a health_url: the second run must not send a
    # burst of its own while the first one's change rolls out (its 503s, logged after the first's
    # update, would fail the first's verification: not what this test is about).
    quiet = box.write_targets("targets-no-burst.toml", "\n".join(
        line for line in box.targets.read_text().splitlines() if not line.startswith("health_url = ")) + "\n")
    second = box.gate("-m", "phase1", "--remediate", "--yes", targets=quiet)
    out, _ = first.communicate(timeout=300)
    first_run = box.journal_all()[0]["run"]
    assert "Another remediation of target 'sim' is running: run " + first_run in second.output, second.output
    assert first.returncode == 0, out
    assert box.serving() == {NEW: 100}
    # One run changed the target; each wrote its own verdict, and verdict.json is the last to finish.
    assert {r["run"] for r in box.journal()} == {first_run}
    verdicts = sorted(box.reports.glob("verdict-*.json"))
    assert len(verdicts) == 2 and (box.reports / f"verdict-{first_run}.json") in verdicts
    assert verdict(box)["run"] == first_run
