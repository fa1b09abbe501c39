"""Faults and crashes, injected into the real twin and the real gate: the verdict, the journal and
the world must agree afterwards (issue #11).

Faults are the twin's ``[[faults]]`` (a scenario copy, see ``Sandbox.with_faults``); crashes are a
real SIGKILL of the gate at a journal record (``GOLDENPATH_FAILPOINT``, goldenpath/failpoint.py).
Each test then reads the twin's state and the journal and checks they say the same thing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from selftest.conftest import Run, Sandbox, _ensure_twin

BACKEND = "netra-backend-staging"
OPS_GET_503 = """
[[faults]]
method = "run.projects.locations.operations.wait"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
"""


def events(box: Sandbox, **match: Any) -> list[str]:
    return [r["event"] for r in box.journal() if all(r.get(k) == v for k, v in match.items())]


def verdict(box: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((box.reports / "verdict.json").read_text())
    return data


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    _ensure_twin(sandbox)
    sandbox.fresh_journal()
    return sandbox


def start(box: Sandbox, scenario: str, faults: str = "", **timing: float) -> None:
    box.reset(str(box.with_faults(scenario, faults, **timing)), propagation=None)


def kill_at(box: Sandbox, point: str, *args: str) -> Run:
    run = box.gate(*args, env={"GOLDENPATH_FAILPOINT": point})
    assert run.returncode == -9, run.output  # SIGKILL: no verdict, no cleanup, as a real crash
    return run


# ---- a change lands while its call fails -------------------------------------------------------

def test_a_route_whose_operation_cannot_be_read_is_read_back_and_counted_as_applied(box: Sandbox) -> None:
    start(box, "incident-1278", OPS_GET_503)
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert box.serving() == {"netra-backend-staging-00750-69k": 100}
    assert run.returncode == 0, run.output
    assert "1 applied" in run.output or "2 applied" in run.output
    assert "but the change landed" in run.output
    recs = [r for r in box.journal() if r.get("step") == "route-traffic"]
    assert [r["event"] for r in recs] == ["apply.before", "apply.operation", "apply.failed", "apply.reconciled",
                                          "apply.after"]
    assert recs[3]["found"] == "landed" and recs[3]["operation"] == recs[1]["operation"]
    assert "rollback.before" not in events(box)
    assert verdict(box)["criteria"] and all(t["outcome"] == "passed" for t in verdict(box)["criteria"])
    assert "answered 503 UNAVAILABLE" in run.output and "600 seconds" not in run.output


# ---- an interrupted rollback is found and recovered --------------------------------------------

def test_a_rollback_killed_midway_is_refused_reported_and_recovered(box: Sandbox) -> None:
    start(box, "broken-latest")
    before = box.serving()
    assert len(before) == 2
    kill_at(box, "rollback.before", "-m", "phase1", "--remediate", "--yes")
    broken = box.serving()
    assert list(broken.values()) == [100]  # the world as the crash left it: all on the broken revision

    again = box.gate("-m", "phase1", "--remediate", "--yes")
    assert "an interrupted remediation (run " in again.output and "--recover" in again.output
    assert "step route-traffic" in again.output
    assert box.serving() == broken  # refused: nothing changed
    assert verdict(box)["verdict"] == "ESCALATE"

    read_only = box.gate("-m", "phase1")
    assert verdict(read_only_box := box)["verdict"] == "ESCALATE", read_only.output
    assert "an interrupted remediation" in verdict(read_only_box)["reason"] + " ".join(verdict(read_only_box)["escalations"])

    box.gate("-m", "phase1", "-n", "2")  # read-only under xdist: the controller reads the journal too
    assert verdict(box)["verdict"] == "ESCALATE"

    recovered = box.gate("-m", "phase1", "--recover", "--yes")
    assert "recover resolved" in recovered.output, recovered.output
    assert box.serving() == before
    assert "recover.resolved" in events(box)
    assert "an interrupted remediation" not in " ".join(verdict(box)["escalations"])

    after = box.gate("-m", "phase1", "--remediate=plan")
    assert "an interrupted remediation" not in after.output


# ---- the fault suite (issue #11): one fault per case, each through one phase-scoped gate run ----
#
# Every case ends with the same three checks: the verdict in verdict.json and on the terminal agree
# with the world; the world (read from the twin) is each step's before- or after-state, never in
# between; and the journal says which (apply.after, apply.reconciled found=..., rollback.verified).

CONNECTOR, INSTANCE = "staging-connector", "netra-staging-db"
SPLIT = {"netra-backend-staging-00749-6tr": 50, "netra-backend-staging-00750-69k": 50}  # the incident's
FIXED = {"netra-backend-staging-00750-69k": 100}
EARLIER_RUN_OFF = "phase1 or phase2"
METRICS = ["http_503_errors", "vpc_connector_errors", "websocket_failures", "websocket_upgrades"]
POLICIES = ["Cloud SQL Connection Utilization Alert", "HTTP 503 Error Rate Alert", "Response Latency P95 Alert",
            "VPC Connector Capacity Alert", "WebSocket Failure Rate Alert"]
DASHBOARD = "Infrastructure Capacity (Issue #1278)"


def fault(method: str, code: int, status: str, *, times: int | None = None, after_calls: int = 0) -> str:
    lines = ["[[faults]]", f'method = "{method}"', f"code = {code}", f'status = "{status}"',
             f'message = "injected by the fault suite: {status}"']
    if times is not None:
        lines.append(f"times = {times}")
    if after_calls:
        lines.append(f"after_calls = {after_calls}")
    return "\n".join(lines) + "\n"


TRANSIENT = [pytest.param(503, "UNAVAILABLE", id="503"), pytest.param(429, "RESOURCE_EXHAUSTED", id="429")]


def fault_calls(box: Sandbox, method: str) -> int:
    """How many calls the twin counted against the fault on ``method``: proof it fired."""
    return next(int(f.get("calls", 0)) for f in box.status()["faults"] if f["method"] == method)


def settled(box: Sandbox, run: Run, allowed: set[str]) -> dict[str, Any]:
    """verdict.json is this run's, names one of ``allowed``, and the terminal says the same."""
    v = verdict(box)
    assert v["verdict"] in allowed, (v["verdict"], v["reason"], v["escalations"], run.output[-3000:])
    assert f"VERDICT: {v['verdict']}" in run.output, run.output[-3000:]
    return v


