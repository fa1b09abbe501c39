"""The twin's Phase 4 monitoring APIs, driven through the real client libraries against a real twin.

* Logging v2 log-based metrics: ``google.cloud.logging.Client(_use_grpc=False).metrics_api`` (REST);
* Monitoring v1 dashboards: ``DashboardsServiceClient(transport="rest")``;
* Monitoring v3 alert policies and notification channels: ``AlertPolicyServiceClient`` and
  ``NotificationChannelServiceClient`` over a plaintext loopback gRPC channel (they have no REST
  transport).

Route and method fidelity are checked where the other faces are (:mod:`selftest.test_twin_contract`
loops over every REST route, :mod:`selftest.test_twin_grpc_contract` over every RPC); here the
bodies go through the clients (a body they could not parse fails) and the REST answers are parsed
again with unknown fields refused. The rule tests pin what Phase 4 depends on: duplicates are
ALREADY_EXISTS, a stale dashboard etag is ABORTED, a policy naming a missing channel or user metric
is NOT_FOUND (a user metric also for a while after its creation, unless the scenario made it long
ago), an update_mask changes only its fields, a dry run writes nothing, and a scenario's
fault fails its method on either face.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import grpc
import httpx
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging
from google.cloud import monitoring_dashboard_v1 as dash
from google.cloud import monitoring_v3
from google.cloud.logging_v2.types import ListLogMetricsResponse, LogMetric
from google.cloud.monitoring_v3.services.alert_policy_service.transports import AlertPolicyServiceGrpcTransport
from google.cloud.monitoring_v3.services.notification_channel_service.transports import (
    NotificationChannelServiceGrpcTransport,
)
from google.protobuf.field_mask_pb2 import FieldMask

from selftest.test_twin_contract import google_error, ok
from selftest.twinproc import TwinProcess, grpc_channel, running_twin
from twin import scenario as scenarios
from twin.grpcserver import RPCS
from twin.server import ROUTES
from twin.world import World

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "twin" / "scenarios"

PROJECT = "netra-staging"
PARENT = f"projects/{PROJECT}"
CHANNEL = f"{PARENT}/notificationChannels/EMAIL_ALERT"
HAND_MADE = "http_503_errors"  # the monitoring-quota scenario's pre-existing log metric
CLOUD_RUN = 'resource.type="cloud_run_revision"'
REQUEST_COUNT = f'{CLOUD_RUN} AND metric.type="run.googleapis.com/request_count"'

TIMEOUT = 10.0  # seconds, for every network call

PHASE4_REST_IDS = {
    "logging.projects.metrics.list", "logging.projects.metrics.get", "logging.projects.metrics.create",
    "logging.projects.metrics.update", "logging.projects.metrics.delete",
    "monitoring.projects.dashboards.list", "monitoring.projects.dashboards.get",
    "monitoring.projects.dashboards.create", "monitoring.projects.dashboards.patch",
    "monitoring.projects.dashboards.delete",
}
PHASE4_RPC_IDS = {
    "monitoring.projects.alertPolicies.list", "monitoring.projects.alertPolicies.get",
    "monitoring.projects.alertPolicies.create", "monitoring.projects.alertPolicies.patch",
    "monitoring.projects.alertPolicies.delete",
    "monitoring.projects.notificationChannels.list", "monitoring.projects.notificationChannels.get",
}


# ---- 1. what is served, and the scenarios ------------------------------------------------------------


def test_every_phase4_method_is_served() -> None:
    assert PHASE4_REST_IDS <= {r.method_id for r in ROUTES}
    assert PHASE4_RPC_IDS <= {r.method_id for r in RPCS}
    for route in ROUTES:
        if route.method_id in PHASE4_REST_IDS:
            assert route.write == (route.verb != "GET"), route.method_id


def test_every_scenario_loads_and_rehearses_with_the_runbooks_channel() -> None:
    names = scenarios.available()
    assert {"no-notification-channel", "monitoring-quota"} <= set(names)
    for name in names:
        sc = scenarios.load(name)
        channels = [c.id for c in sc.notification_channels]
        assert channels == ([] if name == "no-notification-channel" else ["EMAIL_ALERT"]), name
    quota = scenarios.load("monitoring-quota")
    assert [(m.name, m.filter) for m in quota.log_metrics] == [
        (HAND_MADE, f"{CLOUD_RUN} AND httpRequest.status=503")]
    assert [(f.method, f.code, f.status) for f in quota.faults] == [
        ("monitoring.projects.dashboards.create", 429, "RESOURCE_EXHAUSTED")]


@pytest.mark.parametrize("extra, problem", [
    ('[[faults]]\nmethod = "monitoring.projects.snoozes.create"\ncode = 429\nstatus = "RESOURCE_EXHAUSTED"\n'
     'message = "x"\n', "serves no method"),
    ('[[faults]]\nmethod = "monitoring.projects.dashboards.create"\ncode = 500\nstatus = "RESOURCE_EXHAUSTED"\n'
     'message = "x"\n', "HTTP 429"),
    ('[[log_metrics]]\nname = "has space"\nfilter = "x"\n', "metric name"),
    ('[[notification_channels]]\nid = "EMAIL_ALERT"\n', "repeats EMAIL_ALERT"),
], ids=["unserved-method", "code-not-the-status", "bad-metric-name", "duplicate-channel"])
def test_scenario_monitoring_keys_are_validated(tmp_path: Path, extra: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text((SCENARIOS / "healthy.toml").read_text() + "\n" + extra)
    # The schema is checked when the file loads; which methods the twin serves, when a world resets to it.
    with pytest.raises(scenarios.ScenarioError, match=problem):
        World(tmp_path / "home").reset(str(path))


# ---- the twin under test ---------------------------------------------------------------------------


class Twin:
    """A real twin subprocess: its control plane (httpx) and the real clients on both faces."""

    def __init__(self, proc: TwinProcess, control: httpx.Client, channel: grpc.Channel, scenario_dir: Path) -> None:
        self.proc, self.control, self.scenario_dir = proc, control, scenario_dir
        endpoint = f"http://127.0.0.1:{proc.control_port}"
        self.logging = cloud_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                            client_options={"api_endpoint": endpoint})
        self.metrics = self.logging.metrics_api
        self.dashboards = dash.DashboardsServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                                       client_options={"api_endpoint": endpoint})
        self.alerts = monitoring_v3.AlertPolicyServiceClient(
            transport=AlertPolicyServiceGrpcTransport(channel=channel))
        self.channels = monitoring_v3.NotificationChannelServiceClient(
            transport=NotificationChannelServiceGrpcTransport(channel=channel))

    def reset(self, scenario: str, clock_scale: float = 1) -> None:
        ok(self.control.post("/_twin/reset", params={"scenario": scenario, "clock_scale": clock_scale}))

    def status(self) -> dict[str, Any]:
        return json.loads(ok(self.control.get("/_twin/status")))

    def writes(self) -> int:
        return int(self.status()["requests"]["writes"])

    # -- REST helpers

    @staticmethod
    def dashboard(title: str = "Netra staging") -> dash.Dashboard:
        """A one-chart mosaic dashboard (12 columns, a 6-wide tile), as the real client builds it."""
        query = dash.TimeSeriesQuery(time_series_filter=dash.TimeSeriesFilter(filter=REQUEST_COUNT))
        chart = dash.XyChart(data_sets=[dash.XyChart.DataSet(plot_type=dash.XyChart.DataSet.PlotType.LINE,
                                                             time_series_query=query)])
        tile = dash.MosaicLayout.Tile(width=6, height=4, widget=dash.Widget(title="Requests", xy_chart=chart))
        return dash.Dashboard(display_name=title, mosaic_layout=dash.MosaicLayout(columns=12, tiles=[tile]))

    def create_dashboard(self, board: dash.Dashboard, validate_only: bool = False) -> dash.Dashboard:
        return self.dashboards.create_dashboard(
            request=dash.CreateDashboardRequest(parent=PARENT, dashboard=board, validate_only=validate_only),
            timeout=TIMEOUT)

    def update_dashboard(self, board: dash.Dashboard, validate_only: bool = False) -> dash.Dashboard:
        # The generated client has no flattened arguments for this method: a request only.
        return self.dashboards.update_dashboard(
            request=dash.UpdateDashboardRequest(dashboard=board, validate_only=validate_only), timeout=TIMEOUT)

    # -- gRPC helpers

    def create_policy(self, policy: dict[str, Any]) -> monitoring_v3.AlertPolicy:
        return self.alerts.create_alert_policy(name=PARENT, alert_policy=monitoring_v3.AlertPolicy(policy),
                                               timeout=TIMEOUT)

    def policies(self) -> list[monitoring_v3.AlertPolicy]:
        return list(self.alerts.list_alert_policies(name=PARENT, timeout=TIMEOUT))


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    home = tmp_path_factory.mktemp("twin-monitoring")
    scenario_dir = tmp_path_factory.mktemp("monitoring-scenarios")
    with running_twin(home, "healthy") as proc, grpc_channel(proc, TIMEOUT) as channel, \
            httpx.Client(base_url=f"http://127.0.0.1:{proc.control_port}", timeout=TIMEOUT) as control:
        yield Twin(proc, control, channel, scenario_dir)


@pytest.fixture
def twin(twin_server: Twin) -> Twin:
    """Healthy staging with the EMAIL_ALERT channel and no monitoring yet, so no test depends on another."""
    twin_server.reset("healthy")
    return twin_server


def rest_status(exc: gexc.GoogleAPICallError) -> str:
    """The canonical status of a REST error. api_core maps REST errors by HTTP code only (409 is
    Conflict whether ALREADY_EXISTS or ABORTED), so the status is read from Google's error body."""
    assert exc.response is not None
    return str(exc.response.json()["error"]["status"])


