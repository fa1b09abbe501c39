"""Phase-3 planning: roll the missing configuration out as a new revision, merged into the template, nothing more."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from goldenpath.config import Target
from goldenpath.observations import Phase3Observation, RevisionState, ServiceState, TrafficShare
from goldenpath.remediation.change import Change
from goldenpath.remediation.phase3 import ROLLOUT, plan

PROJECT, REGION = "netra-staging", "us-central1"
BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
BACKEND_REV, AUTH_REV = "netra-backend-staging-00750-69k", "auth-service-staging-00211-abc"
BASE = f"projects/{PROJECT}/locations/{REGION}/services"
WHEN = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
WHERE = f"--region={REGION} --project={PROJECT}"
SECRET = {"secretKeyRef": {"secret": "api-key", "version": "latest"}}

# Cloud Run v2 REST JSON, as the service's template carries it: plain values, and a secret by reference.
BACKEND_TEMPLATE_ENV: list[dict[str, Any]] = [
    {"name": "LOG_LEVEL", "value": "info"},
    {"name": "DEMO_MODE", "value": "1"},
    {"name": "API_KEY", "valueSource": SECRET},
    {"name": "REDIS_HOST", "value": "10.0.0.3"},
]
AUTH_TEMPLATE_ENV: list[dict[str, Any]] = [
    {"name": "DEMO_MODE", "value": "1"},
    {"name": "JWT_SECRET", "valueSource": {"secretKeyRef": {"secret": "jwt", "version": "3"}}},
]
BACKEND_REQUIRED = {"VPC_CONNECTOR_TIMEOUT": "600", "DATABASE_TIMEOUT": "600", "DEMO_MODE": "0"}
AUTH_REQUIRED = {"DEMO_MODE": "0"}


# ---- builders ------------------------------------------------------------------------------

def target(backend_env: dict[str, str] | None = None, auth_env: dict[str, str] | None = None) -> Target:
    return Target.model_validate({
        "project": PROJECT, "region": REGION, "credentials": "adc",
        "services": [
            {"name": BACKEND, "required_env": BACKEND_REQUIRED if backend_env is None else backend_env},
            {"name": AUTH, "required_env": AUTH_REQUIRED if auth_env is None else auth_env},
        ],
    })


def plain(env: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """What RevisionState.env holds for a container's env: every name, a secret's value empty."""
    return tuple((e["name"], e.get("value", "")) for e in env)


def service(name: str, env: list[dict[str, Any]], *split: tuple[str, int], reconciling: bool = False,
            etag: str = "etag-7") -> ServiceState:
    shares = tuple(TrafficShare(r, p) for r, p in split)
    full = f"{BASE}/{name}"
    raw = {"name": full, "etag": etag,
           "template": {"containers": [{"image": f"us-central1-docker.pkg.dev/{PROJECT}/{name}:latest",
                                        "env": env}]}}
    return ServiceState(
        name=name, full_name=full, serving=shares, requested=shares, latest_ready=shares[-1].revision,
        latest_created=shares[-1].revision, reconciling=reconciling, ready=True, ready_message="READY",
        etag=etag, generation=9, observed_generation=9, update_time=WHEN, raw=raw,
    )


def revision(service_name: str, name: str, env: tuple[tuple[str, str], ...]) -> RevisionState:
    full = f"{BASE}/{service_name}/revisions/{name}"
    return RevisionState(name=name, full_name=full, create_time=WHEN, min_instances=0, ready=True,
                         raw={"name": full}, env=env)


def observe(backend: tuple[ServiceState, RevisionState | None],
            auth: tuple[ServiceState, RevisionState | None]) -> Phase3Observation:
    return Phase3Observation(
        services={BACKEND: backend[0], AUTH: auth[0]},
        serving={BACKEND: backend[1], AUTH: auth[1]},
        health={}, startup={BACKEND: None, AUTH: None}, websocket=(), golden_path=None,
    )


def incident() -> Phase3Observation:
    """DEMO_MODE=1 on both services; the backend lacks both timeouts."""
    return observe(
        (service(BACKEND, BACKEND_TEMPLATE_ENV, (BACKEND_REV, 100), etag="etag-backend"),
         revision(BACKEND, BACKEND_REV, plain(BACKEND_TEMPLATE_ENV))),
        (service(AUTH, AUTH_TEMPLATE_ENV, (AUTH_REV, 100), etag="etag-auth"),
         revision(AUTH, AUTH_REV, plain(AUTH_TEMPLATE_ENV))),
    )


def for_service(changes: list[Change], name: str) -> Change:
    [found] = [c for c in changes if c.subject == name]
    return found


def pairs(env: Any) -> list[tuple[str, str]]:
    return [tuple(e) for e in env]


# ---- the incident ----------------------------------------------------------------------------

def test_incident_plans_one_rollout_per_service() -> None:
    changes = plan(target(), incident())
    assert [(c.step, c.subject) for c in changes] == [(ROLLOUT, BACKEND), (ROLLOUT, AUTH)]
    assert all(c.phase == 3 for c in changes)
    assert [c.resource for c in changes] == [f"{BASE}/{BACKEND}", f"{BASE}/{AUTH}"]


def test_rollouts_are_reversible_and_need_no_consent() -> None:
    for change in plan(target(), incident()):
        assert change.reversible is True
        assert change.restarts is False
        assert change.needs_consent is False
        assert change.after_verification is False
        assert change.risk == "reversible"


def test_backend_env_is_the_template_merged() -> None:
    rollout = for_service(plan(target(), incident()), BACKEND)
    # DEMO_MODE replaced where it stands, the missing ones appended in the target's order,
    # the template's other variables kept, the secret left out (Cloud Run keeps it as it is)
    assert pairs(rollout.payload["template"]["env"]) == [
        ("LOG_LEVEL", "info"), ("DEMO_MODE", "0"), ("REDIS_HOST", "10.0.0.3"),
        ("VPC_CONNECTOR_TIMEOUT", "600"), ("DATABASE_TIMEOUT", "600"),
    ]
    assert pairs(rollout.payload["restore"]["env"]) == [("LOG_LEVEL", "info"), ("DEMO_MODE", "1"),
                                                     ("REDIS_HOST", "10.0.0.3")]
    assert rollout.payload["service"] == BACKEND
    assert rollout.payload["previous"] == BACKEND_REV


def test_auth_env_replaces_demo_mode_and_leaves_its_secret_out() -> None:
    rollout = for_service(plan(target(), incident()), AUTH)
    assert pairs(rollout.payload["template"]["env"]) == [("DEMO_MODE", "0")]
    assert pairs(rollout.payload["restore"]["env"]) == [("DEMO_MODE", "1")]
    assert rollout.payload["previous"] == AUTH_REV


def test_no_secret_name_or_reference_reaches_the_change() -> None:
    for change in plan(target(), incident()):
        text = json.dumps(change.to_json())
        assert "API_KEY" not in text and "JWT_SECRET" not in text
        assert "secretKeyRef" not in text and "api-key" not in text


def test_before_and_after_show_only_the_required_variables() -> None:
    rollout = for_service(plan(target(), incident()), BACKEND)
    assert rollout.before == {"env": {"VPC_CONNECTOR_TIMEOUT": None, "DATABASE_TIMEOUT": None, "DEMO_MODE": "1"},
                              "serving": BACKEND_REV}
    assert rollout.after == {"env": BACKEND_REQUIRED, "serving": "(the new revision)"}
    assert "LOG_LEVEL" not in rollout.diff()


def test_gcloud_updates_the_env_then_moves_traffic_to_latest() -> None:
    changes = plan(target(), incident())
    backend, auth = for_service(changes, BACKEND), for_service(changes, AUTH)
    assert backend.gcloud == (
        f"gcloud run services update {BACKEND} {WHERE} "
        "--update-env-vars=VPC_CONNECTOR_TIMEOUT=600,DATABASE_TIMEOUT=600,DEMO_MODE=0 && "
        f"gcloud run services update-traffic {BACKEND} {WHERE} --to-latest")
    assert auth.gcloud == (
        f"gcloud run services update {AUTH} {WHERE} --update-env-vars=DEMO_MODE=0 && "
        f"gcloud run services update-traffic {AUTH} {WHERE} --to-latest")


def test_expected_etag_is_the_services() -> None:
    changes = plan(target(), incident())
    assert for_service(changes, BACKEND).expected_etag == "etag-backend"
    assert for_service(changes, AUTH).expected_etag == "etag-auth"


def test_summary_and_why_name_the_change_and_the_way_back() -> None:
    rollout = for_service(plan(target(), incident()), AUTH)
    assert rollout.summary.startswith(f"{AUTH}: roll out DEMO_MODE=0 as a new revision")
    assert f"(now {AUTH_REV})" in rollout.summary
    assert f"traffic goes back to {AUTH_REV}" in rollout.why


def test_incident_plan_serialises() -> None:
    for change in plan(target(), incident()):
        data = json.loads(json.dumps(change.to_json()))
        assert data["step"] == ROLLOUT and data["needs_consent"] is False
        assert [tuple(e) for e in data["payload"]["template"]["env"]] == pairs(change.payload["template"]["env"])


def test_planning_does_not_touch_the_observation() -> None:
    obs = incident()
    before = json.dumps(obs.services[BACKEND].raw, sort_keys=True)
    plan(target(), obs)
    assert json.dumps(obs.services[BACKEND].raw, sort_keys=True) == before


# ---- idempotency and restraint ---------------------------------------------------------------

def compliant() -> Phase3Observation:
    backend_env: list[dict[str, Any]] = [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DEMO_MODE", "value": "0"},
                   {"name": "API_KEY", "valueSource": SECRET}, {"name": "VPC_CONNECTOR_TIMEOUT", "value": "600"},
                   {"name": "DATABASE_TIMEOUT", "value": "600"}]
    auth_env: list[dict[str, Any]] = [{"name": "DEMO_MODE", "value": "0"}]
    return observe((service(BACKEND, backend_env, (BACKEND_REV, 100)), revision(BACKEND, BACKEND_REV, plain(backend_env))),
                   (service(AUTH, auth_env, (AUTH_REV, 100)), revision(AUTH, AUTH_REV, plain(auth_env))))


def test_compliant_services_plan_nothing() -> None:
    assert plan(target(), compliant()) == []


def test_the_plan_is_empty_once_its_changes_are_in_place() -> None:
    changes = plan(target(), incident())
    new_backend, new_auth = "netra-backend-staging-00751-new", "auth-service-staging-00212-new"
    after: dict[str, tuple[ServiceState, RevisionState]] = {}
    for change, new in zip(changes, (new_backend, new_auth)):
        secrets = [e for e in (BACKEND_TEMPLATE_ENV if change.subject == BACKEND else AUTH_TEMPLATE_ENV)
                   if "valueSource" in e]
        env = secrets + [{"name": k, "value": v} for k, v in pairs(change.payload["template"]["env"])]
        after[change.subject] = (service(change.subject, env, (new, 100)), revision(change.subject, new, plain(env)))
    assert plan(target(), observe(after[BACKEND], after[AUTH])) == []


def test_only_the_noncompliant_service_is_planned() -> None:
    inc, ok = incident(), compliant()
    mixed = observe((ok.services[BACKEND], ok.serving[BACKEND]), (inc.services[AUTH], inc.serving[AUTH]))
    assert [c.subject for c in plan(target(), mixed)] == [AUTH]


def test_no_single_serving_revision_plans_nothing_for_that_service() -> None:
    split = service(BACKEND, BACKEND_TEMPLATE_ENV, ("netra-backend-staging-00749-6tr", 50), (BACKEND_REV, 50))
    inc = incident()
    obs = observe((split, None), (inc.services[AUTH], inc.serving[AUTH]))
    assert [c.subject for c in plan(target(), obs)] == [AUTH]


def test_reconciling_service_plans_nothing_for_that_service() -> None:
    busy = service(BACKEND, BACKEND_TEMPLATE_ENV, (BACKEND_REV, 100), reconciling=True)
    inc = incident()
    obs = observe((busy, inc.serving[BACKEND]), (inc.services[AUTH], inc.serving[AUTH]))
    assert [c.subject for c in plan(target(), obs)] == [AUTH]


@pytest.mark.parametrize("which", [BACKEND, AUTH])
def test_no_required_env_plans_nothing_for_that_service(which: str) -> None:
    t = target(backend_env={}) if which == BACKEND else target(auth_env={})
    assert which not in [c.subject for c in plan(t, incident())]
    assert plan(target(backend_env={}, auth_env={}), incident()) == []


def test_only_the_wrong_variables_are_rolled_out() -> None:
    env = [{"name": "DEMO_MODE", "value": "0"}, {"name": "DATABASE_TIMEOUT", "value": "300"}]
    inc = incident()
    obs = observe((service(BACKEND, env, (BACKEND_REV, 100)), revision(BACKEND, BACKEND_REV, plain(env))),
                  (inc.services[AUTH], inc.serving[AUTH]))
    rollout = for_service(plan(target(), obs), BACKEND)
    assert rollout.after["env"] == {"VPC_CONNECTOR_TIMEOUT": "600", "DATABASE_TIMEOUT": "600"}
    assert pairs(rollout.payload["template"]["env"]) == [("DEMO_MODE", "0"), ("DATABASE_TIMEOUT", "600"),
                                             ("VPC_CONNECTOR_TIMEOUT", "600")]
    assert "--update-env-vars=VPC_CONNECTOR_TIMEOUT=600,DATABASE_TIMEOUT=600 " in rollout.gcloud


def test_template_without_env_gets_just_the_required_variables() -> None:
    inc = incident()
    bare = service(BACKEND, [], (BACKEND_REV, 100))
    obs = observe((bare, revision(BACKEND, BACKEND_REV, ())), (inc.services[AUTH], inc.serving[AUTH]))
    rollout = for_service(plan(target(), obs), BACKEND)
    assert pairs(rollout.payload["template"]["env"]) == list(BACKEND_REQUIRED.items())
    assert rollout.payload["restore"]["env"] == []
