"""Cloud Logging v2 as world logic: ``entries:list`` over every log the twin keeps, the request log
Cloud Run writes, and log-based metrics (no HTTP here; :mod:`twin.server` decodes requests).

The logs are lists in ``world.state``, each in timestamp order: ``request_log`` (written here, as
Cloud Run writes ``run.googleapis.com%2Frequests``) and ``run_log`` (revisions' stdout/stderr, written
by :mod:`twin.run`; the egress failures behind a troubled connector come from :mod:`twin.vpcaccess`
through it). Serverless VPC Access writes no log of its own here: Google documents only its audit logs.

``entries:list`` searches a bounded slice of the filter's time range per call (empty pages with a
nextPageToken included, as the API's are) and is metered by the per-project read quota, 60 calls a
rolling minute (429 RESOURCE_EXHAUSTED beyond): see ``list_entries`` and ``admit_read``.

Log-based metrics: a metric needs a name of the API's characters and a filter; creating an existing
one is ALREADY_EXISTS, while ``update`` (PUT) creates or replaces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from bisect import bisect_left, bisect_right
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from google.cloud.logging_v2.types import LogMetric

from twin.logfilter import FilterError, indexed, matches_terms, parse
from twin.store import (
    ApiError, DataAnswer, Store, check_project, invalid, list_body, lookup, parse_body, records, rfc3339, roundtrip,
)

if TYPE_CHECKING:
    from twin.scenario import Scenario

REQUEST_LOG_CAP = 20_000
USER_METRIC_PREFIX = "logging.googleapis.com/user/"
OPERATOR = "goldenpath@twin"  # who the mutation records name (the real API names the caller)
# The logs entries:list reads, by their key in the world's state.
LOGS = ("request_log", "run_log")


# ---- entries ----------------------------------------------------------------------------------


# entries.list reads a project's logs in (timestamp, insertId) order ("Entries with equal timestamps
# are returned in order of their insert_id values", logging.v2.json ListLogEntriesRequest.orderBy);
# a page token is the key of the
# last entry a call looked at, so a continued search resumes right after it whatever was logged
# since (new entries, or old ones dropped at the cap, do not shift it as an offset would).
_TOKEN = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)\|([0-9a-f]{0,64})$")
QUOTA_WINDOW_SECONDS = 60.0
# entries.list "did not have time to search all the possible log entries" (logging.v2.json,
# ListLogEntriesResponse.nextPageToken): the twin models that time as a number of entries of the
# query's time range looked at per call (scenario: logging.entries_scanned_per_page). This default
# makes a query over the incident's half hour of history (about 500 entries) take three calls.
ENTRIES_SCANNED_PER_PAGE = 200
# "Number of entries.list requests — 60 per minute, per Google Cloud project"
# (https://cloud.google.com/logging/quotas#api-limits; scenario: logging.read_requests_per_minute).
READ_REQUESTS_PER_MINUTE = 60


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    # rfc3339() timestamps all have six fractional digits and a Z: they compare correctly as strings.
    return entry["timestamp"], entry.get("insertId", "")


def encode_token(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode("|".join(key).encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, str]:
    """A token this twin handed out, or INVALID_ARGUMENT (tokens are opaque: anything else is refused)."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    m = _TOKEN.match(text)
    if m is None:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid page token {token!r}.")
    return m.group(1), m.group(2)