def threshold(filter_: str, **over: Any) -> dict[str, Any]:
    """A valid threshold condition (proto field names, as the gRPC client takes them)."""
    body = {"filter": filter_, "comparison": "COMPARISON_GT", "threshold_value": 5, "duration": {"seconds": 60},
            "aggregations": [{"alignment_period": {"seconds": 60}, "per_series_aligner": "ALIGN_RATE"}]}
    return {"display_name": "503 rate", "condition_threshold": {**body, **over}}


def policy(**over: Any) -> dict[str, Any]:
    return {"display_name": "Backend 503s", "combiner": "OR", "notification_channels": [CHANNEL],
            "documentation": {"content": "Runbook #1278", "mime_type": "text/markdown"},
            "conditions": [threshold(REQUEST_COUNT)], **over}


# ---- 2. Logging v2: log-based metrics -----------------------------------------------------------------


def test_log_metric_round_trip_with_the_real_client(twin: Twin) -> None:
    flt = f"{CLOUD_RUN} AND httpRequest.status>=500"
    twin.metrics.metric_create(PROJECT, "backend_5xx", flt, "Backend 5xx")
    got = twin.metrics.metric_get(PROJECT, "backend_5xx")
    assert (got["name"], got["filter"], got["description"]) == ("backend_5xx", flt, "Backend 5xx")
    descriptor = got["metricDescriptor"]
    assert descriptor["type"] == "logging.googleapis.com/user/backend_5xx"
    assert (descriptor["metricKind"], descriptor["valueType"], descriptor["unit"]) == ("DELTA", "INT64", "1")
    assert got["createTime"] == got["updateTime"]
    # The REST answers are what the API's own message types accept, unknown fields refused.
    LogMetric.from_json(ok(twin.control.get(f"/v2/{PARENT}/metrics/backend_5xx")), ignore_unknown_fields=False)
    listed = ListLogMetricsResponse.from_json(ok(twin.control.get(f"/v2/{PARENT}/metrics")),
                                              ignore_unknown_fields=False)
    assert [m.name for m in listed.metrics] == ["backend_5xx"]
    assert [m.name for m in twin.logging.list_metrics()] == ["backend_5xx"]

    updated = twin.metrics.metric_update(PROJECT, "backend_5xx", f"{CLOUD_RUN} AND httpRequest.status=503", "503 only")
    assert (updated["filter"], updated["createTime"]) == (f"{CLOUD_RUN} AND httpRequest.status=503", got["createTime"])
    assert updated["updateTime"] >= got["updateTime"]

    twin.metrics.metric_delete(PROJECT, "backend_5xx")
    with pytest.raises(gexc.NotFound):
        twin.metrics.metric_get(PROJECT, "backend_5xx")
    with pytest.raises(gexc.NotFound):
        twin.metrics.metric_delete(PROJECT, "backend_5xx")


