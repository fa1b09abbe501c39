"""Independent steps at once, and Cloud Run's operations.wait, through the real gate and twin.

Phase 3 on the incident rolls out two services (the backend and the auth service): the two
rollouts run at once, each journaled on its own. That is shown by order, not time: both rollouts'
``apply.before`` records precede either one's ``apply.after``. A fault in one of the two rolls back
both, and the twin ends as it began. The gate waits on Cloud Run operations with the long-poll
(``run.projects.locations.operations.wait`` in the twin's counters), never a loop of operations.get.
"""

from __future__ import annotations

from typing import Any

from selftest.conftest import Sandbox

BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
EARLIER = "phase1 or phase2"
PATCH = "run.projects.locations.services.patch"


def phase3(box: Sandbox) -> list[dict[str, Any]]:
    return [r for r in box.journal() if r.get("phase") == 3]


def services(box: Sandbox) -> dict[str, dict[str, Any]]:
    """Each service's traffic and template environment, as the twin holds them."""
    out = {}
    for svc in box.status()["run"]["services"]:
        name = svc["name"].rsplit("/", 1)[-1]
        env = {e["name"]: e.get("value", "") for e in svc["template"]["containers"][0].get("env", [])}
        out[name] = {"serving": {t["revision"]: t.get("percent", 0) for t in svc["trafficStatuses"]}, "env": env}
    return out


def test_phase3_rolls_out_both_services_at_once_waiting_on_cloud_run_with_the_long_poll(incident: Sandbox) -> None:
    run = incident.gate("-m", f"{EARLIER} or phase3", "--remediate", "--yes")
    assert run.returncode == 0, run.output
    records = [r for r in phase3(incident) if r["event"] in ("apply.before", "apply.after")]
    rollouts = {r["resource"].rsplit("/", 1)[-1] for r in records}
    assert rollouts == {BACKEND, AUTH}, records
    befores = [i for i, r in enumerate(records) if r["event"] == "apply.before"]
    afters = [i for i, r in enumerate(records) if r["event"] == "apply.after"]
    assert len(befores) == len(afters) == 2 and max(befores) < min(afters), \
        [(r["event"], r["resource"]) for r in records]  # both under way at once
    # Each rollout's operations are journaled against its own change.
    for rec in (r for r in phase3(incident) if r["event"] == "apply.operation"):
        assert rec["operation"].startswith(rec["resource"].split("/services/")[0] + "/operations/"), rec
    assert {r["resource"] for r in phase3(incident) if r["event"] == "apply.operation"} == \
        {r["resource"] for r in records}
    by_method = incident.status()["requests"]["by_method"]
    assert by_method.get("run.projects.locations.operations.wait", 0) >= 4  # two patches per rollout
    assert by_method.get("run.projects.locations.operations.get", 0) == 0, by_method


def test_a_fault_in_one_of_two_concurrent_rollouts_rolls_back_both(incident: Sandbox) -> None:
    # How many real patches phases 1 and 2 make on the incident, so the fault hits Phase 3's first.
    incident.gate("-m", EARLIER, "--remediate", "--yes")
    earlier = int(incident.status()["requests"]["by_method"].get(PATCH, 0))
    assert earlier >= 1
    incident.fresh_journal()
    incident.reset(str(incident.with_faults("incident-1278", f'''
[[faults]]
method = "{PATCH}"
code = 409
status = "ABORTED"
message = "injected: the service is being changed by another request"
after_calls = {earlier}
times = 1
''')))
    first = incident.gate("-m", EARLIER, "--remediate", "--yes")
    assert first.returncode == 0, first.output
    before = services(incident)
    assert before[AUTH]["env"].get("DEMO_MODE") == "1"  # Phase 3 still has both rollouts to do

    run = incident.gate("-m", "phase3", "--remediate", "--yes")
    assert run.returncode == 1, run.output
    fault = next(f for f in incident.status()["faults"] if f["method"] == PATCH)
    assert fault["hits"] == 1
    events = [(r["event"], r["resource"].rsplit("/", 1)[-1]) for r in phase3(incident)
              if r["event"] != "apply.operation" and r["event"] != "rollback.operation"]
    failed = {s for e, s in events if e == "apply.failed"}
    applied = {s for e, s in events if e == "apply.after"}
    assert len(failed) == 1 and failed | applied == {BACKEND, AUTH}, events  # one failed, the other landed
    (other,) = applied
    assert ("rollback.after", other) in events and ("rollback.verified", other) in events, events
    assert "rollback verified: yes" in run.output
    assert services(incident) == before  # traffic and templates of both, as they were
