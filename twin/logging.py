"""Cloud Logging v2 as world logic: ``entries:list`` over every log the twin keeps, the request log
Cloud Run writes, and log-based metrics (no HTTP here; :mod:`twin.server` decodes requests).

The logs are lists in ``world.state``, each in timestamp order: ``request_log`` (written here, as
Cloud Run writes ``run.googleapis.com%2Frequests``) and ``run_log`` (revisions' stdout/stderr, written
by :mod:`twin.run`; the egress failures behind a troubled connector come from :mod:`twin.vpcaccess`
through it). Serverless VPC Access writes no log of its own here: Google documents only its audit logs.

Log-based metrics: a metric needs a name of the API's characters and a filter; creating an existing
one is ALREADY_EXISTS, while ``update`` (PUT) creates or replaces.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from itertools import chain
from typing import TYPE_CHECKING, Any

from google.cloud.logging_v2.types import LogMetric

from twin.logfilter import matches
from twin.store import (
    ApiError, DataAnswer, Store, check_project, invalid, paginate, parse_body, records, rfc3339, roundtrip,
)

if TYPE_CHECKING:
    from twin.scenario import Scenario

REQUEST_LOG_CAP = 20_000
USER_METRIC_PREFIX = "logging.googleapis.com/user/"
OPERATOR = "goldenpath@twin"  # who the mutation records name (the real API names the caller)
# The logs entries:list reads, by their key in the world's state.
LOGS = ("request_log", "run_log")


# ---- entries ----------------------------------------------------------------------------------


def list_entries(
    world: Store, resource_names: list[str], filter_: str, order_desc: bool, page_size: int, page_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    projects = {f"projects/{world.state['project']}"}
    if not resource_names or not set(resource_names) <= projects:
        raise ApiError(
            403, "PERMISSION_DENIED",
            f"The twin holds logs only for {sorted(projects)}; asked for {resource_names}.",
        )
    # Every log the twin keeps, in timestamp order. Each list is a few runs already in order (the
    # seeded request history is one run per service), which Python's sort merges in linear time;
    # rfc3339() timestamps compare correctly as strings.
    merged = sorted(chain.from_iterable(world.state.get(key, []) for key in LOGS), key=lambda e: e["timestamp"])
    hits = [e for e in merged if matches(filter_, e)]
    if order_desc:
        hits.reverse()
    start = int(page_token or 0)
    nxt = str(start + page_size) if start + page_size < len(hits) else None
    return hits[start : start + page_size], nxt


def log_request(
    world: Store, svc: dict[str, Any], revision: str, host: str, path: str, answer: DataAnswer, at: float,
    method: str = "GET",
) -> None:
    """One entry of the request log (run.googleapis.com%2Frequests), as Cloud Run writes it; the
    data plane's WebSocket sessions are logged here too (101 accepted, 4xx/5xx refused)."""
    name = svc["name"].rsplit("/", 1)[-1]
    severity = "ERROR" if answer.status >= 500 else "WARNING" if answer.status >= 400 else "INFO"
    entry = {
        "logName": f"projects/{world.state['project']}/logs/run.googleapis.com%2Frequests",
        "resource": {
            "type": "cloud_run_revision",
            "labels": {
                "project_id": world.state["project"],
                "location": world.state["region"],
                "service_name": name,
                "revision_name": revision,
                "configuration_name": name,
            },
        },
        "timestamp": rfc3339(at),
        "receiveTimestamp": rfc3339(at + answer.latency),
        "severity": severity,
        "insertId": uuid.uuid4().hex[:16],
        "httpRequest": {
            "requestMethod": method,
            "requestUrl": f"https://{host}{path}",
            "status": answer.status,
            "responseSize": str(len(json.dumps(answer.body))),
            "userAgent": "goldenpath-probe",
            "remoteIp": "127.0.0.1",
            "latency": f"{answer.latency:.6f}s",
            "protocol": "HTTP/1.1",
        },
    }
    log = world.state["request_log"]
    log.append(entry)
    if len(log) > REQUEST_LOG_CAP:
        del log[: len(log) - REQUEST_LOG_CAP]
    world.dirty = True


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
        raise invalid("metric.name", name,
                       "a metric name has at most 100 characters out of A-Z, a-z, 0-9 and _-.,+!*',()%/, "
                       "and does not start with /.")