def test_log_metric_update_creates_a_missing_metric(twin: Twin) -> None:
    # metrics.update (PUT): "Creates or updates a logs-based metric".
    twin.metrics.metric_update(PROJECT, "nginx/requests", CLOUD_RUN, "")
    assert twin.metrics.metric_get(PROJECT, "nginx/requests")["name"] == "nginx/requests"


def test_log_metric_duplicate_create_is_already_exists(twin: Twin) -> None:
    twin.metrics.metric_create(PROJECT, "backend_5xx", CLOUD_RUN, "")
    with pytest.raises(gexc.Conflict) as err:
        twin.metrics.metric_create(PROJECT, "backend_5xx", CLOUD_RUN, "another")
    assert rest_status(err.value) == "ALREADY_EXISTS"
    assert twin.metrics.metric_get(PROJECT, "backend_5xx").get("description", "") == ""


@pytest.mark.parametrize("name, flt", [("backend_5xx", ""), ("", CLOUD_RUN), ("bad name", CLOUD_RUN),
                                       ("x" * 101, CLOUD_RUN), ("/leading-slash", CLOUD_RUN)],
                         ids=["no-filter", "no-name", "space", "too-long", "leading-slash"])
def test_log_metric_missing_or_invalid_fields_are_refused(twin: Twin, name: str, flt: str) -> None:
    with pytest.raises(gexc.BadRequest):
        twin.metrics.metric_create(PROJECT, name, flt, "")
    assert list(twin.logging.list_metrics()) == []


def test_log_metric_bodies_and_paths_are_checked(twin: Twin) -> None:
    url = f"/v2/{PARENT}/metrics"
    google_error(twin.control.post(url, json={"name": "m", "filter": CLOUD_RUN, "labelFilter": "x"}),
                 400, "INVALID_ARGUMENT")
    ok(twin.control.post(url, json={"name": "m", "filter": CLOUD_RUN}))
    google_error(twin.control.put(f"{url}/m", json={"name": "other", "filter": CLOUD_RUN}), 400, "INVALID_ARGUMENT")
    google_error(twin.control.get("/v2/projects/someone-else/metrics"), 403, "PERMISSION_DENIED")


