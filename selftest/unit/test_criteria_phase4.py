"""Phase-4 criteria as pure functions of observations: the monitoring as it is, judged by meaning against monitoring/."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from goldenpath.criteria import phase4 as c
from goldenpath.definitions import POLICY_LABEL, Definitions
from goldenpath.observations import Phase4Observation
from goldenpath.verdict import Status
from selftest.unit.phase4_world import (
    AUTH, BACKEND, BACKEND_REV, CHANNELS, DASHBOARD, EMAIL, METRICS, POLICY_NAMES, PROJECT, ROOT, SCALED,
    WIDGETS, as_created, channel, dashboard, nothing, policy, revision, service, services,
    target,
)


def replaced(policies: tuple[dict[str, Any], ...], pid: str, new: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """The policies with the one labelled ``pid`` replaced (None: removed)."""
    out = [new if p["userLabels"][POLICY_LABEL] == pid else p for p in policies]
    return tuple(p for p in out if p is not None)


def labelled(obs: Phase4Observation, pid: str) -> dict[str, Any]:
    [found] = [p for p in obs.policies if p.get("userLabels", {}).get(POLICY_LABEL) == pid]
    return copy.deepcopy(found)


def set_threshold(p: dict[str, Any], value: float) -> dict[str, Any]:
    p["conditions"][0]["conditionThreshold"]["thresholdValue"] = value
    return p


# ---- as created ------------------------------------------------------------------------------

def test_as_created_every_criterion_passes(defs: Definitions) -> None:
    verdicts = c.evaluate(as_created(defs), defs, target())
    assert [(v.criterion, v.status) for v in verdicts] == [
        (c.ERROR_MONITORING, Status.PASS), (c.ALERT_POLICIES, Status.PASS),
        (c.CAPACITY, Status.PASS), (c.DASHBOARD, Status.PASS)]


def test_as_created_reasons_name_what_was_found(defs: Definitions) -> None:
    metrics, policies, capacity, dashboard = c.evaluate(as_created(defs), defs, target())
    assert all(name in metrics.reason for name in METRICS)
    assert f"5 policies exist, enabled, as defined, notifying {EMAIL}" in policies.reason
    assert capacity.reason.startswith("thresholds and autoscaling: 5 thresholds watched")
    assert f"autoscaling as defined for {BACKEND}" in capacity.reason
    assert "(6 widgets: " in dashboard.reason and all(w in dashboard.reason for w in WIDGETS)
    assert metrics.evidence["diff"] == "" and policies.evidence["diff"] == "" and dashboard.evidence["diff"] == ""


def test_as_created_passes_without_any_server_formatting_too(defs: Definitions) -> None:
    """The definitions themselves, unconverted (ints, no names), are equally "as defined"."""
    obs = as_created(defs, log_metrics=dict(defs.log_metrics), dashboards=dict(defs.dashboards),
                     policies=tuple({**d, "notificationChannels": [EMAIL]} for d in defs.alert_policies.values()))
    assert all(v.passed for v in c.evaluate(obs, defs, target()))


# ---- nothing exists ----------------------------------------------------------------------------

def test_nothing_exists_every_criterion_fails(defs: Definitions) -> None:
    assert [v.status for v in c.evaluate(nothing(defs), defs, target())] == [Status.FAIL] * 4


def test_nothing_exists_names_every_missing_metric(defs: Definitions) -> None:
    v = c.error_monitoring(nothing(defs), defs)
    assert v.status is Status.FAIL
    assert v.reason == f"log-based metrics: missing: {', '.join(METRICS)}"
    assert v.evidence["missing"] == METRICS


def test_nothing_exists_names_every_missing_policy(defs: Definitions) -> None:
    v = c.alert_policies(nothing(defs), defs, target())
    assert v.status is Status.FAIL
    assert v.reason.startswith("alert policies: missing: ")
    for name in POLICY_NAMES:
        assert f"'{name}'" in v.reason
    assert v.evidence["missing"] == [f"'{n}'" for n in POLICY_NAMES]


def test_nothing_exists_names_every_unwatched_threshold(defs: Definitions) -> None:
    v = c.capacity(nothing(defs), defs, target())
    assert v.status is Status.FAIL
    for cond, pid in [("503 Error Rate > 5%", "http-503-error-rate"),
                      ("Connections > 75% of max_connections", "database-connections"),
                      ("Connector CPU > 80%", "vpc-connector-capacity"),
                      ("WebSocket failure rate > 10%", "websocket-failure-rate"),
                      ("P95 latency > 10 s", "response-latency-p95")]:
        assert f"'{cond}' is not watched by an enabled policy ({pid})" in v.reason
    assert v.evidence["covered"] == []


def test_nothing_exists_names_the_backends_autoscaling(defs: Definitions) -> None:
    v = c.capacity(nothing(defs), defs, target())
    assert v.evidence["autoscaling"] == [
        f"{BACKEND} ({BACKEND_REV}): min instances expected 2, found unset",
        f"{BACKEND} ({BACKEND_REV}): max instances expected 100, found unset",
        f"{BACKEND} ({BACKEND_REV}): concurrency expected 80, found unset",
    ]
    assert all(line in v.reason for line in v.evidence["autoscaling"])
    assert AUTH not in v.reason  # no autoscaling configured for it


def test_nothing_exists_names_the_dashboard(defs: Definitions) -> None:
    v = c.dashboard(nothing(defs), defs)
    assert v.status is Status.FAIL
    assert v.reason == f"dashboard: 'Infrastructure Capacity (Issue #1278)' is missing ({DASHBOARD})"


def test_missing_resources_show_the_whole_definition_as_added(defs: Definitions) -> None:
    obs = nothing(defs)
    diff = c.alert_policies(obs, defs, target()).evidence["diff"]
    assert "+++ alertPolicies/http-503-error-rate (defined)" in diff
    assert '+  "displayName": "HTTP 503 Error Rate Alert",' in diff
    assert "\n-" not in diff.replace("\n--- ", "\n")  # nothing is there now
    metric_diff = c.error_monitoring(obs, defs).evidence["diff"]
    assert "+++ logMetrics/websocket_upgrades (defined)" in metric_diff
    assert c.dashboard(obs, defs).evidence["diff"].count('"title":') == 6


# ---- drifted policies ----------------------------------------------------------------------

def test_a_drifted_threshold_fails_naming_the_path_and_both_values(defs: Definitions) -> None:
    obs = as_created(defs)
    drifted = set_threshold(labelled(obs, "http-503-error-rate"), 0.5)
    obs = as_created(defs, policies=replaced(obs.policies, "http-503-error-rate", drifted))
    v = c.alert_policies(obs, defs, target())
    assert v.status is Status.FAIL
    assert v.reason == ("alert policies: 'HTTP 503 Error Rate Alert' differs: conditions[503 Error Rate > 5%]."
                        "conditionThreshold.thresholdValue: expected 0.05, found 0.5")


def test_a_drifted_threshold_leaves_that_threshold_unwatched(defs: Definitions) -> None:
    obs = as_created(defs)
    drifted = set_threshold(labelled(obs, "http-503-error-rate"), 0.5)
    v = c.capacity(as_created(defs, policies=replaced(obs.policies, "http-503-error-rate", drifted)), defs, target())
    assert v.status is Status.FAIL
    assert v.reason == ("thresholds and autoscaling: '503 Error Rate > 5%' is not watched by an enabled policy "
                        "(http-503-error-rate)")
    assert len(v.evidence["covered"]) == 4


def test_a_drifted_threshold_diff_shows_both_values(defs: Definitions) -> None:
    obs = as_created(defs)
    drifted = set_threshold(labelled(obs, "http-503-error-rate"), 0.5)
    diff = c.alert_policies(as_created(defs, policies=replaced(obs.policies, "http-503-error-rate", drifted)),
                            defs, target()).evidence["diff"]
    assert "--- alertPolicies/http-503-error-rate (now)" in diff
    assert '-        "thresholdValue": 0.5' in diff and '+        "thresholdValue": 0.05' in diff
    assert "conditions/2001" not in diff and "creationRecord" not in diff  # server fields are projected away


def test_a_disabled_policy_fails_and_its_threshold_is_unwatched(defs: Definitions) -> None:
    obs = as_created(defs)
    off = {**labelled(obs, "response-latency-p95"), "enabled": False}
    obs = as_created(defs, policies=replaced(obs.policies, "response-latency-p95", off))
    policies = c.alert_policies(obs, defs, target())
    assert policies.status is Status.FAIL
    assert "'Response Latency P95 Alert' differs: enabled: expected True, found False" in policies.reason
    capacity = c.capacity(obs, defs, target())
    assert capacity.status is Status.FAIL
    assert "'P95 latency > 10 s' is not watched by an enabled policy (response-latency-p95)" in capacity.reason


def test_a_policy_made_by_hand_from_the_runbook_is_adopted_by_display_name(defs: Definitions) -> None:
    obs = as_created(defs)
    by_hand = labelled(obs, "vpc-connector-capacity")
    del by_hand["userLabels"]
    obs = as_created(defs, policies=replaced(obs.policies, "vpc-connector-capacity", by_hand))
    assert c.find_policy(obs.policies, "vpc-connector-capacity", defs.alert_policies["vpc-connector-capacity"]) \
        is by_hand
    v = c.alert_policies(obs, defs, target())
    assert v.evidence["missing"] == []
    assert "missing" not in v.reason
    # it is found, and only the gate's label is what it lacks
    assert v.reason == ("alert policies: 'VPC Connector Capacity Alert' differs: userLabels: expected "
                        "{'managed-by': 'goldenpath', 'goldenpath-policy': 'vpc-connector-capacity'}, found None")
    assert c.capacity(obs, defs, target()).passed


def test_the_label_wins_over_the_display_name(defs: Definitions) -> None:
    obs = as_created(defs)
    ours = labelled(obs, "http-503-error-rate")
    ours["displayName"] = "503s (renamed in the console)"
    impostor = {**labelled(obs, "http-503-error-rate"), "name": f"projects/{PROJECT}/alertPolicies/9", "userLabels": {}}
    policies = (impostor, *replaced(obs.policies, "http-503-error-rate", ours))
    assert c.find_policy(policies, "http-503-error-rate", defs.alert_policies["http-503-error-rate"]) is ours


def test_a_threshold_watched_by_someone_elses_policy_is_covered(defs: Definitions) -> None:
    obs = as_created(defs)
    theirs = labelled(obs, "database-connections")
    theirs.update(displayName="DBA: Postgres backends", userLabels={"team": "dba"},
                  name=f"projects/{PROJECT}/alertPolicies/777")
    theirs["conditions"][0]["displayName"] = "backends high"
    obs = as_created(defs, policies=replaced(obs.policies, "database-connections", theirs))
    v = c.capacity(obs, defs, target())
    assert v.status is Status.PASS
    assert "Connections > 75% of max_connections (DBA: Postgres backends)" in v.evidence["covered"]
    # the gate's own policy is still missing: that is the alert-policy criterion's business
    assert "'Cloud SQL Connection Utilization Alert'" in c.alert_policies(obs, defs, target()).evidence["missing"]


def test_someone_elses_disabled_policy_does_not_cover(defs: Definitions) -> None:
    obs = as_created(defs)
    theirs = labelled(obs, "database-connections")
    theirs.update(displayName="DBA: Postgres backends", userLabels={}, enabled=False)
    v = c.capacity(as_created(defs, policies=replaced(obs.policies, "database-connections", theirs)), defs, target())
    assert v.status is Status.FAIL
    assert "'Connections > 75% of max_connections' is not watched by an enabled policy" in v.reason


def test_a_filter_spelled_differently_passes(defs: Definitions) -> None:
    obs = as_created(defs)
    respelled = labelled(obs, "http-503-error-rate")
    respelled["conditions"][0]["conditionThreshold"]["filter"] = (
        "metric.labels.response_code = '503'  AND resource.type=cloud_run_revision AND "
        'metric.type = "run.googleapis.com/request_count"')
    respelled["conditions"][0]["conditionThreshold"]["denominatorFilter"] = (
        "resource.type = 'cloud_run_revision' AND metric.type='run.googleapis.com/request_count'")
    obs = as_created(defs, policies=replaced(obs.policies, "http-503-error-rate", respelled))
    assert c.alert_policies(obs, defs, target()).passed
    assert c.capacity(obs, defs, target()).passed


def test_a_metric_filter_spelled_differently_passes_and_a_different_one_fails(defs: Definitions) -> None:
    obs = as_created(defs)
    metrics = dict(obs.log_metrics)
    metrics["http_503_errors"] = {**(metrics["http_503_errors"] or {}),
                                  "filter": "httpRequest.status = 503 AND resource.type = 'cloud_run_revision'"}
    assert c.error_monitoring(as_created(defs, log_metrics=metrics), defs).passed
    metrics["http_503_errors"] = {**(metrics["http_503_errors"] or {}), "filter": 'resource.type="cloud_run_revision"'}
    v = c.error_monitoring(as_created(defs, log_metrics=metrics), defs)
    assert v.status is Status.FAIL
    assert v.reason.startswith("log-based metrics: http_503_errors differs: filter: expected ")
    assert "+++ logMetrics/http_503_errors (defined)" in v.evidence["diff"]
    assert v.evidence["missing"] == []


def test_a_disabled_metric_is_not_active(defs: Definitions) -> None:
    metrics = dict(as_created(defs).log_metrics)
    metrics["websocket_failures"] = {**(metrics["websocket_failures"] or {}), "disabled": True}
    v = c.error_monitoring(as_created(defs, log_metrics=metrics), defs)
    assert v.status is Status.FAIL and "websocket_failures" in v.reason


# ---- channels --------------------------------------------------------------------------------

def test_no_channel_in_the_project_fails_with_instructions(defs: Definitions) -> None:
    obs = as_created(defs, channels=(),
                     policies=tuple(policy(d, i, channels=[]) for i, d in enumerate(defs.alert_policies.values())))
    v = c.alert_policies(obs, defs, target())
    assert v.status is Status.FAIL
    assert f"targets.toml names channel(s) that do not exist in project {PROJECT}: {EMAIL}" in v.reason
    assert "no existing notification channel is attached to " + ", ".join(f"'{n}'" for n in POLICY_NAMES) in v.reason
    assert "notification_channels" in v.reason and "--remediate" in v.reason
    assert "gcloud beta monitoring channels create" in v.reason
    assert f"{ROOT / 'targets.toml'} under targets.unit.monitoring" in v.reason
    assert v.evidence["channels"] == []


def test_no_channel_in_the_project_passes_when_channels_are_not_required(defs: Definitions) -> None:
    obs = as_created(defs, channels=(),
                     policies=tuple(policy(d, i, channels=[]) for i, d in enumerate(defs.alert_policies.values())))
    v = c.alert_policies(obs, defs, target(), require_channels=False)
    assert v.status is Status.PASS
    assert "notifying their channels" in v.reason


def test_a_target_naming_no_channel_says_so(defs: Definitions) -> None:
    obs = as_created(defs, policies=tuple(policy(d, i, channels=[]) for i, d in enumerate(defs.alert_policies.values())))
    v = c.alert_policies(obs, defs, target(channels=[]))
    assert v.status is Status.FAIL
    assert "targets.toml names no notification channel" in v.reason and "--remediate" in v.reason


def test_a_target_channel_that_does_not_exist_is_named(defs: Definitions) -> None:
    v = c.alert_policies(as_created(defs), defs, target(channels=["EMAIL_ALERT", "PAGER"]))
    assert v.status is Status.FAIL
    assert f"names channel(s) that do not exist in project {PROJECT}: {CHANNELS}/PAGER" in v.reason
    assert f"{EMAIL}," not in v.reason.split("do not exist")[1].split(":")[1]  # only the missing one
    assert "no existing notification channel is attached" not in v.reason


def test_a_full_channel_name_in_the_target_is_taken_as_is(defs: Definitions) -> None:
    assert c.alert_policies(as_created(defs), defs, target(channels=[EMAIL])).passed


def test_a_dangling_channel_on_a_policy_is_named(defs: Definitions) -> None:
    obs = as_created(defs)
    gone = f"{CHANNELS}/DELETED_PAGER"
    dangling = {**labelled(obs, "websocket-failure-rate"), "notificationChannels": [EMAIL, gone]}
    obs = as_created(defs, policies=replaced(obs.policies, "websocket-failure-rate", dangling))
    for required in (True, False):
        v = c.alert_policies(obs, defs, target(), require_channels=required)
        assert v.status is Status.FAIL
        assert v.reason == f"alert policies: 'WebSocket Failure Rate Alert' notifies channel(s) that do not exist: {gone}"


def test_a_policy_missing_the_targets_channel_differs(defs: Definitions) -> None:
    obs = as_created(defs, channels=(channel(), channel("OTHER")))
    other = {**labelled(obs, "http-503-error-rate"), "notificationChannels": [f"{CHANNELS}/OTHER"]}
    obs = as_created(defs, channels=(channel(), channel("OTHER")),
                     policies=replaced(obs.policies, "http-503-error-rate", other))
    v = c.alert_policies(obs, defs, target())
    assert v.status is Status.FAIL
    assert v.reason == f"alert policies: 'HTTP 503 Error Rate Alert' differs: notificationChannels: expected to include {EMAIL}"


# ---- autoscaling -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, line", [
    ({"scaling": {"minInstanceCount": 2, "maxInstanceCount": 20}, "maxInstanceRequestConcurrency": 80},
     "max instances expected 100, found 20"),
    ({"scaling": {"minInstanceCount": 1, "maxInstanceCount": 100}, "maxInstanceRequestConcurrency": 80},
     "min instances expected 2, found 1"),
    ({"scaling": {"maxInstanceCount": 100}, "maxInstanceRequestConcurrency": 80},
     "min instances expected 2, found unset"),
    ({"scaling": {"minInstanceCount": 2, "maxInstanceCount": 100}, "maxInstanceRequestConcurrency": 1000},
     "concurrency expected 80, found 1000"),
])
def test_wrong_autoscaling_is_named_with_expected_and_found(defs: Definitions, spec: dict[str, Any], line: str) -> None:
    v = c.capacity(as_created(defs, **services(spec)), defs, target())
    assert v.status is Status.FAIL
    assert v.reason == f"thresholds and autoscaling: {BACKEND} ({BACKEND_REV}): {line}"
    assert v.evidence["autoscaling"] == [f"{BACKEND} ({BACKEND_REV}): {line}"]


def test_autoscaling_is_judged_on_the_serving_revision_not_the_template(defs: Definitions) -> None:
    svc = services()
    svc["serving"][BACKEND] = revision(BACKEND, BACKEND_REV, {"scaling": {"maxInstanceCount": 20}})
    v = c.capacity(as_created(defs, **svc), defs, target())
    assert v.status is Status.FAIL and "max instances expected 100, found 20" in v.reason


def test_no_single_serving_revision_fails_saying_so(defs: Definitions) -> None:
    svc = services()
    svc["services"][BACKEND] = service(BACKEND, SCALED, ("netra-backend-staging-00749-6tr", 50), (BACKEND_REV, 50))
    svc["serving"][BACKEND] = None
    v = c.capacity(as_created(defs, **svc), defs, target())
    assert v.status is Status.FAIL
    assert v.reason == (f"thresholds and autoscaling: {BACKEND}: no single revision serves all traffic, so its "
                        "autoscaling cannot be judged (Phase 1)")


def test_a_target_without_autoscaling_judges_only_thresholds(defs: Definitions) -> None:
    plain = target(services=[{"name": BACKEND}, {"name": AUTH}])
    v = c.capacity(as_created(defs, **services({})), defs, plain)
    assert v.status is Status.PASS
    assert "autoscaling as defined for no service (none configured)" in v.reason


# ---- dashboard -------------------------------------------------------------------------------

def test_a_dashboard_lacking_a_widget_names_its_title(defs: Definitions) -> None:
    served = dashboard(defs.dashboards[DASHBOARD])
    served["mosaicLayout"]["tiles"] = [t for t in served["mosaicLayout"]["tiles"]
                                       if t["widget"]["title"] != "VPC connector CPU p95"]
    v = c.dashboard(as_created(defs, dashboards={DASHBOARD: served}), defs)
    assert v.status is Status.FAIL
    assert v.reason.startswith("dashboard: 'Infrastructure Capacity (Issue #1278)' lacks widget(s): VPC connector CPU p95")
    assert "Response latency p95" not in v.reason.split("lacks")[1]


def test_a_dashboard_with_extra_widgets_and_moved_tiles_passes(defs: Definitions) -> None:
    served = dashboard(defs.dashboards[DASHBOARD])
    tiles = served["mosaicLayout"]["tiles"]
    tiles.reverse()
    for i, tile in enumerate(tiles):
        tile["yPos"] = 4 * i
    tiles.append({"width": 4, "height": 4, "widget": {"title": "Notes", "text": {"content": "added by hand"}}})
    assert c.dashboard(as_created(defs, dashboards={DASHBOARD: served}), defs).passed


def test_a_dashboard_in_another_layout_passes(defs: Definitions) -> None:
    served = dashboard(defs.dashboards[DASHBOARD])
    widgets = [t["widget"] for t in served.pop("mosaicLayout")["tiles"]]
    served["gridLayout"] = {"columns": "2", "widgets": widgets}
    assert c.dashboard(as_created(defs, dashboards={DASHBOARD: served}), defs).passed


def test_a_changed_widget_is_named_with_its_path(defs: Definitions) -> None:
    served = dashboard(defs.dashboards[DASHBOARD])
    [tile] = [t for t in served["mosaicLayout"]["tiles"] if t["widget"]["title"] == "Response latency p95"]
    query = tile["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]
    query["aggregation"]["perSeriesAligner"] = "ALIGN_PERCENTILE_50"
    v = c.dashboard(as_created(defs, dashboards={DASHBOARD: served}), defs)
    assert v.status is Status.FAIL
    assert ("differs: Response latency p95.xyChart.dataSets[0].timeSeriesQuery.timeSeriesFilter.aggregation."
            'perSeriesAligner: expected "ALIGN_PERCENTILE_95", found "ALIGN_PERCENTILE_50"') in v.reason
    changed = [line[0] + line[1:].strip() for line in v.evidence["diff"].splitlines()
               if line[:1] in "+-" and "perSeriesAligner" in line]
    assert changed == ['-"perSeriesAligner": "ALIGN_PERCENTILE_50"', '+"perSeriesAligner": "ALIGN_PERCENTILE_95"']


def test_a_renamed_dashboard_differs(defs: Definitions) -> None:
    served = {**dashboard(defs.dashboards[DASHBOARD]), "displayName": "Capacity"}
    v = c.dashboard(as_created(defs, dashboards={DASHBOARD: served}), defs)
    assert v.status is Status.FAIL
    assert 'displayName: expected "Infrastructure Capacity (Issue #1278)", found "Capacity"' in v.reason


def test_widgets_by_title_in_every_layout() -> None:
    w = [{"title": "a"}, {"title": "b"}]
    assert list(c.widgets({"mosaicLayout": {"columns": 12, "tiles": [{"widget": x} for x in w]}})) == ["a", "b"]
    assert list(c.widgets({"gridLayout": {"widgets": w}})) == ["a", "b"]
    assert list(c.widgets({"rowLayout": {"rows": [{"widgets": w[:1]}, {"widgets": w[1:]}]}})) == ["a", "b"]
    assert list(c.widgets({"columnLayout": {"columns": [{"widgets": w}]}})) == ["a", "b"]
    assert c.widgets({}) == {}


# ---- evidence --------------------------------------------------------------------------------

def test_the_diff_is_unified_and_holds_the_definitions_lines(defs: Definitions) -> None:
    obs = as_created(defs)
    off = {**labelled(obs, "http-503-error-rate"), "enabled": False}
    diff = c.alert_policies(as_created(defs, policies=replaced(obs.policies, "http-503-error-rate", off)),
                            defs, target()).evidence["diff"]
    lines = diff.splitlines()
    assert lines[0] == "--- alertPolicies/http-503-error-rate (now)"
    assert lines[1] == "+++ alertPolicies/http-503-error-rate (defined)"
    assert lines[2].startswith("@@ ")
    assert '-  "enabled": false,' in lines and '+  "enabled": true,' in lines
    defined = json.dumps(defs.alert_policies["http-503-error-rate"], indent=2, sort_keys=True).splitlines()
    body = [line for line in lines[3:] if not line.startswith("@@")]
    assert body and all(line[1:] in defined for line in body if not line.startswith("-"))  # the definition's lines


def test_a_missing_policys_diff_is_its_whole_definition(defs: Definitions) -> None:
    obs = as_created(defs, policies=replaced(as_created(defs).policies, "database-connections", None))
    diff = c.alert_policies(obs, defs, target()).evidence["diff"]
    defined = json.dumps(defs.alert_policies["database-connections"], indent=2, sort_keys=True).splitlines()
    assert diff.splitlines()[3:] == ["+" + line for line in defined]


def test_the_diff_shows_only_what_differs(defs: Definitions) -> None:
    obs = as_created(defs)
    off = {**labelled(obs, "database-connections"), "enabled": False}
    diff = c.alert_policies(as_created(defs, policies=replaced(obs.policies, "database-connections", off)),
                            defs, target()).evidence["diff"]
    changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ['-  "enabled": false,', '+  "enabled": true,']  # not thresholdValue 150.0 → 150
    served = dashboard(defs.dashboards[DASHBOARD])
    served["displayName"] = "Capacity"
    diff = c.dashboard(as_created(defs, dashboards={DASHBOARD: served}), defs).evidence["diff"]
    assert '"label": ""' not in diff  # left out by the API, equal by meaning


def test_unified_projects_the_actual_onto_the_definitions_fields() -> None:
    text = c.unified("x", {"a": 1, "b": {"c": 2}}, {"a": 2, "b": {"c": 2, "server": 1}, "name": "n"})
    assert '-  "a": 2,' in text and '+  "a": 1,' in text
    assert "server" not in text and '"name"' not in text
    assert c.unified("x", {"a": 1}, {"a": 1}) == ""


# ---- a policy pending on a new log-based metric ----------------------------------------------------

WS = "websocket-failure-rate"
NOT_YET = "metric not yet usable, run again in 9 minutes: …"


def test_a_pending_policy_is_inconclusive_not_failed_and_says_when_to_run_again(defs: Definitions) -> None:
    obs = as_created(defs)
    obs = Phase4Observation(**{**obs.__dict__, "policies": replaced(obs.policies, WS, None)})
    failed = c.evaluate(obs, defs, target())
    assert [v.status for v in failed][1:3] == [Status.FAIL, Status.FAIL]  # without the outcome: missing
    _, policies, capacity, _ = c.evaluate(obs, defs, target(), pending={WS: NOT_YET})
    assert policies.status is Status.INCONCLUSIVE and capacity.status is Status.INCONCLUSIVE
    assert policies.reason == f"alert policies: 'WebSocket Failure Rate Alert' pending: {NOT_YET}"
    assert f"({WS}) pending: {NOT_YET}" in capacity.reason


def test_a_pending_policy_does_not_hide_another_failure(defs: Definitions) -> None:
    obs = as_created(defs)
    obs = Phase4Observation(**{**obs.__dict__, "policies": replaced(replaced(obs.policies, WS, None),
                                                                    "http-503-error-rate", None)})
    _, policies, _, _ = c.evaluate(obs, defs, target(), pending={WS: NOT_YET})
    assert policies.status is Status.FAIL
    assert "missing: 'HTTP 503 Error Rate Alert'" in policies.reason and "pending: metric not yet usable" in policies.reason


def test_a_pending_policy_that_exists_as_defined_passes(defs: Definitions) -> None:
    verdicts = c.evaluate(as_created(defs), defs, target(), pending={WS: NOT_YET})
    assert all(v.status is Status.PASS for v in verdicts)
