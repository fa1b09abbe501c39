"""Cloud Monitoring v3 as world logic: time series, alert policies and notification channels (no gRPC
here; :mod:`twin.grpcserver` decodes requests and calls these functions).

Records are kept in REST JSON under ``world.state["alert_policies" | "notification_channels"]``,
keyed by the last part of the resource name. Notification channels come from the scenario only
(the gate never creates one). An alert policy is validated as the API does (1-6 conditions of one
type each, threshold filters naming a metric and a resource type, aggregations that can be computed,
a combiner for several conditions); its notification channels and the user log-based metrics its
filters name must exist, or it is NOT_FOUND (the API's "Cannot find metric(s) that match type = …").
A user metric is not usable at once either: for the scenario's ``metric_propagation_seconds`` (Google's
"up to 10 minutes", in the twin's time) after its createTime, a policy whose written conditions read
it gets the same NOT_FOUND.
Time series are generated from the world by the API that owns the resource (:data:`SOURCES`, e.g.
:mod:`twin.sqladmin`), then lagged, aligned and reduced here, generically (:class:`Aggregation`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from google.cloud import monitoring_v3

from twin import sqladmin
from twin.vpcaccess import METRIC_KINDS as CONNECTOR_METRICS, connector_series
from twin.logging import USER_METRIC_PREFIX
from twin.sqladmin import NUM_BACKENDS
from twin.store import (
    ApiError, Store, child_id, duration_seconds, imposed_event, invalid, numeric_id, paginate, parent_project,
    records, rfc3339, roundtrip,
)

if TYPE_CHECKING:
    from twin.scenario import Scenario

OPERATOR = "goldenpath@twin"  # who the mutation records name (the real API names the caller)


# ---- time series ------------------------------------------------------------------------------

# The raw series of each metric type the twin generates, by the API that owns the resource:
# source(world, start, end) -> [{metric, resource, metricKind, valueType, samples: [(t, v)] newest first}].
RawSource = Callable[[Store, float, float], list[dict[str, Any]]]
SOURCES: dict[str, RawSource] = {
    NUM_BACKENDS: sqladmin.num_backends_series,
}

_CLAUSE = re.compile(r'^\s*([A-Za-z_][\w.]*)\s*=\s*"([^"]*)"\s*$')
_LABEL_KEY = re.compile(r"^(metric|resource)\.labels?\.(\w+)$")


@dataclass(frozen=True)
class SeriesFilter:
    """A Monitoring filter reduced to what the twin understands: equality clauses joined by AND."""

    metric_type: str
    resource_type: str | None
    metric_labels: dict[str, str]
    resource_labels: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> "SeriesFilter":
        fields: dict[str, str] = {}
        labels: dict[str, dict[str, str]] = {"metric": {}, "resource": {}}
        for clause in re.split(r"\s+AND\s+", text.strip()) if text.strip() else []:
            m = _CLAUSE.match(clause)
            if m is None:
                raise ApiError(
                    400, "INVALID_ARGUMENT",
                    f"Field filter had an invalid value of {text!r}: the twin understands only "
                    f'`key = "value"` clauses joined by AND (could not read {clause.strip()!r}).',
                )
            key, value = m.groups()
            label = _LABEL_KEY.match(key)
            if label:
                labels[label.group(1)][label.group(2)] = value
            elif key in ("metric.type", "resource.type"):
                fields[key] = value
            else:
                raise ApiError(400, "INVALID_ARGUMENT", f"Field filter had an invalid value of {text!r}: unknown key {key!r}.")
        if "metric.type" not in fields:
            raise ApiError(400, "INVALID_ARGUMENT",
                           f"Field filter had an invalid value of {text!r}: a filter must specify a metric type.")
        return cls(fields["metric.type"], fields.get("resource.type"), labels["metric"], labels["resource"])

    def matches(self, series: dict[str, Any]) -> bool:
        return (
            (self.resource_type in (None, series["resource"]["type"]))
            and all(series["resource"]["labels"].get(k) == v for k, v in self.resource_labels.items())
            and all(series["metric"].get("labels", {}).get(k) == v for k, v in self.metric_labels.items())
        )


# Aggregation (google/monitoring/v3/common.proto, monitoring.v3.json "Aggregation"): what each
# aligner / reducer the twin computes does to a list of values, and the value type of its result
# (None: "the same as the value_type of the input"). Anything else is refused as UNIMPLEMENTED.
_ALIGNERS: dict[str, tuple[Callable[[list[float]], float], str | None]] = {
    "ALIGN_MEAN": (lambda vs: sum(vs) / len(vs), "DOUBLE"),   # "The value_type of the aligned result is DOUBLE."
    "ALIGN_MAX": (max, None),
    "ALIGN_MIN": (min, None),
    "ALIGN_NEXT_OLDER": (lambda vs: vs[0], None),              # values newest first: the most recent one
    "ALIGN_COUNT": (len, "INT64"),
}
_REDUCERS: dict[str, tuple[Callable[[list[float]], float], str | None]] = {
    "REDUCE_SUM": (sum, None),
    "REDUCE_MEAN": (lambda vs: sum(vs) / len(vs), "DOUBLE"),
    "REDUCE_MAX": (max, None),
    "REDUCE_MIN": (min, None),
    "REDUCE_COUNT": (len, "INT64"),  # "the number of data-valued time series for each alignment period"
}
MAX_LIST_ALIGNMENT_SECONDS = 104 * 7 * 86400  # "The maximum value of the alignment_period is 104 weeks"
_GROUP_FIELD = re.compile(r"^(metric|resource)\.labels?\.(\w+)$")


@dataclass(frozen=True)
class Aggregation:
    """A ListTimeSeriesRequest.aggregation the twin can compute (validated as the API documents it)."""

    aligner: str
    reducer: str
    period: float
    group_by: tuple[tuple[str, str], ...]  # ("metric" | "resource", label key)

    @classmethod
    def parse(cls, agg: dict[str, Any] | None, sample_period: float) -> "Aggregation | None":
        """None when there is nothing to compute (no aligner: raw points, "this field is ignored")."""
        agg = agg or {}
        aligner = agg.get("perSeriesAligner", "ALIGN_NONE")
        reducer = agg.get("crossSeriesReducer", "REDUCE_NONE")
        if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
            raise invalid("aggregation.per_series_aligner", aligner,
                           f"the cross-series reducer {reducer} needs a per-series aligner other than ALIGN_NONE "
                           "(and an alignment period).")
        if aligner == "ALIGN_NONE":
            return None  # "If no per-series aligner is specified ... this field is ignored."
        if "alignmentPeriod" not in agg:
            raise invalid("aggregation.alignment_period", "",
                           f"the aligner {aligner} needs an alignment period (at least 60 s).")
        period = duration_seconds(agg["alignmentPeriod"])
        # Google: "The value must be at least 60 seconds." The twin also accepts its scenario's
        # faster sample period (a rehearsal samples every few seconds), never less than one sample.
        floor = min(60.0, sample_period)
        if period < floor or period > MAX_LIST_ALIGNMENT_SECONDS:
            raise invalid("aggregation.alignment_period", agg["alignmentPeriod"],
                           f"the alignment period must be at least 60 s (the twin also accepts its sample period, "
                           f"{sample_period:g} s) and at most 104 weeks.")
        if aligner not in _ALIGNERS:
            raise ApiError(501, "UNIMPLEMENTED",
                           f"The twin computes the aligners {', '.join(_ALIGNERS)}; {aligner} is not implemented.")
        if reducer != "REDUCE_NONE" and reducer not in _REDUCERS:
            raise ApiError(501, "UNIMPLEMENTED",
                           f"The twin computes the reducers {', '.join(_REDUCERS)}; {reducer} is not implemented.")
        group_by = []
        for field in agg.get("groupByFields", []) if reducer != "REDUCE_NONE" else []:
            if field == "resource.type":
                continue  # "this field implicitly contains resource.type"
            m = _GROUP_FIELD.match(field)
            if m is None:
                raise ApiError(501, "UNIMPLEMENTED",
                               f"The twin groups by metric and resource labels only; group-by field {field!r} "
                               "is not implemented.")
            group_by.append((m.group(1), m.group(2)))
        return cls(aligner, reducer, period, tuple(group_by))

    def apply(self, series: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
        """Align every series to periods ending at ``end``, ``end - period``, … (after ``start``),
        then reduce them, by group, when a reducer is given. Samples newest first in and out."""
        aligned = [self._align(s, start, end) for s in series]
        if self.reducer == "REDUCE_NONE":
            return aligned
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for s in aligned:
            key = (s["resource"]["type"], *(s[kind].get("labels", {}).get(k) for kind, k in self.group_by))
            groups.setdefault(key, []).append(s)
        fn, value_type = _REDUCERS[self.reducer]
        out = []
        for members in groups.values():
            first = members[0]
            by_end: dict[float, list[float]] = {}
            for s in members:
                for t, v in s["samples"]:
                    by_end.setdefault(t, []).append(v)
            kept = {kind: {k: first[kind]["labels"][k] for knd, k in self.group_by
                           if knd == kind and k in first[kind].get("labels", {})} for kind in ("metric", "resource")}
            out.append({
                # Fields not in group_by_fields "are aggregated away".
                "metric": {"type": first["metric"]["type"], **({"labels": kept["metric"]} if kept["metric"] else {})},
                "resource": {"type": first["resource"]["type"], "labels": kept["resource"]},
                "metricKind": first["metricKind"],
                "valueType": value_type or first["valueType"],
                "samples": [(t, fn(vs)) for t, vs in sorted(by_end.items(), reverse=True)],
            })
        return out

    def _align(self, s: dict[str, Any], start: float, end: float) -> dict[str, Any]:
        # "a single data point for each alignment_period with end timestamp at the end of the period".
        # Where periods are anchored is not documented (not confirmed): the twin ends the newest at
        # the interval's end time. A period without a sample gives no point.
        fn, value_type = _ALIGNERS[self.aligner]
        samples = []
        k = 0
        while (period_end := round(end - k * self.period, 6)) > start:
            values = [v for t, v in s["samples"] if period_end - self.period < t <= period_end]
            if values:
                samples.append((period_end, fn(values)))
            k += 1
        return {**s, "valueType": value_type or s["valueType"], "samples": samples}


def _point(t: float, value: float, value_type: str) -> dict[str, Any]:
    ts = rfc3339(t)
    typed = {"int64Value": str(int(value))} if value_type == "INT64" else {"doubleValue": float(value)}
    return {"interval": {"startTime": ts, "endTime": ts}, "value": typed}


def time_series(world: Store, filter_: str, start: float, end: float, now: float | None = None,
                aggregation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``projects.timeSeries.list`` (view FULL) as TimeSeries REST JSON.

    Raw points come from the metric's source (:data:`SOURCES`) in (start, end] (Monitoring's read
    interval excludes its start; a zero-length interval selects the point at exactly ``end``), and
    only those sampled at least ``metric_lag_seconds`` before ``now``: "After sampling, data is not
    visible for up to 165 seconds". ``aggregation`` (the request's, REST JSON) aligns and reduces
    them (:class:`Aggregation`). Points are newest first, as Monitoring returns them ("most recent to
    oldest"); series without points in the interval are left out.
    """
    flt = SeriesFilter.parse(filter_)
    if end < start:
        raise ApiError(400, "INVALID_ARGUMENT", "The start time must be before the end time.")
    timing = world.state.get("timing", {})
    agg = Aggregation.parse(aggregation, float(timing.get("metric_period_seconds", 60)))
    if flt.metric_type in CONNECTOR_METRICS:
        # The connector's series (a CPU distribution among them) are served raw: the gate reads them
        # so, and the twin aligns only scalar series. Their publication lag is not documented.
        if agg is not None:
            raise ApiError(501, "UNIMPLEMENTED",
                           f"The twin serves {flt.metric_type} unaggregated only; aggregation is not implemented.")
        return connector_series(world, flt, start, end if now is None else min(end, now))
    source = SOURCES.get(flt.metric_type)
    if source is None:
        return []
    visible = end if now is None else min(end, now - float(timing.get("metric_lag_seconds", 0)))
    if visible < end and visible <= start:
        return []  # nothing sampled in the interval is published yet
    raw = source(world, start, visible)
    series = [s for s in raw if flt.matches(s)]
    if agg is not None:
        series = agg.apply(series, start, end)
    out = []
    for s in series:
        if s["samples"]:
            body = {k: v for k, v in s.items() if k != "samples"}
            out.append({**body, "points": [_point(t, v, s["valueType"]) for t, v in s["samples"]]})
    return out