def test_log_metric_list_pages(twin: Twin) -> None:
    for name in ("a", "b", "c"):
        twin.metrics.metric_create(PROJECT, name, CLOUD_RUN, "")
    url = f"/v2/{PARENT}/metrics"
    first = json.loads(ok(twin.control.get(url, params={"pageSize": 2})))
    assert [m["name"] for m in first["metrics"]] == ["a", "b"]
    second = json.loads(ok(twin.control.get(url, params={"pageSize": 2, "pageToken": first["nextPageToken"]})))
    assert [m["name"] for m in second["metrics"]] == ["c"] and "nextPageToken" not in second
    google_error(twin.control.get(url, params={"pageToken": "not-one-of-ours"}), 400, "INVALID_ARGUMENT")
    assert [m.name for m in twin.logging.list_metrics(page_size=2)] == ["a", "b", "c"]


# ---- 3. Monitoring v1: dashboards -------------------------------------------------------------------------


def test_dashboard_round_trip_with_the_real_client(twin: Twin) -> None:
    created = twin.create_dashboard(twin.dashboard())
    assert created.name.startswith(f"{PARENT}/dashboards/") and created.etag
    got = twin.dashboards.get_dashboard(name=created.name, timeout=TIMEOUT)
    assert got == created
    dash.Dashboard.from_json(ok(twin.control.get(f"/v1/{created.name}")), ignore_unknown_fields=False)
    assert [d.name for d in twin.dashboards.list_dashboards(parent=PARENT, timeout=TIMEOUT)] == [created.name]

    got.display_name = "Netra staging (Phase 4)"
    updated = twin.update_dashboard(got)
    assert updated.display_name == "Netra staging (Phase 4)" and updated.etag != created.etag
    assert twin.dashboards.get_dashboard(name=created.name, timeout=TIMEOUT) == updated

    twin.dashboards.delete_dashboard(name=created.name, timeout=TIMEOUT)
    with pytest.raises(gexc.NotFound):
        twin.dashboards.get_dashboard(name=created.name, timeout=TIMEOUT)


def test_dashboard_with_a_stale_etag_is_aborted(twin: Twin) -> None:
    first_read = twin.create_dashboard(twin.dashboard())
    someone_else = copy.deepcopy(first_read)
    someone_else.display_name = "Changed by someone else"
    twin.update_dashboard(someone_else)

    first_read.display_name = "Ours"
    with pytest.raises(gexc.Conflict) as err:
        twin.update_dashboard(first_read)
    assert rest_status(err.value) == "ABORTED"
    assert "read it again" in err.value.message.lower()
    assert twin.dashboards.get_dashboard(name=first_read.name, timeout=TIMEOUT).display_name == "Changed by someone else"


def test_dashboard_with_a_given_name_is_unique(twin: Twin) -> None:
    board = twin.dashboard()
    board.name = f"{PARENT}/dashboards/netra-staging-golden-path"
    assert twin.create_dashboard(board).name == board.name
    with pytest.raises(gexc.Conflict) as err:
        twin.create_dashboard(board)
    assert rest_status(err.value) == "ALREADY_EXISTS"
    board.name = "projects/someone-else/dashboards/x"
    with pytest.raises(gexc.BadRequest):
        twin.create_dashboard(board)


@pytest.mark.parametrize("change", ["no-display-name", "no-layout", "tile-outside-columns", "too-many-columns",
                                    "zero-width-tile"])
def test_invalid_dashboards_are_refused(twin: Twin, change: str) -> None:
    board = twin.dashboard()
    if change == "no-display-name":
        board.display_name = ""
    elif change == "no-layout":
        board = dash.Dashboard(display_name="No layout")
    elif change == "tile-outside-columns":
        board.mosaic_layout.tiles[0].x_pos = 8  # 8 + 6 > 12
    elif change == "too-many-columns":
        board.mosaic_layout.columns = 49
    else:
        board.mosaic_layout.tiles[0].width = 0
    with pytest.raises(gexc.BadRequest):
        twin.create_dashboard(board)
    assert list(twin.dashboards.list_dashboards(parent=PARENT, timeout=TIMEOUT)) == []


def test_dashboard_unknown_field_and_missing_dashboard(twin: Twin) -> None:
    url = f"/v1/{PARENT}/dashboards"
    body = {"displayName": "x", "mosaicLayout": {"columns": 12}, "theme": "dark"}
    google_error(twin.control.post(url, json=body), 400, "INVALID_ARGUMENT")
    google_error(twin.control.post(url, json={"displayName": "x", "mosaicLayout": {}, "gridLayout": {}}),
                 400, "INVALID_ARGUMENT")
    google_error(twin.control.get(f"{url}/nope"), 404, "NOT_FOUND")
    google_error(twin.control.patch(f"{url}/nope", json={"displayName": "x", "gridLayout": {}}), 404, "NOT_FOUND")
    google_error(twin.control.get("/v1/projects/someone-else/dashboards"), 403, "PERMISSION_DENIED")


