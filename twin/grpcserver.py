"""The twin's gRPC face: Monitoring v3, whose Python client speaks gRPC only; and Cloud SQL Admin's
gRPC services refused, as Google refuses them.

Each served method is an :class:`Rpc` in ``RPCS``, naming its gRPC path, the client library's own
request and response message types, and the discovery-document id the request is counted under
(the same ids the REST face uses, so ``/_twin/status`` counts both faces alike). The contract test
checks every path and type against the client libraries' transports.

Requests are decoded with the client library's message types, and every answer is parsed into
the response type with unknown fields refused: a field the real API does not have fails in the
twin (as INTERNAL), not in a user's incident. The world logic itself lives in :mod:`twin.monitoring`.

Cloud SQL Admin is REST-only on Google's public endpoint: every call to its gRPC services ends in
UNIMPLEMENTED ("12 UNIMPLEMENTED: Received HTTP status code 404", googleapis/google-cloud-node#6228;
"a REST-only API", googleapis/google-cloud-cpp#8730). The twin answers the same, by service name,
without knowing the services' messages (``REST_ONLY``); it serves Cloud SQL on its REST face.
"""

from __future__ import annotations

import asyncio
import errno
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import grpc
from google.cloud import monitoring_v3
from google.protobuf import empty_pb2, json_format
from google.protobuf.message import Message

from twin import monitoring
from twin.store import ApiError, InjectedFault, Store

# An RPC handler: the world, the decoded request (a protobuf message), and the time of the call;
# returns the response as REST JSON.
Handler = Callable[[Store, Any, float], dict[str, Any]]


@dataclass(frozen=True)
class Rpc:
    service: str      # fully qualified gRPC service, e.g. google.monitoring.v3.MetricService
    method: str       # e.g. ListTimeSeries
    method_id: str    # the discovery document's method id, e.g. monitoring.projects.timeSeries.list
    write: bool
    request: Any      # the client library's proto-plus request type
    response: Any     # ... and response type (a plain protobuf class for google.protobuf.Empty)
    handler: Handler

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


# ---- handlers --------------------------------------------------------------------------------


