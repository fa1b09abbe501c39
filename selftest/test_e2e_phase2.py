"""Phase 2 through the real gate and twin: the connector, Cloud SQL connections, logs, certificates."""

from __future__ import annotations

from typing import Any

from selftest.conftest import Sandbox

CONNECTOR, INSTANCE = "staging-connector", "netra-staging-db"
OTHER_FLAGS = {"log_min_duration_statement": "1000", "cloudsql.iam_authentication": "on"}


def connector(box: Sandbox) -> dict[str, Any]:
    return next(c for c in box.status()["vpcaccess"]["connectors"] if c["name"].endswith("/" + CONNECTOR))


def flags(box: Sandbox) -> dict[str, str]:
    inst = next(i for i in box.status()["sqladmin"]["instances"] if i["name"] == INSTANCE)
    return {f["name"]: f["value"] for f in inst["settings"].get("databaseFlags", [])}


def test_incident_fails_phase2_with_the_runbook_reasons(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase2")
    assert run.returncode == 1, run.output
    assert (f"{CONNECTOR}: max instances 3 (expected 10), min instances 2 (expected 4), "
            "machine type e2-micro (expected e2-standard-4)") in run.output
    assert f"{INSTANCE}: 88 of 100 connections in use (88%" in run.output
    # No connector log exists (Google documents none); the metrics and the backend's stderr show it.
    assert f"{CONNECTOR}: " in run.output and "CPU p95 of its instances reached 100%" in run.output
    assert "connection timeouts/resets in the stdout/stderr of netra-backend-staging" in run.output
    assert "at its maximum of 3 instances: it cannot scale further" in run.output
    assert "10035" not in run.output
    assert "3 failed, 2 passed" in run.output  # both domains' certificates are fine in the incident
    assert incident.writes() == 0


def test_plan_shows_the_corrected_connector_change_and_the_flag_merge(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase2", "--remediate=plan")
    assert "--max-instances=20, which Serverless VPC Access refuses (max instances 3-10, min 2-9)" in run.output
    assert (f"vpc-access connectors update {CONNECTOR} --region=us-central1 --project=netra-staging "
            "--machine-type=e2-standard-4 --max-instances=10 --min-instances=4") in run.output
    assert ("--database-flags=max_connections=200,log_min_duration_statement=1000,"
            "cloudsql.iam_authentication=on") in run.output
    assert "would replace the whole flag list and drop log_min_duration_statement, cloudsql.iam_authentication" \
        in run.output
    assert "causes a restart, needs --yes" in run.output
    # phase 1 fails in the incident: the plan is shown, and says applying it would be refused
    assert "DO NOT SKIP STEPS" in run.output
    assert incident.writes() == 0


def test_phase2_remediation_is_refused_while_phase1_fails(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase2", "--remediate", "--yes")
    assert "refused: phase 2 remediation does not run while an earlier phase fails" in run.output
    assert incident.writes() == 0
    assert flags(incident)["max_connections"] == "100"


def test_remediate_yes_fixes_phases_1_and_2_keeping_the_other_flags(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase1 or phase2", "--remediate", "--yes")
    assert run.returncode == 0, run.output
    assert "11 passed" in run.output
    # The connector is judged on its points after the scale-up only, and they are clean.
    assert incident.gate("-m", "phase2", "-k", "vpc_connectivity", "-rA").outcome(
        "test_no_vpc_connectivity_errors") == "PASSED"
    assert flags(incident) == {"max_connections": "200", **OTHER_FLAGS}
    conn = connector(incident)
    assert (conn["state"], conn["minInstances"], conn["maxInstances"], conn["machineType"]) == \
        ("READY", 4, 10, "e2-standard-4")
    patches = [r for r in incident.journal() if r["step"] == "set-database-flags" and r["event"] == "apply.before"]
    assert patches and patches[0]["payload"]["restore"][0] == ["max_connections", "100"]

    writes = incident.writes()
    again = incident.gate("-m", "phase1 or phase2", "--remediate", "--yes")
    assert again.returncode == 0 and "phase 2: nothing to change" in again.output
    assert incident.writes() == writes


def test_remediate_without_yes_applies_no_phase2_step_and_says_why(incident: Sandbox) -> None:
    fixed = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert fixed.returncode == 0, fixed.output
    writes = incident.writes()
    run = incident.gate("-m", "phase2", "--remediate")
    assert f"skipped: {CONNECTOR}: scale to 4-10 × e2-standard-4" in run.output
    assert "irreversible: pass --yes to allow it" in run.output
    assert f"skipped: {INSTANCE}: set max_connections 100 → 200" in run.output
    assert "restart-causing: pass --yes to allow it" in run.output
    assert incident.writes() == writes


def test_utilization_above_90_after_the_fix_rolls_flags_back_and_escalates(incident: Sandbox) -> None:
    incident.reset("db-stays-high")
    run = incident.gate("-m", "phase1 or phase2", "--remediate", "--yes")
    assert run.returncode == 1
    assert "ESCALATE: database connections remain above 90 %" in run.output
    assert "rollback verified: yes" in run.output
    assert f"kept (cannot be undone): {CONNECTOR}: scale to" in run.output
    assert flags(incident) == {"max_connections": "100", **OTHER_FLAGS}  # restored, others kept
    events = [r["event"] for r in incident.journal() if r["step"] == "set-database-flags"
              and r["event"] not in ("apply.operation", "rollback.operation")]
    assert events == ["apply.before", "apply.after", "rollback.before", "rollback.after", "rollback.verified"]


def test_certificate_missing_a_domain_fails_that_domain_only(incident: Sandbox) -> None:
    incident.reset("cert-missing-domain")
    run = incident.gate("-m", "phase2", "-k", "certificate", "-rA")
    assert run.outcome("test_ssl_certificate_valid[api.staging.netrasystems.ai]") == "PASSED", run.output
    assert run.outcome("test_ssl_certificate_valid[api-staging.netrasystems.ai]") == "FAILED", run.output
    assert "does not cover api-staging.netrasystems.ai" in run.output
    assert "live TLS to api-staging.netrasystems.ai" in run.output


def test_certificate_near_expiry_fails_every_domain(incident: Sandbox) -> None:
    incident.reset("cert-near-expiry")
    run = incident.gate("-m", "phase2", "-k", "certificate")
    assert "2 failed" in run.output
    assert "expires in 5 days (at least 21 wanted)" in run.output


def test_connector_in_error_is_recreated_only_with_consent(incident: Sandbox) -> None:
    incident.reset("connector-error")
    plan = incident.gate("-m", "phase2", "--remediate=plan")
    assert "recreate the connector (state ERROR)" in plan.output
    assert "DESTRUCTIVE" in plan.output and "netra-backend-staging lose(s) egress" in plan.output
    run = incident.gate("-m", "phase2", "--remediate", "--yes")
    assert run.returncode == 0, run.output
    conn = connector(incident)
    assert (conn["state"], conn["maxInstances"], conn["machineType"]) == ("READY", 10, "e2-standard-4")


def test_overloaded_connector_that_nothing_logs_fails_on_its_metrics(incident: Sandbox) -> None:
    incident.reset("connector-overloaded-silent")
    run = incident.gate("-m", "phase2", "-k", "vpc_connectivity or vpc_connector_ready", "-rA")
    assert run.returncode == 1, run.output
    assert run.outcome("test_vpc_connector_ready") == "PASSED", run.output  # READY, with the runbook's shape
    assert run.outcome("test_no_vpc_connectivity_errors") == "FAILED", run.output
    assert "CPU p95 of its instances reached 100% (expected below 80%)" in run.output
    assert "carrying 16,000 Mbps of the ~16,000 Mbps its 10 × e2-standard-4 can" in run.output
    assert "at its maximum of 10 instances: it cannot scale further" in run.output
    assert "timeouts/resets" not in run.output  # nothing was logged: the metrics alone fail it


def test_connector_without_any_data_is_inconclusive_not_a_pass(incident: Sandbox) -> None:
    incident.reset("connector-no-data")
    run = incident.gate("-m", "phase2", "-k", "vpc_connectivity")
    assert "1 inconclusive" in run.output and "passed" not in run.output.splitlines()[-1], run.output
    assert (f"INCONCLUSIVE: {CONNECTOR}: not enough evidence: 0 cpu/utilizations, 0 instances and 0 "
            "sent/received_bytes_count points") in run.output
    assert "An empty log proves nothing" in run.output