def passed_phase(box: Sandbox, run: Run) -> None:
    """A phase-scoped run whose criteria all passed: INCONCLUSIVE only because the rest of the
    Success Confirmation was not part of the run, never FAIL or ESCALATE."""
    v = settled(box, run, {"INCONCLUSIVE"})
    assert run.returncode == 0, run.output[-3000:]
    assert v["counts"].get("passed") and set(v["counts"]) == {"passed"}, v["counts"]
    assert not v["escalations"], v["escalations"]


def by_resource(box: Sandbox, step: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in box.journal():
        if r.get("step") == step:
            out.setdefault(r["resource"], []).append(r)
    return out


def applied_once_after_not_landed(records: list[dict[str, Any]]) -> None:
    """The journal of one change hit by a transient fault on its write: every failed call was read
    back as not landed (the twin fails the call before it writes) and retried; exactly one apply.after."""
    ev = [r["event"] for r in records if r["event"] != "apply.operation"]
    assert ev[0] == "apply.before" and ev[-1] == "apply.after" and ev.count("apply.after") == 1, ev
    for i, r in enumerate(records):
        if r["event"] == "apply.failed":
            rec = next(x for x in records[i:] if x["event"] == "apply.reconciled")
            assert rec["found"] == "not landed", rec
    assert "rollback.before" not in ev


def refused_and_not_landed(records: list[dict[str, Any]]) -> None:
    """One change hit by a permanent fault: failed, read back as not landed, never applied."""
    ev = [r["event"] for r in records]
    assert "apply.failed" in ev and "apply.after" not in ev, ev
    found = [r["found"] for r in records if r["event"] == "apply.reconciled"]
    assert found and set(found) == {"not landed"}, found


def landed_after_failed_poll(records: list[dict[str, Any]]) -> None:
    """A write whose operation poll failed: read back as landed, counted as applied, not rolled back."""
    ev = [r["event"] for r in records if r["event"] != "apply.operation"]
    assert ev == ["apply.before", "apply.failed", "apply.reconciled", "apply.after"], ev
    rec = next(r for r in records if r["event"] == "apply.reconciled")
    assert rec["found"] == "landed", rec
    assert next(r for r in records if r["event"] == "apply.after").get("reconciled") is True


def connector(box: Sandbox) -> tuple[str, int, int, str]:
    c = next(c for c in box.status()["vpcaccess"]["connectors"] if c["name"].endswith("/" + CONNECTOR))
    return c["state"], c["minInstances"], c["maxInstances"], c["machineType"]


CONNECTOR_BEFORE, CONNECTOR_AFTER = ("READY", 2, 3, "e2-micro"), ("READY", 4, 10, "e2-standard-4")


def max_connections(box: Sandbox) -> str:
    inst = next(i for i in box.status()["sqladmin"]["instances"] if i["name"] == INSTANCE)
    return next(f["value"] for f in inst["settings"].get("databaseFlags", []) if f["name"] == "max_connections")


def monitoring(box: Sandbox) -> dict[str, Any]:
    return box.status()["monitoring"]


def metric_names(box: Sandbox) -> list[str]:
    return sorted(m["name"] for m in monitoring(box)["logMetrics"])


def policy_names(box: Sandbox) -> list[str]:
    return sorted(p["displayName"] for p in monitoring(box)["alertPolicies"])


def dashboard_names(box: Sandbox) -> list[str]:
    return sorted(d["displayName"] for d in monitoring(box)["dashboards"])


def phase4_world(box: Sandbox) -> tuple[list[str], list[str], list[str]]:
    return metric_names(box), policy_names(box), dashboard_names(box)


PHASE4_AFTER = (METRICS, POLICIES, [DASHBOARD])
PHASE4_BEFORE: tuple[list[str], list[str], list[str]] = ([], [], [])


# ---- Cloud Run: services.patch (Phase 1's route) and revisions.delete --------------------------

ROUTE_PATCH = "run.projects.locations.services.patch"
REV_DELETE = "run.projects.locations.services.revisions.delete"


@pytest.mark.parametrize("code,status", TRANSIENT)
def test_transient_fault_on_the_route_is_retried_once_and_verified(box: Sandbox, code: int, status: str) -> None:
    start(box, "incident-1278", fault(ROUTE_PATCH, code, status, times=1))
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert box.serving() == FIXED
    assert fault_calls(box, ROUTE_PATCH) == 2  # the refused call and exactly one more
    passed_phase(box, run)
    [route] = by_resource(box, "route-traffic").values()
    applied_once_after_not_landed(route)
    [delete] = by_resource(box, "delete-revision").values()
    assert [r["event"] for r in delete][-1] == "apply.after"
    assert box.revisions().isdisjoint({"netra-backend-staging-00749-6tr"})


@pytest.mark.parametrize("code,status", [pytest.param(503, "UNAVAILABLE", id="503"),
                                         pytest.param(403, "PERMISSION_DENIED", id="403")])
def test_permanent_fault_on_the_route_changes_nothing_and_says_not_landed(box: Sandbox, code: int,
                                                                          status: str) -> None:
    start(box, "incident-1278", fault(ROUTE_PATCH, code, status))
    revisions = box.revisions()
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert box.serving() == SPLIT and box.revisions() == revisions  # the before-state of both steps
    v = settled(box, run, {"FAIL", "ESCALATE"})
    assert run.returncode != 0
    assert "phase 1: 0 applied" in run.output and status in run.output, run.output[-4000:]
    [route] = by_resource(box, "route-traffic").values()
    refused_and_not_landed(route)
    # a refusal is not retried; an outage is, as often as the engine allows, each after a read-back
    assert [r["event"] for r in route].count("apply.failed") == (3 if code == 503 else 1)
    assert "delete-revision" not in {r.get("step") for r in box.journal()}
    assert v["counts"].get("failed"), v["counts"]


def test_transient_fault_on_the_revision_delete_deletes_it_once(box: Sandbox) -> None:
    start(box, "incident-1278", fault(REV_DELETE, 503, "UNAVAILABLE", times=1))
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert box.serving() == FIXED and "netra-backend-staging-00749-6tr" not in box.revisions()
    passed_phase(box, run)
    [delete] = by_resource(box, "delete-revision").values()
    applied_once_after_not_landed(delete)


def test_permanent_refusal_of_the_revision_delete_keeps_the_verified_route_and_the_revision(box: Sandbox) -> None:
    start(box, "incident-1278", fault(REV_DELETE, 403, "PERMISSION_DENIED"))
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    # The route verified before the deletion was tried (a deletion waits for that): it stays, and the
    # superseded revision, at 0 %, still exists: the after-state of one step, the before-state of the other.
    assert box.serving() == FIXED and "netra-backend-staging-00749-6tr" in box.revisions()
    v = settled(box, run, {"INCONCLUSIVE", "FAIL", "ESCALATE"})
    assert "error: netra-backend-staging: delete superseded revision" in run.output, run.output[-3000:]
    [delete] = by_resource(box, "delete-revision").values()
    refused_and_not_landed(delete)
    [route] = by_resource(box, "route-traffic").values()
    assert [r["event"] for r in route][-1] == "apply.after" and "rollback.before" not in [r["event"] for r in route]
    assert v["verdict"] != "PASS"


# ---- VPC Access: connectors.patch; Cloud SQL: instances.patch (Phase 2) --------------------------

CONN_PATCH = "vpcaccess.projects.locations.connectors.patch"
SQL_PATCH = "sql.instances.patch"


def phase2_run(box: Sandbox, faults: str) -> Run:
    # Phase 2 runs only once Phase 1 passes (DO NOT SKIP STEPS): both in one run, the faults hit Phase 2.
    start(box, "incident-1278", faults)
    assert connector(box) == CONNECTOR_BEFORE and max_connections(box) == "100"
    return box.gate("-m", "phase1 or phase2", "--remediate", "--yes")


@pytest.mark.parametrize("code,status", TRANSIENT)
def test_transient_fault_on_the_connector_patch_scales_it_once(box: Sandbox, code: int, status: str) -> None:
    run = phase2_run(box, fault(CONN_PATCH, code, status, times=1))
    assert connector(box) == CONNECTOR_AFTER and max_connections(box) == "200"
    assert fault_calls(box, CONN_PATCH) == 2
    passed_phase(box, run)
    [scale] = by_resource(box, "scale-connector").values()
    applied_once_after_not_landed(scale)


def test_permanent_fault_on_the_connector_patch_leaves_phase2_as_it_was(box: Sandbox) -> None:
    run = phase2_run(box, fault(CONN_PATCH, 400, "FAILED_PRECONDITION"))
    assert box.serving() == FIXED  # Phase 1 did its part and verified
    assert connector(box) == CONNECTOR_BEFORE and max_connections(box) == "100"  # Phase 2 changed nothing
    settled(box, run, {"FAIL", "ESCALATE"})
    assert run.returncode != 0 and "phase 2: 0 applied" in run.output
    [scale] = by_resource(box, "scale-connector").values()
    refused_and_not_landed(scale)
    assert "set-database-flags" not in {r.get("step") for r in box.journal()}


def test_transient_fault_on_the_sql_patch_sets_the_flag_once(box: Sandbox) -> None:
    run = phase2_run(box, fault(SQL_PATCH, 503, "UNAVAILABLE", times=1))
    assert connector(box) == CONNECTOR_AFTER and max_connections(box) == "200"
    assert fault_calls(box, SQL_PATCH) == 2
    passed_phase(box, run)
    [flags] = by_resource(box, "set-database-flags").values()
    applied_once_after_not_landed(flags)


def test_permanent_refusal_of_the_sql_patch_keeps_only_the_irreversible_scale_and_escalates(box: Sandbox) -> None:
    run = phase2_run(box, fault(SQL_PATCH, 403, "PERMISSION_DENIED"))
    # The connector's scale-up cannot be undone (Serverless VPC Access cannot scale a connector
    # down): it stays, as the plan said; the flags are as they were.
    assert connector(box) == CONNECTOR_AFTER and max_connections(box) == "100"
    v = settled(box, run, {"FAIL", "ESCALATE"})
    assert run.returncode != 0
    [flags] = by_resource(box, "set-database-flags").values()
    refused_and_not_landed(flags)
    [scale] = by_resource(box, "scale-connector").values()
    assert [r["event"] for r in scale if r["event"] != "apply.operation"] == [
        "apply.before", "apply.after", "rollback.impossible"], scale
    assert f"kept (cannot be undone): {CONNECTOR}: scale to" in run.output
    assert v["verdict"] != "PASS"


# ---- Logging metrics, Monitoring alert policies (gRPC), dashboards (Phase 4) --------------------

METRIC_CREATE = "logging.projects.metrics.create"
POLICY_CREATE = "monitoring.projects.alertPolicies.create"
DASHBOARD_CREATE = "monitoring.projects.dashboards.create"


def phase4_run(box: Sandbox, faults: str) -> Run:
    # healthy: Phases 1-3 hold and nothing of Phase 4 exists yet (as test_e2e_phase4 starts from).
    start(box, "healthy", faults)
    assert phase4_world(box) == PHASE4_BEFORE
    return box.gate("-m", "phase4", "--remediate", "--yes")


@pytest.mark.parametrize("method,step", [
    pytest.param(METRIC_CREATE, "create-log-metric", id="metric"),
    pytest.param(POLICY_CREATE, "create-alert-policy", id="policy"),
    pytest.param(DASHBOARD_CREATE, "create-dashboard", id="dashboard"),
])
@pytest.mark.parametrize("code,status", TRANSIENT)
def test_transient_fault_on_a_phase4_create_makes_each_thing_exactly_once(box: Sandbox, method: str, step: str,
                                                                          code: int, status: str) -> None:
    run = phase4_run(box, fault(method, code, status, times=1))
    # Exactly one of each: a retried create never made a second one.
    assert phase4_world(box) == PHASE4_AFTER
    assert len(monitoring(box)["alertPolicies"]) == len(POLICIES) and len(monitoring(box)["dashboards"]) == 1
    assert fault_calls(box, method) >= 2
    passed_phase(box, run)
    changes = by_resource(box, step)
    assert changes
    hit = [recs for recs in changes.values() if any(r["event"] == "apply.failed" for r in recs)]
    assert len(hit) <= 1
    for recs in changes.values():
        applied_once_after_not_landed(recs)


@pytest.mark.parametrize("method,step,earlier", [
    pytest.param(METRIC_CREATE, "create-log-metric", [], id="metric"),
    pytest.param(POLICY_CREATE, "create-alert-policy", ["create-log-metric"], id="policy"),
    pytest.param(DASHBOARD_CREATE, "create-dashboard", ["create-log-metric", "create-alert-policy"], id="dashboard"),
])
def test_permanent_fault_on_a_phase4_create_rolls_back_what_the_run_made(box: Sandbox, method: str, step: str,
                                                                         earlier: list[str]) -> None:
    run = phase4_run(box, fault(method, 403, "PERMISSION_DENIED"))
    assert phase4_world(box) == PHASE4_BEFORE  # every earlier create undone, the refused one never made
    v = settled(box, run, {"FAIL", "ESCALATE"})
    assert run.returncode != 0 and v["verdict"] != "PASS"
    # Creates of one kind run at once (different resources): the permanent fault refuses every one
    # that started; none landed.
    refused = [recs for recs in by_resource(box, step).values() if any(r["event"] == "apply.failed" for r in recs)]
    assert refused
    for recs in refused:
        refused_and_not_landed(recs)
    for s in earlier:
        for recs in by_resource(box, s).values():
            ev = [r["event"] for r in recs]
            assert "apply.after" in ev and ev[-1] == "rollback.verified", (s, ev)
    if earlier:
        assert "rollback verified: yes" in run.output


# ---- operation polls that fail after the write landed --------------------------------------------

@pytest.mark.parametrize("method,step", [
    pytest.param("vpcaccess.projects.locations.operations.get", "scale-connector", id="vpcaccess"),
    pytest.param("sql.operations.get", "set-database-flags", id="sql"),
])
def test_a_phase2_write_whose_operation_cannot_be_read_is_counted_as_applied(box: Sandbox, method: str,
                                                                             step: str) -> None:
    run = phase2_run(box, fault(method, 503, "UNAVAILABLE"))
    assert connector(box) == CONNECTOR_AFTER and max_connections(box) == "200"
    assert fault_calls(box, method) >= 1
    passed_phase(box, run)
    assert "but the change landed" in run.output
    [recs] = by_resource(box, step).values()
    landed_after_failed_poll(recs)


def test_a_route_whose_operation_poll_fails_once_is_applied_once(box: Sandbox) -> None:
    start(box, "incident-1278", fault("run.projects.locations.operations.wait", 503, "UNAVAILABLE", times=1))
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert box.serving() == FIXED and "netra-backend-staging-00749-6tr" not in box.revisions()
    passed_phase(box, run)
    assert box.status()["requests"]["by_method"].get(ROUTE_PATCH) == 1  # never written twice
    for step in ("route-traffic", "delete-revision"):
        [recs] = by_resource(box, step).values()
        ev = [r["event"] for r in recs]
        assert ev[-1] == "apply.after" and ev.count("apply.after") == 1, ev
        assert all(r["found"] == "landed" for r in recs if r["event"] == "apply.reconciled")


# ---- a fault during verification ----------------------------------------------------------------

ENTRIES = "logging.entries.list"


def test_logs_unreadable_during_phase1_verification_never_claim_the_fix(box: Sandbox) -> None:
    # How many entries:list calls a Phase 1 read makes before it plans: the fault starts after them.
    box.reset("incident-1278")
    box.gate("-m", "phase1")
    reads = box.status()["requests"]["by_method"].get(ENTRIES, 0)
    assert reads
    box.fresh_journal()
    start(box, "incident-1278", fault(ENTRIES, 403, "PERMISSION_DENIED", after_calls=reads))
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert fault_calls(box, ENTRIES) > reads  # verification did read the logs, and was refused
    v = settled(box, run, {"FAIL", "ESCALATE", "INCONCLUSIVE"})
    assert run.returncode != 0 and v["verdict"] != "PASS"
    route = [r["event"] for recs in by_resource(box, "route-traffic").values() for r in recs]
    assert "apply.after" in route
    if "rollback.before" in route:
        # the fix could not be shown to hold: undone, and the undo verified against the world (on the
        # service it restores: the logs it cannot read are not what a rollback is judged on)
        assert route[-1] == "rollback.verified", [(r["event"], r.get("detail")) for r in box.journal()]
        assert box.serving() == SPLIT
        assert v["verdict"] == "ESCALATE" and "rollback verified: yes" in run.output
        # the reason is the verification that could not be made, not a claim the service is down
        assert "could not be verified" in v["reason"] and "service unavailable" not in v["reason"], v["reason"]
    else:
        # kept, but not claimed: the deferred deletion did not run and the verdict is not a pass
        assert box.serving() == FIXED
        assert "delete-revision" not in {r.get("step") for r in box.journal() if r["event"] == "apply.after"}
        assert "netra-backend-staging-00749-6tr" in box.revisions()


# ---- a fault during rollback --------------------------------------------------------------------

def _rollback_failed_then_refused(box: Sandbox, run: Run) -> None:
    settled(box, run, {"ESCALATE"})
    assert run.returncode != 0
    [recs] = by_resource(box, "route-traffic").values()
    ev = [r["event"] for r in recs]
    assert "rollback.failed" in ev and "rollback.reconciled" in ev and "rollback.verified" not in ev, ev
    # the rollback did not land: read back, the route is still in its after-state (all on the new revision)
    assert {r["found"] for r in recs if r["event"] == "rollback.reconciled"} == {"landed"}
    assert list(box.serving().values()) == [100]
    assert "rollback verified: NO" in run.output or "rollback of" in run.output
    world = box.serving()
    again = box.gate("-m", "phase1", "--remediate", "--yes")
    assert "an interrupted remediation (run " in again.output and "--recover" in again.output, again.output[-3000:]
    assert box.serving() == world
    settled(box, again, {"ESCALATE"})


def test_the_shipped_rollback_failure_escalates_and_the_next_run_refuses(box: Sandbox) -> None:
    start(box, "rollback-fails")
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    _rollback_failed_then_refused(box, run)


@pytest.mark.parametrize("code,status", [pytest.param(503, "UNAVAILABLE", id="503"),
                                         pytest.param(400, "FAILED_PRECONDITION", id="400")])
def test_a_rollback_whose_write_fails_escalates_and_the_next_run_refuses(box: Sandbox, code: int, status: str) -> None:
    start(box, "broken-latest", fault(ROUTE_PATCH, code, status, after_calls=1))
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    _rollback_failed_then_refused(box, run)
    [recs] = by_resource(box, "route-traffic").values()
    # an outage is tried again after each read-back; a refusal is not
    assert [r["event"] for r in recs].count("rollback.failed") == (3 if code == 503 else 1)