def test_validate_only_changes_nothing_and_writes_nothing(twin: Twin) -> None:
    existing = twin.create_dashboard(twin.dashboard())
    writes = twin.writes()

    preview = twin.create_dashboard(twin.dashboard("Dry run"), validate_only=True)
    assert preview.display_name == "Dry run"
    existing_changed = copy.deepcopy(existing)
    existing_changed.display_name = "Dry run rename"
    twin.update_dashboard(existing_changed, validate_only=True)
    # Every check still runs on a dry run.
    with pytest.raises(gexc.BadRequest):
        twin.create_dashboard(twin.dashboard(""), validate_only=True)

    assert [d.name for d in twin.dashboards.list_dashboards(parent=PARENT, timeout=TIMEOUT)] == [existing.name]
    assert twin.dashboards.get_dashboard(name=existing.name, timeout=TIMEOUT) == existing
    req = twin.status()["requests"]
    assert req["writes"] == writes
    assert req["by_method"]["monitoring.projects.dashboards.create:validateOnly"] == 2
    assert req["by_method"]["monitoring.projects.dashboards.patch:validateOnly"] == 1


# ---- 4. Monitoring v3: notification channels and alert policies ---------------------------------------------


def test_notification_channels_are_the_scenarios(twin: Twin) -> None:
    listed = list(twin.channels.list_notification_channels(name=PARENT, timeout=TIMEOUT))
    assert [c.name for c in listed] == [CHANNEL]
    got = twin.channels.get_notification_channel(name=CHANNEL, timeout=TIMEOUT)
    assert (got.type_, got.display_name, dict(got.labels), got.enabled) == (
        "email", "SRE on-call email", {"email_address": "sre-oncall@netrasystems.ai"}, True)  # type: ignore[comparison-overlap]  # proto-plus reads a BoolValue field as a bool
    with pytest.raises(gexc.NotFound):
        twin.channels.get_notification_channel(name=f"{PARENT}/notificationChannels/NOPE", timeout=TIMEOUT)
    with pytest.raises(gexc.MethodNotImplemented):
        list(twin.channels.list_notification_channels(
            request=monitoring_v3.ListNotificationChannelsRequest(name=PARENT, filter='type="email"'), timeout=TIMEOUT))


def test_no_channel_scenario_lists_no_channel(twin: Twin) -> None:
    twin.reset("no-notification-channel")
    assert list(twin.channels.list_notification_channels(name=PARENT, timeout=TIMEOUT)) == []
    with pytest.raises(gexc.NotFound):
        twin.create_policy(policy())


def test_alert_policy_round_trip_with_the_real_client(twin: Twin) -> None:
    created = twin.create_policy(policy())
    assert created.name.startswith(f"{PARENT}/alertPolicies/") and created.name.rsplit("/", 1)[-1].isdigit()
    condition = created.conditions[0].name
    assert condition.startswith(f"{created.name}/conditions/") and condition.rsplit("/", 1)[-1].isdigit()
    # unset on write means enabled, and it is always populated on read
    assert created.enabled is True  # type: ignore[comparison-overlap]  # proto-plus reads a BoolValue field as a bool
    assert created.creation_record.mutate_time and created.creation_record.mutated_by
    assert created.mutation_record == created.creation_record
    assert list(created.notification_channels) == [CHANNEL]

    assert twin.alerts.get_alert_policy(name=created.name, timeout=TIMEOUT) == created
    assert [p.name for p in twin.policies()] == [created.name]

    twin.alerts.delete_alert_policy(name=created.name, timeout=TIMEOUT)
    assert twin.policies() == []
    with pytest.raises(gexc.NotFound):
        twin.alerts.get_alert_policy(name=created.name, timeout=TIMEOUT)
    with pytest.raises(gexc.NotFound):
        twin.alerts.delete_alert_policy(name=created.name, timeout=TIMEOUT)


def _with(change: str) -> dict[str, Any]:
    """A valid policy with one thing wrong."""
    p = policy()
    cond = p["conditions"][0]
    th = cond["condition_threshold"]
    if change == "name-given":
        p["name"] = f"{PARENT}/alertPolicies/123"
    elif change == "no-display-name":
        p["display_name"] = ""
    elif change == "no-conditions":
        p["conditions"] = []
    elif change == "seven-conditions":
        p["conditions"] = [copy.deepcopy(cond) for _ in range(7)]
    elif change == "condition-without-display-name":
        cond["display_name"] = ""
    elif change == "condition-without-type":
        del cond["condition_threshold"]
    elif change == "filter-without-metric-type":
        th["filter"] = CLOUD_RUN
    elif change == "filter-without-resource-type":
        th["filter"] = 'metric.type="run.googleapis.com/request_count"'
    elif change == "comparison-unspecified":
        del th["comparison"]
    elif change == "no-duration":
        del th["duration"]
    elif change == "reducer-without-aligner":
        th["aggregations"] = [{"alignment_period": {"seconds": 60}, "cross_series_reducer": "REDUCE_SUM"}]
    elif change == "aligner-without-period":
        th["aggregations"] = [{"per_series_aligner": "ALIGN_RATE"}]
    elif change == "two-conditions-no-combiner":
        p["conditions"] = [copy.deepcopy(cond), copy.deepcopy(cond)]
        del p["combiner"]
    return p


