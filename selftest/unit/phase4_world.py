"""Phase 4 observations built by hand for the unit tests: the definitions as the APIs hand them back."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.cloud import monitoring_dashboard_v1, monitoring_v3
from google.cloud.logging_v2.types import LogMetric
from google.protobuf import json_format

from goldenpath.config import Target
from goldenpath.definitions import Definitions
from goldenpath.observations import Phase4Observation, RevisionState, ServiceState, TrafficShare

ROOT = Path(__file__).resolve().parents[2]
PROJECT, REGION = "netra-staging", "us-central1"
BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
BACKEND_REV, AUTH_REV = "netra-backend-staging-00750-69k", "auth-service-staging-00211-abc"
BASE = f"projects/{PROJECT}/locations/{REGION}/services"
CHANNELS = f"projects/{PROJECT}/notificationChannels"
EMAIL = f"{CHANNELS}/EMAIL_ALERT"
DASHBOARD = f"projects/{PROJECT}/dashboards/goldenpath-infrastructure-capacity"
WHEN = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
METRICS = ["http_503_errors", "vpc_connector_errors", "websocket_failures", "websocket_upgrades"]
POLICY_NAMES = ["Cloud SQL Connection Utilization Alert", "HTTP 503 Error Rate Alert", "Response Latency P95 Alert",
                "VPC Connector Capacity Alert", "WebSocket Failure Rate Alert"]
WIDGETS = ["HTTP 503 error rate", "Response latency p95", "Cloud Run instances by revision",
           "Cloud SQL connections (num_backends)", "VPC connector CPU p95", "WebSocket failure rate"]
SCALED = {"scaling": {"minInstanceCount": 2, "maxInstanceCount": 100}, "maxInstanceRequestConcurrency": 80}


# ---- builders ------------------------------------------------------------------------------

def target(channels: list[str] | None = None, **extra: Any) -> Target:
    """The runbook's target: definitions from the repository's monitoring/, autoscaling on the backend."""
    return Target.model_validate({
        "project": PROJECT, "region": REGION, "credentials": "adc",
        "services": [{"name": BACKEND, "autoscaling": {"min_instances": 2, "max_instances": 100, "concurrency": 80}},
                     {"name": AUTH}],
        "database": {"instance": "netra-staging-db", "max_connections": 200},
        "connector": {"name": "staging-connector", "min_instances": 4, "max_instances": 10},
        "monitoring": {"definitions": "monitoring",
                       "notification_channels": ["EMAIL_ALERT"] if channels is None else channels},
        "name": "unit", "source": str(ROOT / "targets.toml"),
        **extra,
    })


def api(data: dict[str, Any], message_type: Any) -> dict[str, Any]:
    """``data`` as the API hands it back: through its message type, so defaults are left out,
    numbers become doubles and durations are normalised."""
    return json_format.MessageToDict(json_format.ParseDict(data, message_type.pb()()))


def metric(definition: dict[str, Any]) -> dict[str, Any]:
    return {**api(definition, LogMetric), "metricDescriptor": {"metricKind": "DELTA", "valueType": "INT64"},
            "createTime": "2025-01-01T12:00:00Z", "updateTime": "2025-01-01T12:00:00Z"}


def policy(definition: dict[str, Any], number: int, channels: list[str] | None = None) -> dict[str, Any]:
    name = f"projects/{PROJECT}/alertPolicies/{1000 + number}"
    out = {**api(definition, monitoring_v3.AlertPolicy), "name": name,
           "creationRecord": {"mutateTime": "2025-01-01T12:00:00Z", "mutatedBy": "gate@netra-staging"},
           "mutationRecord": {"mutateTime": "2025-01-01T12:00:00Z", "mutatedBy": "gate@netra-staging"},
           "notificationChannels": [EMAIL] if channels is None else channels}
    for i, cond in enumerate(out["conditions"]):
        cond["name"] = f"{name}/conditions/{2000 + i}"
    if not out["notificationChannels"]:
        del out["notificationChannels"]
    return out


def dashboard(definition: dict[str, Any]) -> dict[str, Any]:
    return {**api(definition, monitoring_dashboard_v1.Dashboard), "etag": "etag-dash-1"}


def channel(cid: str = "EMAIL_ALERT") -> dict[str, Any]:
    return {"name": f"{CHANNELS}/{cid}", "type": "email", "displayName": "On-call",
            "labels": {"email_address": "oncall@netrasystems.ai"}, "enabled": True}


def service(name: str, template: dict[str, Any], *split: tuple[str, int], reconciling: bool = False) -> ServiceState:
    shares = tuple(TrafficShare(r, p) for r, p in split)
    full = f"{BASE}/{name}"
    return ServiceState(
        name=name, full_name=full, serving=shares, requested=shares, latest_ready=shares[-1].revision,
        latest_created=shares[-1].revision, reconciling=reconciling, ready=True, ready_message="READY", etag=f"etag-{name}",
        generation=5, observed_generation=5, update_time=WHEN,
        raw={"name": full, "etag": f"etag-{name}", "template": {"containers": [{"image": "x"}], **template}},
    )


def revision(service_name: str, name: str, spec: dict[str, Any]) -> RevisionState:
    full = f"{BASE}/{service_name}/revisions/{name}"
    scaling = spec.get("scaling", {})
    return RevisionState(name=name, full_name=full, create_time=WHEN, min_instances=scaling.get("minInstanceCount", 0),
                         ready=True, raw={"name": full, "containers": [{"image": "x"}], **spec})


def services(backend: dict[str, Any] | None = None) -> dict[str, Any]:
    """Services and serving revisions: the backend scaled as ``backend`` (default: as the target says)."""
    spec = SCALED if backend is None else backend
    auth_spec = {"scaling": {"maxInstanceCount": 10}, "maxInstanceRequestConcurrency": 1000}
    return {"services": {BACKEND: service(BACKEND, spec, (BACKEND_REV, 100)),
                         AUTH: service(AUTH, auth_spec, (AUTH_REV, 100))},
            "serving": {BACKEND: revision(BACKEND, BACKEND_REV, spec), AUTH: revision(AUTH, AUTH_REV, auth_spec)}}


def as_created(defs: Definitions, **changes: Any) -> Phase4Observation:
    """The project as the gate leaves it: every definition created, the channel attached, the backend scaled."""
    data: dict[str, Any] = dict(
        log_metrics={name: metric(d) for name, d in defs.log_metrics.items()},
        policies=tuple(policy(d, i) for i, d in enumerate(defs.alert_policies.values())),
        channels=(channel(),),
        dashboards={name: dashboard(d) for name, d in defs.dashboards.items()},
        **services(),
    )
    data.update(changes)
    return Phase4Observation(**data)


def nothing(defs: Definitions, backend: dict[str, Any] | None = None, **changes: Any) -> Phase4Observation:
    """The incident: no metric, no policy, no dashboard, the backend unscaled (``backend``: its template's
    scaling, default none set); the channel exists."""
    data: dict[str, Any] = dict(log_metrics={n: None for n in defs.log_metrics}, policies=(), channels=(channel(),),
                                dashboards={n: None for n in defs.dashboards}, **services(backend or {}))
    data.update(changes)
    return Phase4Observation(**data)