def _as_json(msg: Message) -> dict[str, Any]:
    """A protobuf message as REST JSON (camelCase names, enum names, unset fields left out)."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=False)


def _seconds(ts: Any) -> float:
    return ts.seconds + ts.nanos / 1e9


def monitoring_list_time_series(w: Store, req: Any, now: float) -> dict[str, Any]:
    project = req.name.removeprefix("projects/")
    if not req.name.startswith("projects/") or not project or "/" in project:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid resource name {req.name!r}; expected projects/PROJECT_ID.")
    if project != w.state["project"]:
        raise ApiError(403, "PERMISSION_DENIED",
                       f"The twin holds metrics only for projects/{w.state['project']}; asked for {req.name}.")
    if not (req.HasField("interval") and req.interval.HasField("end_time")):
        raise ApiError(400, "INVALID_ARGUMENT", "Field interval.endTime is required.")
    # What the twin cannot compute is refused (twin.monitoring.Aggregation), never answered raw.
    refused = [f for f, asked in (("secondary_aggregation", req.HasField("secondary_aggregation")
                                   and _as_json(req.secondary_aggregation)), ("order_by", req.order_by)) if asked]
    if refused:
        raise ApiError(501, "UNIMPLEMENTED", f"The twin does not implement {' and '.join(refused)} in ListTimeSeries.")
    if req.page_token:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid page token {req.page_token!r}.")
    end = _seconds(req.interval.end_time)
    start = _seconds(req.interval.start_time) if req.interval.HasField("start_time") else end
    aggregation = _as_json(req.aggregation) if req.HasField("aggregation") else None
    series = monitoring.time_series(w, req.filter, start, end, now=now, aggregation=aggregation)
    if req.view == monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.HEADERS:
        series = [{k: v for k, v in s.items() if k != "points"} for s in series]
    # The whole answer fits one page (a page size is a maximum, and six hours of minutes is small).
    return {"timeSeries": series}


def alert_policies_list(w: Store, req: Any, now: float) -> dict[str, Any]:
    return monitoring.list_alert_policies(w, req.name, req.filter, req.order_by, req.page_size, req.page_token)


def alert_policies_get(w: Store, req: Any, now: float) -> dict[str, Any]:
    return monitoring.get_alert_policy(w, req.name)


def alert_policies_create(w: Store, req: Any, now: float) -> dict[str, Any]:
    return monitoring.create_alert_policy(w, req.name, _as_json(req.alert_policy), now)


def alert_policies_update(w: Store, req: Any, now: float) -> dict[str, Any]:
    # The mask's paths as the client sends them (proto field names, e.g. "enabled", "conditions").
    return monitoring.update_alert_policy(w, _as_json(req.alert_policy), list(req.update_mask.paths), now)


def alert_policies_delete(w: Store, req: Any, now: float) -> dict[str, Any]:
    return monitoring.delete_alert_policy(w, req.name)


def notification_channels_list(w: Store, req: Any, now: float) -> dict[str, Any]:
    return monitoring.list_channels(w, req.name, req.filter, req.order_by, req.page_size, req.page_token)


def notification_channels_get(w: Store, req: Any, now: float) -> dict[str, Any]:
    return monitoring.get_channel(w, req.name)


ALERTS = "google.monitoring.v3.AlertPolicyService"
CHANNELS = "google.monitoring.v3.NotificationChannelService"

RPCS: list[Rpc] = [
    Rpc("google.monitoring.v3.MetricService", "ListTimeSeries", "monitoring.projects.timeSeries.list", False,
        monitoring_v3.ListTimeSeriesRequest, monitoring_v3.ListTimeSeriesResponse, monitoring_list_time_series),
    Rpc(ALERTS, "ListAlertPolicies", "monitoring.projects.alertPolicies.list", False,
        monitoring_v3.ListAlertPoliciesRequest, monitoring_v3.ListAlertPoliciesResponse, alert_policies_list),
    Rpc(ALERTS, "GetAlertPolicy", "monitoring.projects.alertPolicies.get", False,
        monitoring_v3.GetAlertPolicyRequest, monitoring_v3.AlertPolicy, alert_policies_get),
    Rpc(ALERTS, "CreateAlertPolicy", "monitoring.projects.alertPolicies.create", True,
        monitoring_v3.CreateAlertPolicyRequest, monitoring_v3.AlertPolicy, alert_policies_create),
    # UpdateAlertPolicy is the REST API's PATCH (monitoring.v3.json has no "update" for policies).
    Rpc(ALERTS, "UpdateAlertPolicy", "monitoring.projects.alertPolicies.patch", True,
        monitoring_v3.UpdateAlertPolicyRequest, monitoring_v3.AlertPolicy, alert_policies_update),
    Rpc(ALERTS, "DeleteAlertPolicy", "monitoring.projects.alertPolicies.delete", True,
        monitoring_v3.DeleteAlertPolicyRequest, empty_pb2.Empty, alert_policies_delete),
    Rpc(CHANNELS, "ListNotificationChannels", "monitoring.projects.notificationChannels.list", False,
        monitoring_v3.ListNotificationChannelsRequest, monitoring_v3.ListNotificationChannelsResponse,
        notification_channels_list),
    Rpc(CHANNELS, "GetNotificationChannel", "monitoring.projects.notificationChannels.get", False,
        monitoring_v3.GetNotificationChannelRequest, monitoring_v3.NotificationChannel, notification_channels_get),
]


# ---- wiring ----------------------------------------------------------------------------------

# HTTP code of an ApiError -> gRPC status, for errors whose canonical status name is not a gRPC one.
_CODE_FOR_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    501: grpc.StatusCode.UNIMPLEMENTED,
}


def status_code(exc: ApiError) -> grpc.StatusCode:
    """The gRPC status for an ApiError: its canonical status name when it is one, else by HTTP code."""
    try:
        return grpc.StatusCode[exc.status]
    except KeyError:
        return _CODE_FOR_HTTP.get(exc.code, grpc.StatusCode.UNKNOWN)


def protobuf_class(message_type: Any) -> Any:
    """The protobuf class of a proto-plus message type (google.protobuf.Empty is one already)."""
    return message_type.pb() if hasattr(message_type, "pb") else message_type


def encode(message_type: Any, body: dict[str, Any]) -> Message:
    """REST JSON -> the client library's protobuf message; a field the real API lacks raises."""
    return json_format.Parse(json.dumps(body), protobuf_class(message_type)(), ignore_unknown_fields=False)