@pytest.mark.parametrize("change", [
    "name-given", "no-display-name", "no-conditions", "seven-conditions", "condition-without-display-name",
    "condition-without-type", "filter-without-metric-type", "filter-without-resource-type",
    "comparison-unspecified", "no-duration", "reducer-without-aligner", "aligner-without-period",
    "two-conditions-no-combiner",
])
def test_invalid_alert_policies_are_refused(twin: Twin, change: str) -> None:
    with pytest.raises(gexc.InvalidArgument):
        twin.create_policy(_with(change))
    assert twin.policies() == []


def test_policy_naming_a_missing_channel_is_not_found(twin: Twin) -> None:
    with pytest.raises(gexc.NotFound) as err:
        twin.create_policy(policy(notification_channels=[f"{PARENT}/notificationChannels/PAGER"]))
    assert "PAGER" in err.value.message
    assert twin.policies() == []


def test_policy_on_a_user_metric_needs_the_metric(twin: Twin) -> None:
    on_metric = policy(conditions=[threshold(f'{CLOUD_RUN} AND metric.type="logging.googleapis.com/user/backend_503s"')])
    with pytest.raises(gexc.NotFound) as err:
        twin.create_policy(on_metric)
    assert 'Cannot find metric(s) that match type = "logging.googleapis.com/user/backend_503s"' in err.value.message

    assert twin.policies() == []


NEW_METRIC = "logging.googleapis.com/user/backend_503s"
NOT_YET = (f'Cannot find metric(s) that match type = "{NEW_METRIC}". If a metric was created recently, it could '
           "take up to 10 minutes to become available. Please try again soon.")
# Google's 10 minutes (the healthy scenario's metric_propagation_seconds, 600) in one real second.
FAST = 600


def _until_propagated(twin: Twin, name: str) -> None:
    """Wait (real time) until the metric's createTime is 600 twin seconds old at clock ×FAST."""
    created = datetime.fromisoformat(twin.metrics.metric_get(PROJECT, name)["createTime"].replace("Z", "+00:00"))
    time.sleep(max(0.0, created.timestamp() + 600 / FAST + 0.2 - time.time()))


def test_a_new_user_metric_is_not_usable_at_once_and_its_update_does_not_restart_the_wait(twin: Twin) -> None:
    twin.reset("healthy", clock_scale=FAST)
    on_metric = policy(conditions=[threshold(f'{CLOUD_RUN} AND metric.type="{NEW_METRIC}"')])
    twin.metrics.metric_create(PROJECT, "backend_503s", f"{CLOUD_RUN} AND httpRequest.status=503", "")
    with pytest.raises(gexc.NotFound) as err:
        twin.create_policy(on_metric)
    # Google's words and status, as the real client raises them (hashicorp/terraform-provider-google#11102).
    assert err.value.message == NOT_YET and err.value.grpc_status_code == grpc.StatusCode.NOT_FOUND
    assert twin.policies() == []

    _until_propagated(twin, "backend_503s")
    # A PUT of the existing metric keeps its createTime, so it does not start the delay again.
    twin.metrics.metric_update(PROJECT, "backend_503s", f"{CLOUD_RUN} AND httpRequest.status>=500", "5xx")
    assert twin.create_policy(on_metric).name


def test_a_new_user_metric_in_updated_conditions_is_refused_other_fields_are_not(twin: Twin) -> None:
    twin.reset("healthy", clock_scale=FAST)
    created = twin.create_policy(policy())
    twin.metrics.metric_create(PROJECT, "backend_503s", f"{CLOUD_RUN} AND httpRequest.status=503", "")
    conditions = monitoring_v3.AlertPolicy(name=created.name, conditions=[
        threshold(f'{CLOUD_RUN} AND metric.type="{NEW_METRIC}"')])
    with pytest.raises(gexc.NotFound) as err:
        twin.alerts.update_alert_policy(alert_policy=conditions, timeout=TIMEOUT,
                                        update_mask=FieldMask(paths=["conditions"]))
    assert err.value.message == NOT_YET
    renamed = twin.alerts.update_alert_policy(
        alert_policy=monitoring_v3.AlertPolicy(name=created.name, display_name="Renamed"), timeout=TIMEOUT,
        update_mask=FieldMask(paths=["display_name"]))
    assert renamed.display_name == "Renamed"

    _until_propagated(twin, "backend_503s")
    updated = twin.alerts.update_alert_policy(alert_policy=conditions, timeout=TIMEOUT,
                                              update_mask=FieldMask(paths=["conditions"]))
    assert NEW_METRIC in updated.conditions[0].condition_threshold.filter


def test_a_hand_made_metric_of_the_scenario_is_usable_at_once(twin: Twin) -> None:
    # monitoring-quota's http_503_errors was made a month before the reset; the delay is Google's 600 s.
    twin.reset("monitoring-quota")
    on_it = policy(conditions=[threshold(f'{CLOUD_RUN} AND metric.type="logging.googleapis.com/user/{HAND_MADE}"')])
    assert twin.create_policy(on_it).name


