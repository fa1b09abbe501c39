"""Serverless VPC Access v1 connectors, their Cloud Monitoring metrics, and what the services
behind a troubled connector log.

World logic only (no HTTP here): :mod:`twin.server` parses requests and calls these functions. The
state stays in the APIs' REST JSON, as in :mod:`twin.world`, and time is lazy: an operation stores
when it finishes and :func:`advance` (called from ``World.advance`` at every request) completes it
and writes the services' egress failures up to ``now``.

The rules reproduced here are the ones a remediation can trip over:

* ``minInstances`` 2–9, ``maxInstances`` 3–10, min below max, and a machine type the API knows;
* a connector cannot be scaled down: a patch that lowers min or max instances is refused;
* a patch WITHOUT ``updateMask`` replaces every modifiable field with the body's: a field the body
  leaves out falls back to its default (e2-micro, 2, 10), exactly like a field named in the mask
  but absent from the body. Only a patch whose mask names its fields leaves the others alone;
* create, patch and delete are long-running: the connector is CREATING / UPDATING / DELETING, and
  carries no traffic, until the operation completes ``timing.deploy_seconds`` later;
* a connector whose egress exceeds ``maxInstances × throughput(machineType)`` is overloaded. While
  overloaded or not READY it drops connections. Google documents no connector log for that (only
  audit logs of API calls: https://cloud.google.com/vpc/docs/serverless-vpc-access-audit-logging),
  so the twin writes none: the Cloud Run services behind it print their socket errors to their
  own stderr (:func:`log_egress_failures`), and the connector's metrics
  (``vpcaccess.googleapis.com/connector/*``, :func:`connector_series`) show the load.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from google.cloud.vpcaccess_v1.types import vpc_access

from twin import run
from twin.store import ApiError, Store, imposed_event, rfc3339, roundtrip

if TYPE_CHECKING:
    from twin.scenario import Scenario

# Per-instance throughput (Mbps) by machine type. Serverless VPC Access's "Throughput and scaling"
# table (https://cloud.google.com/vpc/docs/serverless-vpc-access#scaling, read through copies
# citing it) gives f1-micro 100-500, e2-micro 200-1000 and e2-standard-4 3200-16000 Mbps for 2 to
# 10 instances, i.e. 50 / 100 / 1600 per instance; the API's deprecated maxThroughput ("expected
# throughput when using an e2-micro machine type", 100 per instance) agrees for e2-micro.
THROUGHPUT_MBPS = {"f1-micro": 50, "e2-micro": 100, "e2-standard-4": 1600}
MIN_INSTANCES = (2, 9)
MAX_INSTANCES = (3, 10)
# What an unset field becomes, on create and on a patch that replaces it (the API's documented defaults).
DEFAULTS: dict[str, Any] = {"machineType": "e2-micro", "minInstances": 2, "maxInstances": 10}

# The fields a patch may change, by their JSON name; updateMask paths may use either spelling.
MODIFIABLE = ("machineType", "minInstances", "maxInstances", "minThroughput", "maxThroughput")
IMMUTABLE = ("name", "network", "ipCidrRange", "subnet")
OUTPUT_ONLY = ("state", "connectedProjects")

METHOD = "google.cloud.vpcaccess.v1.VpcAccessService.{}Connector"
OPERATION_METADATA = f"type.googleapis.com/{vpc_access.OperationMetadata.meta.full_name}"
CONNECTOR_TYPE = f"type.googleapis.com/{vpc_access.Connector.meta.full_name}"
EMPTY_TYPE = "type.googleapis.com/google.protobuf.Empty"

# The connector's metrics (Google's sample dashboard networking/vpc-connector-access-monitoring.json
# and metrics_gcp#gcp-vpcaccess): monitored resource vpc_access_connector, labels project_id,
# location, connector_name. Kinds and value types as the research notes infer them.
CONNECTOR_RESOURCE = "vpc_access_connector"
CPU_METRIC = "vpcaccess.googleapis.com/connector/cpu/utilizations"
INSTANCES_METRIC = "vpcaccess.googleapis.com/connector/instances"
SENT_METRIC = "vpcaccess.googleapis.com/connector/sent_bytes_count"
RECEIVED_METRIC = "vpcaccess.googleapis.com/connector/received_bytes_count"
METRIC_KINDS = {CPU_METRIC: ("GAUGE", "DISTRIBUTION"), INSTANCES_METRIC: ("GAUGE", "INT64"),
                SENT_METRIC: ("DELTA", "INT64"), RECEIVED_METRIC: ("DELTA", "INT64")}
# The twin's load model (not Google's): scale out past 60 % of what the active instances carry;
# requests and answers split the bytes evenly between the two directions; CPU in 5 % buckets.
SCALE_OUT_AT = 0.6
SENT_SHARE = 0.5
CPU_BUCKETS, CPU_BUCKET_WIDTH = 20, 0.05
# What an application prints when its connection through the connector times out or is reset
# (the shapes quoted in public threads: Go's net package, Node's ETIMEDOUT, Python's errno 104).
# The addresses are the twin's placeholders for Cloud SQL's private IP and Memorystore.
EGRESS_ERRORS = (
    "failed to connect to database: dial tcp 10.20.0.3:5432: i/o timeout",
    "redis: dial tcp 10.20.1.4:6379: connect: connection timed out",
    "psycopg2.OperationalError: could not receive data from server: Connection reset by peer",
    "Error: connect ETIMEDOUT 10.20.0.3:5432",
)
# An idle twin left for days must not generate a week of entries in one request.
MAX_BACKFILL_SECONDS = 6 * 3600


# ---- encoding ---------------------------------------------------------------------------------


def encode_connector(body: dict[str, Any]) -> dict[str, Any]:
    return roundtrip(vpc_access.Connector, body)


def parse_connector(text: bytes) -> dict[str, Any]:
    """A request body as the API decodes it: unknown fields are INVALID_ARGUMENT.

    proto3 int32 fields have no presence, so ``"minInstances": 0`` reads as unset, as it does
    for the real API.
    """
    try:
        raw = json.loads(text or b"{}")
        if not isinstance(raw, dict):
            raise ValueError("the body is not a JSON object")
        return roundtrip(vpc_access.Connector, raw)
    except Exception as exc:  # the message type rejected it: what the API calls a bad request
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from None


def operation_json(op: dict[str, Any]) -> dict[str, Any]:
    """A google.longrunning.Operation with vpcaccess OperationMetadata, encoded through the types."""
    meta = {"method": op["method"], "createTime": op["createTime"], "target": op["target"]}
    if op["done"]:
        meta["endTime"] = op["endTime"]
    out: dict[str, Any] = {
        "name": op["name"],
        "metadata": {"@type": OPERATION_METADATA, **roundtrip(vpc_access.OperationMetadata, meta)},
        "done": op["done"],
    }
    if op["done"]:
        if op["kind"] == "delete":
            out["response"] = {"@type": EMPTY_TYPE}
        else:
            out["response"] = {"@type": CONNECTOR_TYPE, **encode_connector(op["response"])}
    return out


# ---- connectors ---------------------------------------------------------------------------------


def _parent(world: Store, project: str, location: str) -> str:
    if project != world.state["project"] or location != world.state["region"]:
        # The twin holds one project and region; anything else has no connectors here.
        raise ApiError(404, "NOT_FOUND", f"Location projects/{project}/locations/{location} has no connectors in this twin.")
    return f"projects/{project}/locations/{location}"


def _record(world: Store, project: str, location: str, name: str) -> dict[str, Any]:
    parent = _parent(world, project, location)
    rec = world.state["connectors"].get(name)
    if rec is None:
        raise ApiError(404, "NOT_FOUND", f"Resource '{parent}/connectors/{name}' was not found")
    return rec


def get_connector(world: Store, project: str, location: str, name: str) -> dict[str, Any]:
    return encode_connector(_record(world, project, location, name)["resource"])


def list_connectors(world: Store, project: str, location: str, page_size: int, page_token: str | None
                    ) -> dict[str, Any]:
    _parent(world, project, location)
    if page_size < 0:
        raise ApiError(400, "INVALID_ARGUMENT", f"page_size must not be negative, got {page_size}.")
    if page_token and not page_token.isdigit():
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid page token {page_token!r}.")
    items = [encode_connector(r["resource"]) for _, r in sorted(world.state["connectors"].items())]
    start, size = int(page_token or 0), page_size or 100
    out: dict[str, Any] = {"connectors": items[start:start + size]}
    if start + size < len(items):
        out["nextPageToken"] = str(start + size)
    return out


def capacity_mbps(resource: dict[str, Any]) -> int:
    return int(resource.get("maxInstances", 0)) * THROUGHPUT_MBPS.get(resource.get("machineType", ""), 0)


def trouble(rec: dict[str, Any]) -> str | None:
    """Why the connector drops connections now, or None when it carries its traffic."""
    res = rec["resource"]
    name = res["name"].rsplit("/", 1)[-1]
    if res.get("state") != "READY":
        return f"vpc connector {name} is {res.get('state', 'STATE_UNSPECIFIED')}, not READY"
    load, cap = rec.get("load_mbps", 0), capacity_mbps(res)
    if load > cap:
        return f"vpc connector {name} overloaded ({load:g} Mbps over {cap} Mbps capacity)"
    return None


def _instances(fields: dict[str, Any]) -> tuple[int, int]:
    """min/max instances; the deprecated throughput fields count only when instances are unset."""
    lo = fields.get("minInstances") or (fields["minThroughput"] // 100 if fields.get("minThroughput") else 0)
    hi = fields.get("maxInstances") or (fields["maxThroughput"] // 100 if fields.get("maxThroughput") else 0)
    return int(lo or DEFAULTS["minInstances"]), int(hi or DEFAULTS["maxInstances"])


def _validate(machine: str, lo: int, hi: int) -> None:
    if machine not in THROUGHPUT_MBPS:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"Invalid machine type {machine!r}; supported: {', '.join(THROUGHPUT_MBPS)}.")
    if not MIN_INSTANCES[0] <= lo <= MIN_INSTANCES[1]:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"min_instances must be between {MIN_INSTANCES[0]} and {MIN_INSTANCES[1]}, got {lo}.")
    if not MAX_INSTANCES[0] <= hi <= MAX_INSTANCES[1]:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"max_instances must be between {MAX_INSTANCES[0]} and {MAX_INSTANCES[1]}, got {hi}.")
    if lo >= hi:
        raise ApiError(400, "INVALID_ARGUMENT", f"min_instances ({lo}) must be lower than max_instances ({hi}).")


def _sized(machine: str, lo: int, hi: int) -> dict[str, Any]:
    # The deprecated throughput fields are still reported, in e2-micro-equivalent 100 Mbps steps.
    return {"machineType": machine, "minInstances": lo, "maxInstances": hi,
            "minThroughput": lo * 100, "maxThroughput": hi * 100}


_ID = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def create_connector(world: Store, project: str, location: str, connector_id: str | None,
                     body: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    parent = _parent(world, project, location)
    if not connector_id:
        raise ApiError(400, "INVALID_ARGUMENT", "connector_id is required.")
    # The console's rule: a Compute Engine name, under 21 characters with hyphens counting double.
    if not _ID.match(connector_id) or len(connector_id) + connector_id.count("-") > 20:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"Invalid connector id {connector_id!r}: lowercase letters, digits and hyphens, starting "
                       "with a letter, under 21 characters (hyphens count as two).")
    name = f"{parent}/connectors/{connector_id}"
    if body.get("name") and body["name"] != name:
        raise ApiError(400, "INVALID_ARGUMENT", f"connector.name {body['name']!r} does not match {name!r}.")
    if connector_id in world.state["connectors"]:
        raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists")
    subnet = body.get("subnet")
    if not body.get("network") and not (subnet and subnet.get("name")):
        raise ApiError(400, "INVALID_ARGUMENT", "Either network or subnet.name must be given.")
    if body.get("network") and not subnet:
        _check_cidr(world, body.get("network", ""), body.get("ipCidrRange", ""))
    machine = body.get("machineType") or DEFAULTS["machineType"]
    lo, hi = _instances(body)
    _validate(machine, lo, hi)
    resource = {"name": name, **{k: body[k] for k in ("network", "ipCidrRange", "subnet") if body.get(k)},
                "state": "CREATING", **_sized(machine, lo, hi)}
    # The traffic is the services' egress, not the connector's: a connector created again under the
    # same name carries what the old one carried.
    traffic = world.state.setdefault("connector_traffic", {}).get(connector_id, {})
    rec = world.state["connectors"][connector_id] = {
        "resource": resource,
        "load_mbps": traffic.get("load_mbps", 0),
        "errors_per_minute": traffic.get("errors_per_minute", 4),
        "reports_metrics": traffic.get("reports_metrics", True),
        "logged_until": now,
    }
    _remember(rec, now)
    return _start(world, "create", name, now)


def _check_cidr(world: Store, network: str, cidr: str) -> None:
    try:
        net = ipaddress.ip_network(cidr)
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", f"ip_cidr_range {cidr!r} is not a valid IP range.") from None
    if net.prefixlen != 28:
        raise ApiError(400, "INVALID_ARGUMENT", f"ip_cidr_range must be a /28 range, got {cidr!r}.")
    for other in world.state["connectors"].values():
        res = other["resource"]
        if res.get("network") == network and res.get("ipCidrRange") and \
                ipaddress.ip_network(res["ipCidrRange"]).overlaps(net):
            raise ApiError(400, "INVALID_ARGUMENT",
                           f"ip_cidr_range {cidr} overlaps the range of connector {res['name']}.")


def _mask_paths(update_mask: str | None) -> list[str] | None:
    """updateMask as JSON field names; None when absent or '*' (replace every modifiable field)."""
    if update_mask is None or update_mask.strip() in ("", "*"):
        return None
    paths = []
    for raw in update_mask.split(","):
        path = raw.strip()
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)
        if camel in MODIFIABLE:
            paths.append(camel)
        elif camel in IMMUTABLE or camel in OUTPUT_ONLY:
            raise ApiError(400, "INVALID_ARGUMENT", f"Field {path!r} in update_mask cannot be updated.")
        else:
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid update_mask path {path!r}: not a field of Connector.")
    return paths


def patch_connector(world: Store, project: str, location: str, name: str, body: dict[str, Any],
                    update_mask: str | None, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    rec = _record(world, project, location, name)
    current = rec["resource"]
    if body.get("name") and body["name"] != current["name"]:
        raise ApiError(400, "INVALID_ARGUMENT", f"connector.name {body['name']!r} does not match the request path.")
    if current.get("state") != "READY":
        raise ApiError(400, "FAILED_PRECONDITION",
                       f"Connector {current['name']} is {current.get('state')}; wait for its operation to finish.")
    paths = _mask_paths(update_mask)
    if paths is None:
        # No mask: every modifiable field takes the body's value, absent ones their defaults. Fields
        # that cannot change may be repeated, not altered.
        for field in ("network", "ipCidrRange", "subnet"):
            if field in body and body[field] != current.get(field):
                raise ApiError(400, "INVALID_ARGUMENT", f"Field {field!r} of a connector cannot be updated.")
        wanted = {f: body[f] for f in MODIFIABLE if f in body}
    else:
        # A masked field absent from the body is cleared (FieldMask semantics); others stay.
        wanted = {f: current.get(f) for f in MODIFIABLE if f not in paths}
        wanted.update({f: body[f] for f in paths if f in body})
        if "minInstances" in paths and "minThroughput" not in paths:
            wanted.pop("minThroughput", None)  # the new count wins over the old throughput
        if "maxInstances" in paths and "maxThroughput" not in paths:
            wanted.pop("maxThroughput", None)
    machine = wanted.get("machineType") or DEFAULTS["machineType"]
    lo, hi = _instances(wanted)
    _validate(machine, lo, hi)
    old_lo, old_hi = int(current.get("minInstances", 0)), int(current.get("maxInstances", 0))
    if lo < old_lo or hi < old_hi:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"Scale-down is not supported: min_instances/max_instances can only increase "
                       f"(now {old_lo}/{old_hi}, asked {lo}/{hi}). Delete and recreate the connector to shrink it.")
    rec["resource"] = {**current, **_sized(machine, lo, hi), "state": "UPDATING"}
    _remember(rec, now)
    return _start(world, "update", current["name"], now)


def delete_connector(world: Store, project: str, location: str, name: str, now: float | None = None
                     ) -> dict[str, Any]:
    now = time.time() if now is None else now
    rec = _record(world, project, location, name)
    res = rec["resource"]
    if res.get("state") in ("CREATING", "UPDATING", "DELETING"):
        raise ApiError(400, "FAILED_PRECONDITION",
                       f"Connector {res['name']} is {res['state']}; wait for its operation to finish.")
    rec["resource"] = {**res, "state": "DELETING"}
    _remember(rec, now)
    return _start(world, "delete", res["name"], now)


def _start(world: Store, kind: str, target: str, now: float) -> dict[str, Any]:
    project, location = target.split("/")[1], target.split("/")[3]
    op_id = str(uuid.uuid4())
    op = {
        "name": f"projects/{project}/locations/{location}/operations/{op_id}",
        "kind": kind,
        "method": METHOD.format(kind.capitalize()),
        "target": target,
        "createTime": rfc3339(now),
        "accepted_at": now,
        "done_at": now + world.state["timing"]["deploy_seconds"],
        "done": False,
    }
    world.state.setdefault("vpc_operations", {})[op_id] = op
    world.dirty = True
    return operation_json(op)


def get_operation(world: Store, project: str, location: str, op_id: str) -> dict[str, Any]:
    op = world.state.get("vpc_operations", {}).get(op_id)
    if op is None or not op["name"].startswith(f"projects/{project}/locations/{location}/"):
        raise ApiError(404, "NOT_FOUND", f"Operation projects/{project}/locations/{location}/operations/{op_id} not found")
    return operation_json(op)


def _complete(world: Store, op: dict[str, Any]) -> None:
    op["done"], op["endTime"] = True, rfc3339(op["done_at"])
    name = op["target"].rsplit("/", 1)[-1]
    rec = world.state["connectors"].get(name)
    if rec is not None:
        if op["kind"] == "delete":
            world.state.setdefault("connector_traffic", {})[name] = {
                "load_mbps": rec.get("load_mbps", 0), "errors_per_minute": rec.get("errors_per_minute", 4),
                "reports_metrics": rec.get("reports_metrics", True)}
            del world.state["connectors"][name]
        else:
            rec["resource"] = {**rec["resource"], "state": "READY"}
            _remember(rec, op["done_at"])
            op["response"] = rec["resource"]
    world.dirty = True


# ---- time ---------------------------------------------------------------------------------------


def advance(world: Store, now: float) -> None:
    """Complete due operations and write the services' egress failures up to ``now``, in time order.

    The log is written up to each completion before the completion is applied, so the minutes
    before a scale-up are logged as failing and the ones after it are not.
    """
    due = sorted((op for op in world.state.get("vpc_operations", {}).values()
                  if not op["done"] and op["done_at"] <= now), key=lambda op: op["done_at"])
    for op in due:
        log_egress_failures(world, op["done_at"])
        _complete(world, op)
    log_egress_failures(world, now)


def _users(world: Store, connector: str) -> list[tuple[str, str]]:
    """(service, serving revision) of every Cloud Run service whose template's vpcAccess names
    ``connector``: their egress is what the connector carries."""
    out = []
    for name, svc in sorted(world.state.get("services", {}).items()):
        ref = (svc["resource"].get("template", {}).get("vpcAccess") or {}).get("connector", "")
        if ref.rsplit("/", 1)[-1] != connector:
            continue
        serving = [t["revision"] for t in run.resolve_traffic_statuses(svc["resource"]) if t["percent"] > 0]
        if serving:
            out.append((name, serving[0]))
    return out


def log_egress_failures(world: Store, until: float) -> None:
    """Write what the services behind every troubled connector print to stderr up to ``until``.

    Google documents no log of its own for a connector that drops traffic (only audit logs of
    API calls); what shows is the application's socket errors on its own stderr. Lines fall on a
    fixed grid (``60 / errors_per_minute`` seconds apart, aligned to the epoch), so seeding at
    reset and lazy generation afterwards produce the same series without overlap. A scenario with
    ``errors_per_minute = 0`` has services that log nothing.
    """
    lines: list[tuple[str, str, str, float]] = []
    for name, rec in world.state["connectors"].items():
        since = rec.get("logged_until", until)
        if until <= since:
            continue
        rec["logged_until"] = until
        world.dirty = True
        rate = rec.get("errors_per_minute", 0)
        if trouble(rec) is None or rate <= 0:
            continue
        users = _users(world, name)
        step = 60.0 / rate
        first = math.floor(max(since, until - MAX_BACKFILL_SECONDS) / step) + 1
        for k in range(first, math.floor(until / step) + 1):
            for service, revision in users:
                lines.append((service, revision, EGRESS_ERRORS[k % len(EGRESS_ERRORS)], k * step))
    run.log_stderr(world, lines)


def seed_errors(world: Store, since: float, until: float) -> None:
    """At reset: the services' egress failures of the history window, then live from ``until``."""
    for rec in world.state["connectors"].values():
        rec["logged_until"] = since
    log_egress_failures(world, until)


