"""One failing API costs only the criteria that need it (issue #15), through the real gate and twin.

A permanent fault on every method of one API (the twin's ``[[faults]]``), the read-only full gate on
the healthy scenario: exactly the criteria whose records declare a source of that API "could not
check" (INCONCLUSIVE, naming the source), every other criterion gives the verdict it gives without
the fault, and the run's summary and verdict.json name the failed source once. The expected sets
are derived from the records' declared ``sources``, never kept by hand here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from goldenpath.criteria import Criterion, confirmation, phase1, phase2, phase3, phase4
from goldenpath.sources import api_of
from goldenpath.twinctl import free_ports
from selftest.conftest import Run, Sandbox, _ensure_twin
from twin.world import served_method_ids

RECORDS: tuple[Criterion, ...] = (*phase1.RECORDS, *phase2.RECORDS, *phase3.RECORDS, *phase4.RECORDS,
                                  *confirmation.RECORDS)
# The twin names its methods by their discovery ids; the gate names an API by its short name
# (goldenpath/gcp/session.py). Dashboards v1 is served under monitoring.projects.dashboards.
TWIN_METHODS = {
    "run": "run.", "logging": "logging.", "vpcaccess": "vpcaccess.", "sqladmin": "sql.", "compute": "compute.",
    "monitoring": "monitoring.projects.", "dashboards": "monitoring.projects.dashboards.",
}
APIS = sorted({api_of(s) for r in RECORDS for s in r.sources} & set(TWIN_METHODS))


def methods(api: str) -> list[str]:
    others = [p for a, p in TWIN_METHODS.items() if a != api and p.startswith(TWIN_METHODS[api])]
    return sorted(m for m in served_method_ids()
                  if m.startswith(TWIN_METHODS[api]) and not any(m.startswith(p) for p in others))


def permanent_fault(api: str) -> str:
    """Every method of ``api`` refused, every time (403: not retried, so the run stays short)."""
    return "".join(f'[[faults]]\nmethod = "{m}"\ncode = 403\nstatus = "PERMISSION_DENIED"\n'
                   f'message = "injected: the {api} API refuses this identity"\n\n' for m in methods(api))


def needing(api: str) -> set[str]:
    """The records (keys) that read a source of ``api``: what must say it could not check."""
    return {r.key for r in RECORDS if any(api_of(s) == api for s in r.sources)}


def verdict(box: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((box.reports / "verdict.json").read_text())
    return data


def outcomes(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """node id → (record key, outcome)."""
    return {t["test"]: (t["criterion"], t["outcome"]) for t in doc["criteria"]}


def full_gate(box: Sandbox, scenario: str, faults: str = "", *args: str) -> tuple[Run, dict[str, Any]]:
    box.fresh_journal()
    box.reset(str(box.with_faults(scenario, faults)), propagation=None)
    run = box.gate("-rA", *args)
    return run, verdict(box)


@pytest.fixture(scope="module")
def baseline(sandbox: Sandbox) -> dict[str, tuple[str, str]]:
    """The read-only full gate on the healthy scenario without a fault: every criterion's normal verdict."""
    _ensure_twin(sandbox)
    _, doc = full_gate(sandbox, "healthy")
    assert doc["sources"] == [], doc["sources"]
    return outcomes(doc)


@pytest.mark.parametrize("api", APIS)
def test_a_permanent_fault_on_one_api_costs_only_the_criteria_that_read_it(
        sandbox: Sandbox, baseline: dict[str, tuple[str, str]], api: str) -> None:
    expected = needing(api)
    assert expected, f"no record declares a source of {api}"
    run, doc = full_gate(sandbox, "healthy", permanent_fault(api))
    seen = outcomes(doc)
    assert set(seen) == set(baseline), run.output[-3000:]
    unchecked = {key for key, outcome in seen.values() if outcome == "inconclusive"
                 and any(t["could_not_check"] for t in doc["criteria"] if t["criterion"] == key)}
    # Exactly the criteria that read the API could not check, each naming only that API's sources.
    assert unchecked == expected, (sorted(unchecked ^ expected), run.output[-4000:])
    for t in doc["criteria"]:
        key = t["criterion"]
        if key in expected:
            assert t["outcome"] == "inconclusive" and t["could_not_check"], t
            assert {api_of(s) for s in t["could_not_check"]} == {api}, t
            assert "could not check" in t["message"] and "at the end of the run" in t["message"], t
        else:
            # Every other criterion: its normal verdict, as without the fault.
            assert (key, t["outcome"]) == baseline[t["test"]], (t, run.output[-3000:])
            assert not t["could_not_check"], t
    # The summary names each failed source once, with what it cost; its paragraph is printed once.
    assert doc["sources"] and {api_of(f["source"]) for f in doc["sources"]} == {api}, doc["sources"]
    for f in doc["sources"]:
        assert f["kind"] == "permission" and f["status"] == "403 PERMISSION_DENIED", f
        assert f["criteria"], f
        assert run.stdout.count(f"SOURCE {api} {f['source'].split('.', 1)[1]}: permission denied") == 1, run.stdout
        assert run.stdout.count(f["message"]) == 1, run.stdout[-4000:]
        assert not any(f["message"] in t["message"] for t in doc["criteria"])
    if doc["verdict"] == "INCONCLUSIVE":
        assert doc["reason"].startswith(f"a source could not be read: {api} "), doc["reason"]
    assert doc["verdict"] != "PASS"
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("VERDICT: "))
    assert line == f"VERDICT: {doc['verdict']} — {doc['reason']}"


