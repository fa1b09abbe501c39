"""Phase 4's monitoring definitions: the shipped files filled for the shipped target, and every way a file is refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from goldenpath.gcp.logging import EGRESS_ERROR_PATTERN
from goldenpath import config
from goldenpath.config import Target
from goldenpath.definitions import POLICY_LABEL, Definitions, load, placeholders, user_metrics
from goldenpath.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROJECT, REGION = "netra-staging", "us-central1"
DB, CONNECTOR = "netra-staging-db", "staging-connector"
METRICS = ["http_503_errors", "vpc_connector_errors", "websocket_failures", "websocket_upgrades"]
POLICIES = ["database-connections", "http-503-error-rate", "response-latency-p95", "vpc-connector-capacity",
            "websocket-failure-rate"]
DASHBOARD = f"projects/{PROJECT}/dashboards/goldenpath-infrastructure-capacity"


# ---- builders ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped() -> Definitions:
    """The shipped monitoring/ as the shipped `sim` target fills it."""
    return load(config.load(ROOT / "targets.toml", "sim"))


def target(folder: Path, **extra: Any) -> Target:
    """A target whose targets file would sit in ``folder`` (definitions in folder/monitoring)."""
    data: dict[str, Any] = {
        "project": PROJECT, "region": REGION, "credentials": "adc",
        "services": [{"name": "netra-backend-staging"}],
        "database": {"instance": DB, "max_connections": 200},
        "connector": {"name": CONNECTOR, "min_instances": 4, "max_instances": 10},
        "monitoring": {"definitions": "monitoring", "notification_channels": ["EMAIL_ALERT"]},
        "name": "unit", "source": str(folder / "targets.toml"),
        **extra,
    }
    return Target.model_validate(data)


def copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped definitions; returns its folder."""
    folder = tmp_path / "monitoring"
    shutil.copytree(MONITORING, folder)
    return folder


def failure(t: Target) -> str:
    with pytest.raises(ConfigError) as exc:
        load(t)
    return str(exc.value)


def threshold(policy: dict[str, Any]) -> dict[str, Any]:
    [cond] = policy["conditions"]
    return cond["conditionThreshold"]


# ---- the shipped definitions ---------------------------------------------------------------

def test_the_four_log_metrics(shipped: Definitions) -> None:
    assert sorted(shipped.log_metrics) == METRICS
    for name, metric in shipped.log_metrics.items():
        assert metric["name"] == name
        assert metric["filter"] and metric["description"]
    assert 'httpRequest.status=503' in shipped.log_metrics["http_503_errors"]["filter"]
    # Not the runbook's resource.type="vpc_access_connector" (Google writes no such log): the services'
    # own egress errors, with the very pattern the connector criterion reads them by.
    connector = shipped.log_metrics["vpc_connector_errors"]["filter"]
    assert "vpc_access_connector" not in connector
    assert f'textPayload=~"{EGRESS_ERROR_PATTERN}"' in connector
    assert 'httpRequest.status!=101' in shipped.log_metrics["websocket_failures"]["filter"]
    assert 'httpRequest.requestUrl:"/ws"' in shipped.log_metrics["websocket_upgrades"]["filter"]


def test_five_policies_one_per_runbook_threshold(shipped: Definitions) -> None:
    assert sorted(shipped.alert_policies) == POLICIES


@pytest.mark.parametrize("pid", POLICIES)
def test_every_policy_is_enabled_labelled_and_compares_greater_than(shipped: Definitions, pid: str) -> None:
    policy = shipped.alert_policies[pid]
    assert policy["enabled"] is True
    assert policy["combiner"] == "OR"
    assert policy["userLabels"][POLICY_LABEL] == pid
    assert policy["userLabels"]["managed-by"] == "goldenpath"
    assert threshold(policy)["comparison"] == "COMPARISON_GT"
    assert threshold(policy)["duration"] == "300s"
    assert "name" not in policy and "notificationChannels" not in policy
    assert shipped.files[f"policy {pid}"] == str(MONITORING / "alert-policies" / f"{pid}.yaml")


def test_503_rate_is_a_ratio_above_five_percent(shipped: Definitions) -> None:
    t = threshold(shipped.alert_policies["http-503-error-rate"])
    assert t["thresholdValue"] == 0.05
    assert 'metric.labels.response_code="503"' in t["filter"]
    assert "run.googleapis.com/request_count" in t["denominatorFilter"]
    assert "response_code" not in t["denominatorFilter"]
    assert t["denominatorAggregations"]