def test_policy_on_a_user_metric_in_the_denominator_needs_it_too(twin: Twin) -> None:
    ratio = threshold(REQUEST_COUNT, denominator_filter='metric.type="logging.googleapis.com/user/all_requests"',
                      denominator_aggregations=[{"alignment_period": {"seconds": 60}, "per_series_aligner": "ALIGN_RATE"}])
    with pytest.raises(gexc.NotFound):
        twin.create_policy(policy(conditions=[ratio]))


def test_update_mask_updates_only_the_masked_field(twin: Twin) -> None:
    created = twin.create_policy(policy())
    change = monitoring_v3.AlertPolicy(name=created.name, enabled=False, display_name="Renamed")
    updated = twin.alerts.update_alert_policy(alert_policy=change, update_mask=FieldMask(paths=["enabled"]),
                                              timeout=TIMEOUT)
    assert updated.enabled is False  # type: ignore[comparison-overlap]  # proto-plus reads a BoolValue field as a bool
    assert updated.display_name == created.display_name  # not in the mask: kept
    assert list(updated.conditions) == list(created.conditions)
    assert updated.documentation == created.documentation
    assert updated.creation_record == created.creation_record
    assert updated.mutation_record.mutate_time >= created.mutation_record.mutate_time
    assert twin.alerts.get_alert_policy(name=created.name, timeout=TIMEOUT) == updated


def test_empty_update_mask_replaces_the_whole_policy(twin: Twin) -> None:
    created = twin.create_policy(policy())
    kept = monitoring_v3.AlertPolicy.Condition(created.conditions[0])  # supplied with its name: keeps it
    fresh = monitoring_v3.AlertPolicy.Condition(threshold(REQUEST_COUNT, threshold_value=10))  # no name: a new one
    replacement = monitoring_v3.AlertPolicy(name=created.name, display_name="Replaced", combiner="OR",
                                            conditions=[kept, fresh])
    updated = twin.alerts.update_alert_policy(alert_policy=replacement, timeout=TIMEOUT)
    assert updated.display_name == "Replaced"
    assert not updated.documentation and list(updated.notification_channels) == []  # not supplied: gone
    assert updated.conditions[0].name == created.conditions[0].name
    assert updated.conditions[1].name.startswith(f"{created.name}/conditions/")
    assert updated.conditions[1].name != created.conditions[0].name
    assert updated.creation_record == created.creation_record and updated.enabled is True  # type: ignore[comparison-overlap]  # proto-plus reads a BoolValue field as a bool


def test_replaced_conditions_get_new_names(twin: Twin) -> None:
    created = twin.create_policy(policy())
    change = monitoring_v3.AlertPolicy(name=created.name, conditions=[threshold(REQUEST_COUNT, threshold_value=10)])
    updated = twin.alerts.update_alert_policy(alert_policy=change, update_mask=FieldMask(paths=["conditions"]),
                                              timeout=TIMEOUT)
    assert updated.conditions[0].condition_threshold.threshold_value == 10
    assert updated.conditions[0].name != created.conditions[0].name


@pytest.mark.parametrize("paths, error", [(["bogus_field"], gexc.InvalidArgument),
                                          (["creation_record"], gexc.InvalidArgument),
                                          (["documentation.content"], gexc.MethodNotImplemented)],
                         ids=["unknown", "read-only", "nested"])
def test_update_mask_paths_are_checked(twin: Twin, paths: list[str], error: type[Exception]) -> None:
    created = twin.create_policy(policy())
    with pytest.raises(error):
        twin.alerts.update_alert_policy(alert_policy=monitoring_v3.AlertPolicy(name=created.name, enabled=False),
                                        update_mask=FieldMask(paths=paths), timeout=TIMEOUT)
    assert twin.alerts.get_alert_policy(name=created.name, timeout=TIMEOUT) == created


def test_update_is_validated_and_needs_an_existing_policy(twin: Twin) -> None:
    created = twin.create_policy(policy())
    with pytest.raises(gexc.InvalidArgument):  # the result would have no display name
        twin.alerts.update_alert_policy(alert_policy=monitoring_v3.AlertPolicy(name=created.name),
                                        update_mask=FieldMask(paths=["display_name"]), timeout=TIMEOUT)
    with pytest.raises(gexc.NotFound):  # the result would notify a channel that does not exist
        twin.alerts.update_alert_policy(
            alert_policy=monitoring_v3.AlertPolicy(name=created.name,
                                                   notification_channels=[f"{PARENT}/notificationChannels/NOPE"]),
            update_mask=FieldMask(paths=["notification_channels"]), timeout=TIMEOUT)
    with pytest.raises(gexc.InvalidArgument):
        twin.alerts.update_alert_policy(alert_policy=monitoring_v3.AlertPolicy(display_name="x"), timeout=TIMEOUT)
    with pytest.raises(gexc.NotFound):
        twin.alerts.update_alert_policy(alert_policy=monitoring_v3.AlertPolicy(policy(name=f"{PARENT}/alertPolicies/1")),
                                        timeout=TIMEOUT)
    assert twin.alerts.get_alert_policy(name=created.name, timeout=TIMEOUT) == created