def parse_metric(text: bytes) -> dict[str, Any]:
    return parse_body(LogMetric, text)


def _metric_record(world: Store, project: str, name: str) -> dict[str, Any]:
    check_project(world, project, "log-based metrics")
    rec = records(world, "log_metrics").get(name)
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
        raise invalid("metric.filter", filter_[:40] + "…", f"the filter is limited to {MAX_FILTER} characters.")
    if len(body.get("description", "")) > MAX_DESCRIPTION:
        raise invalid("metric.description", body["description"][:40] + "…",
                       f"the description is limited to {MAX_DESCRIPTION} characters.")
    # Output only (createTime, updateTime, metricDescriptor name/type/description): the server's.
    resource = {k: v for k, v in body.items() if k not in ("createTime", "updateTime", "version")}
    given = body.get("metricDescriptor", {})
    if previous is not None:
        old = previous.get("metricDescriptor", {})
        for key in ("metricKind", "valueType"):
            if given.get(key) and given[key] != old.get(key):
                raise invalid(f"metric.metric_descriptor.{key}", given[key],
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
    return roundtrip(LogMetric, resource)


def list_metrics(world: Store, project: str, page_size: int, page_token: str | None) -> dict[str, Any]:
    check_project(world, project, "log-based metrics")
    items = [rec["resource"] for _, rec in sorted(records(world, "log_metrics").items())]
    page, nxt = paginate(items, page_size, page_token, 100)
    out: dict[str, Any] = {"metrics": page}
    if nxt:
        out["nextPageToken"] = nxt
    return out


def get_metric(world: Store, project: str, name: str) -> dict[str, Any]:
    return dict(_metric_record(world, project, name)["resource"])


def create_metric(world: Store, project: str, body: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    check_project(world, project, "log-based metrics")
    resource = _metric_resource(project, body, None, now)
    metrics = records(world, "log_metrics")
    if resource["name"] in metrics:
        raise ApiError(409, "ALREADY_EXISTS", f"Metric {resource['name']} already exists.")
    metrics[resource["name"]] = {"resource": resource}
    world.dirty = True
    return resource


def update_metric(world: Store, project: str, name: str, body: dict[str, Any], now: float | None = None
                  ) -> dict[str, Any]:
    """``metrics.update`` (PUT): "Creates or updates a logs-based metric"."""
    now = time.time() if now is None else now
    check_project(world, project, "log-based metrics")
    check_metric_name(name)
    if body.get("name") != name:
        raise invalid("metric.name", body.get("name", ""),
                       f"the metric's name must be the [METRIC_ID] of the request, {name!r}.")
    metrics = records(world, "log_metrics")
    previous = metrics.get(name, {}).get("resource")
    metrics[name] = {"resource": _metric_resource(project, body, previous, now)}
    world.dirty = True
    return metrics[name]["resource"]


def delete_metric(world: Store, project: str, name: str) -> dict[str, Any]:
    _metric_record(world, project, name)
    del world.state["log_metrics"][name]
    world.dirty = True
    return {}



def seed(world: Store, sc: Scenario, now: float) -> None:
    """At reset: empty logs, and the scenario's hand-made log-based metrics."""
    project = world.state["project"]
    world.state.update(request_log=[], log_metrics={})
    for m in sc.log_metrics:
        # Created by someone else, by hand, a month before the incident.
        body = {"name": m.name, "filter": m.filter, **({"description": m.description} if m.description else {})}
        world.state["log_metrics"][m.name] = {"resource": _metric_resource(project, body, None, now - 30 * 86400)}


def status(world: Store) -> dict[str, Any]:
    st = world.state
    return {"logging": {"request_log_entries": len(st["request_log"]),
                        "run_log_entries": len(st.get("run_log", []))}}


def log_metrics(world: Store) -> list[dict[str, Any]]:
    return [r["resource"] for _, r in sorted(world.state.get("log_metrics", {}).items())]