# ---- Cloud Monitoring: the connector's metrics ----------------------------------------------------


def _remember(rec: dict[str, Any], at: float) -> None:
    """Note the connector's shape from ``at`` on: its metrics at a time follow the shape it had then."""
    res = rec["resource"]
    rec.setdefault("history", []).append(
        [at, {k: res.get(k) for k in ("state", "machineType", "minInstances", "maxInstances")}])


def _shape_at(rec: dict[str, Any], t: float) -> dict[str, Any] | None:
    shape = None
    for at, snap in rec.get("history", []):
        if at <= t:
            shape = snap
    return shape


def load_model(shape: dict[str, Any], load_mbps: float) -> tuple[int, float, float]:
    """(active instances, CPU utilization 0-1, Mbps carried) of a READY connector under a load.

    The twin's model, not Google's (Google documents no scaling target): instances are added
    when the load passes SCALE_OUT_AT of what the active ones carry, between min and max; CPU is
    the load over what the active instances carry (1.0 when it cannot keep up); what is carried
    is capped by the active instances' throughput.
    """
    per = THROUGHPUT_MBPS.get(shape.get("machineType") or "", 0)
    lo, hi = int(shape.get("minInstances") or 0), int(shape.get("maxInstances") or 0)
    if per <= 0 or hi <= 0:
        return lo, 0.0, 0.0
    n = max(lo, min(hi, math.ceil(load_mbps / (SCALE_OUT_AT * per)) if load_mbps else lo))
    return n, min(1.0, load_mbps / (n * per)), min(load_mbps, n * per)


