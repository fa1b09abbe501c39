"""The twin's gRPC face against the real client libraries: Monitoring v3 (time series here; alert
policies and notification channels in :mod:`selftest.test_twin_monitoring`), and Cloud SQL Admin's
gRPC services refused with UNIMPLEMENTED, as Google refuses them (Cloud SQL Admin is REST-only on
the public endpoint: googleapis/google-cloud-node#6228; its REST face is tested in
:mod:`selftest.test_twin_contract_phase2`).

Monitoring's Python client has gRPC transports only, so the oracle here is the client itself:

* every RPC the twin serves must be one the client's transport calls, under the same gRPC path and
  with the same request and response message types (read from the transport's own stubs); the id
  it is counted under must be the API's discovery-document method id, a write exactly when the
  method is not a GET;
* every call below goes through the real client over a plaintext loopback channel to a real twin
  subprocess, so a body the client could not parse, or a status it would not map, fails here.

The rule tests then pin what the runbook depends on: the num_backends metric reads the incident's
88 connections.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import httpx
import pytest
from google.api.metric_pb2 import MetricDescriptor
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.alert_policy_service.transports import AlertPolicyServiceGrpcTransport
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.cloud.monitoring_v3.services.notification_channel_service.transports import (
    NotificationChannelServiceGrpcTransport,
)

from selftest.test_twin_contract import discovery_doc, discovery_methods
from selftest.twinproc import grpc_channel, running_twin
from twin.grpcserver import REST_ONLY, RPCS, Rpc

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = "incident-1278"
PROJECT, INSTANCE = "netra-staging", "netra-staging-db"
NUM_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"

# Every RPC goes out with this deadline (seconds).
TIMEOUT = 10.0

# The transport the real client uses for each gRPC service the twin serves.
TRANSPORTS: dict[str, Any] = {
    "google.monitoring.v3.MetricService": MetricServiceGrpcTransport,
    "google.monitoring.v3.AlertPolicyService": AlertPolicyServiceGrpcTransport,
    "google.monitoring.v3.NotificationChannelService": NotificationChannelServiceGrpcTransport,
}


# ---- 1. method fidelity: the client transports' own stubs ----------------------------------------


class _StubRecorder:
    """Stands in for the transport's channel and records every stub the transport builds."""

    def __init__(self) -> None:
        # (serializer, deserializer): bound methods of the proto-plus message classes, read back by
        # their __self__, which Callable does not declare.
        self.stubs: dict[str, tuple[Any, Any]] = {}

    def unary_unary(self, path: str, request_serializer: Any = None, response_deserializer: Any = None,
                    **_: Any) -> Callable[..., Any]:
        self.stubs[path] = (request_serializer, response_deserializer)
        return lambda *a, **k: None

    unary_stream = stream_unary = stream_stream = unary_unary


def client_stubs(transport_cls: Any) -> dict[str, tuple[Any, Any]]:
    """gRPC path -> (request type, response type) for every RPC the client's transport can call."""
    channel = grpc.insecure_channel("127.0.0.1:9")  # never connected: stubs are built lazily
    try:
        transport = transport_cls(channel=channel)
        recorder = _StubRecorder()
        transport._logged_channel, transport._stubs = recorder, {}
        for name, attr in vars(transport_cls).items():
            if isinstance(attr, property) and name not in ("grpc_channel", "kind", "operations_client"):
                try:
                    getattr(transport, name)
                except Exception:  # a helper property, not an RPC
                    pass
        # The serializers are bound to their proto-plus message classes: that is the type used.
        return {path: (ser.__self__, de.__self__) for path, (ser, de) in recorder.stubs.items()}
    finally:
        channel.close()


@pytest.mark.parametrize("rpc", RPCS, ids=[r.path for r in RPCS])
def test_rpc_exists_in_client_library(rpc: Rpc) -> None:
    stubs = client_stubs(TRANSPORTS[rpc.service])
    assert rpc.path in stubs, f"{rpc.path} is not an RPC of the client library (it has {sorted(stubs)})"
    assert stubs[rpc.path] == (rpc.request, rpc.response)


# The discovery document (api, version) that describes each gRPC service's REST twin.
DISCOVERY = {
    "google.monitoring.v3.MetricService": ("monitoring", "v3"),
    "google.monitoring.v3.AlertPolicyService": ("monitoring", "v3"),
    "google.monitoring.v3.NotificationChannelService": ("monitoring", "v3"),
}


@pytest.mark.parametrize("rpc", RPCS, ids=[r.path for r in RPCS])
def test_rpc_is_counted_under_its_discovery_method_id(rpc: Rpc) -> None:
    api, version = DISCOVERY[rpc.service]
    found = [m for m in discovery_methods(discovery_doc(api, version)) if m["id"] == rpc.method_id]
    assert len(found) == 1, f"{api}.{version} has {len(found)} methods with id {rpc.method_id}"
    # The twin counts writes by this flag; a "write" the API serves with GET would be a lie, and so
    # would a "read" it serves with PATCH.
    assert rpc.write == (found[0]["httpMethod"] != "GET")


def test_every_served_service_has_a_transport() -> None:
    assert {r.service for r in RPCS} <= set(TRANSPORTS) & set(DISCOVERY)
    assert len({r.path for r in RPCS}) == len(RPCS)