def test_cloud_sql_unreachable_on_the_incident_costs_only_the_database_criteria(sandbox: Sandbox) -> None:
    # The incident, sqladmin faulted: the connector and certificates keep their own verdicts.
    run, doc = full_gate(sandbox, "incident-1278", permanent_fault("sqladmin"))
    by_key: dict[str, set[str]] = {}
    for t in doc["criteria"]:
        by_key.setdefault(t["criterion"], set()).add(t["outcome"])
    assert {k for k, o in by_key.items() if o == {"inconclusive"}} >= needing("sqladmin")
    assert by_key[phase2.RECORDS[0].key] == {"failed"}                           # connector: its own reasons
    assert by_key[phase2.BY_ID[phase2.CERTIFICATE_VALID].key] == {"passed"}      # both certificates
    db = [i for i in doc["checklist"] if i["item"] == confirmation.DATABASE]
    assert db[0]["status"] == "inconclusive" and "could not check: sqladmin instances.get" in db[0]["reason"]


def dead_sqladmin(box: Sandbox) -> tuple[Any, str]:
    """The sandbox's targets with the sim target's sqladmin endpoint on a loopback port nothing listens on."""
    (port,) = free_ports(1)
    dead = f"http://127.0.0.1:{port}"
    text = box.targets.read_text().replace("[targets.sim]\n", f'[targets.sim]\nendpoints = {{ sqladmin = "{dead}" }}\n', 1)
    return box.write_targets("targets-dead-sqladmin.toml", text), dead


def test_phase2_with_sqladmin_on_a_dead_port_checks_everything_else(incident: Sandbox) -> None:
    # The "How to check it": -m phase2 on the incident, sqladmin pointed at a dead port.
    targets, dead = dead_sqladmin(incident)
    run = incident.gate("-m", "phase2", "-rA", targets=targets)
    doc = verdict(incident)
    got = {t["test"].split("::")[-1]: t for t in doc["criteria"]}
    assert got["test_vpc_connector_ready"]["outcome"] == "failed", run.output[-3000:]
    assert "state ERROR" in got["test_vpc_connector_ready"]["message"] or \
        "max instances" in got["test_vpc_connector_ready"]["message"]
    certs = [t for name, t in got.items() if name.startswith("test_ssl_certificate_valid")]
    assert len(certs) == 2 and all(t["outcome"] == "passed" for t in certs), certs
    db = got["test_database_connections_below_75_percent"]
    assert db["outcome"] == "inconclusive" and db["could_not_check"] == ["sqladmin.instances.get"], db
    assert got["test_no_vpc_connectivity_errors"]["could_not_check"] == []
    [source] = doc["sources"]
    assert source["source"] == "sqladmin.instances.get" and source["kind"] == "unreachable"
    assert source["where"] == dead and source["criteria"] == ["Database connections < 75% utilization"]
    assert f"SOURCE sqladmin instances.get: unreachable at {dead} (1 criterion could not be checked: " \
           "Database connections < 75% utilization)" in run.stdout
    assert "Cannot reach the sqladmin API" not in " ".join(t["message"] for t in doc["criteria"])
    assert run.stdout.count("Cannot reach the sqladmin API") == 1
    assert doc["verdict"] == "FAIL"  # the connector fails; the database could not check, never a pass


@pytest.mark.parametrize("api", ["sqladmin", "run", "monitoring"])  # discovery REST, REST, gRPC
def test_a_refused_connection_is_retried_briefly_and_reported_unreachable(sandbox: Sandbox, api: str) -> None:
    # No twin needed: the endpoint is a loopback port nothing listens on.
    from goldenpath.config import load
    from goldenpath.errors import CheckError
    from goldenpath.gcp.monitoring import Monitoring
    from goldenpath.gcp.run import CloudRun
    from goldenpath.gcp.session import REFUSED_RETRIES, GcpSession
    from goldenpath.gcp.sqladmin import CloudSql

    (port,) = free_ports(1)
    dead = f"http://127.0.0.1:{port}"
    text = sandbox.targets.read_text().replace("[targets.sim]\n", f'[targets.sim]\nendpoints = {{ {api} = "{dead}" }}\n', 1)
    session = GcpSession(load(sandbox.write_targets(f"targets-dead-{api}.toml", text), "sim"))
    read = {"sqladmin": lambda: CloudSql(session).get("netra-staging-db"),
            "run": lambda: CloudRun(session).get_service("netra-backend-staging"),
            "monitoring": lambda: Monitoring(session).alert_policies()}[api]
    with pytest.raises(CheckError) as err:
        read()
    assert err.value.kind == "unreachable" and err.value.api == api and err.value.where == dead, str(err.value)
    assert f"Cannot reach the {api} API at {dead}" in str(err.value)
    [call] = session.calls
    # A few attempts, not a retry for the whole of timeouts.api_seconds.
    assert 1 <= len(call.retried) + 1 <= REFUSED_RETRIES + 1, call.retried