# ---- Monitoring v3: notification channels (read-only: the scenario's) --------------------------------


def _v3_list(world: Store, name: str, store: str, items_key: str, what: str, filter_: str, order_by: str,
             page_size: int, page_token: str) -> dict[str, Any]:
    """A Monitoring v3 list of the project's ``store`` (every item, in creation order, paged)."""
    parent_project(world, name, what)
    _refuse_query(filter_, order_by)
    items = [rec["resource"] for rec in records(world, store).values()]
    page, nxt = paginate(items, page_size, page_token or None, 1000)
    out: dict[str, Any] = {items_key: page, "totalSize": len(items)}
    if nxt:
        out["nextPageToken"] = nxt
    return out


def _v3_record(world: Store, name: str, collection: str, store: str, what: str, label: str) -> dict[str, Any]:
    """The record a Monitoring v3 resource name points at, or the API's NOT_FOUND."""
    rec = records(world, store).get(child_id(world, name, collection, what))
    if rec is None:
        raise ApiError(404, "NOT_FOUND", f"{label} {name} does not exist.")
    return rec


def list_channels(world: Store, name: str, filter_: str, order_by: str, page_size: int, page_token: str
                  ) -> dict[str, Any]:
    return _v3_list(world, name, "notification_channels", "notificationChannels", "notification channels",
                    filter_, order_by, page_size, page_token)


