"""Phase-1 planning: from observations to the changes (and nothing more) that stabilise a service."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from goldenpath.config import APIS, Target
from goldenpath.observations import Burst, RevisionState, Sample, ServiceObservation, ServiceState, TrafficShare
from goldenpath.remediation.change import Change, render_plan
from goldenpath.remediation.phase1 import DELETE, ROUTE, manual, plan

PROJECT, REGION = "netra-staging", "us-central1"
SVC = "netra-backend-staging"
ANCIENT = "netra-backend-staging-00748-q2d"
OLD = "netra-backend-staging-00749-6tr"
NEW = "netra-backend-staging-00750-69k"
WHEN = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
BASE = f"projects/{PROJECT}/locations/{REGION}/services"


# ---- builders ------------------------------------------------------------------------------

def target(credentials: str = "adc") -> Target:
    data: dict[str, Any] = {"project": PROJECT, "region": REGION, "credentials": credentials,
            "services": [{"name": SVC}, {"name": "auth-service-staging"}]}
    if credentials == "anonymous":
        data["endpoints"] = {api: "http://127.0.0.1:1" for api in APIS}
    return Target.model_validate(data)


def service(*split: tuple[str, int], latest: str = NEW, requested: tuple[tuple[str, int], ...] | None = None,
            reconciling: bool = False, name: str = SVC) -> ServiceState:
    serving = tuple(TrafficShare(r, p) for r, p in split)
    asked = serving if requested is None else tuple(TrafficShare(r, p) for r, p in requested)
    return ServiceState(
        name=name, full_name=f"{BASE}/{name}", serving=serving, requested=asked,
        latest_ready=latest, latest_created=latest, reconciling=reconciling, ready=True, ready_message="READY",
        etag="etag-42", generation=7, observed_generation=7, update_time=WHEN, raw={},
    )


def revision(name: str, min_instances: int = 0, service_name: str = SVC) -> RevisionState:
    full = f"{BASE}/{service_name}/revisions/{name}"
    raw = {"name": full, "scaling": {"minInstanceCount": min_instances},
           "containers": [{"image": f"us-central1-docker.pkg.dev/{PROJECT}/backend/{name}"}]}
    return RevisionState(name=name, full_name=full, create_time=WHEN, min_instances=min_instances,
                         ready=True, raw=raw)


def observe(svc: ServiceState, *revisions: RevisionState) -> dict[str, ServiceObservation]:
    # A burst stands for data-plane evidence: deletions are never planned without it.
    burst = Burst(url="https://api.example/health", started=0.0, samples=(Sample(200, 0.05, None),))
    return {svc.name: ServiceObservation(service=svc, revisions=revisions, burst=burst, request_log=None)}


def incident() -> dict[str, ServiceObservation]:
    """The runbook's incident: 00749 and 00750 at 50/50, the old one still holds a minimum instance."""
    return observe(service((OLD, 50), (NEW, 50)), revision(ANCIENT), revision(OLD, 1), revision(NEW, 1))


# ---- the incident ----------------------------------------------------------------------------

@pytest.mark.parametrize("credentials", ["adc", "anonymous"])
def test_incident_plans_one_route_then_one_deletion(credentials: str) -> None:
    changes = plan(target(credentials), incident())
    assert [(c.step, c.subject) for c in changes] == [(ROUTE, SVC), (DELETE, SVC)]


def test_incident_route_goes_to_the_latest_ready_revision_reversibly() -> None:
    route = plan(target(), incident())[0]
    assert route.step == ROUTE and route.phase == 1
    assert route.resource == f"{BASE}/{SVC}"
    assert route.reversible and not route.restarts and not route.needs_consent
    assert not route.after_verification
    assert route.before == {"traffic": [{"revision": OLD, "percent": 50}, {"revision": NEW, "percent": 50}]}
    assert route.after == {"traffic": [{"revision": NEW, "percent": 100}]}
    assert (f"update-traffic {SVC} --to-revisions={NEW}=100 --region={REGION} --project={PROJECT}"
            in route.gcloud)
    assert route.gcloud.startswith("gcloud run services ")
    assert route.expected_etag == "etag-42"
    assert route.payload == {"service": SVC, "to": [{"revision": NEW, "percent": 100}],
                             "restore": route.before["traffic"], "restore_traffic": []}
    assert NEW in route.summary and f"{OLD} 50 %, {NEW} 50 %" in route.summary


def test_incident_deletes_the_old_revision_only_after_verification_and_with_consent() -> None:
    delete = plan(target(), incident())[1]
    assert delete.step == DELETE
    assert delete.resource == f"{BASE}/{SVC}/revisions/{OLD}"
    assert not delete.reversible
    assert delete.after_verification is True
    assert delete.needs_consent is True
    assert "IRREVERSIBLE" in delete.risk and "needs --yes" in delete.risk
    assert delete.gcloud == f"gcloud run revisions delete {OLD} --region={REGION} --project={PROJECT} --quiet"
    assert delete.payload["service"] == SVC and delete.payload["revision"] == OLD
    assert delete.payload["spec"] == revision(OLD, 1).raw  # the full spec, kept for the journal
    assert delete.before == {"revision": OLD, "state": "exists", "min_instances": 1, "traffic_percent": 50}
    assert delete.after == {"revision": OLD, "state": "deleted"}
    assert "50 % of traffic, min instances 1" in delete.summary