def _cpu_value(n: int, util: float) -> dict[str, Any]:
    """A Distribution of the instances' CPU utilizations: spread ±10 % around ``util``, capped at 1."""
    values = [min(1.0, util * (0.9 + 0.2 * i / max(1, n - 1))) for i in range(n)]
    mean = sum(values) / n
    counts = [0] * (CPU_BUCKETS + 2)  # underflow, the finite buckets, overflow
    for v in values:
        counts[min(CPU_BUCKETS + 1, 1 + int(v / CPU_BUCKET_WIDTH))] += 1
    return {"distributionValue": {
        "count": str(n), "mean": mean, "sumOfSquaredDeviation": sum((v - mean) ** 2 for v in values),
        "bucketOptions": {"linearBuckets": {"numFiniteBuckets": CPU_BUCKETS, "width": CPU_BUCKET_WIDTH, "offset": 0}},
        "bucketCounts": [str(c) for c in counts]}}


def connector_series(world: Store, flt: Any, start: float, end: float) -> list[dict[str, Any]]:
    """``timeSeries.list`` (no aggregation) of one of the connector metrics, as TimeSeries REST JSON.

    ``flt`` is the parsed filter (its ``metric_type`` and ``matches``). One point per sample period
    in (start, end], newest first, while the connector is READY (the twin's choice: Google
    documents nothing for the other states); a connector whose scenario says it reports no metrics
    has none, and a series without points is left out, as Monitoring does.
    """
    kind, value_type = METRIC_KINDS[flt.metric_type]
    period = int(world.state.get("timing", {}).get("metric_period_seconds", 60))
    project, region = world.state["project"], world.state["region"]
    out = []
    for name, rec in sorted(world.state["connectors"].items()):
        series: dict[str, Any] = {
            "metric": {"type": flt.metric_type, "labels": {}},
            "resource": {"type": CONNECTOR_RESOURCE,
                         "labels": {"project_id": project, "location": region, "connector_name": name}},
            "metricKind": kind, "valueType": value_type,
        }
        if not rec.get("reports_metrics", True) or not flt.matches(series):
            continue
        last = int(end // period) * period
        first = last if start == end else (int(start // period) + 1) * period
        points = []
        for t in range(last, first - 1, -period):
            shape = _shape_at(rec, t)
            if shape is None or shape["state"] != "READY":
                continue
            n, util, carried = load_model(shape, rec.get("load_mbps", 0))
            if flt.metric_type == CPU_METRIC:
                value = _cpu_value(n, util)
            elif flt.metric_type == INSTANCES_METRIC:
                value = {"int64Value": str(n)}
            else:  # bytes over the sample period; the egress is split between the two directions
                share = SENT_SHARE if flt.metric_type == SENT_METRIC else 1 - SENT_SHARE
                value = {"int64Value": str(int(carried * share * 1e6 / 8 * period))}
            begin = t - period if kind == "DELTA" else t
            points.append({"interval": {"startTime": rfc3339(begin), "endTime": rfc3339(t)}, "value": value})
        if points:
            out.append({**series, "points": points})
    return out


def seed(world: Store, sc: Scenario, now: float) -> None:
    """At reset: the scenario's connector, its history, and the services' egress failures over the
    history window (so :mod:`twin.run` must have seeded the services first)."""
    st = world.state
    st.update(connectors={}, vpc_operations={})
    since = now - sc.history.minutes * 60
    if sc.connector is not None:
        c = sc.connector
        st["connectors"][c.name] = {
            "resource": {
                "name": f"projects/{sc.project}/locations/{sc.region}/connectors/{c.name}",
                "network": c.network,
                "ipCidrRange": c.ip_cidr_range,
                "state": c.state,
                "machineType": c.machine_type,
                "minInstances": c.min_instances,
                "maxInstances": c.max_instances,
                "minThroughput": c.min_instances * 100,
                "maxThroughput": c.max_instances * 100,
                "connectedProjects": [sc.project],
            },
            "load_mbps": c.load_mbps,
            "errors_per_minute": c.errors_per_minute,
            "reports_metrics": c.reports_metrics,
        }
        _remember(st["connectors"][c.name], since)
    seed_errors(world, since, now)


def imposed(world: Store) -> list[dict[str, Any]]:
    """The waits Serverless VPC Access imposes (twin.world.imposed), in real seconds:

    * ``operations``: each connector operation, from its acceptance to its ``done``
      (``timing.deploy_seconds``);
    * ``metric_periods``: after a create or update is done, until the first connector metric point
      sampled at or after the change exists (points fall on multiples of ``metric_period_seconds``
      and are served with no publication lag: Google documents none for these metrics). None for a
      connector that reports no metrics, or one deleted.
    """
    st = world.state
    period = int(st.get("timing", {}).get("metric_period_seconds", 60))
    out = []
    for op in st.get("vpc_operations", {}).values():
        if "accepted_at" not in op:
            continue  # a world saved before the twin kept acceptance times
        name = op["target"].rsplit("/", 1)[-1]
        out.append(imposed_event("operations", "vpcaccess", name, op["accepted_at"], op["done_at"],
                                 operation=op["name"], method=op["method"], done=op["done"]))
        rec = st["connectors"].get(name)
        if op["kind"] != "delete" and rec is not None and rec.get("reports_metrics", True):
            first = math.ceil(op["done_at"] / period) * period
            out.append(imposed_event("metric_periods", "monitoring", name, op["done_at"], first,
                                     metric="vpcaccess.googleapis.com/connector/*"))
    return out


def status(world: Store) -> dict[str, Any]:
    st = world.state
    return {
        "vpcaccess": {
            "connectors": [encode_connector(r["resource"]) for _, r in sorted(st["connectors"].items())],
            "operations": [operation_json(op) for op in st.get("vpc_operations", {}).values()],
        },
    }