# ---- the twin under test ---------------------------------------------------------------------


class Twin:
    """A real twin subprocess: its REST control plane (httpx) and the real gRPC clients."""

    def __init__(self, control: httpx.Client, channel: grpc.Channel) -> None:
        self.control = control
        self.channel = channel
        self.metrics = monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))

    def reset(self) -> None:
        resp = self.control.post("/_twin/reset", params={"scenario": SCENARIO})
        assert resp.status_code == 200, resp.text

    def status(self) -> dict[str, Any]:
        resp = self.control.get("/_twin/status")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def series(self, flt: str, minutes: float = 10) -> list[monitoring_v3.TimeSeries]:
        now = time.time()
        interval = monitoring_v3.TimeInterval(end_time={"seconds": int(now)},
                                              start_time={"seconds": int(now - minutes * 60)})
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{PROJECT}", filter=flt, interval=interval,
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL)
        return list(self.metrics.list_time_series(request=request, timeout=TIMEOUT))


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    """A real twin subprocess on free loopback ports, in a temporary home."""
    home = tmp_path_factory.mktemp("twin-grpc-contract")
    with running_twin(home, SCENARIO) as proc, grpc_channel(proc, TIMEOUT) as channel, \
            httpx.Client(base_url=f"http://127.0.0.1:{proc.control_port}", timeout=TIMEOUT) as control:
        yield Twin(control, channel)


@pytest.fixture
def twin(twin_server: Twin) -> Twin:
    """The twin, put back to the incident so no test depends on another."""
    twin_server.reset()
    return twin_server


# ---- 2. Cloud SQL Admin: REST-only, as on Google's endpoint ----------------------------------------


@pytest.mark.parametrize("path", [
    "/google.cloud.sql.v1.SqlInstancesService/Get",
    "/google.cloud.sql.v1.SqlInstancesService/Patch",
    "/google.cloud.sql.v1.SqlOperationsService/Get",
    "/google.cloud.sql.v1.SqlInstancesService/NoSuchMethod",  # by service name, whatever the method
])
def test_cloud_sql_over_grpc_is_unimplemented(twin: Twin, path: str) -> None:
    # A raw call (no client library's types): request bytes out (a string field 1, as a protobuf
    # request would start), a status back.
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = twin.channel.unary_unary(
        path, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as err:
        call(b"\x0a\x0dnetra-staging", timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "Received HTTP status code 404" in (err.value.details() or "")
    assert path.split("/")[1] in REST_ONLY
    assert twin.status()["requests"]["by_method"] == {}  # a refused call is no Cloud SQL request
    # The instance is still served, on the REST face.
    assert twin.control.get(f"/v1/projects/{PROJECT}/instances/{INSTANCE}").status_code == 200


def test_no_served_rpc_is_a_rest_only_service() -> None:
    assert not {r.service for r in RPCS} & set(REST_ONLY)


# ---- 3. Monitoring through the real client ---------------------------------------------------


def test_num_backends_reads_the_incident(twin: Twin) -> None:
    # One series per database (selftest/test_twin_num_backends.py has the rest): together the
    # incident's 88 connections.
    flt = f'metric.type = "{NUM_BACKENDS}" AND resource.labels.database_id = "{PROJECT}:{INSTANCE}"'
    series = twin.series(flt, minutes=10)
    assert len(series) == 3
    for ts in series:
        assert ts.resource.type == "cloudsql_database"
        assert ts.resource.labels["database_id"] == f"{PROJECT}:{INSTANCE}"
        assert (ts.metric_kind, ts.value_type) == (MetricDescriptor.GAUGE, MetricDescriptor.INT64)
        # proto-plus reads a Timestamp field as a datetime; its annotations name the protobuf Timestamp
        ends = [p.interval.end_time.timestamp() for p in ts.points]  # type: ignore[attr-defined]
        assert len(ends) >= 10
        assert ends == sorted(ends, reverse=True) and len(set(ends)) == len(ends)  # newest first
    assert sum(ts.points[-1].value.int64_value for ts in series) == 88


@pytest.mark.parametrize("flt", [
    'metric.type = "cloudsql.googleapis.com/database/postgresql/no_such_metric"',
    f'metric.type="{NUM_BACKENDS}" AND resource.labels.database_id="{PROJECT}:other-db"',
], ids=["unknown-metric", "other-instance"])
def test_nothing_matches(twin: Twin, flt: str) -> None:
    assert twin.series(flt) == []


@pytest.mark.parametrize("flt", ["", "metric.type", f'metric.type = "{NUM_BACKENDS}" OR metric.type = "x"'],
                         ids=["empty", "no-value", "or"])
def test_unreadable_filter_is_invalid(twin: Twin, flt: str) -> None:
    with pytest.raises(gexc.InvalidArgument):
        twin.series(flt)


# ---- 4. accounting ---------------------------------------------------------------------------


def test_status_counts_grpc_requests_by_method(twin: Twin) -> None:
    twin.series(f'metric.type = "{NUM_BACKENDS}"')
    twin.series(f'metric.type = "{NUM_BACKENDS}"', minutes=5)
    req = twin.status()["requests"]
    assert req["writes"] == 0
    assert req["reads"] == 2
    assert req["by_method"] == {"monitoring.projects.timeSeries.list": 2}