def test_a_phase_whose_verification_needs_a_failed_source_plans_what_it_can_and_does_not_remediate(
        sandbox: Sandbox) -> None:
    box = sandbox
    _ensure_twin(box)
    box.fresh_journal()
    box.reset(str(box.with_faults("incident-1278", permanent_fault("sqladmin"))), propagation=None)
    first = box.gate("-m", "phase1", "--remediate", "--yes")  # Phase 1 reads no Cloud SQL: it is fixed
    assert first.returncode == 0, first.output[-3000:]
    connector = next(c for c in box.status()["vpcaccess"]["connectors"] if c["name"].endswith("/staging-connector"))
    writes = box.writes()

    plan = box.gate("-m", "phase2", "--remediate=plan")
    # The steps it can plan (the connector's) are shown; the database's flags cannot be, and it says why.
    assert "[phase 2] staging-connector" in plan.output, plan.output[-4000:]
    assert "set-database-flags" not in {s["step"] for s in json.loads((box.reports / "plan.json").read_text())["steps"]}
    assert ("[manual] not planned: 'Database connections < 75% utilization' could not be checked, because "
            "sqladmin instances.get: permission denied (403 PERMISSION_DENIED) at http://") in plan.output, plan.output[-4000:]
    note = "NOTE: --remediate would be refused now: phase 2 remediation refused before any change"
    (refused,) = [ln for ln in plan.output.splitlines() if ln.startswith(note)]
    assert "'Database connections < 75% utilization' could not be checked in this run" in refused
    assert box.writes() == writes

    run = box.gate("-m", "phase2", "--remediate", "--yes")
    # Refused before any change: nothing written, the connector as it was, no journal line for phase 2.
    assert "refused: phase 2 remediation refused before any change" in run.output, run.output[-4000:]
    assert box.writes() == writes
    after = next(c for c in box.status()["vpcaccess"]["connectors"] if c["name"].endswith("/staging-connector"))
    assert after == connector
    assert not [r for r in box.journal() if r.get("phase") == 2]
    assert verdict(box)["verdict"] == "FAIL"  # the connector still fails; nothing claims a pass


SERVICES_GET = "run.projects.locations.services.get"
REVISIONS_LIST = "run.projects.locations.services.revisions.list"
# The shipped target's backend and auth service.
SERVICES = 2


def test_the_phases_share_one_read_of_each_service_until_something_changes(
        sandbox: Sandbox, baseline: dict[str, tuple[str, str]]) -> None:
    """All four phases read every Cloud Run service (and three its revisions); a read-only run reads
    each once for all of them (goldenpath.observe.SharedReads), the Success Confirmation's window
    too (only its request log is read again). The verdicts are those of every earlier run."""
    run, doc = full_gate(sandbox, "healthy")
    by_method = sandbox.status()["requests"]["by_method"]
    assert by_method.get(SERVICES_GET) == SERVICES, by_method
    assert by_method.get(REVISIONS_LIST) == SERVICES, by_method
    assert outcomes(doc) == baseline, run.output


def test_a_shared_read_that_failed_is_read_again_by_the_next_phase_that_needs_it(
        sandbox: Sandbox, baseline: dict[str, tuple[str, str]]) -> None:
    """The first services.get of the run refused (403, not retried): the phases waiting on that read
    say they could not check, and the second wave (Phases 2 and 4) reads the service again, so its
    criteria keep their verdicts. A failure is never kept for later phases."""
    fault = ('[[faults]]\nmethod = "run.projects.locations.services.get"\ncode = 403\nstatus = "PERMISSION_DENIED"\n'
             'message = "injected: refused once"\ntimes = 1\n')
    run, doc = full_gate(sandbox, "healthy", fault)
    seen = outcomes(doc)
    by_method = sandbox.status()["requests"]["by_method"]
    assert by_method.get(SERVICES_GET) == SERVICES + 1, by_method  # the refused one, read again
    changed = {test: (was, seen[test]) for test, was in baseline.items() if seen[test] != was}
    assert changed, run.output
    assert all(now[1] == "inconclusive" for _, now in changed.values()), changed
    for test, (_, outcome) in seen.items():
        if test.startswith(("tests/phase2/", "tests/phase4/")):
            assert outcome == baseline[test][1], (test, outcome, run.output)
