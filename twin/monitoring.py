"""Phase 4's monitoring APIs as world logic: Logging v2 log-based metrics, Monitoring v1 dashboards,
Monitoring v3 alert policies and notification channels (no HTTP or gRPC here).

:mod:`twin.server` (REST) and :mod:`twin.grpcserver` (gRPC) decode requests and call these
functions. Every resource is kept in its API's REST JSON, as in :mod:`twin.world`, under
``world.state["log_metrics" | "dashboards" | "alert_policies" | "notification_channels"]``, each
record ``{"resource": ...}`` keyed by the last part of the resource name. Notification channels
come from the scenario only (the gate never creates one).

The rules reproduced here are the ones a Phase 4 setup can trip over:

* a log-based metric needs a name of the API's characters and a filter; creating an existing one
  is ALREADY_EXISTS, while ``update`` (PUT) creates or replaces;
* a dashboard needs a display name and exactly one layout, its mosaic tiles must fit the columns,
  and a PATCH carrying a stale ``etag`` is ABORTED (someone else changed it: read it again);
* an alert policy is validated as the API does (1-6 conditions of one type each, threshold filters
  naming a metric and a resource type, aggregations that can be computed, a combiner for several
  conditions); its notification channels and the user log-based metrics its filters name must
  exist, or it is NOT_FOUND (the API's "Cannot find metric(s) that match type = …").
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

from google.cloud import monitoring_dashboard_v1, monitoring_v3
from google.cloud.logging_v2.types import LogMetric

from twin.world import ApiError, World, rfc3339

OPERATOR = "goldenpath@twin"  # who the mutation records name (the real API names the caller)
USER_METRIC_PREFIX = "logging.googleapis.com/user/"


# ---- shared ------------------------------------------------------------------------------------


def _roundtrip(message_type: Any, body: dict[str, Any]) -> dict[str, Any]:
    msg = message_type.from_json(json.dumps(body), ignore_unknown_fields=False)
    return json.loads(message_type.to_json(
        msg, use_integers_for_enums=False, always_print_fields_with_no_presence=False, indent=None))


def _parse(message_type: Any, text: bytes) -> dict[str, Any]:
    """A request body as the API decodes it: unknown fields (and malformed JSON) are INVALID_ARGUMENT.

    Enums may come as numbers (the REST transports send ``$alt=json;enum-encoding=int``); they are
    kept as names, as the twin stores and answers them.
    """
    try:
        raw = json.loads(text or b"{}")
        if not isinstance(raw, dict):
            raise ValueError("the body is not a JSON object")
        return _roundtrip(message_type, raw)
    except Exception as exc:  # the message type rejected it: what the API calls a bad request
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from None


def _check_project(world: World, project: str, what: str) -> None:
    # As for entries:list and timeSeries.list: a project the twin does not hold is one the caller
    # may not read (Google answers 403 for a project it cannot see).
    if project != world.state["project"]:
        raise ApiError(403, "PERMISSION_DENIED",
                       f"The twin holds {what} only for projects/{world.state['project']}; asked for projects/{project}.")


def _parent(world: World, name: str, what: str) -> str:
    """``projects/PROJECT`` (a gRPC request's ``name``) -> PROJECT, checked."""
    project = name.removeprefix("projects/")
    if not name.startswith("projects/") or not project or "/" in project:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid resource name {name!r}; expected projects/PROJECT_ID.")
    _check_project(world, project, what)
    return project


def _child(world: World, name: str, collection: str, what: str) -> str:
    """``projects/PROJECT/COLLECTION/ID`` -> ID, the project checked."""
    m = re.fullmatch(rf"projects/([^/]+)/{collection}/([^/]+)", name)
    if m is None:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"Invalid resource name {name!r}; expected projects/PROJECT_ID/{collection}/ID.")
    _check_project(world, m.group(1), what)
    return m.group(2)


def _records(world: World, key: str) -> dict[str, Any]:
    # A world saved before Phase 4 has none of these keys; it gains them on first use.
    records: dict[str, Any] = world.state.setdefault(key, {})
    return records