def test_database_connections_alert_at_three_quarters_of_the_targets_max_connections(shipped: Definitions) -> None:
    policy = shipped.alert_policies["database-connections"]
    t = threshold(policy)
    assert t["thresholdValue"] == 150  # 0.75 × max_connections 200 (targets.toml, sim)
    assert "cloudsql.googleapis.com/database/postgresql/num_backends" in t["filter"]
    assert f'database_id="{PROJECT}:{DB}"' in t["filter"]
    assert f"({200})" in policy["documentation"]["content"] and DB in policy["documentation"]["content"]


def test_the_threshold_follows_max_connections() -> None:
    defs = load(target(ROOT, database={"instance": DB, "max_connections": 1000}))
    assert threshold(defs.alert_policies["database-connections"])["thresholdValue"] == 750


def test_vpc_connector_capacity_above_eighty_percent(shipped: Definitions) -> None:
    t = threshold(shipped.alert_policies["vpc-connector-capacity"])
    assert t["thresholdValue"] == 0.8
    assert f'connector_name="{CONNECTOR}"' in t["filter"]


def test_websocket_failure_rate_above_ten_percent_with_a_denominator(shipped: Definitions) -> None:
    t = threshold(shipped.alert_policies["websocket-failure-rate"])
    assert t["thresholdValue"] == 0.1
    assert "logging.googleapis.com/user/websocket_failures" in t["filter"]
    assert "logging.googleapis.com/user/websocket_upgrades" in t["denominatorFilter"]


def test_p95_latency_above_ten_seconds_in_milliseconds(shipped: Definitions) -> None:
    t = threshold(shipped.alert_policies["response-latency-p95"])
    assert t["thresholdValue"] == 10000
    assert t["aggregations"][0]["perSeriesAligner"] == "ALIGN_PERCENTILE_95"
    assert "run.googleapis.com/request_latencies" in t["filter"]


def test_the_dashboard_is_named_under_the_project(shipped: Definitions) -> None:
    assert list(shipped.dashboards) == [DASHBOARD]
    dashboard = shipped.dashboards[DASHBOARD]
    assert dashboard["name"] == DASHBOARD
    assert dashboard["displayName"] == "Infrastructure Capacity (Issue #1278)"
    assert len(dashboard["mosaicLayout"]["tiles"]) == 6
    assert shipped.files[f"dashboard {DASHBOARD}"] == str(MONITORING / "dashboards" / "infrastructure-capacity.json")


def test_no_placeholder_is_left_unfilled(shipped: Definitions) -> None:
    text = repr((shipped.log_metrics, shipped.alert_policies, shipped.dashboards))
    assert "${" not in text and "$" not in text
    assert f"{PROJECT}:{DB}" in text and CONNECTOR in text


def test_the_websocket_policy_reads_both_websocket_metrics(shipped: Definitions) -> None:
    assert user_metrics(shipped.alert_policies["websocket-failure-rate"]) == {"websocket_failures",
                                                                                "websocket_upgrades"}
    assert user_metrics(shipped.alert_policies["websocket-failure-rate"]) <= set(shipped.log_metrics)
    assert user_metrics(shipped.alert_policies["http-503-error-rate"]) == set()


def test_user_metrics_reads_a_single_quoted_metric_type() -> None:
    policy = {"conditions": [{"conditionThreshold": {
        "filter": "metric.type='logging.googleapis.com/user/websocket_failures' AND resource.type='cloud_run_revision'"}}]}
    assert user_metrics(policy) == {"websocket_failures"}


def test_placeholders_name_what_the_target_provides() -> None:
    values = placeholders(target(ROOT))
    assert values == {"project": PROJECT, "region": REGION, "db_instance": DB, "db_max_connections": "200",
                      "db_connections_alert": "150", "connector": CONNECTOR}
    assert set(placeholders(target(ROOT, database=None, connector=None))) == {"project", "region"}


# ---- refused definitions -------------------------------------------------------------------