def test_latest_ready_revision_is_never_deleted_even_with_min_instances() -> None:
    changes = plan(target(), incident())
    assert NEW not in [c.payload.get("revision") for c in changes if c.step == DELETE]


# ---- idempotency and restraint ---------------------------------------------------------------

def test_compliant_service_plans_nothing() -> None:
    obs = observe(service((NEW, 100)), revision(ANCIENT), revision(OLD), revision(NEW, 1))
    assert plan(target(), obs) == []


def test_reconciling_service_is_left_alone() -> None:
    obs = observe(service((OLD, 50), (NEW, 50), reconciling=True), revision(OLD, 1), revision(NEW, 1))
    assert plan(target(), obs) == []


def test_old_revision_without_traffic_or_min_instances_is_not_deleted() -> None:
    obs = observe(service((OLD, 50), (NEW, 50)), revision(ANCIENT), revision(OLD), revision(NEW))
    deleted = [c.payload["revision"] for c in plan(target(), obs) if c.step == DELETE]
    assert ANCIENT not in deleted
    assert deleted == [OLD]  # only a revision that held traffic or instances goes


def test_tagged_old_revision_holding_min_instances_is_left_to_the_operator() -> None:
    # Cloud Run refuses to delete a tagged revision, and a tag is someone's URL: no step, a manual action.
    svc = replace(service((NEW, 100)), raw={"trafficStatuses": [{"revision": NEW, "percent": 100},
                                                                {"revision": OLD, "percent": 0, "tag": "canary"}]})
    obs = observe(svc, revision(OLD, 2), revision(NEW))
    assert plan(target(), obs) == []
    (action,) = manual(target(), obs)
    assert f"{OLD} is tagged 'canary' and keeps 2 minimum instance(s) running" in action
    assert f"gcloud run services update-traffic {SVC} --remove-tags=canary --region={REGION}" in action
    text = render_plan([], [action])
    assert not text.startswith("Nothing to change") and "manual action is needed" in text


def test_tagged_revision_with_traffic_is_rerouted_but_never_deleted() -> None:
    raw = {"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": OLD, "percent": 50, "tag": "blue"},
                       {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": NEW, "percent": 50}],
           "trafficStatuses": [{"revision": OLD, "percent": 50, "tag": "blue"}, {"revision": NEW, "percent": 50}]}
    svc = replace(service((OLD, 50), (NEW, 50)), raw=raw)
    changes = plan(target(), observe(svc, revision(OLD, 1), revision(NEW, 1)))
    assert [c.step for c in changes] == [ROUTE]
    route = changes[0]
    assert route.before["tags"] == route.after["tags"] == [{"tag": "blue", "revision": OLD}]
    assert route.payload["restore_traffic"] == raw["traffic"]  # rolled back exactly, tags included


def test_untagged_idle_revision_needs_no_manual_action() -> None:
    assert manual(target(), observe(service((NEW, 100)), revision(OLD, 2), revision(NEW))) == []


def test_untagged_old_revision_at_zero_percent_is_kept_as_a_way_back() -> None:
    # Cloud Run does not start its minimum instances (it is not addressable): nothing contends.
    assert plan(target(), observe(service((NEW, 100)), revision(OLD, 2), revision(NEW))) == []


def test_stale_requested_split_is_rerouted_even_if_serving_looks_right() -> None:
    obs = observe(service((NEW, 100), requested=((OLD, 50), (NEW, 50))), revision(OLD), revision(NEW))
    assert [c.step for c in plan(target(), obs)] == [ROUTE]


def test_each_service_is_planned_on_its_own() -> None:
    auth = service(("auth-00311-k8x", 100), latest="auth-00311-k8x", name="auth-service-staging")
    obs = {**incident(), **observe(auth, revision("auth-00311-k8x", 1, "auth-service-staging"))}
    assert {c.subject for c in plan(target(), obs)} == {SVC}


# ---- Change and its rendering ----------------------------------------------------------------

def test_diff_shows_removed_and_added_lines() -> None:
    route = plan(target(), incident())[0]
    diff = route.diff().splitlines()
    assert diff[0] == f"--- {BASE}/{SVC} (now)"
    assert diff[1] == f"+++ {BASE}/{SVC} (planned)"
    removed = [line for line in diff[2:] if line.startswith("-")]
    added = [line for line in diff[2:] if line.startswith("+")]
    assert any(f'"revision": "{OLD}"' in line for line in removed)
    assert any('"percent": 50' in line for line in removed)
    assert any('"percent": 100' in line for line in added)


def test_change_renders_risk_gcloud_and_diff_and_serialises() -> None:
    delete = plan(target(), incident())[1]
    text = delete.render()
    assert text.startswith(f"[phase 1] {delete.summary}")
    assert "risk:   IRREVERSIBLE, needs --yes, only after the phase verifies" in text
    assert f"gcloud: {delete.gcloud}" in text
    data = json.loads(json.dumps(delete.to_json()))
    assert data["needs_consent"] is True and data["diff"] == delete.diff()


def test_reversible_restart_still_needs_consent() -> None:
    c = Change(phase=1, step="x", subject="s", resource="r", summary="s", before={}, after={},
               reversible=True, restarts=True)
    assert c.needs_consent and c.risk == "reversible, causes a restart, needs --yes"


def test_render_empty_plan_says_nothing_to_change() -> None:
    assert render_plan([]).startswith("Nothing to change")


def test_render_plan_joins_changes() -> None:
    changes = plan(target(), incident())
    text = render_plan(changes)
    assert text == "\n\n".join(c.render() for c in changes)