def _page(items: list[dict[str, Any]], page_size: int, page_token: str | None, default: int
          ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items``; tokens are the offsets this function hands out, anything else is refused."""
    if page_size < 0:
        raise ApiError(400, "INVALID_ARGUMENT", f"page_size must not be negative, got {page_size}.")
    start = 0
    if page_token:
        if not page_token.isdigit() or not 0 < int(page_token) < len(items):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid page token {page_token!r}.")
        start = int(page_token)
    size = page_size or default
    nxt = str(start + size) if start + size < len(items) else None
    return items[start:start + size], nxt


def _numeric_id() -> str:
    # Alert policy and condition ids are 19-20 digit numbers assigned by the API.
    return str(10**18 + uuid.uuid4().int % (9 * 10**18))


def _invalid(field: str, value: object, reason: str) -> ApiError:
    # The API's own phrasing: Field X had an invalid value of "V": reason.
    return ApiError(400, "INVALID_ARGUMENT", f'Field {field} had an invalid value of "{value}": {reason}')


def _seconds(duration: str) -> float:
    return float(duration.rstrip("s"))


# ---- Logging v2: log-based metrics ---------------------------------------------------------------

# LogMetric.name: "limited to 100 characters and can include only the following characters: A-Z,
# a-z, 0-9, and the special characters _-.,+!*',()%/ ... (/) cannot be the first character".
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_\-.,+!*'()%/]{1,100}$")
MAX_FILTER = 20_000
MAX_DESCRIPTION = 8_000


def check_metric_name(name: str) -> None:
    if not name:
        raise ApiError(400, "INVALID_ARGUMENT", "Field metric.name is required.")
    if not _METRIC_NAME.match(name) or name.startswith("/"):
        raise _invalid("metric.name", name,
                       "a metric name has at most 100 characters out of A-Z, a-z, 0-9 and _-.,+!*',()%/, "
                       "and does not start with /.")


def parse_metric(text: bytes) -> dict[str, Any]:
    return _parse(LogMetric, text)


def _metric_record(world: World, project: str, name: str) -> dict[str, Any]:
    _check_project(world, project, "log-based metrics")
    rec = _records(world, "log_metrics").get(name)
    if rec is None:
        raise ApiError(404, "NOT_FOUND", f"Metric projects/{project}/metrics/{name} does not exist.")
    return rec


def _metric_resource(project: str, body: dict[str, Any], previous: dict[str, Any] | None, now: float
                     ) -> dict[str, Any]:
    """The stored LogMetric: the body's fields plus what the server fills in."""
    name, filter_ = body.get("name", ""), body.get("filter", "")
    check_metric_name(name)
    if not filter_:
        raise ApiError(400, "INVALID_ARGUMENT", "Field metric.filter is required.")
    if len(filter_) > MAX_FILTER:
        raise _invalid("metric.filter", filter_[:40] + "…", f"the filter is limited to {MAX_FILTER} characters.")
    if len(body.get("description", "")) > MAX_DESCRIPTION:
        raise _invalid("metric.description", body["description"][:40] + "…",
                       f"the description is limited to {MAX_DESCRIPTION} characters.")
    # Output only (createTime, updateTime, metricDescriptor name/type/description): the server's.
    resource = {k: v for k, v in body.items() if k not in ("createTime", "updateTime", "version")}
    given = body.get("metricDescriptor", {})
    if previous is not None:
        old = previous.get("metricDescriptor", {})
        for key in ("metricKind", "valueType"):
            if given.get(key) and given[key] != old.get(key):
                raise _invalid(f"metric.metric_descriptor.{key}", given[key],
                               "the metric kind and value type of a logs-based metric cannot be changed.")
        given = {**old, **given}
    # "If unspecified, it uses a default metric descriptor with a DELTA metric kind, INT64 value
    # type, with no labels and a unit of "1"."
    descriptor = {"metricKind": "DELTA", "valueType": "INT64", "unit": "1", **given,
                  "name": f"projects/{project}/metricDescriptors/{USER_METRIC_PREFIX}{name}",
                  "type": USER_METRIC_PREFIX + name}
    if body.get("description"):
        descriptor["description"] = body["description"]
    else:
        descriptor.pop("description", None)
    resource["metricDescriptor"] = descriptor
    resource["createTime"] = previous["createTime"] if previous else rfc3339(now)
    resource["updateTime"] = rfc3339(now)
    return _roundtrip(LogMetric, resource)


def list_metrics(world: World, project: str, page_size: int, page_token: str | None) -> dict[str, Any]:
    _check_project(world, project, "log-based metrics")
    items = [rec["resource"] for _, rec in sorted(_records(world, "log_metrics").items())]
    page, nxt = _page(items, page_size, page_token, 100)
    out: dict[str, Any] = {"metrics": page}
    if nxt:
        out["nextPageToken"] = nxt
    return out


def get_metric(world: World, project: str, name: str) -> dict[str, Any]:
    return dict(_metric_record(world, project, name)["resource"])


def create_metric(world: World, project: str, body: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    _check_project(world, project, "log-based metrics")
    resource = _metric_resource(project, body, None, now)
    metrics = _records(world, "log_metrics")
    if resource["name"] in metrics:
        raise ApiError(409, "ALREADY_EXISTS", f"Metric {resource['name']} already exists.")
    metrics[resource["name"]] = {"resource": resource}
    world.dirty = True
    return resource


def update_metric(world: World, project: str, name: str, body: dict[str, Any], now: float | None = None
                  ) -> dict[str, Any]:
    """``metrics.update`` (PUT): "Creates or updates a logs-based metric"."""
    now = time.time() if now is None else now
    _check_project(world, project, "log-based metrics")
    check_metric_name(name)
    if body.get("name") != name:
        raise _invalid("metric.name", body.get("name", ""),
                       f"the metric's name must be the [METRIC_ID] of the request, {name!r}.")
    metrics = _records(world, "log_metrics")
    previous = metrics.get(name, {}).get("resource")
    metrics[name] = {"resource": _metric_resource(project, body, previous, now)}
    world.dirty = True
    return metrics[name]["resource"]


def delete_metric(world: World, project: str, name: str) -> dict[str, Any]:
    _metric_record(world, project, name)
    del world.state["log_metrics"][name]
    world.dirty = True
    return {}


# ---- Monitoring v1: dashboards ---------------------------------------------------------------------

LAYOUTS = ("gridLayout", "mosaicLayout", "rowLayout", "columnLayout")
# MosaicLayout.columns "must be between 1 and 48" (monitoring.v1 discovery document). The API
# documents no default; dashboards defined without it (with 6-wide tiles) are common, so an unset
# value reads as the 12 columns the older documentation allowed at most.
MOSAIC_COLUMNS = (1, 48)
MOSAIC_DEFAULT_COLUMNS = 12


def parse_dashboard(text: bytes) -> dict[str, Any]:
    return _parse(monitoring_dashboard_v1.Dashboard, text)


def _dashboard_etag(name: str, body: dict[str, Any]) -> str:
    # New at every write, even one that changes nothing: an etag names a version, not a content.
    seed = f"{name}/{time.time_ns()}/{json.dumps(body, sort_keys=True)}"
    return hashlib.sha1(seed.encode()).hexdigest()[:32]


def _validate_dashboard(body: dict[str, Any]) -> None:
    if not body.get("displayName"):
        raise ApiError(400, "INVALID_ARGUMENT", "Field dashboard.display_name is required.")
    layouts = [k for k in LAYOUTS if k in body]
    if len(layouts) != 1:  # two are refused by the message type already (one oneof)
        raise ApiError(400, "INVALID_ARGUMENT",
                       "A dashboard needs a layout: one of gridLayout, mosaicLayout, rowLayout or columnLayout.")
    mosaic = body.get("mosaicLayout")
    if mosaic is None:
        return
    columns = int(mosaic.get("columns", 0)) or MOSAIC_DEFAULT_COLUMNS
    if not MOSAIC_COLUMNS[0] <= columns <= MOSAIC_COLUMNS[1]:
        raise _invalid("dashboard.mosaic_layout.columns", columns,
                       f"the number of columns must be between {MOSAIC_COLUMNS[0]} and {MOSAIC_COLUMNS[1]}.")
    for i, tile in enumerate(mosaic.get("tiles", [])):
        at = f"dashboard.mosaic_layout.tiles[{i}]"
        x, y = int(tile.get("xPos", 0)), int(tile.get("yPos", 0))
        width, height = int(tile.get("width", 0)), int(tile.get("height", 0))
        if x < 0 or y < 0:
            raise _invalid(f"{at}.{'x_pos' if x < 0 else 'y_pos'}", min(x, y), "a tile position cannot be negative.")
        if width < 1 or height < 1:
            raise _invalid(f"{at}.{'width' if width < 1 else 'height'}", min(width, height),
                           "tiles must have a minimum width and height of 1.")
        if x + width > columns:
            raise _invalid(at, f"x_pos {x}, width {width}",
                           f"tiles must be contained within the {columns} columns of the mosaic.")


def _dashboard_record(world: World, project: str, dashboard_id: str) -> dict[str, Any]:
    _check_project(world, project, "dashboards")
    rec = _records(world, "dashboards").get(dashboard_id)
    if rec is None:
        raise ApiError(404, "NOT_FOUND", f"Dashboard projects/{project}/dashboards/{dashboard_id} does not exist.")
    return rec


def list_dashboards(world: World, project: str, page_size: int, page_token: str | None) -> dict[str, Any]:
    _check_project(world, project, "dashboards")
    items = [rec["resource"] for rec in _records(world, "dashboards").values()]
    page, nxt = _page(items, page_size, page_token, 1000)  # "If unspecified, a default of 1000 is used."
    out: dict[str, Any] = {"dashboards": page}
    if nxt:
        out["nextPageToken"] = nxt
    return out


def get_dashboard(world: World, project: str, dashboard_id: str) -> dict[str, Any]:
    return dict(_dashboard_record(world, project, dashboard_id)["resource"])


def create_dashboard(world: World, project: str, body: dict[str, Any], validate_only: bool) -> dict[str, Any]:
    _check_project(world, project, "dashboards")
    prefix = f"projects/{project}/dashboards/"
    if body.get("name"):
        dashboard_id = body["name"].removeprefix(prefix)
        if not body["name"].startswith(prefix) or not dashboard_id or "/" in dashboard_id:
            raise _invalid("dashboard.name", body["name"], f"a dashboard name must be {prefix}DASHBOARD_ID.")
        if dashboard_id in _records(world, "dashboards"):
            raise ApiError(409, "ALREADY_EXISTS", f"Dashboard {body['name']} already exists.")
    else:
        dashboard_id = str(uuid.uuid4())
    _validate_dashboard(body)
    name = prefix + dashboard_id
    # "The field [etag] should not be passed during dashboard creation": the server sets its own.
    resource = {**body, "name": name}
    resource["etag"] = _dashboard_etag(name, resource)
    resource = _roundtrip(monitoring_dashboard_v1.Dashboard, resource)
    if not validate_only:
        _records(world, "dashboards")[dashboard_id] = {"resource": resource}
        world.dirty = True
    return resource


def patch_dashboard(world: World, project: str, dashboard_id: str, body: dict[str, Any], validate_only: bool
                    ) -> dict[str, Any]:
    """``dashboards.patch``: "Replaces an existing custom dashboard with a new definition"."""
    rec = _dashboard_record(world, project, dashboard_id)
    current = rec["resource"]
    if body.get("name") and body["name"] != current["name"]:
        raise _invalid("dashboard.name", body["name"], "the dashboard's name does not match the request path.")
    if body.get("etag") and body["etag"] != current["etag"]:
        raise ApiError(409, "ABORTED",
                       f"The dashboard {current['name']} was modified since it was read (etag {body['etag']} is "
                       f"stale, current {current['etag']}). Read it again and retry.")
    _validate_dashboard(body)
    resource = {**body, "name": current["name"]}
    resource["etag"] = _dashboard_etag(current["name"], resource)
    resource = _roundtrip(monitoring_dashboard_v1.Dashboard, resource)
    if not validate_only:
        rec["resource"] = resource
        world.dirty = True
    return resource


def delete_dashboard(world: World, project: str, dashboard_id: str) -> dict[str, Any]:
    _dashboard_record(world, project, dashboard_id)
    del world.state["dashboards"][dashboard_id]
    world.dirty = True
    return {}


# ---- Monitoring v3: notification channels (read-only: the scenario's) --------------------------------


def _v3_list(world: World, name: str, store: str, items_key: str, what: str, filter_: str, order_by: str,
             page_size: int, page_token: str) -> dict[str, Any]:
    """A Monitoring v3 list of the project's ``store`` (every item, in creation order, paged)."""
    _parent(world, name, what)
    _refuse_query(filter_, order_by)
    items = [rec["resource"] for rec in _records(world, store).values()]
    page, nxt = _page(items, page_size, page_token or None, 1000)
    out: dict[str, Any] = {items_key: page, "totalSize": len(items)}
    if nxt:
        out["nextPageToken"] = nxt
    return out


def _v3_record(world: World, name: str, collection: str, store: str, what: str, label: str) -> dict[str, Any]:
    """The record a Monitoring v3 resource name points at, or the API's NOT_FOUND."""
    rec = _records(world, store).get(_child(world, name, collection, what))
    if rec is None:
        raise ApiError(404, "NOT_FOUND", f"{label} {name} does not exist.")
    return rec


def list_channels(world: World, name: str, filter_: str, order_by: str, page_size: int, page_token: str
                  ) -> dict[str, Any]:
    return _v3_list(world, name, "notification_channels", "notificationChannels", "notification channels",
                    filter_, order_by, page_size, page_token)


def get_channel(world: World, name: str) -> dict[str, Any]:
    return dict(_v3_record(world, name, "notificationChannels", "notification_channels", "notification channels",
                           "Notification channel")["resource"])


def _refuse_query(filter_: str, order_by: str) -> None:
    # What the twin cannot compute is refused as unimplemented, never silently answered unfiltered.
    asked = [what for what, value in (("filter", filter_), ("order_by", order_by)) if value]
    if asked:
        raise ApiError(501, "UNIMPLEMENTED",
                       f"The twin lists everything in creation order; {' and '.join(asked)} is not implemented.")


# ---- Monitoring v3: alert policies ------------------------------------------------------------------

# The condition types (AlertPolicy.Condition's oneof "condition"), by JSON name, from the message type.
CONDITION_TYPES = tuple(
    f.json_name for f in monitoring_v3.AlertPolicy.Condition.pb().DESCRIPTOR.oneofs_by_name["condition"].fields)
MAX_CONDITIONS = 6
# The fields an update_mask may name (top level; the gRPC client sends the proto names).
UPDATABLE = {"display_name": "displayName", "documentation": "documentation", "user_labels": "userLabels",
             "conditions": "conditions", "combiner": "combiner", "enabled": "enabled",
             "notification_channels": "notificationChannels", "alert_strategy": "alertStrategy",
             "severity": "severity"}
READ_ONLY = ("name", "creation_record", "mutation_record", "validity")
_METRIC_TYPE = re.compile(r'\bmetric\.type\s*=\s*"([^"]*)"')
_NAMES_METRIC = re.compile(r"\bmetric\.type\b")
_NAMES_RESOURCE = re.compile(r"\bresource\.type\b")
MAX_ALIGNMENT_SECONDS = 90_000  # "90,000 seconds (25 hours) for alerting policies"


def _policy_record(world: World, name: str) -> dict[str, Any]:
    return _v3_record(world, name, "alertPolicies", "alert_policies", "alert policies", "Alert policy")


def list_alert_policies(world: World, name: str, filter_: str, order_by: str, page_size: int, page_token: str
                        ) -> dict[str, Any]:
    return _v3_list(world, name, "alert_policies", "alertPolicies", "alert policies",
                    filter_, order_by, page_size, page_token)


def get_alert_policy(world: World, name: str) -> dict[str, Any]:
    return dict(_policy_record(world, name)["resource"])


def delete_alert_policy(world: World, name: str) -> dict[str, Any]:
    _policy_record(world, name)
    del world.state["alert_policies"][name.rsplit("/", 1)[-1]]
    world.dirty = True
    return {}


def create_alert_policy(world: World, name: str, policy: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    project = _parent(world, name, "alert policies")
    if policy.get("name"):
        raise _invalid("alert_policy.name", policy["name"],
                       "omit the name when creating an alert policy; the API assigns it.")
    _validate_policy(world, project, policy)
    policy_name = f"projects/{project}/alertPolicies/{_numeric_id()}"
    record = {"mutateTime": rfc3339(now), "mutatedBy": OPERATOR}
    resource = _stored_policy(policy_name, policy, [], record, now)
    _records(world, "alert_policies")[policy_name.rsplit("/", 1)[-1]] = {"resource": resource}
    world.dirty = True
    return resource


def update_alert_policy(world: World, policy: dict[str, Any], paths: list[str], now: float | None = None
                        ) -> dict[str, Any]:
    """UpdateAlertPolicy: an empty mask replaces the whole policy; otherwise only the masked fields
    change (to the supplied value, or their default when the supplied policy lacks them)."""
    now = time.time() if now is None else now
    if not policy.get("name"):
        raise ApiError(400, "INVALID_ARGUMENT", "Field alert_policy.name is required.")
    rec = _policy_record(world, policy["name"])
    current = rec["resource"]
    if paths:
        wanted = dict(current)
        for field in (_mask_field(p) for p in paths):
            if field in policy:
                wanted[field] = policy[field]
            else:
                wanted.pop(field, None)
    else:
        wanted = dict(policy)
    project = policy["name"].split("/")[1]
    _validate_policy(world, project, wanted)
    resource = _stored_policy(current["name"], wanted, current.get("conditions", []), current["creationRecord"], now)
    rec["resource"] = resource
    world.dirty = True
    return resource


def _mask_field(path: str) -> str:
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), path.strip())
    top = snake.split(".", 1)[0]
    if top in READ_ONLY:
        raise _invalid("update_mask", path, f"the field {top} is read-only and cannot be updated.")
    if top not in UPDATABLE:
        raise _invalid("update_mask", path, "not a field of AlertPolicy.")
    if "." in snake:
        raise ApiError(501, "UNIMPLEMENTED",
                       f"The twin updates whole top-level fields only; update_mask path {path!r} is not implemented.")
    return UPDATABLE[top]


def _stored_policy(name: str, policy: dict[str, Any], previous_conditions: list[dict[str, Any]],
                   created: dict[str, Any], now: float) -> dict[str, Any]:
    """The policy as stored and answered: the API's name, condition names and records."""
    resource = {k: v for k, v in policy.items() if k not in ("name", "creationRecord", "mutationRecord", "validity")}
    resource["name"] = name
    resource["conditions"] = _named_conditions(name, policy.get("conditions", []), previous_conditions)
    # "On write, the default interpretation if unset is that the policy is enabled" and "the field
    # should always be populated on List and Get".
    resource.setdefault("enabled", True)
    resource["creationRecord"] = created
    resource["mutationRecord"] = {"mutateTime": rfc3339(now), "mutatedBy": OPERATOR}
    return _roundtrip(monitoring_v3.AlertPolicy, resource)


def _named_conditions(policy_name: str, conditions: list[dict[str, Any]], previous: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """Conditions keep their former id when supplied with it; any other gets a new one."""
    known = {c.get("name") for c in previous}
    out = []
    for i, cond in enumerate(conditions):
        given = cond.get("name")
        if given and given not in known:
            raise _invalid(f"alert_policy.conditions[{i}].name", given,
                           f"not a condition of {policy_name}; omit the name for a new condition.")
        out.append({**cond, "name": given or f"{policy_name}/conditions/{_numeric_id()}"})
    return out


def _validate_policy(world: World, project: str, policy: dict[str, Any]) -> None:
    """The API's checks, the malformed (INVALID_ARGUMENT) before the missing (NOT_FOUND)."""
    if not policy.get("displayName"):
        raise ApiError(400, "INVALID_ARGUMENT", "Field alert_policy.display_name is required.")
    conditions = policy.get("conditions", [])
    if not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise _invalid("alert_policy.conditions", f"{len(conditions)} conditions",
                       f"a policy can have from one to {MAX_CONDITIONS} conditions.")
    for i, cond in enumerate(conditions):
        _validate_condition(cond, f"alert_policy.conditions[{i}]", len(conditions))
    if len(conditions) > 1 and policy.get("combiner", "COMBINE_UNSPECIFIED") == "COMBINE_UNSPECIFIED":
        raise _invalid("alert_policy.combiner", "COMBINE_UNSPECIFIED",
                       "a combiner (AND, OR, AND_WITH_MATCHING_RESOURCE) is required with more than one condition.")
    rate_limit = (policy.get("alertStrategy") or {}).get("notificationRateLimit")
    log_based = any("conditionMatchedLog" in c for c in conditions)
    if log_based and not (rate_limit or {}).get("period"):
        raise _invalid("alert_policy.alert_strategy.notification_rate_limit", "",
                       "log-based alert policies must specify a notification rate limit period.")
    if rate_limit and not log_based:
        raise _invalid("alertStrategy.notificationRateLimit", json.dumps(rate_limit),
                       "metric-based alert policies must not specify a notification rate limit")
    for i, channel in enumerate(policy.get("notificationChannels", [])):
        prefix = f"projects/{project}/notificationChannels/"
        if not channel.startswith(prefix) or channel.removeprefix(prefix) not in _records(world, "notification_channels"):
            raise ApiError(404, "NOT_FOUND",
                           f"Field alert_policy.notification_channels[{i}] had an invalid value of \"{channel}\": "
                           "the notification channel does not exist.")
    for cond in conditions:
        for kind in ("conditionThreshold", "conditionAbsent"):
            body = cond.get(kind, {})
            for flt in (body.get("filter", ""), body.get("denominatorFilter", "")):
                _check_user_metrics(world, flt)


def _validate_condition(cond: dict[str, Any], at: str, count: int) -> None:
    if not cond.get("displayName"):
        raise ApiError(400, "INVALID_ARGUMENT", f"Field {at}.display_name is required.")
    kinds = [k for k in CONDITION_TYPES if k in cond]
    if len(kinds) != 1:  # the oneof allows at most one; none is what can go wrong
        raise _invalid(f"{at}.condition_case", "0",
                       'Condition subtype (e.g. "condition_absent","condition_threshold", etc.) is absent or unknown.')
    kind = kinds[0]
    body = cond[kind]
    where = f"{at}.{re.sub(r'([A-Z])', lambda m: '_' + m.group(1).lower(), kind)}"
    if kind in ("conditionThreshold", "conditionAbsent"):
        _check_metric_filter(body.get("filter", ""), f"{where}.filter", resource_required=True)
        if "duration" not in body:
            raise ApiError(400, "INVALID_ARGUMENT", f"Field {where}.duration is required.")
        seconds = _seconds(body["duration"])
        minimum = 120 if kind == "conditionAbsent" else 0
        if seconds < minimum or seconds % 60:
            raise _invalid(f"{where}.duration", body["duration"],
                           f"the duration must be a multiple of a minute{' of at least 120 s' if minimum else ''}.")
        _check_aggregations(body.get("aggregations", []), f"{where}.aggregations")
    if kind == "conditionThreshold":
        if body.get("comparison", "COMPARISON_UNSPECIFIED") == "COMPARISON_UNSPECIFIED":
            raise _invalid(f"{where}.comparison", "COMPARISON_UNSPECIFIED", "a comparison must be specified.")
        if body.get("denominatorFilter"):
            _check_metric_filter(body["denominatorFilter"], f"{where}.denominator_filter", resource_required=False)
            _check_aggregations(body.get("denominatorAggregations", []), f"{where}.denominator_aggregations")
    elif kind == "conditionMatchedLog":
        if not body.get("filter"):
            raise ApiError(400, "INVALID_ARGUMENT", f"Field {where}.filter is required.")
        if count > 1:
            raise ApiError(400, "INVALID_ARGUMENT",
                           "Alert policies with a log matching condition can only have a single condition.")
    elif not body.get("query"):  # MQL, PromQL, SQL: the twin stores the query, it cannot check it
        raise ApiError(400, "INVALID_ARGUMENT", f"Field {where}.query is required.")


def _check_metric_filter(flt: str, field: str, resource_required: bool) -> None:
    # MetricThreshold.filter: "The filter must specify the metric type and the resource type";
    # denominator_filter: "must specify the metric type".
    if not _NAMES_METRIC.search(flt):
        raise _invalid(field, flt, 'must specify a restriction on "metric.type" in the filter.')
    if resource_required and not _NAMES_RESOURCE.search(flt):
        raise _invalid(field, flt, 'must specify a restriction on "resource.type" in the filter; see '
                                   '"https://cloud.google.com/monitoring/api/resources" for a list of available '
                                   "resource types.")


def _check_aggregations(aggregations: list[dict[str, Any]], where: str) -> None:
    for j, agg in enumerate(aggregations):
        at = f"{where}[{j}]"
        aligner = agg.get("perSeriesAligner", "ALIGN_NONE")
        reducer = agg.get("crossSeriesReducer", "REDUCE_NONE")
        if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
            raise _invalid(f"{at}.per_series_aligner", aligner,
                           f"the cross-series reducer {reducer} needs a per-series aligner other than ALIGN_NONE.")
        if agg.get("groupByFields") and reducer == "REDUCE_NONE":
            raise _invalid(f"{at}.group_by_fields", ",".join(agg["groupByFields"]),
                           "An aggregation cannot have group-by fields without a reducer.")
        if aligner == "ALIGN_NONE":
            continue  # "If no per-series aligner is specified ... this field is ignored."
        if "alignmentPeriod" not in agg:
            raise _invalid(f"{at}.alignment_period", "",
                           f"the aligner {aligner} needs an alignment period (at least 60 s).")
        seconds = _seconds(agg["alignmentPeriod"])
        if seconds < 60 or seconds % 60 or seconds > MAX_ALIGNMENT_SECONDS:
            raise _invalid(f"{at}.alignment_period", agg["alignmentPeriod"],
                           f"alignment period must be in multiples of one minute, from 60 s to {MAX_ALIGNMENT_SECONDS} s")


def _check_user_metrics(world: World, flt: str) -> None:
    """A user (log-based) metric a filter names must exist, as for the real API."""
    for metric_type in _METRIC_TYPE.findall(flt):
        if metric_type.startswith(USER_METRIC_PREFIX) and \
                metric_type.removeprefix(USER_METRIC_PREFIX) not in _records(world, "log_metrics"):
            raise ApiError(404, "NOT_FOUND",
                           f'Cannot find metric(s) that match type = "{metric_type}". If a metric was created '
                           "recently, it could take up to 10 minutes to become available. Please try again soon.")


# ---- scenario and status ------------------------------------------------------------------------------


def seed(world: World, channels: list[Any], metrics: list[Any], faults: list[Any], now: float) -> None:
    """At reset: the scenario's notification channels, hand-made log metrics and injected faults."""
    project = world.state["project"]
    world.state["notification_channels"] = {
        c.id: {"resource": _roundtrip(monitoring_v3.NotificationChannel, {
            "name": f"projects/{project}/notificationChannels/{c.id}",
            "type": c.type,
            "displayName": c.display_name,
            **({"labels": {"email_address": c.email}} if c.email else {}),
            "enabled": True,
        })}
        for c in channels
    }
    world.state["log_metrics"] = {}
    for m in metrics:
        # Created by someone else, by hand, a month before the incident.
        body = {"name": m.name, "filter": m.filter, **({"description": m.description} if m.description else {})}
        world.state["log_metrics"][m.name] = {"resource": _metric_resource(project, body, None, now - 30 * 86400)}
    world.state["dashboards"] = {}
    world.state["alert_policies"] = {}
    world.state["faults"] = {f.method: {"code": f.code, "status": f.status, "message": f.message,
                                        "dry_runs": f.dry_runs, "after_calls": f.after_calls, "calls": 0}
                           for f in faults}


def status(world: World) -> dict[str, Any]:
    st = world.state
    metrics = [r["resource"] for _, r in sorted(st.get("log_metrics", {}).items())]
    policies = [r["resource"] for r in st.get("alert_policies", {}).values()]
    dashboards = [r["resource"] for r in st.get("dashboards", {}).values()]
    channels = [r["resource"] for r in st.get("notification_channels", {}).values()]
    return {
        "monitoring": {
            "logMetrics": metrics,
            "alertPolicies": policies,
            "dashboards": dashboards,
            "notificationChannels": channels,
            # What `python -m twin status` prints: names only.
            "summary": {
                "logMetrics": [m["name"] for m in metrics],
                "alertPolicies": [{"displayName": p.get("displayName", ""), "enabled": bool(p.get("enabled", True))}
                                  for p in policies],
                "dashboards": [d.get("displayName", "") for d in dashboards],
                "notificationChannels": [c["name"] for c in channels],
            },
        },
        "faults": [{"method": method, **fault} for method, fault in st.get("faults", {}).items()],
    }