def test_an_unknown_field_in_a_policy(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "http-503-error-rate.yaml"
    path.write_text(path.read_text().replace("combiner: OR", "combiner: OR\nseverityy: ERROR"))
    message = failure(target(tmp_path))
    assert str(path) in message
    assert "google.monitoring.v3.AlertPolicy" in message and "severityy" in message
    assert "Use the API's own field names" in message


def test_an_unknown_field_in_a_log_metric(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    (folder / "log-metrics" / "typo.json").write_text('{"name": "typo", "filter": "a=1", "filtr": "b=2"}')
    message = failure(target(tmp_path))
    assert str(folder / "log-metrics" / "typo.json") in message and "filtr" in message


def test_a_placeholder_the_target_cannot_fill(tmp_path: Path) -> None:
    copy(tmp_path)
    t = target(tmp_path, database=None)
    message = failure(t)
    assert str(tmp_path / "monitoring" / "alert-policies" / "database-connections.yaml") in message
    assert "${db_instance}" in message and "'unit' does not provide" in message
    assert "it can fill: connector, project, region" in message
    assert f"Add the matching entry to {t.source}" in message


def test_a_database_without_max_connections_cannot_fill_the_threshold(tmp_path: Path) -> None:
    copy(tmp_path)
    message = failure(target(tmp_path, database={"instance": DB}))
    assert "database-connections.yaml" in message and "${db_max_connections}" in message


def test_a_malformed_placeholder(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "log-metrics" / "http_503_errors.json"
    path.write_text(path.read_text().replace("Count of", "Count (in $) of"))
    message = failure(target(tmp_path))
    assert str(path) in message and "malformed placeholder" in message and "$$" in message


def test_a_policy_whose_label_is_not_its_file_stem(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    old = folder / "alert-policies" / "http-503-error-rate.yaml"
    new = folder / "alert-policies" / "http-503.yaml"
    old.rename(new)
    message = failure(target(tmp_path))
    assert str(new) in message
    assert f"must carry userLabels.{POLICY_LABEL}: http-503 (its file name)" in message


def test_a_policy_without_labels(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "http-503-error-rate.yaml"
    text = path.read_text()
    path.write_text(text.replace("userLabels:\n  managed-by: goldenpath\n  goldenpath-policy: http-503-error-rate\n", ""))
    message = failure(target(tmp_path))
    assert str(path) in message and f"userLabels.{POLICY_LABEL}: http-503-error-rate" in message


def test_a_policy_with_empty_labels_is_a_config_error(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "http-503-error-rate.yaml"
    text = path.read_text()
    path.write_text(text.replace("userLabels:\n  managed-by: goldenpath\n  goldenpath-policy: http-503-error-rate\n",
                                 "userLabels:\n"))
    message = failure(target(tmp_path))
    assert str(path) in message


def test_a_policy_that_sets_notification_channels(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "http-503-error-rate.yaml"
    path.write_text(path.read_text() + "notificationChannels:\n  - projects/${project}/notificationChannels/EMAIL_ALERT\n")
    message = failure(target(tmp_path))
    assert str(path) in message
    assert "must not set name or notificationChannels" in message
    assert "monitoring.notification_channels" in message


def test_a_policy_that_sets_its_name(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "response-latency-p95.yaml"
    path.write_text(path.read_text() + "name: projects/${project}/alertPolicies/123\n")
    message = failure(target(tmp_path))
    assert str(path) in message and "must not set name" in message


def test_malformed_yaml(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "vpc-connector-capacity.yaml"
    path.write_text(path.read_text().replace("combiner: OR", "combiner: [OR"))
    message = failure(target(tmp_path))
    assert str(path) in message and "cannot be read" in message and "Fix its syntax" in message


def test_malformed_json(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "log-metrics" / "websocket_upgrades.json"
    path.write_text(path.read_text().rstrip().rstrip("}"))
    message = failure(target(tmp_path))
    assert str(path) in message and "cannot be read" in message


def test_a_file_that_is_not_one_resource(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "alert-policies" / "vpc-connector-capacity.yaml"
    path.write_text("- displayName: a\n- displayName: b\n")
    message = failure(target(tmp_path))
    assert str(path) in message and "must hold one resource" in message


def test_a_log_metric_without_a_filter(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "log-metrics" / "bare.json"
    path.write_text('{"name": "bare"}')
    message = failure(target(tmp_path))
    assert str(path) in message and "needs a name and a filter" in message


def test_a_dashboard_named_outside_the_project(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    path = folder / "dashboards" / "infrastructure-capacity.json"
    path.write_text(path.read_text().replace("projects/${project}/dashboards/", "projects/other/dashboards/"))
    message = failure(target(tmp_path))
    assert str(path) in message and "projects/${project}/dashboards/ID" in message


def test_a_target_without_monitoring() -> None:
    message = failure(target(ROOT, monitoring=None))
    assert "'unit' does not configure `monitoring`" in message
    assert "targets.toml" in message
    assert 'monitoring = { definitions = "monitoring"' in message and "deselect phase4" in message


def test_a_missing_definitions_folder(tmp_path: Path) -> None:
    message = failure(target(tmp_path))
    assert str(tmp_path / "monitoring") in message and "does not exist" in message
    assert "monitoring.definitions of target 'unit'" in message


def test_an_empty_definitions_folder(tmp_path: Path) -> None:
    (tmp_path / "monitoring").mkdir()
    message = failure(target(tmp_path))
    assert str(tmp_path / "monitoring") in message and "holds no definitions" in message


def test_a_copy_loads_like_the_original(tmp_path: Path, shipped: Definitions) -> None:
    copy(tmp_path)
    defs = load(target(tmp_path))
    assert (defs.log_metrics, defs.alert_policies, defs.dashboards) == \
        (shipped.log_metrics, shipped.alert_policies, shipped.dashboards)
    assert defs.folder == tmp_path / "monitoring"
