"""Phase-3 criteria as pure functions of observations: WebSocket, Golden Path, health, startup, configuration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from goldenpath.config import Target, Thresholds
from goldenpath.criteria import phase3 as c
from goldenpath.observations import (
    GoldenPathResult,
    HttpCheck,
    Phase3Observation,
    RevisionState,
    ServiceState,
    StartupLog,
    TrafficShare,
    WsResult,
)
from goldenpath.verdict import Status

PROJECT, REGION = "netra-staging", "us-central1"
BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
BACKEND_REV, AUTH_REV = "netra-backend-staging-00750-69k", "auth-service-staging-00211-abc"
BASE = f"projects/{PROJECT}/locations/{REGION}/services"
WS_URL = "wss://api-staging.netrasystems.ai/ws"
LOGIN = "https://auth.staging.netrasystems.ai/auth/login"
BACKEND_HEALTH = "https://api.staging.netrasystems.ai/health"
BACKEND_READY = "https://api.staging.netrasystems.ai/health/ready"
AUTH_HEALTH = "https://auth.staging.netrasystems.ai/health"
WHEN = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
THRESHOLDS = Thresholds()  # health answers within 2 s
BACKEND_ENV = {"VPC_CONNECTOR_TIMEOUT": "600", "DATABASE_TIMEOUT": "600", "DEMO_MODE": "0"}
AUTH_ENV = {"DEMO_MODE": "0"}


# ---- builders ------------------------------------------------------------------------------

def service(name: str = BACKEND, *split: tuple[str, int]) -> ServiceState:
    shares = tuple(TrafficShare(r, p) for r, p in split) or (TrafficShare(f"{name}-00001-aaa", 100),)
    return ServiceState(
        name=name, full_name=f"{BASE}/{name}", serving=shares, requested=shares,
        latest_ready=shares[-1].revision, latest_created=shares[-1].revision, reconciling=False, ready=True,
        ready_message="READY", etag="etag-1", generation=3, observed_generation=3, update_time=WHEN, raw={},
    )


def revision(name: str = BACKEND_REV, *env: tuple[str, str], ready: bool = True,
             service_name: str = BACKEND) -> RevisionState:
    full = f"{BASE}/{service_name}/revisions/{name}"
    return RevisionState(name=name, full_name=full, create_time=WHEN, min_instances=0, ready=ready,
                         raw={"name": full}, env=tuple(env))


def startup(errors: int = 0, *examples: str, svc: str = BACKEND, rev: str = BACKEND_REV) -> StartupLog:
    return StartupLog(service=svc, revision=rev, since=WHEN, errors=errors, examples=tuple(examples))


def check(url: str = BACKEND_HEALTH, status: int | None = 200, seconds: float = 0.12,
          body_status: str | None = "healthy", detail: str | None = None) -> HttpCheck:
    return HttpCheck(url=url, status=status, seconds=seconds, body_status=body_status, detail=detail)


def journey(ok: bool = True, failed_leg: str | None = None, cause: str | None = None,
            legs: dict[str, float] | None = None, events: tuple[str, ...] | None = None) -> GoldenPathResult:
    if legs is None:
        legs = {"login": 0.21, "websocket_open": 0.48, "first_event": 0.9, "final_response": 4.4}
    if events is None:
        events = ("agent_started", "agent_thinking", "agent_completed")
    return GoldenPathResult(ok=ok, failed_leg=failed_leg, cause=cause, legs=legs, events=events,
                            response_chars=120 if ok else 0)


def target(**extra: Any) -> Target:
    data: dict[str, Any] = {
        "project": PROJECT, "region": REGION, "credentials": "adc",
        "services": [
            {"name": BACKEND, "health_endpoints": [BACKEND_HEALTH, BACKEND_READY], "required_env": BACKEND_ENV},
            {"name": AUTH, "health_endpoints": [AUTH_HEALTH], "required_env": AUTH_ENV},
        ],
        "websocket": {"url": WS_URL, "batch": 3},
        "golden_path": {"login_url": LOGIN, "user_env": "GP_USER", "password_env": "GP_PASSWORD"},
        **extra,
    }
    return Target.model_validate(data)


# ---- websocket -----------------------------------------------------------------------------

def test_every_connection_answering_passes_and_names_the_count() -> None:
    v = c.websocket(WS_URL, [WsResult(True, None, 0.2), WsResult(True, None, 0.35), WsResult(True, None, 0.1)])
    assert v.status is Status.PASS
    assert v.criterion == c.WEBSOCKET and v.subject == WS_URL
    assert f"{WS_URL}: 3 concurrent connections, every ping answered" in v.reason
    assert "slowest 0.35 s" in v.reason
    assert v.evidence["connections"] == 3


def test_mixed_failures_fail_grouping_causes_with_counts() -> None:
    results = [
        WsResult(False, "upgrade refused: HTTP 403", 0.1),
        WsResult(True, None, 0.2),
        WsResult(False, "closed 1011: db down", 0.3),
        WsResult(False, "upgrade refused: HTTP 403", 0.1),
        WsResult(True, None, 0.2),
    ]
    v = c.websocket(WS_URL, results)
    assert v.status is Status.FAIL
    assert f"{WS_URL}: 3 of 5 connections failed" in v.reason
    assert "upgrade refused: HTTP 403 ×2" in v.reason
    assert "closed 1011: db down ×1" in v.reason
    # the most frequent cause comes first
    assert v.reason.index("HTTP 403 ×2") < v.reason.index("closed 1011")
    assert "expected every upgrade to succeed and every ping to get its pong" in v.reason
    assert [r["cause"] for r in v.evidence["results"]].count("upgrade refused: HTTP 403") == 2


def test_one_failure_among_successes_is_a_failure() -> None:
    v = c.websocket(WS_URL, [WsResult(True, None, 0.1)] * 4 + [WsResult(False, "timeout: no answer in time", 5.0)])
    assert v.status is Status.FAIL
    assert "1 of 5 connections failed: timeout: no answer in time ×1" in v.reason


def test_no_connection_attempted_is_inconclusive_never_pass() -> None:
    v = c.websocket(WS_URL, [])
    assert v.status is Status.INCONCLUSIVE
    assert not v.passed
    assert "no connection was attempted" in v.reason


# ---- golden_path ---------------------------------------------------------------------------

def test_walked_golden_path_passes_listing_each_leg_and_the_events() -> None:
    v = c.golden_path(journey())
    assert v.status is Status.PASS
    assert v.criterion == c.GOLDEN_PATH
    assert "login 0.21 s" in v.reason
    assert "websocket_open 0.48 s" in v.reason
    assert "first_event 0.90 s" in v.reason
    assert "final_response 4.40 s" in v.reason
    assert "events agent_started → agent_thinking → agent_completed" in v.reason
    assert v.evidence["events"] == ["agent_started", "agent_thinking", "agent_completed"]
    assert v.evidence["failed_leg"] is None


def test_failure_at_login_fails_naming_the_leg_and_cause() -> None:
    v = c.golden_path(journey(ok=False, failed_leg="login", cause=f"{LOGIN} answered 401: invalid credentials",
                              legs={}, events=()))
    assert v.status is Status.FAIL
    assert f"breaks at login: {LOGIN} answered 401: invalid credentials" in v.reason
    assert "reached" not in v.reason  # no leg was completed
    assert v.evidence["failed_leg"] == "login"


def test_failure_after_login_names_the_legs_reached() -> None:
    v = c.golden_path(journey(ok=False, failed_leg="websocket", cause="upgrade refused: HTTP 403",
                              legs={"login": 0.25}, events=()))
    assert v.status is Status.FAIL
    assert "breaks at websocket: upgrade refused: HTTP 403" in v.reason
    assert "(reached: login 0.25 s)" in v.reason


def test_no_journey_with_a_problem_fails_naming_the_problem() -> None:
    problem = "GP_PASSWORD is not set in the environment"
    v = c.golden_path(None, problem)
    assert v.status is Status.FAIL
    assert problem in v.reason
    assert "could not be walked" in v.reason


def test_no_journey_and_no_problem_still_fails() -> None:
    v = c.golden_path(None)
    assert v.status is Status.FAIL
    assert "not configured" in v.reason


# ---- health_endpoint -----------------------------------------------------------------------

def test_200_healthy_and_fast_passes() -> None:
    v = c.health_endpoint(check(seconds=0.12), THRESHOLDS)
    assert v.status is Status.PASS
    assert v.criterion == c.HEALTH_ENDPOINTS and v.subject == BACKEND_HEALTH
    assert v.reason == f"{BACKEND_HEALTH}: 200 healthy in 0.12 s"


@pytest.mark.parametrize("word", ["ok", "OK", "pass", "up", "Healthy"])
def test_other_healthy_words_pass(word: str) -> None:
    assert c.health_endpoint(check(body_status=word), THRESHOLDS).status is Status.PASS


def test_503_with_detail_fails_naming_status_and_detail() -> None:
    v = c.health_endpoint(check(status=503, body_status="unhealthy", detail="database unreachable"), THRESHOLDS)
    assert v.status is Status.FAIL
    assert f"{BACKEND_HEALTH}: answered 503 (database unreachable)" in v.reason
    assert "expected 200 and a healthy body within 2 s" in v.reason
    assert v.evidence["status"] == 503 and v.evidence["detail"] == "database unreachable"


def test_200_with_a_degraded_body_fails() -> None:
    v = c.health_endpoint(check(body_status="degraded", detail="redis slow"), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "answered 200 but its body says 'degraded' (redis slow)" in v.reason


def test_200_without_a_body_status_fails() -> None:
    v = c.health_endpoint(check(body_status=None), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "its body says None" in v.reason


def test_200_healthy_but_slow_fails_naming_time_and_limit() -> None:
    v = c.health_endpoint(check(seconds=2.5), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "took 2.50 s (limit 2 s)" in v.reason
    assert "answered" not in v.reason  # the status and body were fine


def test_exactly_at_the_limit_is_not_faster_than_it() -> None:
    assert c.health_endpoint(check(seconds=2.0), THRESHOLDS).status is Status.FAIL


def test_the_limit_is_the_targets_own() -> None:
    v = c.health_endpoint(check(seconds=2.5), Thresholds(health_seconds=3))
    assert v.status is Status.PASS
    v = c.health_endpoint(check(seconds=1.0), Thresholds(health_seconds=0.5))
    assert v.status is Status.FAIL and "took 1.00 s (limit 0.5 s)" in v.reason


def test_no_answer_fails_naming_the_cause() -> None:
    v = c.health_endpoint(check(status=None, seconds=15.0, body_status=None, detail="ConnectTimeout"), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "no answer (ConnectTimeout)" in v.reason
    assert "took 15.00 s (limit 2 s)" in v.reason


def test_slow_and_failing_names_both_problems() -> None:
    v = c.health_endpoint(check(status=503, seconds=3.0, detail="starting"), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "answered 503 (starting); took 3.00 s (limit 2 s)" in v.reason


# ---- no_startup_errors ---------------------------------------------------------------------

def test_ready_revision_without_errors_passes() -> None:
    v = c.no_startup_errors(service(BACKEND, (BACKEND_REV, 100)), revision(), startup())
    assert v.status is Status.PASS
    assert v.criterion == c.NO_STARTUP_ERRORS and v.subject == BACKEND
    assert f"{BACKEND}: {BACKEND_REV} is ready and logged no error since it was created" == v.reason


def test_errors_fail_quoting_the_first_example() -> None:
    log = startup(4, "sqlalchemy: could not connect to server: Connection timed out", "worker exited")
    v = c.no_startup_errors(service(BACKEND, (BACKEND_REV, 100)), revision(), log)
    assert v.status is Status.FAIL
    assert f"{BACKEND_REV} logged 4 error(s) since it was created" in v.reason
    assert "'sqlalchemy: could not connect to server: Connection timed out'" in v.reason
    assert "worker exited" not in v.reason
    assert v.reason.endswith("expected none")
    assert v.evidence["errors"] == 4 and len(v.evidence["examples"]) == 2


def test_no_single_serving_revision_fails() -> None:
    old = "netra-backend-staging-00749-6tr"
    v = c.no_startup_errors(service(BACKEND, (old, 50), (BACKEND_REV, 50)), None, None)
    assert v.status is Status.FAIL
    assert "no single revision serves the traffic" in v.reason
    assert f"{old} 50 %, {BACKEND_REV} 50 %" in v.reason


def test_serving_revision_not_ready_fails() -> None:
    v = c.no_startup_errors(service(BACKEND, (BACKEND_REV, 100)), revision(ready=False), startup())
    assert v.status is Status.FAIL
    assert f"the serving revision {BACKEND_REV} is not ready" in v.reason


# ---- configuration -------------------------------------------------------------------------

def test_every_required_variable_present_passes() -> None:
    rev = revision(BACKEND_REV, ("LOG_LEVEL", "info"), ("DEMO_MODE", "0"), ("VPC_CONNECTOR_TIMEOUT", "600"),
                   ("DATABASE_TIMEOUT", "600"))
    v = c.configuration(service(BACKEND, (BACKEND_REV, 100)), rev, BACKEND_ENV)
    assert v.status is Status.PASS
    assert v.criterion == c.CONFIGURATION and v.subject == BACKEND
    assert "VPC_CONNECTOR_TIMEOUT=600, DATABASE_TIMEOUT=600, DEMO_MODE=0" in v.reason
    assert "LOG_LEVEL" not in v.reason and "LOG_LEVEL" not in str(v.evidence)


def test_demo_mode_on_and_a_missing_timeout_fail_naming_both_with_expected_values() -> None:
    rev = revision(BACKEND_REV, ("DEMO_MODE", "1"), ("DATABASE_TIMEOUT", "600"))
    v = c.configuration(service(BACKEND, (BACKEND_REV, 100)), rev, BACKEND_ENV)
    assert v.status is Status.FAIL
    assert f"the serving revision {BACKEND_REV} has" in v.reason
    assert "VPC_CONNECTOR_TIMEOUT is unset (expected '600')" in v.reason
    assert "DEMO_MODE is '1' (expected '0')" in v.reason
    assert "DATABASE_TIMEOUT" not in v.reason  # it is right
    assert v.evidence["present"] == {"VPC_CONNECTOR_TIMEOUT": None, "DATABASE_TIMEOUT": "600", "DEMO_MODE": "1"}


def test_configuration_without_a_serving_revision_fails() -> None:
    v = c.configuration(service(BACKEND, ("a", 50), ("b", 50)), None, BACKEND_ENV)
    assert v.status is Status.FAIL
    assert "no single revision serves the traffic (a 50 %, b 50 %)" in v.reason


def test_nothing_required_passes() -> None:
    v = c.configuration(service(BACKEND, (BACKEND_REV, 100)), revision(), {})
    assert v.status is Status.PASS
    assert "requires no environment" in v.reason


# ---- evaluate ------------------------------------------------------------------------------

def _observation(**changes: Any) -> Phase3Observation:
    data: dict[str, Any] = dict(
        services={BACKEND: service(BACKEND, (BACKEND_REV, 100)), AUTH: service(AUTH, (AUTH_REV, 100))},
        serving={BACKEND: revision(BACKEND_REV, ("DEMO_MODE", "1")),
                 AUTH: revision(AUTH_REV, ("DEMO_MODE", "0"), service_name=AUTH)},
        health={BACKEND_HEALTH: check(BACKEND_HEALTH), BACKEND_READY: check(BACKEND_READY, status=503, detail="db"),
                AUTH_HEALTH: check(AUTH_HEALTH)},
        startup={BACKEND: startup(), AUTH: startup(svc=AUTH, rev=AUTH_REV)},
        websocket=(WsResult(True, None, 0.1),) * 3,
        golden_path=journey(),
    )
    data.update(changes)
    return Phase3Observation(**data)


def test_evaluate_judges_per_service_then_websocket_then_golden_path() -> None:
    verdicts = c.evaluate(_observation(), target())
    assert [(v.criterion, v.subject) for v in verdicts] == [
        (c.CONFIGURATION, BACKEND), (c.NO_STARTUP_ERRORS, BACKEND),
        (c.HEALTH_ENDPOINTS, BACKEND_HEALTH), (c.HEALTH_ENDPOINTS, BACKEND_READY),
        (c.CONFIGURATION, AUTH), (c.NO_STARTUP_ERRORS, AUTH), (c.HEALTH_ENDPOINTS, AUTH_HEALTH),
        (c.WEBSOCKET, WS_URL), (c.GOLDEN_PATH, "login → AI response"),
    ]
    status = {(v.criterion, v.subject): v.status for v in verdicts}
    assert status[(c.CONFIGURATION, BACKEND)] is Status.FAIL
    assert status[(c.CONFIGURATION, AUTH)] is Status.PASS
    assert status[(c.HEALTH_ENDPOINTS, BACKEND_READY)] is Status.FAIL
    assert status[(c.HEALTH_ENDPOINTS, BACKEND_HEALTH)] is Status.PASS
    assert status[(c.WEBSOCKET, WS_URL)] is Status.PASS
    assert status[(c.GOLDEN_PATH, "login → AI response")] is Status.PASS


def test_evaluate_uses_the_targets_thresholds() -> None:
    obs = _observation(health={BACKEND_HEALTH: check(BACKEND_HEALTH, seconds=2.5),
                               BACKEND_READY: check(BACKEND_READY, seconds=2.5),
                               AUTH_HEALTH: check(AUTH_HEALTH, seconds=2.5)})
    strict = [v.status for v in c.evaluate(obs, target()) if v.criterion == c.HEALTH_ENDPOINTS]
    lenient = [v.status for v in c.evaluate(obs, target(thresholds={"health_seconds": 3}))
               if v.criterion == c.HEALTH_ENDPOINTS]
    assert strict == [Status.FAIL] * 3
    assert lenient == [Status.PASS] * 3


def test_evaluate_honours_subjects() -> None:
    verdicts = c.evaluate(_observation(), target(), [AUTH])
    assert [(v.criterion, v.subject) for v in verdicts] == [
        (c.CONFIGURATION, AUTH), (c.NO_STARTUP_ERRORS, AUTH), (c.HEALTH_ENDPOINTS, AUTH_HEALTH),
        (c.WEBSOCKET, WS_URL), (c.GOLDEN_PATH, "login → AI response"),
    ]
    assert BACKEND not in {v.subject for v in verdicts}


def test_evaluate_with_no_subjects_judges_only_the_journey() -> None:
    verdicts = c.evaluate(_observation(), target(), [])
    assert [v.criterion for v in verdicts] == [c.WEBSOCKET, c.GOLDEN_PATH]


def test_evaluate_without_a_websocket_in_the_target_does_not_judge_it() -> None:
    plain = target(websocket=None)
    criteria = [v.criterion for v in c.evaluate(_observation(websocket=()), plain)]
    assert c.WEBSOCKET not in criteria
    assert criteria[-1] == c.GOLDEN_PATH


def test_evaluate_reports_the_golden_path_problem() -> None:
    obs = _observation(golden_path=None, golden_path_problem="GP_USER is not set")
    [gp] = [v for v in c.evaluate(obs, target()) if v.criterion == c.GOLDEN_PATH]
    assert gp.status is Status.FAIL and "GP_USER is not set" in gp.reason


def test_evaluate_with_no_single_serving_revision_fails_both_service_criteria() -> None:
    obs = _observation(services={BACKEND: service(BACKEND, ("a", 50), ("b", 50)),
                                 AUTH: service(AUTH, (AUTH_REV, 100))},
                       serving={BACKEND: None, AUTH: revision(AUTH_REV, ("DEMO_MODE", "0"), service_name=AUTH)},
                       startup={BACKEND: None, AUTH: startup(svc=AUTH, rev=AUTH_REV)})
    verdicts = c.evaluate(obs, target(), [BACKEND])
    assert [(v.criterion, v.status) for v in verdicts[:2]] == [(c.CONFIGURATION, Status.FAIL),
                                                               (c.NO_STARTUP_ERRORS, Status.FAIL)]


def test_startup_window_is_evidence_the_verdict_follows_the_count() -> None:
    later = StartupLog(service=BACKEND, revision=BACKEND_REV, since=WHEN + timedelta(hours=1), errors=0, examples=())
    v = c.no_startup_errors(service(BACKEND, (BACKEND_REV, 100)), revision(), later)
    assert v.status is Status.PASS
    assert v.evidence["since"] == (WHEN + timedelta(hours=1)).isoformat()