def test_list_refuses_what_it_cannot_compute_and_other_projects(twin: Twin) -> None:
    with pytest.raises(gexc.MethodNotImplemented):
        list(twin.alerts.list_alert_policies(
            request=monitoring_v3.ListAlertPoliciesRequest(name=PARENT, filter='display_name="x"'), timeout=TIMEOUT))
    with pytest.raises(gexc.MethodNotImplemented):
        list(twin.alerts.list_alert_policies(
            request=monitoring_v3.ListAlertPoliciesRequest(name=PARENT, order_by="display_name"), timeout=TIMEOUT))
    with pytest.raises(gexc.PermissionDenied):
        list(twin.alerts.list_alert_policies(name="projects/someone-else", timeout=TIMEOUT))


# ---- 5. faults, accounting, status ----------------------------------------------------------------------------


def test_quota_scenario_fails_dashboard_creation(twin: Twin) -> None:
    twin.reset("monitoring-quota")
    assert [m.name for m in twin.logging.list_metrics()] == [HAND_MADE]
    assert twin.create_dashboard(twin.dashboard(), validate_only=True).display_name  # a dry run passes
    writes = twin.writes()
    with pytest.raises(gexc.TooManyRequests) as err:
        twin.create_dashboard(twin.dashboard())
    assert rest_status(err.value) == "RESOURCE_EXHAUSTED"
    assert "Quota exceeded for quota metric 'Dashboards'" in err.value.message
    assert list(twin.dashboards.list_dashboards(parent=PARENT, timeout=TIMEOUT)) == []
    st = twin.status()
    assert st["requests"]["writes"] == writes + 1  # counted before it failed, as any write
    assert [f["method"] for f in st["faults"]] == ["monitoring.projects.dashboards.create"]
    # Only that method: the rest of the setup (and its rollback) works.
    created = twin.create_policy(policy())
    twin.alerts.delete_alert_policy(name=created.name, timeout=TIMEOUT)


def test_a_fault_on_a_grpc_method_fails_it_over_grpc(twin: Twin) -> None:
    path = twin.scenario_dir / "alert-quota.toml"
    path.write_text((SCENARIOS / "healthy.toml").read_text() + '''
[[faults]]
method = "monitoring.projects.alertPolicies.create"
code = 429
status = "RESOURCE_EXHAUSTED"
message = "Quota exceeded for quota metric 'Alert policies'."
''')
    twin.reset(str(path))
    with pytest.raises(gexc.ResourceExhausted) as err:
        twin.create_policy(policy())
    assert "Alert policies" in err.value.message
    assert twin.policies() == []
    assert twin.status()["requests"]["by_method"]["monitoring.projects.alertPolicies.create"] == 1


def test_writes_are_counted_and_a_read_only_pass_writes_nothing(twin: Twin) -> None:
    twin.metrics.metric_create(PROJECT, "backend_503s", f"{CLOUD_RUN} AND httpRequest.status=503", "")
    twin.metrics.metric_update(PROJECT, "backend_503s", f"{CLOUD_RUN} AND httpRequest.status=503", "503s")
    board = twin.create_dashboard(twin.dashboard())
    twin.update_dashboard(board)
    created = twin.create_policy(policy())
    twin.alerts.update_alert_policy(alert_policy=monitoring_v3.AlertPolicy(name=created.name, enabled=False),
                                    update_mask=FieldMask(paths=["enabled"]), timeout=TIMEOUT)
    req = twin.status()["requests"]
    assert req["writes"] == 6
    for method in ("logging.projects.metrics.create", "logging.projects.metrics.update",
                   "monitoring.projects.dashboards.create", "monitoring.projects.dashboards.patch",
                   "monitoring.projects.alertPolicies.create", "monitoring.projects.alertPolicies.patch"):
        assert req["by_method"][method] == 1, method

    # A second, idempotent pass only reads what is there.
    twin.metrics.metric_get(PROJECT, "backend_503s")
    list(twin.logging.list_metrics())
    list(twin.dashboards.list_dashboards(parent=PARENT, timeout=TIMEOUT))
    twin.policies()
    list(twin.channels.list_notification_channels(name=PARENT, timeout=TIMEOUT))
    assert twin.writes() == 6


def test_status_shows_the_monitoring_resources(twin: Twin) -> None:
    twin.metrics.metric_create(PROJECT, "backend_503s", f"{CLOUD_RUN} AND httpRequest.status=503", "")
    twin.create_dashboard(twin.dashboard("Netra staging golden path"))
    twin.create_policy(policy(display_name="Backend 503 rate", enabled=False))

    summary = twin.status()["monitoring"]["summary"]
    assert summary == {"logMetrics": ["backend_503s"],
                       "alertPolicies": [{"displayName": "Backend 503 rate", "enabled": False}],
                       "dashboards": ["Netra staging golden path"],
                       "notificationChannels": [CHANNEL]}
    run = subprocess.run([sys.executable, "-m", "twin", "--home", str(twin.proc.home), "status"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "metrics  backend_503s" in lines
    assert "alerts   Backend 503 rate (disabled)" in lines
    assert "boards   Netra staging golden path" in lines
    assert "channels EMAIL_ALERT" in lines
