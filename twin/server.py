"""The twin's two faces on loopback: the Google control plane (HTTP) and the data plane (HTTPS).

Each control-plane route names the discovery-document method it implements (``ROUTES``), so the
contract test can check path template and verb against Google's own description of the API.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from twin import compute, dashboards, dataplane, encode, logging, run, sqladmin, vpcaccess
from twin.logfilter import FilterError
from twin.scenario import ScenarioError
from twin.store import ApiError, InjectedFault, Store

if TYPE_CHECKING:
    from twin.world import Twin

Handler = Callable[[Request, Store], Awaitable[Any]]

RUN = "/v2/projects/{project}/locations/{location}"
VPC = "/v1/projects/{project}/locations/{location}"
COMPUTE = "/compute/v1/projects/{project}"
# Logging metrics; a metric id may hold "/" ("nginx/requests", sent as %2F and decoded by the server),
# so the routes below take it as a path parameter ({metric:path}).
METRICS = "/v2/projects/{project}/metrics"
DASHBOARDS = "/v1/projects/{project}/dashboards"
# Cloud SQL Admin: sqladmin.v1.json has rootUrl https://sqladmin.googleapis.com/, servicePath "" and
# paths v1/projects/{project}/instances/{instance}.
SQL = "/v1/projects/{project}"


@dataclass(frozen=True)
class Later:
    """A handler's answer that is not ready yet (a server-side wait). The endpoint calls ``look``
    with the twin's lock held and the world advanced, and sleeps between looks WITHOUT the lock, so
    every other request is served while this one waits; ``look`` returns the answer once it is
    ready, else None, and at ``deadline`` (time.time()) is called with ``final=True`` for the answer
    as it then stands."""

    look: Callable[[bool], Any]
    deadline: float


# How often a waiting request looks again (real seconds).
WAIT_TICK = 0.05


@dataclass(frozen=True)
class ApiRoute:
    verb: str
    path: str
    method_id: str  # the discovery document's method id, e.g. run.projects.locations.services.get
    write: bool
    handler: Handler


# ---- control plane handlers ------------------------------------------------------------------


# System parameters every Google REST API accepts, whatever the method.
SYSTEM_PARAMS = {"$alt", "alt", "$prettyPrint", "prettyPrint", "fields", "$fields", "key", "quotaUser"}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _check_query(request: Request, allowed: tuple[str, ...]) -> None:
    """Refuse unknown query parameters, as Google's front end does ("Cannot bind query parameter")."""
    names = set(allowed) | {_snake(a) for a in allowed}
    for key in request.query_params:
        if key not in names and key not in SYSTEM_PARAMS:
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Cannot bind query parameter. "
                                                    f"Field '{key}' could not be found in request message.")


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter, under its JSON name or its proto field name (Google accepts both)."""
    raw = request.query_params.get(name, request.query_params.get(_snake(name), "false"))
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value for bool field {name!r}: {raw!r}")
    return raw.lower() == "true"


async def get_service(req: Request, w: Store) -> Any:
    p = req.path_params
    return encode.service(run.get_service(w, p["project"], p["location"], p["service"]))


async def list_services(req: Request, w: Store) -> Any:
    p = req.path_params
    return {"services": [encode.service(s) for s in run.list_services(w, p["project"], p["location"])]}


async def patch_service(req: Request, w: Store) -> Any:
    p = req.path_params
    _check_query(req, ("validateOnly", "allowMissing", "updateMask"))
    try:
        body = encode.parse_service(await req.body())
    except Exception as exc:  # the message type rejected the body: what the API calls a bad request
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid Service body: {exc}") from None
    op = run.update_service(w, p["project"], p["location"], p["service"], body, _flag(req, "validateOnly"))
    return encode.operation(op, "service")


async def list_revisions(req: Request, w: Store) -> Any:
    p = req.path_params
    return {"revisions": [encode.revision(r) for r in run.list_revisions(w, p["project"], p["location"], p["service"])]}


async def get_revision(req: Request, w: Store) -> Any:
    p = req.path_params
    return encode.revision(run.get_revision(w, p["project"], p["location"], p["service"], p["revision"]))


async def delete_revision(req: Request, w: Store) -> Any:
    p = req.path_params
    _check_query(req, ("validateOnly", "etag"))
    op = run.delete_revision(
        w,         p["project"], p["location"], p["service"], p["revision"],
        _flag(req, "validateOnly"), req.query_params.get("etag"),
    )
    return encode.operation(op, "revision")


def _op_kind(op: dict[str, Any]) -> str:
    return "service" if op["kind"] == "update_service" else "revision"


async def get_operation(req: Request, w: Store) -> Any:
    p = req.path_params
    op = run.get_operation(w, p["project"], p["location"], p["operation"])
    return encode.operation(run.operation_json(op), _op_kind(op))


async def wait_operation(req: Request, w: Store) -> Any:
    p = req.path_params
    body = json.loads(await req.body() or b"{}")
    timeout = run.wait_timeout(body)  # at most run.WAIT_MAX_SECONDS, also when the client sends none
    op = run.get_operation(w, p["project"], p["location"], p["operation"])  # an unknown one is 404 at once
    if op["done"]:
        # "If the operation is already done, the latest state is immediately returned."
        return encode.operation(run.operation_json(op), _op_kind(op))

    def look(final: bool) -> Any:
        # Looked up again each time: a reset meanwhile is a 404, as for any read of a gone operation.
        op = run.get_operation(w, p["project"], p["location"], p["operation"])
        return encode.operation(run.operation_json(op), _op_kind(op)) if op["done"] or final else None

    # Server-side wait, as the real :wait does ("Waits until the specified long-running operation is
    # done or reaches at most a specified timeout", run.v2.json operations.wait), answered by the
    # endpoint without holding the twin's lock between looks.
    return Later(look, time.time() + timeout)


ENTRIES_LIST_FIELDS = {"resourceNames", "projectIds", "filter", "orderBy", "pageSize", "pageToken"}


async def list_entries(req: Request, w: Store) -> Any:
    # The read quota comes first: a refused call is not looked at (nor charged, see twin.logging).
    logging.admit_read(w, time.time())
    body = json.loads(await req.body() or b"{}")
    unknown = sorted(set(body) - ENTRIES_LIST_FIELDS)
    if unknown:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name {unknown[0]!r}.")
    order = (body.get("orderBy") or "timestamp asc").lower()
    if order not in ("timestamp asc", "timestamp desc"):
        # logging.v2.json ListLogEntriesRequest.orderBy: "the only permitted values are "timestamp
        # asc" (default) and "timestamp desc"".
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid orderBy {body.get('orderBy')!r}: the only permitted "
                                                'values are "timestamp asc" and "timestamp desc".')
    page_size = int(body.get("pageSize") or 50)
    token = body.get("pageToken")
    if page_size < 0:
        raise ApiError(400, "INVALID_ARGUMENT", f"page_size must not be negative, got {page_size}.")
    try:
        entries, token = logging.list_entries(
            w,             body.get("resourceNames") or [], body.get("filter", ""), order.endswith("desc"),
            min(page_size, 1000), str(token) if token is not None else None,
        )
    except FilterError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    # proto3 JSON leaves an empty repeated field out: an empty page is {"nextPageToken": ...} alone.
    out: dict[str, Any] = {"entries": [encode.log_entry(e) for e in entries]} if entries else {}
    if token:
        out["nextPageToken"] = token
    return out


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name, request.query_params.get(_snake(name)))
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value for int32 field {name!r}: {raw!r}") from None


def _param(request: Request, name: str) -> str | None:
    return request.query_params.get(name, request.query_params.get(_snake(name)))


# ---- Serverless VPC Access v1 (world logic in twin.vpcaccess) ----------------------------------------


async def get_connector(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return vpcaccess.get_connector(w, p["project"], p["location"], p["connector"])


async def list_connectors(req: Request, w: Store) -> Any:
    _check_query(req, ("pageSize", "pageToken"))
    p = req.path_params
    return vpcaccess.list_connectors(w, p["project"], p["location"], _int(req, "pageSize", 0), _param(req, "pageToken"))


async def create_connector(req: Request, w: Store) -> Any:
    _check_query(req, ("connectorId",))
    p = req.path_params
    body = vpcaccess.parse_connector(await req.body())
    return vpcaccess.create_connector(w, p["project"], p["location"], _param(req, "connectorId"), body)


async def patch_connector(req: Request, w: Store) -> Any:
    _check_query(req, ("updateMask",))
    p = req.path_params
    body = vpcaccess.parse_connector(await req.body())
    return vpcaccess.patch_connector(w, p["project"], p["location"], p["connector"], body, _param(req, "updateMask"))


async def delete_connector(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return vpcaccess.delete_connector(w, p["project"], p["location"], p["connector"])


async def get_vpc_operation(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return vpcaccess.get_operation(w, p["project"], p["location"], p["operation"])


# ---- Cloud SQL Admin v1 (world logic in twin.sqladmin) -----------------------------------------------


def _check_sql_query(request: Request, documented: tuple[str, ...]) -> None:
    """Unknown query parameters are refused (400, as every route here); the ones sqladmin.v1.json
    documents for the method, none of which the twin implements, are refused as UNIMPLEMENTED,
    never silently ignored."""
    _check_query(request, documented)
    names = {n for d in documented for n in (d, _snake(d))}
    unserved = sorted(k for k in request.query_params if k in names)
    if unserved:
        raise ApiError(501, "UNIMPLEMENTED", f"The twin does not implement query parameter(s) {unserved} of "
                                             "this Cloud SQL Admin method.")


async def get_sql_instance(req: Request, w: Store) -> Any:
    _check_sql_query(req, ("location",))
    p = req.path_params
    return sqladmin.get_instance(w, p["project"], p["instance"], time.time())


async def patch_sql_instance(req: Request, w: Store) -> Any:
    _check_sql_query(req, ("location", "reconcilePscNetworking", "reconcilePscNetworkingForce"))
    p = req.path_params
    body = sqladmin.parse_instance(await req.body())
    return sqladmin.patch_instance(w, p["project"], p["instance"], body, time.time())


async def get_sql_operation(req: Request, w: Store) -> Any:
    _check_sql_query(req, ("location",))
    p = req.path_params
    return sqladmin.get_operation(w, p["project"], p["operation"], time.time())


# ---- Compute Engine v1: SSL certificates -----------------------------------------------------------


async def get_certificate(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return compute.get_certificate(w, p["project"], p["sslCertificate"])


async def list_certificates(req: Request, w: Store) -> Any:
    _check_query(req, ("filter", "maxResults", "orderBy", "pageToken"))
    order = _param(req, "orderBy")
    if order and order not in ("name", "name asc"):
        # Refused, not ignored: the twin lists by name only, and an answer in another order than
        # the one asked for would mislead.
        raise ApiError(400, "INVALID_ARGUMENT", f"The twin lists certificates by name only; got orderBy {order!r}.")
    return compute.list_certificates(w, req.path_params["project"], _param(req, "filter"),
                                     _int(req, "maxResults", 500), _param(req, "pageToken"))


# ---- Logging v2 log-based metrics, Monitoring v1 dashboards (world logic in twin.logging, twin.dashboards) -----------


async def list_metrics(req: Request, w: Store) -> Any:
    _check_query(req, ("pageSize", "pageToken"))
    return logging.list_metrics(w, req.path_params["project"], _int(req, "pageSize", 0), _param(req, "pageToken"))


async def get_metric(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return logging.get_metric(w, p["project"], p["metric"])


async def create_metric(req: Request, w: Store) -> Any:
    _check_query(req, ())
    return logging.create_metric(w, req.path_params["project"], logging.parse_metric(await req.body()))


async def update_metric(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return logging.update_metric(w, p["project"], p["metric"], logging.parse_metric(await req.body()))


async def delete_metric(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return logging.delete_metric(w, p["project"], p["metric"])


async def list_dashboards(req: Request, w: Store) -> Any:
    _check_query(req, ("pageSize", "pageToken"))
    return dashboards.list_dashboards(w, req.path_params["project"], _int(req, "pageSize", 0),
                                      _param(req, "pageToken"))


async def get_dashboard(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return dashboards.get_dashboard(w, p["project"], p["dashboard"])


async def create_dashboard(req: Request, w: Store) -> Any:
    _check_query(req, ("validateOnly",))
    return dashboards.create_dashboard(w, req.path_params["project"], dashboards.parse_dashboard(await req.body()),
                                       _flag(req, "validateOnly"))


async def patch_dashboard(req: Request, w: Store) -> Any:
    _check_query(req, ("validateOnly",))
    p = req.path_params
    return dashboards.patch_dashboard(w, p["project"], p["dashboard"], dashboards.parse_dashboard(await req.body()),
                                      _flag(req, "validateOnly"))


async def delete_dashboard(req: Request, w: Store) -> Any:
    _check_query(req, ())
    p = req.path_params
    return dashboards.delete_dashboard(w, p["project"], p["dashboard"])


ROUTES: list[ApiRoute] = [
    ApiRoute("GET", RUN + "/services", "run.projects.locations.services.list", False, list_services),
    ApiRoute("GET", RUN + "/services/{service}", "run.projects.locations.services.get", False, get_service),
    ApiRoute("PATCH", RUN + "/services/{service}", "run.projects.locations.services.patch", True, patch_service),
    ApiRoute("GET", RUN + "/services/{service}/revisions", "run.projects.locations.services.revisions.list", False,
             list_revisions),
    ApiRoute("GET", RUN + "/services/{service}/revisions/{revision}", "run.projects.locations.services.revisions.get",
             False, get_revision),
    ApiRoute("DELETE", RUN + "/services/{service}/revisions/{revision}",
             "run.projects.locations.services.revisions.delete", True, delete_revision),
    ApiRoute("POST", RUN + "/operations/{operation}:wait", "run.projects.locations.operations.wait", False,
             wait_operation),
    ApiRoute("GET", RUN + "/operations/{operation}", "run.projects.locations.operations.get", False, get_operation),
    ApiRoute("POST", "/v2/entries:list", "logging.entries.list", False, list_entries),
    ApiRoute("GET", VPC + "/connectors", "vpcaccess.projects.locations.connectors.list", False, list_connectors),
    ApiRoute("POST", VPC + "/connectors", "vpcaccess.projects.locations.connectors.create", True, create_connector),
    ApiRoute("GET", VPC + "/connectors/{connector}", "vpcaccess.projects.locations.connectors.get", False,
             get_connector),
    ApiRoute("PATCH", VPC + "/connectors/{connector}", "vpcaccess.projects.locations.connectors.patch", True,
             patch_connector),
    ApiRoute("DELETE", VPC + "/connectors/{connector}", "vpcaccess.projects.locations.connectors.delete", True,
             delete_connector),
    ApiRoute("GET", VPC + "/operations/{operation}", "vpcaccess.projects.locations.operations.get", False,
             get_vpc_operation),
    # sqladmin.v1.json names its methods "sql.*", not "sqladmin.*".
    ApiRoute("GET", SQL + "/instances/{instance}", "sql.instances.get", False, get_sql_instance),
    ApiRoute("PATCH", SQL + "/instances/{instance}", "sql.instances.patch", True, patch_sql_instance),
    ApiRoute("GET", SQL + "/operations/{operation}", "sql.operations.get", False, get_sql_operation),
    ApiRoute("GET", COMPUTE + "/global/sslCertificates", "compute.sslCertificates.list", False, list_certificates),
    ApiRoute("GET", COMPUTE + "/global/sslCertificates/{sslCertificate}", "compute.sslCertificates.get", False,
             get_certificate),
    ApiRoute("GET", METRICS, "logging.projects.metrics.list", False, list_metrics),
    ApiRoute("POST", METRICS, "logging.projects.metrics.create", True, create_metric),
    ApiRoute("GET", METRICS + "/{metric:path}", "logging.projects.metrics.get", False, get_metric),
    ApiRoute("PUT", METRICS + "/{metric:path}", "logging.projects.metrics.update", True, update_metric),
    ApiRoute("DELETE", METRICS + "/{metric:path}", "logging.projects.metrics.delete", True, delete_metric),
    ApiRoute("GET", DASHBOARDS, "monitoring.projects.dashboards.list", False, list_dashboards),
    ApiRoute("POST", DASHBOARDS, "monitoring.projects.dashboards.create", True, create_dashboard),
    ApiRoute("GET", DASHBOARDS + "/{dashboard}", "monitoring.projects.dashboards.get", False, get_dashboard),
    ApiRoute("PATCH", DASHBOARDS + "/{dashboard}", "monitoring.projects.dashboards.patch", True, patch_dashboard),
    ApiRoute("DELETE", DASHBOARDS + "/{dashboard}", "monitoring.projects.dashboards.delete", True,
             delete_dashboard),
]


def _api_endpoint(twin: Twin, route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        injected: InjectedFault | None = None
        error: ApiError | None = None
        result: Any = None
        async with twin.lock:
            w = twin.world
            w.advance()
            # validate_only calls change nothing: they count as reads, under their own method key.
            try:
                dry = route.write and _flag(request, "validateOnly")
                w.count(route.method_id + (":validateOnly" if dry else ""), route.write and not dry)
                injected = w.check_fault(route.method_id, dry)
                if injected and injected.refusal:
                    raise injected.refusal  # refused before anything happens
                result = await route.handler(request, w)
            except ApiError as exc:
                error = exc
        if isinstance(result, Later):
            result, error = await _answer_later(twin, result)
        if injected:
            # A call carried out whose answer is lost: the change stays, the caller gets the error.
            error = injected.error_after or error
            if injected.delay:
                await asyncio.sleep(injected.delay)  # the answer is late; the lock is not held
        if error is not None:
            return JSONResponse(error.body(), status_code=error.code)
        return JSONResponse(result)

    return endpoint


async def _answer_later(twin: Twin, later: Later) -> tuple[Any, ApiError | None]:
    """Look until the answer is ready or the deadline passed, taking the lock only to look."""
    while True:
        final = time.time() >= later.deadline
        async with twin.lock:
            twin.world.advance()
            try:
                answer = later.look(final)
            except ApiError as exc:
                return None, exc
        if answer is not None:
            return answer, None
        await asyncio.sleep(min(WAIT_TICK, max(0.0, later.deadline - time.time())))


def control_app(twin: Twin) -> Starlette:
    routes = [Route(r.path, _api_endpoint(twin, r), methods=[r.verb]) for r in ROUTES]

    async def health(_: Request) -> Response:
        # home and pid: the command line talks to a twin only if it serves the home it was given,
        # and `stop` waits for this process to be gone.
        return JSONResponse({"twin": "ok", "scenario": twin.world.state["scenario"],
                             "home": str(twin.world.home.resolve()), "pid": os.getpid()})

    async def status(_: Request) -> Response:
        async with twin.lock:
            twin.world.advance()
            return JSONResponse(twin.world.status())

    async def reset(request: Request) -> Response:
        async with twin.lock:
            try:
                twin.world.reset(request.query_params.get("scenario"),
                                 clock_scale=float(request.query_params.get("clock_scale", "1")))
            except (ScenarioError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            twin.world.save()
            return JSONResponse({"scenario": twin.world.state["scenario"],
                                 "clock_scale": twin.world.state["clock_scale"]})

    routes += [
        Route("/_twin/health", health, methods=["GET"]),
        Route("/_twin/status", status, methods=["GET"]),
        Route("/_twin/reset", reset, methods=["POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        err = ApiError(404, "NOT_FOUND", f"The twin does not implement {request.method} {request.url.path}.")
        return JSONResponse(err.body(), status_code=404)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def data_app(twin: Twin) -> Callable[..., Awaitable[None]]:
    """The services themselves, addressed by host name (SNI and Host header) as on real staging.

    HTTP requests are answered by ``World.serve`` (routing, health, the applications' routes in
    :mod:`twin.dataplane`); WebSocket connections by :func:`twin.dataplane.websocket`.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await dataplane.websocket(twin.lock, twin.world, twin.world.advance, scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:  # the whole body (a login is a few bytes); the world answers from all of it
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        async with twin.lock:
            twin.world.advance()
            answer = twin.world.serve(dataplane.host_of(scope), scope["path"], method=scope["method"], body=body)
        if answer.latency:
            # The answer is slow the way the contended service is slow; the lock is not held.
            await asyncio.sleep(answer.latency)
        payload = json.dumps(answer.body).encode()
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    return app