def get_channel(world: Store, name: str) -> dict[str, Any]:
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


def _policy_record(world: Store, name: str) -> dict[str, Any]:
    return _v3_record(world, name, "alertPolicies", "alert_policies", "alert policies", "Alert policy")


def list_alert_policies(world: Store, name: str, filter_: str, order_by: str, page_size: int, page_token: str
                        ) -> dict[str, Any]:
    return _v3_list(world, name, "alert_policies", "alertPolicies", "alert policies",
                    filter_, order_by, page_size, page_token)


def get_alert_policy(world: Store, name: str) -> dict[str, Any]:
    return dict(_policy_record(world, name)["resource"])


def delete_alert_policy(world: Store, name: str) -> dict[str, Any]:
    _policy_record(world, name)
    del world.state["alert_policies"][name.rsplit("/", 1)[-1]]
    world.dirty = True
    return {}


def create_alert_policy(world: Store, name: str, policy: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    project = parent_project(world, name, "alert policies")
    if policy.get("name"):
        raise invalid("alert_policy.name", policy["name"],
                       "omit the name when creating an alert policy; the API assigns it.")
    _validate_policy(world, project, policy, now)
    policy_name = f"projects/{project}/alertPolicies/{numeric_id()}"
    record = {"mutateTime": rfc3339(now), "mutatedBy": OPERATOR}
    resource = _stored_policy(policy_name, policy, [], record, now)
    records(world, "alert_policies")[policy_name.rsplit("/", 1)[-1]] = {"resource": resource}
    world.dirty = True
    return resource


def update_alert_policy(world: Store, policy: dict[str, Any], paths: list[str], now: float | None = None
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
    # Only conditions being written must read usable metrics: a policy created earlier keeps working
    # while, say, its channels change (whether Google re-checks unchanged conditions is not known).
    writes_conditions = not paths or "conditions" in {_mask_field(p) for p in paths}
    _validate_policy(world, project, wanted, now if writes_conditions else None)
    resource = _stored_policy(current["name"], wanted, current.get("conditions", []), current["creationRecord"], now)
    rec["resource"] = resource
    world.dirty = True
    return resource


def _mask_field(path: str) -> str:
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), path.strip())
    top = snake.split(".", 1)[0]
    if top in READ_ONLY:
        raise invalid("update_mask", path, f"the field {top} is read-only and cannot be updated.")
    if top not in UPDATABLE:
        raise invalid("update_mask", path, "not a field of AlertPolicy.")
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
    return roundtrip(monitoring_v3.AlertPolicy, resource)


