"""Phase 3 through the real gate and twin: WebSocket, the Golden Path, health, startup, configuration."""

from __future__ import annotations

from selftest.conftest import ACCOUNT_VARIABLES, REHEARSAL_PASSWORD, Sandbox

BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
ALL_PHASES = "phase1 or phase2 or phase3"


def serving(box: Sandbox, service: str = BACKEND) -> dict[str, int]:
    return box.serving(service)


def template_env(box: Sandbox, service: str = BACKEND) -> dict[str, str]:
    svc = next(s for s in box.status()["run"]["services"] if s["name"].endswith("/" + service))
    return {e["name"]: e.get("value", "") for e in svc["template"]["containers"][0].get("env", [])}


def test_incident_fails_phase3_by_cause(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase3")
    assert run.returncode == 1, run.output
    assert f"{AUTH}: the serving revision auth-service-staging-00311-k8x has DEMO_MODE is '1' (expected '0')" \
        in run.output
    assert "the Golden Path breaks at login" in run.output and "demo mode" in run.output
    assert "https://api.staging.netrasystems.ai/health/db: answered 503" in run.output
    assert "connections failed: closed 1011" in run.output  # the WebSocket dies with the database path
    assert incident.writes() == 0


def test_phases_1_to_3_in_one_run_pass_and_report_the_journey(incident: Sandbox) -> None:
    run = incident.gate("-m", ALL_PHASES, "--remediate", "--yes",
                        "--alluredir", str(incident.reports / "allure-results"))
    assert run.returncode == 0, run.output
    assert "PASS golden_path [login → AI response]: a user logs in and gets an AI response: login" in run.output
    assert "final_response" in run.output
    env = template_env(incident)
    assert (env["VPC_CONNECTOR_TIMEOUT"], env["DATABASE_TIMEOUT"], env["DEMO_MODE"]) == ("600", "600", "0")
    assert template_env(incident, AUTH)["DEMO_MODE"] == "0"
    (new,) = serving(incident)
    assert new not in ("netra-backend-staging-00749-6tr", "netra-backend-staging-00750-69k")  # the rollout's
    # credentials never reach a report, a journal or a plan
    password = REHEARSAL_PASSWORD
    leaked = [p for p in incident.reports.rglob("*") if p.is_file()
              and (password in p.read_text(errors="replace") or "Bearer " in p.read_text(errors="replace"))]
    assert leaked == []
    assert password not in run.output


def test_a_broken_config_rollout_is_rolled_back_to_the_previous_revision(incident: Sandbox) -> None:
    incident.reset("config-rollout-broken")
    before_serving, before_env = serving(incident), template_env(incident)
    run = incident.gate("-m", ALL_PHASES, "--remediate", "--yes")
    assert run.returncode == 1
    assert "ESCALATE: Phase 3 did not verify after the configuration rollout" in run.output
    assert "rollback verified: yes" in run.output
    assert serving(incident) == before_serving
    assert template_env(incident) == before_env


def test_startup_errors_fail_the_right_criterion(incident: Sandbox) -> None:
    incident.reset("startup-errors")
    run = incident.gate("-m", "phase3", "-rA")
    assert run.outcome(f"test_no_startup_errors[{BACKEND}]") == "FAILED", run.output
    assert "error(s) since it was created" in run.output
    assert run.outcome("test_golden_path_end_to_end") == "PASSED", run.output


def test_a_silent_websocket_fails_by_timeout(incident: Sandbox) -> None:
    incident.reset("ws-silent")
    run = incident.gate("-m", "phase3", "-rA")
    assert run.outcome("test_websocket_connections") == "FAILED", run.output
    assert "timeout: no answer in time ×5" in run.output


def test_a_missing_credential_names_the_variable(incident: Sandbox) -> None:
    incident.reset("healthy")
    run = incident.gate("-m", "phase3", "-k", "golden_path", targets=incident.targets_naming_account(),
                        env={**ACCOUNT_VARIABLES, "GP_REHEARSAL_PASSWORD": ""})
    assert "set the environment variable(s) GP_REHEARSAL_PASSWORD" in run.output
    assert "ConfigError" in run.output and "Traceback" not in run.output


def test_a_failed_deploy_moves_no_traffic_and_restores_the_template(incident: Sandbox) -> None:
    # config-rollout-deploy-fails: the rollout's operation ends in error; the template names its revision,
    # so a rollout that sent that name back with the changed template would be refused with 409 instead.
    incident.reset("config-rollout-deploy-fails")
    before_serving, before_env = serving(incident), template_env(incident)
    run = incident.gate("-m", ALL_PHASES, "--remediate", "--yes")
    assert run.returncode == 1, run.output
    (error,) = [line for line in run.output.splitlines() if line.startswith("  error: ")]
    assert f"{BACKEND}: the new revision did not deploy" in error
    assert "is not ready and cannot serve traffic" in error and "400" in error
    assert "Traffic was not moved" in error and "The template was restored and checked" in error
    assert "already exists" not in run.output  # the gate cleared template.revision before each change
    assert serving(incident) == before_serving
    assert template_env(incident) == before_env
    events = [(r["event"], r["step"]) for r in incident.journal() if r["phase"] == 3 and r["event"] != "apply.operation"]
    assert events == [("apply.before", "rollout-config"), ("apply.failed", "rollout-config"),
                      ("apply.reconciled", "rollout-config")]
    assert [r["found"] for r in incident.journal() if r["event"] == "apply.reconciled"] == ["not landed"]
    ops = incident.status()["run"]["operations"]
    assert sum(1 for op in ops if op.get("error", {}).get("code") == 9) == 1