def _unary(twin: Any, rpc: Rpc) -> grpc.RpcMethodHandler:
    async def call(request: Message, context: grpc.aio.ServicerContext) -> Message:
        failure: tuple[grpc.StatusCode, str] | None = None
        answer: Message | None = None
        injected: InjectedFault | None = None
        async with twin.lock:
            w = twin.world
            now = time.time()
            w.advance(now)
            w.count(rpc.method_id, rpc.write)
            try:
                injected = w.check_fault(rpc.method_id)
                if injected and injected.refusal:
                    raise injected.refusal  # refused before anything happens
                answer = encode(rpc.response, rpc.handler(w, request, now))
            except ApiError as exc:
                failure = (status_code(exc), exc.message)
            except json_format.ParseError as exc:
                # The twin built something the real API cannot return: a twin bug, said loudly.
                failure = (grpc.StatusCode.INTERNAL, f"twin: {rpc.path} answer is not a valid "
                                                     f"{protobuf_class(rpc.response).DESCRIPTOR.full_name}: {exc}")
        if injected:
            if injected.error_after:  # carried out, and its answer lost: the change stays
                failure = (status_code(injected.error_after), injected.error_after.message)
            if injected.delay:
                await asyncio.sleep(injected.delay)  # the answer is late; the lock is not held
        if failure is not None:
            await context.abort(*failure)
            raise AssertionError("unreachable: context.abort raises")
        assert answer is not None
        return answer

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=rpc.request.pb().FromString,
        response_serializer=protobuf_class(rpc.response).SerializeToString,
    )


# gRPC services Google does not serve on its public endpoint (see the module docstring), and what a
# call to them gets back.
REST_ONLY = ("google.cloud.sql.v1.SqlInstancesService", "google.cloud.sql.v1.SqlOperationsService")
REST_ONLY_MESSAGE = "Received HTTP status code 404"


async def _rest_only(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, REST_ONLY_MESSAGE)
    raise AssertionError("unreachable: context.abort raises")


class RestOnly(grpc.GenericRpcHandler):
    """Every method of the REST_ONLY services, whatever its name or message: UNIMPLEMENTED. The
    request stays undecoded bytes, so no client library's types are needed."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        service = handler_call_details.method.lstrip("/").split("/", 1)[0]
        return grpc.unary_unary_rpc_method_handler(_rest_only) if service in REST_ONLY else None


def handlers(twin: Any) -> list[grpc.GenericRpcHandler]:
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for rpc in RPCS:
        by_service.setdefault(rpc.service, {})[rpc.method] = _unary(twin, rpc)
    served = [grpc.method_handlers_generic_handler(svc, methods) for svc, methods in by_service.items()]
    return [*served, RestOnly()]


async def serve_grpc(twin: Any, host: str, port: int, control: Any) -> None:
    """Serve RPCS on host:port (plaintext, loopback) until the control plane's server stops."""
    # gRPC sets SO_REUSEPORT by default, which would let a second twin share the port and split the
    # calls between two worlds; a taken port must fail instead.
    server = grpc.aio.server(handlers=handlers(twin), options=[("grpc.so_reuseport", 0)])
    address = f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio >= 1.5x raises; older versions return 0
        bound, reason = 0, str(exc)
    else:
        reason = "the port is taken"
    if not bound:
        raise OSError(errno.EADDRINUSE, f"twin: cannot listen for gRPC on {address} ({reason}). Is another twin "
                                        "running? Give this one other ports (--grpc 127.0.0.1:PORT).")
    await server.start()
    try:
        while not control.should_exit:
            await asyncio.sleep(0.1)
    finally:
        # Also on cancellation (another server failed): never leave the port or a thread behind.
        await server.stop(grace=0.5)