def _named_conditions(policy_name: str, conditions: list[dict[str, Any]], previous: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """Conditions keep their former id when supplied with it; any other gets a new one."""
    known = {c.get("name") for c in previous}
    out = []
    for i, cond in enumerate(conditions):
        given = cond.get("name")
        if given and given not in known:
            raise invalid(f"alert_policy.conditions[{i}].name", given,
                           f"not a condition of {policy_name}; omit the name for a new condition.")
        out.append({**cond, "name": given or f"{policy_name}/conditions/{numeric_id()}"})
    return out


def _validate_policy(world: Store, project: str, policy: dict[str, Any], now: float | None) -> None:
    """The API's checks, the malformed (INVALID_ARGUMENT) before the missing (NOT_FOUND). ``now``:
    when the conditions are written (create, or an update of them), so new metrics must have propagated."""
    if not policy.get("displayName"):
        raise ApiError(400, "INVALID_ARGUMENT", "Field alert_policy.display_name is required.")
    conditions = policy.get("conditions", [])
    if not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise invalid("alert_policy.conditions", f"{len(conditions)} conditions",
                       f"a policy can have from one to {MAX_CONDITIONS} conditions.")
    for i, cond in enumerate(conditions):
        _validate_condition(cond, f"alert_policy.conditions[{i}]", len(conditions))
    if len(conditions) > 1 and policy.get("combiner", "COMBINE_UNSPECIFIED") == "COMBINE_UNSPECIFIED":
        raise invalid("alert_policy.combiner", "COMBINE_UNSPECIFIED",
                       "a combiner (AND, OR, AND_WITH_MATCHING_RESOURCE) is required with more than one condition.")
    rate_limit = (policy.get("alertStrategy") or {}).get("notificationRateLimit")
    log_based = any("conditionMatchedLog" in c for c in conditions)
    if log_based and not (rate_limit or {}).get("period"):
        raise invalid("alert_policy.alert_strategy.notification_rate_limit", "",
                       "log-based alert policies must specify a notification rate limit period.")
    if rate_limit and not log_based:
        raise invalid("alertStrategy.notificationRateLimit", json.dumps(rate_limit),
                       "metric-based alert policies must not specify a notification rate limit")
    for i, channel in enumerate(policy.get("notificationChannels", [])):
        prefix = f"projects/{project}/notificationChannels/"
        if not channel.startswith(prefix) or channel.removeprefix(prefix) not in records(world, "notification_channels"):
            raise ApiError(404, "NOT_FOUND",
                           f"Field alert_policy.notification_channels[{i}] had an invalid value of \"{channel}\": "
                           "the notification channel does not exist.")
    for cond in conditions:
        for kind in ("conditionThreshold", "conditionAbsent"):
            body = cond.get(kind, {})
            for flt in (body.get("filter", ""), body.get("denominatorFilter", "")):
                _check_user_metrics(world, flt, now)


def _validate_condition(cond: dict[str, Any], at: str, count: int) -> None:
    if not cond.get("displayName"):
        raise ApiError(400, "INVALID_ARGUMENT", f"Field {at}.display_name is required.")
    kinds = [k for k in CONDITION_TYPES if k in cond]
    if len(kinds) != 1:  # the oneof allows at most one; none is what can go wrong
        raise invalid(f"{at}.condition_case", "0",
                       'Condition subtype (e.g. "condition_absent","condition_threshold", etc.) is absent or unknown.')
    kind = kinds[0]
    body = cond[kind]
    where = f"{at}.{re.sub(r'([A-Z])', lambda m: '_' + m.group(1).lower(), kind)}"
    if kind in ("conditionThreshold", "conditionAbsent"):
        _check_metric_filter(body.get("filter", ""), f"{where}.filter", resource_required=True)
        if "duration" not in body:
            raise ApiError(400, "INVALID_ARGUMENT", f"Field {where}.duration is required.")
        seconds = duration_seconds(body["duration"])
        minimum = 120 if kind == "conditionAbsent" else 0
        if seconds < minimum or seconds % 60:
            raise invalid(f"{where}.duration", body["duration"],
                           f"the duration must be a multiple of a minute{' of at least 120 s' if minimum else ''}.")
        _check_aggregations(body.get("aggregations", []), f"{where}.aggregations")
    if kind == "conditionThreshold":
        if body.get("comparison", "COMPARISON_UNSPECIFIED") == "COMPARISON_UNSPECIFIED":
            raise invalid(f"{where}.comparison", "COMPARISON_UNSPECIFIED", "a comparison must be specified.")
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
        raise invalid(field, flt, 'must specify a restriction on "metric.type" in the filter.')
    if resource_required and not _NAMES_RESOURCE.search(flt):
        raise invalid(field, flt, 'must specify a restriction on "resource.type" in the filter; see '
                                   '"https://cloud.google.com/monitoring/api/resources" for a list of available '
                                   "resource types.")


def _check_aggregations(aggregations: list[dict[str, Any]], where: str) -> None:
    for j, agg in enumerate(aggregations):
        at = f"{where}[{j}]"
        aligner = agg.get("perSeriesAligner", "ALIGN_NONE")
        reducer = agg.get("crossSeriesReducer", "REDUCE_NONE")
        if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
            raise invalid(f"{at}.per_series_aligner", aligner,
                           f"the cross-series reducer {reducer} needs a per-series aligner other than ALIGN_NONE.")
        if agg.get("groupByFields") and reducer == "REDUCE_NONE":
            raise invalid(f"{at}.group_by_fields", ",".join(agg["groupByFields"]),
                           "An aggregation cannot have group-by fields without a reducer.")
        if aligner == "ALIGN_NONE":
            continue  # "If no per-series aligner is specified ... this field is ignored."
        if "alignmentPeriod" not in agg:
            raise invalid(f"{at}.alignment_period", "",
                           f"the aligner {aligner} needs an alignment period (at least 60 s).")
        seconds = duration_seconds(agg["alignmentPeriod"])
        if seconds < 60 or seconds % 60 or seconds > MAX_ALIGNMENT_SECONDS:
            raise invalid(f"{at}.alignment_period", agg["alignmentPeriod"],
                           f"alignment period must be in multiples of one minute, from 60 s to {MAX_ALIGNMENT_SECONDS} s")


def _check_user_metrics(world: Store, flt: str, now: float | None) -> None:
    """A user (log-based) metric a filter names must exist, as for the real API, and (``now`` given)
    be older than the scenario's propagation delay: Google answers a metric it does not know yet
    exactly as one that does not exist (hashicorp/terraform-provider-google#11102)."""
    metrics = records(world, "log_metrics")
    for metric_type in _METRIC_TYPE.findall(flt):
        if not metric_type.startswith(USER_METRIC_PREFIX):
            continue
        rec = metrics.get(metric_type.removeprefix(USER_METRIC_PREFIX))
        if rec is None or (now is not None and not _propagated(world, rec["resource"], now)):
            raise ApiError(404, "NOT_FOUND",
                           f'Cannot find metric(s) that match type = "{metric_type}". If a metric was created '
                           "recently, it could take up to 10 minutes to become available. Please try again soon.")


def _propagated(world: Store, metric: dict[str, Any], now: float) -> bool:
    """Whether the metric's createTime is the scenario's propagation delay old, in the twin's time
    (one real second is ``clock_scale`` twin seconds, as for every window of the twin). An update
    (PUT) of an existing metric keeps its createTime, so it does not start the delay again."""
    delay = float(world.state.get("timing", {}).get("metric_propagation_seconds", 600))
    created = datetime.fromisoformat(metric["createTime"].replace("Z", "+00:00")).timestamp()
    return (now - created) * float(world.state.get("clock_scale", 1.0)) >= delay



def imposed(world: Store) -> list[dict[str, Any]]:
    """The waits Cloud Monitoring imposes on a new log-based metric (twin.world.imposed): from its
    createTime until an alert policy may read it (``metric_propagation_seconds`` of twin time, so
    that divided by the clock scale in real seconds). Metrics that existed at the reset (the
    scenario's, created long before) impose nothing."""
    st = world.state
    delay = float(st.get("timing", {}).get("metric_propagation_seconds", 600))
    scale = float(st.get("clock_scale", 1.0))
    out = []
    for name, rec in records(world, "log_metrics").items():
        created = datetime.fromisoformat(rec["resource"]["createTime"].replace("Z", "+00:00")).timestamp()
        if created >= st["reset_at"]:
            out.append(imposed_event("propagation", "monitoring", USER_METRIC_PREFIX + name, created,
                                     created + delay / scale))
    return out


# ---- scenario and status ------------------------------------------------------------------------------


def seed(world: Store, sc: Scenario) -> None:
    """At reset: the scenario's notification channels and alert policies (a capture's; none in a
    hand-written scenario), each stored as read, under its own id."""
    project = world.state["project"]
    world.state["notification_channels"] = {
        c.id: {"resource": roundtrip(monitoring_v3.NotificationChannel, {
            "name": f"projects/{project}/notificationChannels/{c.id}",
            "type": c.type,
            "displayName": c.display_name,
            **({"labels": {"email_address": c.email}} if c.email else {}),
            "enabled": True,
        })}
        for c in sc.notification_channels
    }
    world.state["alert_policies"] = {
        p["name"].rsplit("/", 1)[-1]: {"resource": roundtrip(monitoring_v3.AlertPolicy, p)}
        for p in sc.alert_policies
    }
