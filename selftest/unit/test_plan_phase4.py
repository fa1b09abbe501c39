"""Phase-4 planning: create what is missing, update only what differs, in dependency order; nothing when all is in place."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from google.cloud import monitoring_v3

from goldenpath.definitions import POLICY_LABEL, Definitions
from goldenpath.observations import Phase4Observation
from goldenpath.remediation.change import Change
from goldenpath.remediation.phase4 import (
    AUTOSCALE,
    CREATE_DASHBOARD,
    CREATE_METRIC,
    CREATE_POLICY,
    UPDATE_DASHBOARD,
    UPDATE_METRIC,
    UPDATE_POLICY,
    plan,
)
from selftest.unit import phase4_world as world
from selftest.unit.phase4_world import (
    AUTH, BACKEND, BACKEND_REV, BASE, CHANNELS, DASHBOARD, EMAIL, METRICS, PROJECT, REGION, ROOT, SCALED,
    api, as_created, channel, dashboard, metric, policy, service, services, target,
)

OTHER = f"{CHANNELS}/OTHER"
WHERE = f"--region={REGION} --project={PROJECT}"
POLICIES = ["database-connections", "http-503-error-rate", "response-latency-p95", "vpc-connector-capacity",
            "websocket-failure-rate"]
# Cloud Run's defaults, as the incident left the backend.
DEFAULTS = {"scaling": {"maxInstanceCount": 20}, "maxInstanceRequestConcurrency": 1000}


def nothing(defs: Definitions, **changes: Any) -> Phase4Observation:
    return world.nothing(defs, backend=DEFAULTS, **changes)


def with_policy(defs: Definitions, pid: str, edit: Any, **changes: Any) -> Phase4Observation:
    """As created, with the policy labelled ``pid`` changed by ``edit`` (which returns it)."""
    obs = as_created(defs, **changes)
    policies = tuple(edit(copy.deepcopy(p)) if p["userLabels"][POLICY_LABEL] == pid else p for p in obs.policies)
    return as_created(defs, policies=policies, **changes)


def set_threshold(p: dict[str, Any], value: float) -> dict[str, Any]:
    p["conditions"][0]["conditionThreshold"]["thresholdValue"] = value
    return p


def only(changes: list[Change]) -> Change:
    [change] = changes
    return change


# ---- from nothing ------------------------------------------------------------------------------

def test_from_nothing_everything_is_created_in_dependency_order(defs: Definitions) -> None:
    changes = plan(target(), nothing(defs), defs)
    assert [(c.step, c.subject) for c in changes] == (
        [(CREATE_METRIC, m) for m in METRICS] + [(CREATE_POLICY, p) for p in POLICIES]
        + [(CREATE_DASHBOARD, "Infrastructure Capacity (Issue #1278)"), (AUTOSCALE, BACKEND)])
    steps = [c.step for c in changes]
    assert max(i for i, s in enumerate(steps) if s == CREATE_METRIC) < min(
        i for i, s in enumerate(steps) if s == CREATE_POLICY)


def test_every_change_is_reversible_and_needs_no_consent(defs: Definitions) -> None:
    for change in plan(target(), nothing(defs), defs):
        assert change.phase == 4
        assert change.reversible is True and change.restarts is False and change.destructive is False
        assert change.needs_consent is False and change.after_verification is False
        assert change.risk == "reversible"


def test_create_log_metric_carries_the_definition(defs: Definitions) -> None:
    changes = [c for c in plan(target(), nothing(defs), defs) if c.step == CREATE_METRIC]
    for change, name in zip(changes, METRICS):
        d = defs.log_metrics[name]
        assert change.resource == f"projects/{PROJECT}/metrics/{name}"
        assert change.payload == {"metric": d}
        assert change.before == {} and change.after == {"filter": d["filter"], "description": d["description"]}
        assert change.gcloud.startswith(f"gcloud logging metrics create {name} ")
        assert f"--project={PROJECT}" in change.gcloud
        assert str(ROOT / "monitoring" / "log-metrics" / f"{name}.json") in change.why


def test_create_metric_gcloud_quotes_the_filter(defs: Definitions) -> None:
    change = next(c for c in plan(target(), nothing(defs), defs) if c.subject == "websocket_upgrades")
    assert """--log-filter='resource.type="cloud_run_revision" AND httpRequest.requestUrl:"/ws"'""" in change.gcloud


def test_create_alert_policy_attaches_the_existing_target_channel(defs: Definitions) -> None:
    changes = [c for c in plan(target(), nothing(defs), defs) if c.step == CREATE_POLICY]
    assert len(changes) == 5
    for change in changes:
        d = defs.alert_policies[change.subject]
        assert change.payload == {"policy": {**d, "notificationChannels": [EMAIL]}, "pid": change.subject}
        assert change.after == change.payload["policy"] and change.before == {}
        assert change.summary == f"create alert policy '{d['displayName']}'"
        assert change.resource == f"projects/{PROJECT}/alertPolicies/(new: {change.subject})"
        assert f"--policy-from-file={ROOT / 'monitoring' / 'alert-policies' / change.subject}.yaml" in change.gcloud


def test_create_alert_policy_without_a_channel_in_the_project_attaches_none(defs: Definitions) -> None:
    changes = [c for c in plan(target(), nothing(defs, channels=()), defs) if c.step == CREATE_POLICY]
    assert len(changes) == 5
    for change in changes:
        assert change.payload["policy"]["notificationChannels"] == []
        assert "no existing notification channel to attach" in change.summary


def test_create_alert_policy_attaches_only_the_target_channels_that_exist(defs: Definitions) -> None:
    obs = nothing(defs, channels=(channel(), channel("OTHER")))
    changes = [c for c in plan(target(channels=["PAGER", "EMAIL_ALERT"]), obs, defs) if c.step == CREATE_POLICY]
    assert {tuple(c.payload["policy"]["notificationChannels"]) for c in changes} == {(EMAIL,)}


def test_create_dashboard_carries_the_definition(defs: Definitions) -> None:
    change = next(c for c in plan(target(), nothing(defs), defs) if c.step == CREATE_DASHBOARD)
    assert change.resource == DASHBOARD
    assert change.payload == {"dashboard": defs.dashboards[DASHBOARD]}
    assert len(change.after["widgets"]) == 6
    assert change.gcloud.startswith("gcloud monitoring dashboards create --config-from-file=")


def test_planning_leaves_the_definitions_untouched(defs: Definitions) -> None:
    before = json.dumps([defs.log_metrics, defs.alert_policies, defs.dashboards], sort_keys=True)
    plan(target(), nothing(defs, channels=()), defs)
    plan(target(), with_policy(defs, "http-503-error-rate", lambda p: set_threshold(p, 0.5)), defs)
    assert "notificationChannels" not in json.dumps(defs.alert_policies)
    assert json.dumps([defs.log_metrics, defs.alert_policies, defs.dashboards], sort_keys=True) == before


# ---- idempotency -----------------------------------------------------------------------------

def test_as_created_plans_nothing(defs: Definitions) -> None:
    assert plan(target(), as_created(defs), defs) == []


def test_the_plan_is_empty_once_its_changes_are_in_place(defs: Definitions) -> None:
    changes = plan(target(), nothing(defs), defs)
    policies = tuple({**api({k: v for k, v in c.payload["policy"].items() if k != "notificationChannels"},
                            monitoring_v3.AlertPolicy),
                      "name": f"projects/{PROJECT}/alertPolicies/{i}",
                      "notificationChannels": c.payload["policy"]["notificationChannels"]}
                     for i, c in enumerate(changes) if c.step == CREATE_POLICY)
    [scale] = [c for c in changes if c.step == AUTOSCALE]
    after = as_created(
        defs,
        log_metrics={c.subject: metric(c.payload["metric"]) for c in changes if c.step == CREATE_METRIC},
        policies=policies,
        dashboards={c.resource: dashboard(c.payload["dashboard"]) for c in changes if c.step == CREATE_DASHBOARD},
        **services(scale.payload["template"]),
    )
    assert plan(target(), after, defs) == []


# ---- alert policies ----------------------------------------------------------------------------

def test_a_drifted_threshold_is_one_update_of_conditions_only(defs: Definitions) -> None:
    obs = with_policy(defs, "http-503-error-rate", lambda p: set_threshold(p, 0.5))
    change = only(plan(target(), obs, defs))
    [drifted] = [p for p in obs.policies if p["userLabels"][POLICY_LABEL] == "http-503-error-rate"]
    assert change.step == UPDATE_POLICY and change.subject == "http-503-error-rate"
    assert change.resource == drifted["name"]
    assert change.payload["name"] == drifted["name"] and change.payload["pid"] == "http-503-error-rate"
    assert change.payload["fields"] == {"conditions": defs.alert_policies["http-503-error-rate"]["conditions"]}
    assert change.payload["previous"] == {"conditions": drifted["conditions"]}
    assert change.payload["previous"]["conditions"][0]["conditionThreshold"]["thresholdValue"] == 0.5
    assert change.before == change.payload["previous"] and change.after == change.payload["fields"]
    assert change.summary == "update alert policy 'HTTP 503 Error Rate Alert': conditions differ(s) from the definition"
    assert change.gcloud.endswith("--fields=conditions")
    assert change.reversible and not change.needs_consent


def test_a_disabled_policy_is_enabled_and_nothing_else(defs: Definitions) -> None:
    obs = with_policy(defs, "response-latency-p95", lambda p: {**p, "enabled": False})
    change = only(plan(target(), obs, defs))
    assert change.step == UPDATE_POLICY
    assert change.payload["fields"] == {"enabled": True}
    assert change.payload["previous"] == {"enabled": False}


def test_a_respelled_filter_plans_nothing(defs: Definitions) -> None:
    def respell(p: dict[str, Any]) -> dict[str, Any]:
        p["conditions"][0]["conditionThreshold"]["filter"] = (
            "metric.labels.response_code = '503' AND resource.type=cloud_run_revision AND "
            "metric.type='run.googleapis.com/request_count'")
        return p
    assert plan(target(), with_policy(defs, "http-503-error-rate", respell), defs) == []


def test_a_policy_missing_the_targets_channel_keeps_its_own_and_adds_the_targets(defs: Definitions) -> None:
    obs = with_policy(defs, "http-503-error-rate", lambda p: {**p, "notificationChannels": [OTHER]},
                      channels=(channel(), channel("OTHER")))
    change = only(plan(target(), obs, defs))
    assert change.step == UPDATE_POLICY
    assert change.payload["fields"] == {"notificationChannels": [OTHER, EMAIL]}
    assert change.payload["previous"] == {"notificationChannels": [OTHER]}
    assert change.gcloud.endswith("--fields=notificationChannels")


def test_a_policy_without_channels_gets_the_targets(defs: Definitions) -> None:
    obs = with_policy(defs, "vpc-connector-capacity",
                      lambda p: {k: v for k, v in p.items() if k != "notificationChannels"})
    change = only(plan(target(), obs, defs))
    assert change.payload["fields"] == {"notificationChannels": [EMAIL]}
    assert change.payload["previous"] == {"notificationChannels": None}  # cleared again on rollback


def test_a_dangling_channel_is_dropped(defs: Definitions) -> None:
    gone = f"{CHANNELS}/DELETED"
    obs = with_policy(defs, "websocket-failure-rate", lambda p: {**p, "notificationChannels": [gone, EMAIL]})
    change = only(plan(target(), obs, defs))
    assert change.payload["fields"] == {"notificationChannels": [EMAIL]}
    assert change.payload["previous"] == {"notificationChannels": [gone, EMAIL]}


def test_no_channel_anywhere_plans_no_channel_update(defs: Definitions) -> None:
    obs = as_created(defs, channels=(),
                     policies=tuple(policy(d, i, channels=[]) for i, d in enumerate(defs.alert_policies.values())))
    assert plan(target(), obs, defs) == []


def test_drift_and_a_missing_channel_are_one_update(defs: Definitions) -> None:
    def both(p: dict[str, Any]) -> dict[str, Any]:
        p = set_threshold(p, 0.5)
        del p["notificationChannels"]
        return p
    change = only(plan(target(), with_policy(defs, "http-503-error-rate", both), defs))
    assert list(change.payload["fields"]) == ["conditions", "notificationChannels"]
    assert change.gcloud.endswith("--fields=conditions,notificationChannels")


def test_a_policy_made_by_hand_is_adopted_not_duplicated(defs: Definitions) -> None:
    obs = with_policy(defs, "vpc-connector-capacity", lambda p: {k: v for k, v in p.items() if k != "userLabels"})
    change = only(plan(target(), obs, defs))
    assert change.step == UPDATE_POLICY and change.subject == "vpc-connector-capacity"
    assert change.payload["fields"] == {"userLabels": defs.alert_policies["vpc-connector-capacity"]["userLabels"]}
    assert change.payload["previous"] == {"userLabels": None}


def test_an_adopted_policy_keeps_its_own_labels(defs: Definitions) -> None:
    obs = with_policy(defs, "vpc-connector-capacity", lambda p: {**p, "userLabels": {"team": "network"}})
    change = only(plan(target(), obs, defs))
    assert change.payload["fields"]["userLabels"].get("team") == "network"


# ---- log metrics -------------------------------------------------------------------------------

def test_a_metric_with_another_filter_is_updated_with_its_previous_filter(defs: Definitions) -> None:
    obs = as_created(defs)
    metrics = dict(obs.log_metrics)
    old = 'resource.type="cloud_run_revision" AND httpRequest.status>=500'
    metrics["http_503_errors"] = {**(metrics["http_503_errors"] or {}), "filter": old, "description": "5xx, by hand"}
    change = only(plan(target(), as_created(defs, log_metrics=metrics), defs))
    d = defs.log_metrics["http_503_errors"]
    assert change.step == UPDATE_METRIC and change.subject == "http_503_errors"
    assert change.resource == f"projects/{PROJECT}/metrics/http_503_errors"
    assert change.payload == {"metric": d, "previous": {"name": "http_503_errors", "filter": old,
                                                        "description": "5xx, by hand"}}
    assert change.before == {"filter": old, "description": "5xx, by hand"}
    assert change.after == {"filter": d["filter"], "description": d["description"]}
    assert change.gcloud.startswith("gcloud logging metrics update http_503_errors --log-filter=")


def test_a_metric_with_another_description_only_is_left_alone(defs: Definitions) -> None:
    metrics = dict(as_created(defs).log_metrics)
    metrics["http_503_errors"] = {**(metrics["http_503_errors"] or {}), "description": "edited in the console"}
    assert plan(target(), as_created(defs, log_metrics=metrics), defs) == []


def test_only_the_missing_metric_is_created(defs: Definitions) -> None:
    metrics = dict(as_created(defs).log_metrics)
    metrics["websocket_upgrades"] = None
    change = only(plan(target(), as_created(defs, log_metrics=metrics), defs))
    assert (change.step, change.subject) == (CREATE_METRIC, "websocket_upgrades")


# ---- dashboards --------------------------------------------------------------------------------

def test_a_dashboard_missing_a_widget_is_updated_with_the_observed_etag(defs: Definitions) -> None:
    served = dashboard(defs.dashboards[DASHBOARD])
    served["mosaicLayout"]["tiles"] = [t for t in served["mosaicLayout"]["tiles"]
                                       if t["widget"]["title"] != "WebSocket failure rate"]
    change = only(plan(target(), as_created(defs, dashboards={DASHBOARD: served}), defs))
    assert change.step == UPDATE_DASHBOARD and change.resource == DASHBOARD
    assert change.expected_etag == "etag-dash-1"
    assert change.payload["dashboard"] == defs.dashboards[DASHBOARD]
    assert change.payload["previous"] == {k: v for k, v in served.items() if k != "etag"}
    assert "etag" not in change.payload["previous"]
    assert "WebSocket failure rate" in change.summary
    assert "WebSocket failure rate" not in change.before["widgets"]
    assert "WebSocket failure rate" in change.after["widgets"]


def test_a_dashboard_with_extra_widgets_is_left_alone(defs: Definitions) -> None:
    served = dashboard(defs.dashboards[DASHBOARD])
    served["mosaicLayout"]["tiles"].append({"widget": {"title": "Notes", "text": {"content": "by hand"}}})
    assert plan(target(), as_created(defs, dashboards={DASHBOARD: served}), defs) == []


# ---- autoscaling -------------------------------------------------------------------------------

def test_autoscaling_drift_is_one_rollout_of_the_targets_scaling(defs: Definitions) -> None:
    change = only(plan(target(), as_created(defs, **services(DEFAULTS)), defs))
    assert change.step == AUTOSCALE and change.subject == BACKEND
    assert change.resource == f"{BASE}/{BACKEND}"
    assert change.expected_etag == f"etag-{BACKEND}"
    assert change.payload == {
        "service": BACKEND,
        "template": {"scaling": {"minInstanceCount": 2, "maxInstanceCount": 100}, "maxInstanceRequestConcurrency": 80},
        "restore": {"scaling": {"minInstanceCount": 0, "maxInstanceCount": 20}, "maxInstanceRequestConcurrency": 1000},
        "previous": BACKEND_REV,
    }
    assert change.before == {"scaling": {"minInstanceCount": 0, "maxInstanceCount": 20}, "concurrency": 1000}
    assert change.after == {"scaling": {"minInstanceCount": 2, "maxInstanceCount": 100}, "concurrency": 80}
    assert change.gcloud == (f"gcloud run services update {BACKEND} {WHERE} --min-instances=2 --max-instances=100 "
                             f"--concurrency=80 && gcloud run services update-traffic {BACKEND} {WHERE} --to-latest")
    assert f"(now {BACKEND_REV})" in change.summary
    assert f"traffic goes back to {BACKEND_REV}" in change.why
    assert "Cloud SQL's max_connections (200)" in change.why
    assert change.reversible and not change.needs_consent


def test_a_single_wrong_value_rolls_out_the_whole_scaling(defs: Definitions) -> None:
    spec = {"scaling": {"minInstanceCount": 2, "maxInstanceCount": 100}, "maxInstanceRequestConcurrency": 250}
    change = only(plan(target(), as_created(defs, **services(spec)), defs))
    assert change.payload["template"] == SCALED
    assert change.payload["restore"] == spec


def test_the_pool_warning_needs_a_database(defs: Definitions) -> None:
    change = only(plan(target(database=None), as_created(defs, **services(DEFAULTS)), defs))
    assert "max_connections" not in change.why


def test_no_single_serving_revision_plans_no_autoscaling(defs: Definitions) -> None:
    svc = services(DEFAULTS)
    svc["services"][BACKEND] = service(BACKEND, DEFAULTS, ("netra-backend-staging-00749-6tr", 50), (BACKEND_REV, 50))
    svc["serving"][BACKEND] = None
    assert plan(target(), as_created(defs, **svc), defs) == []
    assert [c.step for c in plan(target(), nothing(defs, **svc), defs)].count(AUTOSCALE) == 0


def test_a_reconciling_service_plans_no_autoscaling(defs: Definitions) -> None:
    svc = services(DEFAULTS)
    svc["services"][BACKEND] = service(BACKEND, DEFAULTS, (BACKEND_REV, 100), reconciling=True)
    assert plan(target(), as_created(defs, **svc), defs) == []


def test_a_service_without_autoscaling_is_never_scaled(defs: Definitions) -> None:
    assert AUTH not in [c.subject for c in plan(target(), nothing(defs), defs)]
    plain = target(services=[{"name": BACKEND}, {"name": AUTH}])
    assert [c for c in plan(plain, nothing(defs), defs) if c.step == AUTOSCALE] == []


# ---- serialisation -----------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["nothing", "drift"])
def test_every_change_serialises(defs: Definitions, scenario: str) -> None:
    if scenario == "nothing":
        obs = nothing(defs, channels=())
    else:
        served = dashboard(defs.dashboards[DASHBOARD])
        served["mosaicLayout"]["tiles"].pop()
        metrics = dict(as_created(defs).log_metrics)
        metrics["http_503_errors"] = {**(metrics["http_503_errors"] or {}), "filter": "httpRequest.status>=500"}
        obs = with_policy(defs, "http-503-error-rate", lambda p: set_threshold(p, 0.5),
                          log_metrics=metrics, dashboards={DASHBOARD: served}, **services(DEFAULTS))
    changes = plan(target(), obs, defs)
    assert changes
    for change in changes:
        data = json.loads(json.dumps(change.to_json()))
        assert data["step"] == change.step and data["needs_consent"] is False
        assert data["payload"] == json.loads(json.dumps(change.payload))
        assert data["diff"] == change.diff()
    if scenario == "drift":
        assert [c.step for c in changes] == [UPDATE_METRIC, UPDATE_POLICY, UPDATE_DASHBOARD, AUTOSCALE]
