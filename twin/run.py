"""Cloud Run Admin v2 as world logic: services, revisions, operations, and what revisions log.

:mod:`twin.server` parses requests and calls these functions; the state stays in the API's REST
JSON (``world.state["services" | "revisions" | "operations"]``). Time is lazy: an operation stores
when it finishes, and :func:`advance` (at every request) completes it.

Rules reproduced here (each with its source in ``twin/README.md``): a stale etag is ABORTED;
traffic targets sum to 100, each 0-100, naming revisions of the service, and may carry a tag (its own
URL, ``https://TAG---<service host>``); ``validateOnly`` changes nothing; a template change creates a
revision, and a template naming an existing revision with another configuration is refused; a deploy
can fail (the operation ends in error, the service keeps its last ready state); a revision that can
receive traffic (traffic or a tag), the latest one, or the only one cannot be deleted; a revision's
minimum instances run only while it is addressable (``scalingStatus.desiredMinInstanceCount``).
Every revision logs its start on ``run.googleapis.com%2Fstderr``: "Container started" when it could,
ERROR entries when it could not (or when its scenario says it logged some).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from twin import encode
from twin.store import ApiError, Store, imposed_event, make_etag, rfc3339

if TYPE_CHECKING:
    from twin.scenario import RevisionSpec, Scenario

RUN_LOG = "run.googleapis.com%2Fstderr"
RUN_LOG_CAP = 5_000
STARTED = "Container started; listening on port 8080"


# ---- scenario ---------------------------------------------------------------------------------


def seed(world: Store, sc: Scenario, now: float) -> None:
    """At reset: the scenario's services and revisions, each revision's startup log included."""
    st = world.state
    base = f"projects/{sc.project}/locations/{sc.region}"
    st.update(services={}, revisions={}, operations={}, counters={}, run_log=[])
    for svc in sc.services:
        revs = sorted(svc.revisions, key=lambda r: -r.created_minutes_ago)
        connector = f"{base}/connectors/{svc.vpc_connector}" if svc.vpc_connector else None
        for rev in revs:
            resource = encode.revision(_revision_resource(base, svc.name, rev, now, connector))
            st["revisions"][rev.name] = {
                "service": svc.name,
                "broken": rev.broken,
                "template": _template_from_revision(resource),
                "resource": resource,
            }
        latest = revs[-1].name
        updated = now - svc.updated_minutes_ago * 60
        created = now - revs[0].created_minutes_ago * 60
        traffic = [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": t.revision, "percent": t.percent,
             **({"tag": t.tag} if t.tag else {})}
            for t in svc.traffic
        ]
        template = _template_from_revision(st["revisions"][latest]["resource"])
        if svc.named_revisions:
            template["revision"] = latest
        scaling = {}
        if svc.scaling is not None:
            scaling = {"scaling": {k: v for k, v in {
                "minInstanceCount": svc.scaling.min_instance_count,
                "maxInstanceCount": svc.scaling.max_instance_count,
                "scalingMode": svc.scaling.scaling_mode,
                "manualInstanceCount": svc.scaling.manual_instance_count,
            }.items() if v is not None}}
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/services/{svc.name}"))
        generation = len(revs) + 3
        resource = {
            "name": f"{base}/services/{svc.name}",
            "uid": uid,
            "generation": str(generation),
            "createTime": rfc3339(created),
            "updateTime": rfc3339(updated),
            "creator": f"deployer@{sc.project}.iam.gserviceaccount.com",
            "lastModifier": f"deployer@{sc.project}.iam.gserviceaccount.com",
            "ingress": "INGRESS_TRAFFIC_ALL",
            "launchStage": "GA",
            "template": template,
            **scaling,
            "traffic": traffic,
            "observedGeneration": str(generation),
            "terminalCondition": _condition("Ready", "CONDITION_SUCCEEDED", updated),
            "conditions": [
                _condition("RoutesReady", "CONDITION_SUCCEEDED", updated),
                _condition("ConfigurationsReady", "CONDITION_SUCCEEDED", updated),
            ],
            "latestReadyRevision": f"{base}/services/{svc.name}/revisions/{latest}",
            "latestCreatedRevision": f"{base}/services/{svc.name}/revisions/{latest}",
            "uri": f"https://{svc.name}-{uid[:10]}-uc.a.run.app",
            "reconciling": False,
            "etag": make_etag(uid, generation),
        }
        resource["trafficStatuses"] = resolve_traffic(resource)
        st["services"][svc.name] = {"hosts": list(svc.hosts), "kind": svc.kind, "resource": encode.service(resource)}
        st["counters"][svc.name] = 0
        refresh_instances(world, svc.name)

    # Every scenario revision started once, when it was created: its startup log says how.
    for svc in sc.services:
        for rev in svc.revisions:
            log_startup(world, svc.name, rev.name, now - rev.created_minutes_ago * 60, now,
                        broken=rev.broken, errors=rev.startup_errors, explain_broken=False)


# ---- time -------------------------------------------------------------------------------------


def advance(world: Store, now: float) -> None:
    """Finish every operation whose time has come."""
    for op in world.state["operations"].values():
        if not op["done"] and op["done_at"] <= now:
            complete(world, op, now)


# ---- Cloud Run Admin v2 ----------------------------------------------------------------------


def complete(world: Store, op: dict[str, Any], now: float) -> None:
    op["done"] = True
    world.dirty = True
    if op["kind"] == "update_service":
        svc = world.state["services"][op["service"]]["resource"]
        base = svc["name"]
        failure = None
        if op.get("new_revision"):
            record = world.state["revisions"][op["new_revision"]]
            rev = record["resource"]
            rev["reconciling"] = False
            if record.get("deploy_fails"):
                # The deploy fails (rollout.deploy_fails): the revision never becomes ready, the
                # service keeps serving its last ready revision, and the operation ends in error
                # with google.rpc.Code 9 (FAILED_PRECONDITION), as Cloud Run's does.
                failure = deploy_failure(op["new_revision"])
                rev["conditions"] = [_condition("Ready", "CONDITION_FAILED", now, failure)]
            else:
                svc["latestReadyRevision"] = f"{base}/revisions/{op['new_revision']}"
                # A broken rollout revision (rollout.new_revisions_broken) is still marked Ready, as the
                # scenarios' broken revisions are: it answers 503 once traffic reaches it, and its
                # startup log says why, so a gate must look at both before trusting it.
                rev["conditions"] = [_condition("Ready", "CONDITION_SUCCEEDED", now)]
            log_startup(world, op["service"], op["new_revision"], op.get("created_at", now), now,
                        broken=record["broken"] or failure is not None, errors=[], explain_broken=True)
        svc["trafficStatuses"] = resolve_traffic(svc)
        svc["observedGeneration"] = svc["generation"]
        svc["reconciling"] = False
        if failure is None:
            svc["terminalCondition"] = _condition("Ready", "CONDITION_SUCCEEDED", now)
            op["response"] = dict(svc)
        else:
            svc["terminalCondition"] = _condition("Ready", "CONDITION_FAILED", now, failure)
            op["error"] = {"code": 9, "message": failure}
        refresh_instances(world, op["service"])
    elif op["kind"] == "delete_revision":
        rev = world.state["revisions"].pop(op["revision"])
        op["response"] = rev["resource"]
        refresh_instances(world, op["service"])


def deploy_failure(revision: str) -> str:
    # Cloud Run's message for a container that did not start (quoted in public issue threads).
    return (f"Revision '{revision}' is not ready and cannot serve traffic. The user-provided container failed "
            "to start and listen on the port defined provided by the PORT=8080 environment variable within "
            "the allocated timeout. This can happen when the container port is misconfigured or if the timeout "
            "is too short. Logs for this revision might contain more information.")

def resolve_traffic(svc: dict[str, Any]) -> list[dict[str, Any]]:
    """``trafficStatuses`` from ``traffic``: LATEST resolved, a tag given its URL (TrafficTargetStatus.uri)."""
    out = []
    for t in svc.get("traffic", []):
        t = dict(t)
        if t.get("type") == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST":
            t["revision"] = svc["latestReadyRevision"].rsplit("/", 1)[-1]
        if t.get("tag"):
            t["uri"] = tag_uri(svc["uri"], t["tag"])
        out.append(t)
    return out


def tag_uri(service_uri: str, tag: str) -> str:
    """A tagged revision's URL: the tag and three dashes before the service's host
    (https://cloud.google.com/run/docs/triggering/https-request, "Service URL")."""
    scheme, _, host = service_uri.partition("://")
    return f"{scheme}://{tag}---{host}"


def addressable(svc: dict[str, Any]) -> dict[str, int]:
    """Revisions that can receive traffic (a share, a tag, or the latest ready one behind a LATEST
    target), each with the percent it receives."""
    out: dict[str, int] = {}
    for t in resolve_traffic(svc):
        if t.get("revision") and (int(t.get("percent", 0)) > 0 or t.get("tag")):
            out[t["revision"]] = out.get(t["revision"], 0) + int(t.get("percent", 0))
    return out


def refresh_instances(world: Store, service: str) -> None:
    """Each revision's ``scalingStatus.desiredMinInstanceCount`` ("the current number of min instances
    provisioned for this revision"): Cloud Run starts a revision's minimum instances only while it is
    addressable (traffic or a tag; https://cloud.google.com/run/docs/configuring/min-instances), and
    divides the service-level minimum among the revisions with traffic by percent (ServiceScaling).
    How the two levels combine is not documented where we could read it; the twin takes the larger,
    and rounds a share up."""
    svc = world.state["services"][service]["resource"]
    reach = addressable({**svc, "traffic": svc.get("trafficStatuses", [])})
    service_min = int(svc.get("scaling", {}).get("minInstanceCount", 0))
    for name, record in world.state["revisions"].items():
        if record["service"] != service:
            continue
        rev = record["resource"]
        count = 0
        if name in reach:
            own = int(rev.get("scaling", {}).get("minInstanceCount", 0))
            share = -(-service_min * reach[name] // 100)
            count = max(own, share)
        if count:
            rev["scalingStatus"] = {"desiredMinInstanceCount": count}
        else:
            rev.pop("scalingStatus", None)
    world.dirty = True


def _check_parent(world: Store, project: str, location: str) -> None:
    if project != world.state["project"] or location != world.state["region"]:
        raise ApiError(
            404, "NOT_FOUND", f"Location projects/{project}/locations/{location} has no services in this twin."
        )

def get_service(world: Store, project: str, location: str, name: str) -> dict[str, Any]:
    _check_parent(world, project, location)
    svc = world.state["services"].get(name)
    if svc is None:
        raise ApiError(404, "NOT_FOUND", f"Resource 'projects/{project}/locations/{location}/services/{name}' was not found")
    return svc["resource"]

def list_services(world: Store, project: str, location: str) -> list[dict[str, Any]]:
    _check_parent(world, project, location)
    return [s["resource"] for s in world.state["services"].values()]

def list_revisions(world: Store, project: str, location: str, service: str) -> list[dict[str, Any]]:
    get_service(world, project, location, service)
    revs = [r["resource"] for r in world.state["revisions"].values() if r["service"] == service]
    return sorted(revs, key=lambda r: r["createTime"], reverse=True)

def get_revision(world: Store, project: str, location: str, service: str, name: str) -> dict[str, Any]:
    get_service(world, project, location, service)
    rev = world.state["revisions"].get(name)
    if rev is None or rev["service"] != service:
        raise ApiError(
            404, "NOT_FOUND",
            f"Resource 'projects/{project}/locations/{location}/services/{service}/revisions/{name}' was not found",
        )
    return rev["resource"]

def update_service(
    world: Store, project: str, location: str, name: str, body: dict[str, Any], validate_only: bool, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    current = get_service(world, project, location, name)
    if body.get("name") and body["name"] != current["name"]:
        raise ApiError(400, "INVALID_ARGUMENT", f"service.name {body['name']!r} does not match the request path.")
    if body.get("etag") and body["etag"] != current["etag"]:
        raise ApiError(
            409, "ABORTED",
            f"The service {name} was modified since it was read (etag {body['etag']} is stale, current "
            f"{current['etag']}). Read it again and retry.",
        )
    if current.get("reconciling"):
        raise ApiError(409, "ABORTED", f"The service {name} is still reconciling a previous update; retry when it is done.")
    traffic = body.get("traffic") or []
    if traffic:
        for t in traffic:
            if not 0 <= int(t.get("percent", 0)) <= 100:
                raise ApiError(400, "INVALID_ARGUMENT", f"Traffic percent must be between 0 and 100, got {t.get('percent')}.")
        total = sum(int(t.get("percent", 0)) for t in traffic)
        if total != 100:
            raise ApiError(400, "INVALID_ARGUMENT", f"Traffic percentages must sum to 100, got {total}.")
        for t in traffic:
            rev = t.get("revision")
            if t.get("type", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION") == "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION":
                if not rev or world.state["revisions"].get(rev, {}).get("service") != name:
                    raise ApiError(400, "INVALID_ARGUMENT", f"Revision named '{rev}' does not exist in service {name}.")
    new_template = body.get("template")
    if new_template is not None:
        _check_template(new_template)
    template_changed = new_template is not None and _comparable_template(new_template) != _comparable_template(
        current["template"]
    )
    named = (new_template or {}).get("revision")
    existing = world.state["revisions"].get(named) if named else None
    if existing is not None and _comparable_template(existing.get("template", {})) != _comparable_template(new_template or {}):
        # A read-modify-write that sends back template.revision with a changed template asks for a
        # second revision of that name (googleapis/google-cloud-python#14259).
        raise ApiError(409, "ALREADY_EXISTS", f"Revision named '{named}' with different configuration already exists.")
    op_id = str(uuid.uuid4())
    op_name = f"projects/{project}/locations/{location}/operations/{op_id}"
    if validate_only:
        preview = {**current, **{k: v for k, v in body.items() if k in ("traffic", "template")}}
        return {"name": op_name, "done": True, "response": preview}

    generation = int(current["generation"]) + 1
    updated = dict(current)
    updated["generation"] = str(generation)
    updated["updateTime"] = rfc3339(now)
    updated["lastModifier"] = "goldenpath@twin"
    updated["reconciling"] = True
    updated["terminalCondition"] = _condition("Ready", "CONDITION_RECONCILING", now)
    if traffic:
        # Stored as sent: an update without a tag it had removes that tag and its URL.
        updated["traffic"] = [
            {k: v for k, v in t.items() if k in ("type", "revision", "percent", "tag")} for t in traffic
        ]
    if "scaling" in body:
        updated["scaling"] = body["scaling"]
    op: dict[str, Any] = {"kind": "update_service", "service": name, "done": False, "started_at": now}
    duration = world.state["timing"]["deploy_seconds"]
    if template_changed and new_template is not None:  # (the second test only narrows the type)
        rollout = world.state.get("rollout", {})
        # A name the template gives is the new revision's (a name already taken never is: that
        # revision would be replaced, which Cloud Run never does).
        rev_name = named if named and existing is None else _new_revision_name(world, name)
        rev_resource = encode.revision(_revision_from_template(current["name"], rev_name, new_template, now))
        # The scenario decides whether the revisions a rollout creates can start (config-rollout-broken),
        # or whether their deploy fails (config-rollout-deploy-fails): a template one of the service's
        # revisions already had (a restore) is known to start.
        broken = bool(rollout.get("new_revisions_broken", False))
        known = any(r["service"] == name and not r.get("deploy_fails") and _comparable_template(r.get("template", {})) == _comparable_template(new_template)
                    for r in world.state["revisions"].values())
        fails = bool(rollout.get("deploy_fails", False)) and not known
        world.state["revisions"][rev_name] = {"service": name, "broken": broken, "deploy_fails": fails,
                                              "template": new_template, "resource": rev_resource}
        updated["template"] = new_template
        updated["latestCreatedRevision"] = f"{current['name']}/revisions/{rev_name}"
        op["new_revision"] = rev_name
        op["created_at"] = now
        # The operation ends once the new revision has started (or failed to), so its startup log
        # is complete, and never stamped in the future, when the operation says done.
        duration = max(duration, float(rollout.get("startup_seconds", 0)))
    updated["etag"] = make_etag(updated["uid"], generation)
    world.state["services"][name]["resource"] = updated
    op.update(accepted_at=now, done_at=now + duration, metadata=dict(updated), name=op_name)
    world.state["operations"][op_id] = op
    world.dirty = True
    return operation_json(op)

def _new_revision_name(world: Store, service: str) -> str:
    numbers = [
        int(n.rsplit("-", 2)[-2])
        for n, r in world.state["revisions"].items()
        if r["service"] == service and n.rsplit("-", 2)[-2].isdigit()
    ]
    suffix = hashlib.sha1(f"{service}{time.time_ns()}".encode()).hexdigest()[:3]
    return f"{service}-{max(numbers, default=0) + 1:05d}-{suffix}"

def delete_revision(
    world: Store, project: str, location: str, service: str, name: str, validate_only: bool, etag: str | None,
    now: float | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    rev = get_revision(world, project, location, service, name)
    if etag and etag != rev["etag"]:
        raise ApiError(409, "ABORTED", f"Revision {name} was modified since it was read (stale etag).")
    svc = get_service(world, project, location, service)
    # "You cannot delete a revision if: it is able to receive traffic, it is the only revision of the
    # service, it is the latest revision of the service." (https://cloud.google.com/run/docs/managing/revisions)
    # The "actively serving" wording is the v1 API's (quoted in hashicorp/waypoint#814); the other two
    # messages are the twin's own: Google's wording for them was not found.
    if sum(1 for r in world.state["revisions"].values() if r["service"] == service) == 1:
        raise ApiError(400, "FAILED_PRECONDITION",
                       f'Revision "{name}" cannot be deleted because it is the only revision of service "{service}".')
    latest = {svc.get("latestCreatedRevision", "").rsplit("/", 1)[-1], svc.get("latestReadyRevision", "").rsplit("/", 1)[-1]}
    if name in latest:
        raise ApiError(400, "FAILED_PRECONDITION",
                       f'Revision "{name}" cannot be deleted because it is the latest revision of service "{service}".')
    reach = addressable(svc) | addressable({**svc, "traffic": svc.get("trafficStatuses", [])})
    if name in reach:
        raise ApiError(400, "FAILED_PRECONDITION",
                       f'Revision "{name}" cannot be directly deleted because it is actively serving.')
    op_id = str(uuid.uuid4())
    op_name = f"projects/{project}/locations/{location}/operations/{op_id}"
    if validate_only:
        return {"name": op_name, "done": True, "response": rev}
    op = {
        "kind": "delete_revision", "service": service, "revision": name, "done": False, "accepted_at": now,
        "done_at": now + world.state["timing"]["delete_seconds"], "metadata": dict(rev), "name": op_name,
    }
    world.state["operations"][op_id] = op
    world.dirty = True
    return operation_json(op)

def get_operation(world: Store, project: str, location: str, op_id: str) -> dict[str, Any]:
    op = world.state["operations"].get(op_id)
    if op is None or not op["name"].startswith(f"projects/{project}/locations/{location}/"):
        raise ApiError(404, "NOT_FOUND", f"Operation projects/{project}/locations/{location}/operations/{op_id} not found")
    return op

# operations.wait: "If left blank, the wait will be at most the time permitted by the underlying
# HTTP/RPC protocol"; "If the timeout specified is greater than the default HTTP/RPC timeout, the
# HTTP/RPC timeout is used" (run.v2.json GoogleLongrunningWaitOperationRequest.timeout and
# operations.wait; google/longrunning/operations.proto WaitOperation). Google does not publish that
# protocol timeout; the twin takes 60 s (not confirmed), so no wait holds a connection for longer.
WAIT_MAX_SECONDS = 60.0


def wait_timeout(body: dict[str, Any]) -> float:
    """The seconds an operations.wait request may wait: its ``timeout`` (a google-duration such as
    "8s" or "2.5s"), at most WAIT_MAX_SECONDS, which is also the bound when it sends none."""
    raw = body.get("timeout")
    if raw is None or raw == "":
        return WAIT_MAX_SECONDS
    text = str(raw)
    try:
        if not text.endswith("s"):
            raise ValueError(text)
        seconds = float(text[:-1])
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value at 'timeout' (type.googleapis.com/"
                                                f"google.protobuf.Duration), Field 'timeout', Illegal duration "
                                                f"format; duration must end with 's': {text!r}") from None
    if seconds < 0:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid timeout {text!r}: a wait cannot be negative.")
    return min(seconds, WAIT_MAX_SECONDS)


def operation_json(op: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": op["name"], "done": op["done"]}
    if op.get("metadata") is not None:
        out["metadata"] = op["metadata"]
    if op["done"] and op.get("error") is not None:
        out["error"] = op["error"]
    elif op["done"] and op.get("response") is not None:
        out["response"] = op["response"]
    return out


def pick_revision(world: Store, name: str) -> tuple[str, int, bool]:
    """The revision that serves the next request to service ``name``, the request's number, and
    whether the traffic is split (contended). Every data-plane request and WebSocket goes through here."""
    svc = world.state["services"][name]["resource"]
    n = world.state["counters"][name] = world.state["counters"].get(name, 0) + 1
    serving = [t for t in resolve_traffic_statuses(svc) if t["percent"] > 0]
    return _pick(serving, n), n, len(serving) > 1


def resolve_traffic_statuses(svc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in svc.get("trafficStatuses", []):
        rev = t.get("revision") or svc["latestReadyRevision"].rsplit("/", 1)[-1]
        out.append({"revision": rev, "percent": int(t.get("percent", 0))})
    return out


def status(world: Store) -> dict[str, Any]:
    st = world.state
    return {
        "run": {
            "services": [s["resource"] for s in st["services"].values()],
            "revisions": [r["resource"] for r in st["revisions"].values()],
            "operations": [operation_json(o) for o in st["operations"].values()],
        },
    }


def imposed(world: Store) -> list[dict[str, Any]]:
    """The waits Cloud Run imposes (twin.world.imposed): each accepted operation, from its
    acceptance to its ``done`` (``timing.deploy_seconds``, or the new revision's startup when longer;
    ``timing.delete_seconds`` for a revision's deletion). Real seconds: operations run on the wall clock."""
    out = []
    for op in world.state["operations"].values():
        if "accepted_at" not in op:
            continue  # a world saved before the twin kept acceptance times
        resource = op["service"] if op["kind"] == "update_service" else f"{op['service']}/revisions/{op['revision']}"
        out.append(imposed_event("operations", "run", resource, op["accepted_at"], op["done_at"],
                                 operation=op["name"], method=op["kind"], done=op["done"]))
    return out


# ---- revisions' own log ---------------------------------------------------------------------


def revision_env(world: Store, revision: str) -> dict[str, str]:
    """The plain environment of a revision's first container (values from secrets are not plain)."""
    rec = world.state["revisions"].get(revision)
    containers = rec["resource"].get("containers", []) if rec else []
    env = containers[0].get("env", []) if containers else []
    return {e["name"]: e.get("value", "") for e in env if "name" in e}


def log_startup(world: Store, service: str, revision: str, created: float, now: float, *, broken: bool,
                errors: list[str], explain_broken: bool) -> None:
    """Write what ``revision`` logged when it started, between its creation and its start.

    ``errors`` are logged as they are (a scenario's ``startup_errors``); a broken revision created by a
    rollout (``explain_broken``) also logs why it did not start. A revision that started logs
    "Container started" last. Entries are never stamped after ``now``.
    """
    startup = float(world.state.get("rollout", {}).get("startup_seconds", 1.0))
    started = min(created + startup, now)
    lines = [("ERROR", text) for text in errors]
    if broken and explain_broken:
        lines += [("ERROR", text) for text in _failed_start(world, service, revision)]
    if not broken:
        lines.append(("INFO", STARTED))
    if not lines:
        return
    step = (started - created) / len(lines)
    entries = [_run_entry(world, service, revision, severity, text, created + step * (i + 1), i)
               for i, (severity, text) in enumerate(lines)]
    log = world.state.setdefault("run_log", [])
    log.extend(entries)
    log.sort(key=lambda e: e["timestamp"])  # stable: entries of one instant keep their order
    if len(log) > RUN_LOG_CAP:
        del log[: len(log) - RUN_LOG_CAP]
    world.dirty = True


def log_stderr(world: Store, lines: list[tuple[str, str, str, float]]) -> None:
    """Unstructured lines (service, revision, text, at) the services' containers wrote to stderr.

    A plain line carries no level ("Logs written directly to stdout or stderr" have none:
    https://cloud.google.com/functions/1stgendocs/monitoring/logging), so these entries have the
    DEFAULT severity and a ``severity>=ERROR`` query does not see them, as on Google.
    """
    if not lines:
        return
    log = world.state.setdefault("run_log", [])
    log.extend(_run_entry(world, service, revision, "DEFAULT", text, at, i)
               for i, (service, revision, text, at) in enumerate(lines))
    log.sort(key=lambda e: e["timestamp"])
    if len(log) > RUN_LOG_CAP:
        del log[: len(log) - RUN_LOG_CAP]
    world.dirty = True


def _failed_start(world: Store, service: str, revision: str) -> list[str]:
    env = revision_env(world, revision)
    # Only the settings the runbook names: other variables may hold what a log must not.
    settings = ", ".join(f"{k}={env.get(k, 'unset')}" for k in ("DEMO_MODE", "DATABASE_TIMEOUT", "VPC_CONNECTOR_TIMEOUT"))
    return [
        f"Startup probe failed: application startup aborted ({settings}): database connection refused",
        f'Default STARTUP TCP probe failed 1 time consecutively for container "{service}-1" on port 8080. '
        "The instance was not started.",
        "Container called exit(1).",
    ]


def _run_entry(world: Store, service: str, revision: str, severity: str, text: str, at: float,
               i: int) -> dict[str, Any]:
    project, region = world.state["project"], world.state["region"]
    return {
        "logName": f"projects/{project}/logs/{RUN_LOG}",
        "resource": {
            "type": "cloud_run_revision",
            "labels": {"project_id": project, "location": region, "service_name": service,
                       "revision_name": revision, "configuration_name": service},
        },
        "timestamp": rfc3339(at),
        "receiveTimestamp": rfc3339(at + 0.2),
        "severity": severity,
        "insertId": hashlib.sha1(f"{revision}/{at:.6f}/{i}".encode()).hexdigest()[:16],
        "labels": {"instanceId": hashlib.sha1(f"{revision}/instance".encode()).hexdigest()[:32]},
        "textPayload": text,
    }


MAX_CONCURRENCY = 1000


def _check_template(template: dict[str, Any]) -> None:
    """Refuse a template Cloud Run refuses, in its words ("Violation in UpdateServiceRequest...")."""
    at = "Violation in UpdateServiceRequest.service.template"
    scaling = template.get("scaling", {})
    lo, hi = int(scaling.get("minInstanceCount", 0)), int(scaling.get("maxInstanceCount", 0))
    # proto3 int32: 0 is unset, and an unset maximum bounds nothing.
    if hi and lo > hi:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"{at}.scaling.max_instance_count: must be greater or equal than min_instance_count "
                       f"(min {lo}, max {hi}).")
    concurrency = template.get("maxInstanceRequestConcurrency")
    if concurrency is not None and not 1 <= int(concurrency) <= MAX_CONCURRENCY:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"{at}.max_instance_request_concurrency: must be between 1 and {MAX_CONCURRENCY}, "
                       f"got {concurrency}.")


def _pick(serving: list[dict[str, Any]], n: int) -> str:
    # A stride coprime with 100 spreads consecutive requests over the split deterministically.
    pos = (n * 37) % 100
    acc = 0
    for t in serving:
        acc += t["percent"]
        if pos < acc:
            return t["revision"]
    return serving[-1]["revision"] if serving else ""


def _condition(kind: str, state: str, at: float, message: str = "") -> dict[str, Any]:
    return {"type": kind, "state": state, "lastTransitionTime": rfc3339(at), **({"message": message} if message else {})}


def _revision_resource(base: str, service: str, rev: RevisionSpec, now: float,
                       connector: str | None) -> dict[str, Any]:
    created = now - rev.created_minutes_ago * 60
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/services/{service}/revisions/{rev.name}"))
    vpc = {"vpcAccess": {"connector": connector, "egress": "PRIVATE_RANGES_ONLY"}} if connector else {}
    return {
        **vpc,
        "name": f"{base}/services/{service}/revisions/{rev.name}",
        "uid": uid,
        "generation": "1",
        "createTime": rfc3339(created),
        "updateTime": rfc3339(created),
        "launchStage": "GA",
        "service": f"{base}/services/{service}",
        "scaling": {"minInstanceCount": rev.min_instances, "maxInstanceCount": rev.max_instances},
        "containers": [{"image": rev.image, "env": [{"name": k, "value": v} for k, v in rev.env.items()]}],
        "maxInstanceRequestConcurrency": 80,
        "timeout": "300s",
        "serviceAccount": f"{service}@{base.split('/')[1]}.iam.gserviceaccount.com",
        "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
        "reconciling": False,
        "conditions": [_condition("Ready", "CONDITION_SUCCEEDED", created)],
        "observedGeneration": "1",
        "logUri": f"https://console.cloud.google.com/logs/viewer?revision={rev.name}",
        "etag": make_etag(uid, 1),
    }


def _template_from_revision(rev: dict[str, Any]) -> dict[str, Any]:
    vpc = {"vpcAccess": dict(rev["vpcAccess"])} if rev.get("vpcAccess") else {}
    return {
        **vpc,
        "scaling": dict(rev["scaling"]),
        "containers": [dict(c) for c in rev["containers"]],
        "maxInstanceRequestConcurrency": rev["maxInstanceRequestConcurrency"],
        "timeout": rev["timeout"],
        "serviceAccount": rev["serviceAccount"],
        "executionEnvironment": rev["executionEnvironment"],
    }


def _comparable_template(t: dict[str, Any]) -> str:
    # Through the message type, so a default written out and one left out compare equal.
    normal = encode.service({"template": {k: v for k, v in t.items() if k != "revision"}}).get("template", {})
    return json.dumps(normal, sort_keys=True)


def _revision_from_template(service_name: str, rev_name: str, template: dict[str, Any], now: float) -> dict[str, Any]:
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{service_name}/revisions/{rev_name}"))
    vpc = {"vpcAccess": dict(template["vpcAccess"])} if template.get("vpcAccess") else {}
    return {
        **vpc,
        "name": f"{service_name}/revisions/{rev_name}",
        "uid": uid,
        "generation": "1",
        "createTime": rfc3339(now),
        "updateTime": rfc3339(now),
        "launchStage": "GA",
        "service": service_name,
        "scaling": template.get("scaling", {}),
        "containers": template.get("containers", []),
        "maxInstanceRequestConcurrency": template.get("maxInstanceRequestConcurrency", 80),
        "timeout": template.get("timeout", "300s"),
        "serviceAccount": template.get("serviceAccount", ""),
        "executionEnvironment": template.get("executionEnvironment", "EXECUTION_ENVIRONMENT_GEN2"),
        "reconciling": True,
        "conditions": [_condition("Ready", "CONDITION_RECONCILING", now)],
        "observedGeneration": "1",
        "etag": make_etag(uid, 1),
    }
