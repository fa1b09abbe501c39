"""Phase 4's monitoring definitions: versioned files in the APIs' own shapes, filled per target.

``monitoring/`` holds log-based metrics (``log-metrics/*.json``, Logging v2 LogMetric), alert
policies (``alert-policies/*.yaml``, Monitoring v3 AlertPolicy, the shape ``gcloud monitoring
policies create --policy-from-file`` reads) and dashboards (``dashboards/*.json``, Monitoring
dashboards v1). ``${project}`` and the other placeholders are filled from the target. Every file is
parsed with the client library's own message type, unknown fields refused, so a typo fails here,
before anything is read from or written to Google.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from goldenpath.config import Target
from goldenpath.errors import ConfigError

POLICY_LABEL = "goldenpath-policy"   # userLabels key naming the definition a policy came from
MANAGED_LABEL = "managed-by"
METRIC_FIELDS = {"name", "filter", "description"}


@dataclass(frozen=True)
class Definitions:
    folder: Path
    log_metrics: dict[str, dict[str, Any]]      # metric name → LogMetric JSON
    alert_policies: dict[str, dict[str, Any]]   # policy id (file stem) → AlertPolicy JSON
    dashboards: dict[str, dict[str, Any]]       # dashboard name (projects/P/dashboards/ID) → Dashboard JSON
    files: dict[str, str] = field(default_factory=dict)  # what each came from, for messages


def placeholders(target: Target) -> dict[str, str]:
    """What a definition may refer to; a missing one is named when a file uses it."""
    values = {"project": target.project, "region": target.region}
    if target.database is not None:
        values["db_instance"] = target.database.instance
        if target.database.max_connections is not None:
            limit = target.database.max_connections
            values["db_max_connections"] = str(limit)
            # "Alert at >75 % utilization" of the max_connections Phase 2 establishes.
            alert = target.thresholds.db_utilization * limit
            values["db_connections_alert"] = str(int(alert)) if alert == int(alert) else str(alert)
    if target.connector is not None:
        values["connector"] = target.connector.name
    return values


def _fill(path: Path, values: dict[str, str], target: Target) -> str:
    try:
        return Template(path.read_text()).substitute(values)
    except KeyError as exc:
        raise ConfigError(
            f"The monitoring definition {path} uses ${{{exc.args[0]}}}, which target {target.name!r} does not "
            f"provide (it can fill: {', '.join(sorted(values))}). Add the matching entry to {target.source} "
            "(database, connector) or remove the placeholder from the definition."
        ) from None
    except ValueError as exc:
        raise ConfigError(f"The monitoring definition {path} has a malformed placeholder ({exc}); write "
                          "${name}, or $$ for a literal dollar sign.") from None


def _parse(path: Path, text: str, message_type: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(f"The monitoring definition {path} cannot be read ({exc}). Fix its syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The monitoring definition {path} must hold one resource (a mapping).")
    try:
        json_format.ParseDict(data, message_type.pb()(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise ConfigError(
            f"The monitoring definition {path} is not a valid {message_type.meta.full_name}: {exc}. Use the "
            "API's own field names (as in its REST reference)."
        ) from None
    return data


def load(target: Target) -> Definitions:
    from google.cloud import monitoring_dashboard_v1, monitoring_v3
    from google.cloud.logging_v2.types import LogMetric

    if target.monitoring is None:
        raise ConfigError(
            f"Target {target.name!r} does not configure `monitoring` in {target.source}, so Phase 4 cannot be "
            "checked. Add monitoring = { definitions = \"monitoring\", notification_channels = [\"…\"] } "
            "(see README, Targets) or deselect phase4."
        )
    folder = target.path(target.monitoring.definitions)
    if not folder.is_dir():
        raise ConfigError(f"The monitoring definitions folder {folder} (monitoring.definitions of target "
                          f"{target.name!r}) does not exist. Point it at the repository's monitoring/ folder.")
    values = placeholders(target)
    files: dict[str, str] = {}

    def each(sub: str, patterns: tuple[str, ...], message_type: Any) -> list[tuple[Path, dict[str, Any]]]:
        paths = sorted(p for pat in patterns for p in (folder / sub).glob(pat))
        return [(p, _parse(p, _fill(p, values, target), message_type)) for p in paths]

    metrics: dict[str, dict[str, Any]] = {}
    for path, data in each("log-metrics", ("*.json",), LogMetric):
        if not data.get("name") or not data.get("filter"):
            raise ConfigError(f"The log-based metric {path} needs a name and a filter.")
        extra = sorted(set(data) - METRIC_FIELDS)
        if extra:
            # The Logging client's JSON API writes a metric's name, filter and description only:
            # anything else would be dropped on the way and then never match.
            raise ConfigError(f"The log-based metric {path} sets {', '.join(extra)}; the gate manages counter "
                              f"metrics ({', '.join(sorted(METRIC_FIELDS))}) only. Remove them or manage this "
                              "metric by hand.")
        metrics[data["name"]] = data
        files[f"metric {data['name']}"] = str(path)

    policies: dict[str, dict[str, Any]] = {}
    for path, data in each("alert-policies", ("*.yaml", "*.yml", "*.json"), monitoring_v3.AlertPolicy):
        pid = path.stem
        if (data.get("userLabels") or {}).get(POLICY_LABEL) != pid:
            raise ConfigError(
                f"The alert policy {path} must carry userLabels.{POLICY_LABEL}: {pid} (its file name): that label "
                "is how the gate finds the policy it created, whatever its display name becomes."
            )
        if "name" in data or "notificationChannels" in data:
            raise ConfigError(f"The alert policy {path} must not set name or notificationChannels: the API names "
                              "policies, and the target names its channels (monitoring.notification_channels).")
        policies[pid] = data
        files[f"policy {pid}"] = str(path)

    dashboards: dict[str, dict[str, Any]] = {}
    for path, data in each("dashboards", ("*.json",), monitoring_dashboard_v1.Dashboard):
        name = data.get("name", "")
        if not name.startswith(f"projects/{target.project}/dashboards/"):
            raise ConfigError(f"The dashboard {path} must set name = projects/${{project}}/dashboards/ID, so it is "
                              "found again by name after it is created.")
        dashboards[name] = data
        files[f"dashboard {name}"] = str(path)
    if not (metrics or policies or dashboards):
        raise ConfigError(f"The monitoring definitions folder {folder} holds no definitions (log-metrics/*.json, "
                          "alert-policies/*.yaml, dashboards/*.json).")
    return Definitions(folder=folder, log_metrics=metrics, alert_policies=policies, dashboards=dashboards,
                       files=files)


def user_metrics(policy: dict[str, Any]) -> set[str]:
    """The log-based metrics a policy's filters read (metric.type = logging.googleapis.com/user/NAME)."""
    from goldenpath.semantic import normalize_filter

    out, prefix = set(), "metric.type=logging.googleapis.com/user/"
    for cond in policy.get("conditions", []):
        threshold = cond.get("conditionThreshold", {})
        for key in ("filter", "denominatorFilter"):
            out |= {t.removeprefix(prefix) for t in normalize_filter(threshold.get(key, "")) if t.startswith(prefix)}
    return out