def _time_range(filter_: str) -> tuple[str | None, str | None]:
    """The bounds the filter puts on ``timestamp`` (AND-ed terms only, as the twin's filters are):
    the search covers that range and no more, as Logging's does ("narrow the time range of the
    search" is the API's advice for a quicker one)."""
    lo = hi = None
    for field, op, value in parse(filter_):
        if field != "timestamp" or op not in (">", ">=", "<", "<="):
            continue
        try:
            at = rfc3339(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            raise FilterError(f"Invalid timestamp {value!r} in the filter") from None
        if op.startswith(">"):
            lo = at if lo is None else max(lo, at)
        else:
            hi = at if hi is None else min(hi, at)
    return lo, hi


def list_entries(
    world: Store, resource_names: list[str], filter_: str, order_desc: bool, page_size: int, page_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One call's worth of search: at most ``entries_scanned_per_page`` entries of the filter's time
    range are looked at, after the token's entry; the matches among them (up to ``page_size``) are
    the page, and a token is returned while the range holds entries not yet looked at. Entries the
    filter's terms on automatically indexed fields exclude are not looked at (twin.logfilter.indexed). A slice with
    no match is an empty page with a token, as logging.v2.json describes: "the search found no log
    entries so far but it did not have time to search all the possible log entries"."""
    projects = {f"projects/{world.state['project']}"}
    if not resource_names or not set(resource_names) <= projects:
        raise ApiError(
            403, "PERMISSION_DENIED",
            f"The twin holds logs only for {sorted(projects)}; asked for {resource_names}.",
        )
    cursor = decode_token(page_token) if page_token else None
    lo, hi = _time_range(filter_)
    # Every log the twin keeps, in key order. Each list is a few runs already in order (the seeded
    # request history is one run per service), which Python's sort merges in linear time.
    merged = sorted(chain.from_iterable(world.state.get(key, []) for key in LOGS), key=_key)
    keys = [_key(e) for e in merged]
    first = 0 if lo is None else bisect_left(keys, (lo, ""))
    end = len(merged) if hi is None else bisect_right(keys, (hi, "\uffff"))
    if cursor is not None:
        if order_desc:
            end = min(end, bisect_left(keys, cursor))    # strictly older than the last one looked at
        else:
            first = max(first, bisect_right(keys, cursor))  # strictly newer
    scan = limits(world)["entries_scanned_per_page"]
    indices = range(end - 1, first - 1, -1) if order_desc else range(first, end)
    terms = parse(filter_)
    by_index = indexed(terms)
    page: list[dict[str, Any]] = []
    looked = 0
    last = len(indices)  # the position of the last entry this call got to (all of them: no token)
    for pos, i in enumerate(indices):
        # An entry the indexed terms exclude is never read (Logging's automatic indexes): it costs
        # the search nothing. Every other entry of the range is looked at, matching or not.
        if not matches_terms(by_index, merged[i]):
            continue
        looked += 1
        if matches_terms(terms, merged[i]):
            page.append(merged[i])
        if len(page) == page_size or looked == scan:
            last = pos
            break
    more = last < len(indices) - 1
    return page, (encode_token(keys[indices[last]]) if more else None)


def limits(world: Store) -> dict[str, int]:
    # A world saved before these settings existed gets the defaults.
    return {"entries_scanned_per_page": ENTRIES_SCANNED_PER_PAGE, "read_requests_per_minute": READ_REQUESTS_PER_MINUTE,
            **world.state.get("logging_limits", {})}


def project_number(project: str) -> str:
    """The twin has project ids only; quota errors name the consumer by number, so it makes up a
    stable twelve-digit one from the id."""
    return str(int(hashlib.sha1(project.encode()).hexdigest(), 16) % 10**12).zfill(12)


def admit_read(world: Store, now: float) -> None:
    """The per-project read quota of entries.list: "Number of entries.list requests — 60 per minute,
    per Google Cloud project" (https://cloud.google.com/logging/quotas#api-limits), over a rolling
    minute of real time whatever the twin's clock scale: a quota meters a client's request rate, and
    the gate's retries and pauses are in real seconds. A refused call does not use the quota."""
    limit = limits(world)["read_requests_per_minute"]
    recent = [t for t in world.state.get("logging_reads", []) if t > now - QUOTA_WINDOW_SECONDS]
    if len(recent) >= limit:
        world.state["logging_reads"] = recent
        number = project_number(world.state["project"])
        # The text and ErrorInfo of a real refusal (snarfed/bridgy-fed#620, DefangLabs/defang#1268).
        raise ApiError(
            429, "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service "
            f"'logging.googleapis.com' for consumer 'project_number:{number}'.",
            details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
              "domain": "googleapis.com",
              "metadata": {"consumer": f"projects/{number}", "quota_limit": "ReadRequestsPerMinutePerProject",
                           "quota_limit_value": str(limit), "quota_location": "global",
                           "quota_metric": "logging.googleapis.com/read_requests",
                           "service": "logging.googleapis.com"}},
             {"@type": "type.googleapis.com/google.rpc.Help",
              "links": [{"description": "Request a higher quota limit.",
                         "url": "https://cloud.google.com/docs/quota#requesting_higher_quota"}]}],
        )
    recent.append(now)
    world.state["logging_reads"] = recent
    world.dirty = True


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
    return lookup(world, project, "log_metrics", name, "log-based metrics",
                  f"Metric projects/{project}/metrics/{name} does not exist.")


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
    return list_body("metrics", items, page_size, page_token, 100)


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
    world.state.update(request_log=[], log_metrics={}, logging_limits=sc.logging.model_dump(), logging_reads=[])
    for m in sc.log_metrics:
        # Created by someone else, by hand, a month before the incident.
        body = {"name": m.name, "filter": m.filter, **({"description": m.description} if m.description else {})}
        world.state["log_metrics"][m.name] = {"resource": _metric_resource(project, body, None, now - 30 * 86400)}


def status(world: Store) -> dict[str, Any]:
    st = world.state
    now = time.time()
    return {"logging": {"request_log_entries": len(st["request_log"]),
                        "run_log_entries": len(st.get("run_log", [])),
                        # entries.list calls the read quota admitted in the last (real) minute, and the quota
                        "entries_list_last_minute": sum(t > now - QUOTA_WINDOW_SECONDS
                                                        for t in st.get("logging_reads", [])),
                        "read_requests_per_minute": limits(world)["read_requests_per_minute"]}}


def log_metrics(world: Store) -> list[dict[str, Any]]:
    return [r["resource"] for _, r in sorted(world.state.get("log_metrics", {}).items())]
