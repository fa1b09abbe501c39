"""The twin's contract with Google for Phase 2: Serverless VPC Access, Compute SSL certificates,
Cloud SQL Admin, the connector's metrics and what the services behind it log, and the data plane's
TLS and dependency health.

Same oracles as :mod:`selftest.test_twin_contract`: the discovery documents for routes, the client
libraries' message types (and the real generated clients where they have the method) for bodies.
Cloud SQL Admin has no REST client library in Python (google-cloud-sql is gRPC-only, and the API is
REST-only), so its bodies are checked against the schemas of sqladmin.v1.json, and its calls go
through Google's discovery-based client and the gate's own adapter (goldenpath.gcp.sqladmin).
The rule tests check that the twin refuses what the APIs refuse, so a remediation that breaks a
rule fails in rehearsal, not on staging.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from google.api import metric_pb2
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import monitoring_v3, vpcaccess_v1
from google.cloud.logging_v2.types import LogEntry
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.logging.type import log_severity_pb2

from goldenpath.config import APIS, Target
from goldenpath.errors import CheckError
from goldenpath.gcp.monitoring import distribution_quantile
from goldenpath.gcp.session import GcpSession
from goldenpath.gcp.sqladmin import CloudSql
from selftest.test_twin_contract import discovery_doc, doc_method, google_error, normalised, ok, parse_operation, unpack
from selftest.twinproc import grpc_channel, running_twin
from twin.server import ROUTES, ApiRoute

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "twin" / "scenarios"

PROJECT, REGION = "netra-staging", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
CONNECTOR = "staging-connector"
CONNECTOR_NAME = f"{PARENT}/connectors/{CONNECTOR}"
CERT = "staging-ssl-cert"
API_HOST, API_HOST_2 = "api.staging.netrasystems.ai", "api-staging.netrasystems.ai"
UNCOVERED_HOST = "www.staging.netrasystems.ai"  # no certificate of any scenario lists it
AUTH_CERT = "auth-ssl-cert"  # the auth service's own certificate (the Golden Path logs in over TLS)
BACKEND, NEW = "netra-backend-staging", "netra-backend-staging-00750-69k"
# The runbook's query: Google documents no such log, so on the twin as on Google it finds nothing.
CONNECTOR_FILTER = f'resource.type="vpc_access_connector" AND resource.labels.connector_name="{CONNECTOR}"'
# The gate's query for the socket errors the services behind the connector print.
EGRESS_FILTER = (f'resource.type="cloud_run_revision" AND resource.labels.service_name=~"^({BACKEND})$" '
                 f'AND logName=~"^projects/{PROJECT}/logs/run[.]googleapis[.]com%2Fstd(err|out)$" '
                 'AND textPayload=~"(?i)(i/o timeout|ETIMEDOUT|connection timed out|connection reset by peer)"')
CPU = "vpcaccess.googleapis.com/connector/cpu/utilizations"
INSTANCES = "vpcaccess.googleapis.com/connector/instances"
SENT = "vpcaccess.googleapis.com/connector/sent_bytes_count"
RECEIVED = "vpcaccess.googleapis.com/connector/received_bytes_count"

TIMEOUT = 10.0  # seconds, for every network call

PHASE2_IDS = {
    "vpcaccess.projects.locations.connectors.get", "vpcaccess.projects.locations.connectors.list",
    "vpcaccess.projects.locations.connectors.create", "vpcaccess.projects.locations.connectors.patch",
    "vpcaccess.projects.locations.connectors.delete", "vpcaccess.projects.locations.operations.get",
    "compute.sslCertificates.get", "compute.sslCertificates.list",
    "sql.instances.get", "sql.instances.patch", "sql.operations.get",
}
PHASE2_ROUTES = [r for r in ROUTES if r.method_id in PHASE2_IDS]


# ---- 1. route fidelity ----------------------------------------------------------------------------


def test_every_phase2_method_has_a_route() -> None:
    assert {r.method_id for r in PHASE2_ROUTES} == PHASE2_IDS


@pytest.mark.parametrize("route", PHASE2_ROUTES, ids=[r.method_id for r in PHASE2_ROUTES])
def test_route_matches_discovery_document(route: ApiRoute) -> None:
    method = doc_method(route)  # flatPath there includes the service path (compute/v1/)
    assert method["httpMethod"] == route.verb
    assert normalised(method["flatPath"]) == normalised(route.path)
    assert route.write == (route.verb != "GET")


# ---- the twin under test ---------------------------------------------------------------------------


class Twin:
    def __init__(self, home: Path, control: int, data: int, scenario_dir: Path, channel: Any = None) -> None:
        self.home, self.data_port, self.scenario_dir = home, data, scenario_dir
        self.metrics = monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{control}", timeout=TIMEOUT)
        self.endpoint = f"http://127.0.0.1:{control}"

    def reset(self, scenario: str = "incident-1278") -> None:
        ok(self.api.post("/_twin/reset", params={"scenario": scenario}))

    def vpc(self) -> vpcaccess_v1.VpcAccessServiceClient:
        return vpcaccess_v1.VpcAccessServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                                   client_options={"api_endpoint": self.endpoint})

    def get(self, url: str) -> Any:
        return json.loads(ok(self.api.get(url)))

    def connector(self) -> dict[str, Any]:
        return self.get(f"/v1/{CONNECTOR_NAME}")

    def patch(self, body: dict[str, Any], mask: str | None = None) -> httpx.Response:
        params = {"updateMask": mask} if mask is not None else {}
        return self.api.patch(f"/v1/{CONNECTOR_NAME}", params=params, json=body)

    def wait(self, op: dict[str, Any], deadline_s: float = TIMEOUT) -> dict[str, Any]:
        """Poll an operation until done (an LRO has no :wait here), with a deadline."""
        deadline = time.monotonic() + deadline_s
        while not op.get("done"):
            assert time.monotonic() < deadline, f"operation {op['name']} not done within {deadline_s} s"
            time.sleep(0.1)
            op = self.get(f"/v1/{op['name']}")
        return op

    def scale(self, body: dict[str, Any], mask: str) -> dict[str, Any]:
        return self.wait(json.loads(ok(self.patch(body, mask))))

    def entries(self, filter_: str, order: str = "timestamp asc") -> list[dict[str, Any]]:
        out, token = [], None
        while True:
            query = {"resourceNames": [f"projects/{PROJECT}"], "filter": filter_, "orderBy": order, "pageSize": 1000}
            if token:
                query["pageToken"] = token
            page = json.loads(ok(self.api.post("/v2/entries:list", json=query)))
            out += page.get("entries", [])
            token = page.get("nextPageToken")
            if not token:
                return out

    def series(self, metric: str, seconds: float = 60) -> list[Any]:
        """The connector's series of ``metric`` over the last ``seconds``, through the real gRPC client."""
        now = time.time()
        interval = monitoring_v3.TimeInterval(end_time={"seconds": int(now) + 1},
                                              start_time={"seconds": int(now - seconds)})
        flt = (f'metric.type = "{metric}" AND resource.type = "vpc_access_connector" '
               f'AND resource.labels.connector_name = "{CONNECTOR}"')
        return list(self.metrics.list_time_series(
            request=monitoring_v3.ListTimeSeriesRequest(name=f"projects/{PROJECT}", filter=flt, interval=interval,
                                                        view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL),
            timeout=TIMEOUT))

    def data_get(self, host: str, path: str) -> tuple[int, dict[str, Any]]:
        """One HTTPS request to the data plane, with ``host`` as SNI and Host, verified by the twin's CA."""
        ctx = ssl.create_default_context(cafile=str(self.home / "ca.pem"))
        with socket.create_connection(("127.0.0.1", self.data_port), timeout=TIMEOUT) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    def route_all_traffic_to_new(self) -> None:
        """Phase 1's fix through the Run API, so the contention's slow 503s stay out of these tests."""
        url = f"/v2/{PARENT}/services/{BACKEND}"
        svc = self.get(url)
        svc["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": NEW, "percent": 100}]
        op = json.loads(ok(self.api.patch(url, json=svc)))
        assert json.loads(ok(self.api.post(f"/v2/{op['name']}:wait", json={"timeout": "8s"})))["done"] is True




@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    home = tmp_path_factory.mktemp("twin-phase2")
    scenario_dir = tmp_path_factory.mktemp("scenarios")
    with running_twin(home, "incident-1278") as proc, grpc_channel(proc, TIMEOUT) as channel:
        t = Twin(home, proc.control_port, proc.data_port, scenario_dir, channel)
        yield t
        t.api.close()


@pytest.fixture
def incident(twin: Twin) -> Twin:
    twin.reset("incident-1278")
    return twin


@pytest.fixture
def fast(twin: Twin) -> Twin:
    """The incident with quick operations and a dense error log (every 0.25 s, shorter than an
    operation), so time-driven behaviour shows within a second instead of a minute."""
    text = (SCENARIOS / "incident-1278.toml").read_text()
    for old, new in (("deploy_seconds = 1.5", "deploy_seconds = 0.4"), ("errors_per_minute = 4", "errors_per_minute = 240"),
                     ("minutes = 30", "minutes = 5")):
        assert text.count(old) == 1, f"incident-1278.toml no longer says {old!r}; update this fixture"
        text = text.replace(old, new)
    path = twin.scenario_dir / "incident-fast.toml"
    path.write_text(text)
    twin.reset(str(path))
    return twin


# ---- 2. body fidelity --------------------------------------------------------------------------------


def test_connector_get_with_the_real_client(incident: Twin) -> None:
    got = incident.vpc().get_connector(name=CONNECTOR_NAME, timeout=TIMEOUT)
    assert got.name == CONNECTOR_NAME and got.state == vpcaccess_v1.Connector.State.READY
    assert (got.machine_type, got.min_instances, got.max_instances) == ("e2-micro", 2, 3)
    raw = vpcaccess_v1.Connector.from_json(ok(incident.api.get(f"/v1/{CONNECTOR_NAME}")), ignore_unknown_fields=False)
    assert raw == got


def test_connector_list_body(incident: Twin) -> None:
    resp = vpcaccess_v1.ListConnectorsResponse.from_json(ok(incident.api.get(f"/v1/{PARENT}/connectors")),
                                                         ignore_unknown_fields=False)
    assert [c.name for c in resp.connectors] == [CONNECTOR_NAME]
    listed = list(incident.vpc().list_connectors(parent=PARENT, timeout=TIMEOUT))
    assert [c.name for c in listed] == [CONNECTOR_NAME]


def test_connector_get_unknown_is_not_found(incident: Twin) -> None:
    google_error(incident.api.get(f"/v1/{PARENT}/connectors/nope"), 404, "NOT_FOUND")
    with pytest.raises(gexc.NotFound):
        incident.vpc().get_connector(name=f"{PARENT}/connectors/nope", timeout=TIMEOUT)


def test_create_and_delete_with_the_real_client(fast: Twin) -> None:
    client = fast.vpc()
    body = vpcaccess_v1.Connector(network="default", ip_cidr_range="10.9.0.0/28", machine_type="e2-micro",
                                  min_instances=2, max_instances=4)
    op = client.create_connector(parent=PARENT, connector_id="extra-conn", connector=body, timeout=TIMEOUT)
    assert op.metadata.method.endswith("CreateConnector") and op.metadata.target == f"{PARENT}/connectors/extra-conn"
    created = op.result(timeout=TIMEOUT)
    assert created.state == vpcaccess_v1.Connector.State.READY
    assert (created.min_instances, created.max_instances) == (2, 4)

    with pytest.raises(gexc.Conflict):  # 409 ALREADY_EXISTS: the name is in use
        client.create_connector(parent=PARENT, connector_id="extra-conn", connector=body, timeout=TIMEOUT)

    client.delete_connector(name=f"{PARENT}/connectors/extra-conn", timeout=TIMEOUT).result(timeout=TIMEOUT)
    with pytest.raises(gexc.NotFound):
        client.get_connector(name=f"{PARENT}/connectors/extra-conn", timeout=TIMEOUT)


def test_create_of_a_name_in_use_is_already_exists(incident: Twin) -> None:
    resp = incident.api.post(f"/v1/{PARENT}/connectors", params={"connectorId": CONNECTOR},
                             json={"network": "default", "ipCidrRange": "10.10.0.0/28"})
    google_error(resp, 409, "ALREADY_EXISTS")


def test_patch_operation_bodies(fast: Twin) -> None:
    started_text = ok(fast.patch({"maxInstances": 10}, "maxInstances"))
    started = parse_operation(started_text)  # unknown fields refused; Any types resolved
    assert started.name.startswith(f"{PARENT}/operations/") and not started.done
    meta = unpack(started.metadata, vpcaccess_v1.OperationMetadata)
    assert meta.method == "google.cloud.vpcaccess.v1.VpcAccessService.UpdateConnector"
    assert meta.target == CONNECTOR_NAME and meta.create_time

    finished = fast.wait(json.loads(started_text))
    done = parse_operation(json.dumps(finished))
    assert done.done and done.WhichOneof("result") == "response"
    assert unpack(done.response, vpcaccess_v1.Connector).max_instances == 10
    assert unpack(done.metadata, vpcaccess_v1.OperationMetadata).end_time
    # The real client's operations API reads the same operation.
    assert fast.vpc().get_operation({"name": started.name}, timeout=TIMEOUT).done


def test_certificate_bodies_with_the_real_client(incident: Twin) -> None:
    from google.cloud import compute_v1  # ~2 s to import: only this test pays for it

    raw = compute_v1.SslCertificate.from_json(
        ok(incident.api.get(f"/compute/v1/projects/{PROJECT}/global/sslCertificates/{CERT}")),
        ignore_unknown_fields=False)
    assert raw.name == CERT and list(raw.managed.domains) == [API_HOST, API_HOST_2]
    listed = compute_v1.SslCertificateList.from_json(
        ok(incident.api.get(f"/compute/v1/projects/{PROJECT}/global/sslCertificates")), ignore_unknown_fields=False)
    assert listed.kind == "compute#sslCertificateList" and [c.name for c in listed.items] == [AUTH_CERT, CERT]

    client = compute_v1.SslCertificatesClient(transport="rest", credentials=AnonymousCredentials(),
                                              client_options={"api_endpoint": incident.endpoint})
    got = client.get(project=PROJECT, ssl_certificate=CERT, timeout=TIMEOUT)
    assert got == raw and got.managed.status == "ACTIVE"
    assert [c.name for c in client.list(project=PROJECT, timeout=TIMEOUT)] == [AUTH_CERT, CERT]
    with pytest.raises(gexc.NotFound):
        client.get(project=PROJECT, ssl_certificate="nope", timeout=TIMEOUT)


def all_entries(twin: Twin, filter_: str) -> list[Any]:
    """Every entry matching ``filter_`` through every page of the search, each parsed with unknown
    fields refused."""
    return [LogEntry.from_json(json.dumps(e), ignore_unknown_fields=False) for e in twin.entries(filter_)]


def test_no_connector_log_but_the_backend_logs_its_timeouts(incident: Twin) -> None:
    assert all_entries(incident, CONNECTOR_FILTER) == []
    entries = all_entries(incident, EGRESS_FILTER)
    # The incident's half hour of history, 4 a minute (plus the odd one logged since the reset).
    assert 118 <= len(entries) <= 130
    entry = entries[0]
    assert entry.log_name == f"projects/{PROJECT}/logs/run.googleapis.com%2Fstderr"
    assert entry.resource.type == "cloud_run_revision" and entry.resource.labels["service_name"] == BACKEND
    assert entry.severity == log_severity_pb2.DEFAULT  # a plain stderr line has no level
    assert {e.text_payload for e in entries} == {
        "failed to connect to database: dial tcp 10.20.0.3:5432: i/o timeout",
        "redis: dial tcp 10.20.1.4:6379: connect: connection timed out",
        "psycopg2.OperationalError: could not receive data from server: Connection reset by peer",
        "Error: connect ETIMEDOUT 10.20.0.3:5432",
    }


def test_connector_metrics_with_the_real_monitoring_client(incident: Twin) -> None:
    # 900 Mbps through 3 × e2-micro (about 100 Mbps each): saturated, at its maximum.
    (cpu,) = incident.series(CPU)
    assert (cpu.metric_kind, cpu.value_type) == (metric_pb2.MetricDescriptor.GAUGE,
                                                 metric_pb2.MetricDescriptor.DISTRIBUTION)
    assert dict(cpu.resource.labels) == {"project_id": PROJECT, "location": REGION, "connector_name": CONNECTOR}
    dist = cpu.points[0].value.distribution_value
    assert dist.count == 3 and distribution_quantile(dist, 0.95) >= 0.95
    (inst,) = incident.series(INSTANCES)
    assert {p.value.int64_value for p in inst.points} == {3}
    (sent,), (received,) = incident.series(SENT), incident.series(RECEIVED)
    assert (sent.metric_kind, sent.value_type) == (metric_pb2.MetricDescriptor.DELTA, metric_pb2.MetricDescriptor.INT64)
    p, q = sent.points[0], received.points[0]
    seconds = (p.interval.end_time - p.interval.start_time).total_seconds()
    mbps = (p.value.int64_value + q.value.int64_value) * 8 / seconds / 1e6
    assert mbps == pytest.approx(300)  # all that its 3 instances carry, not the 900 asked


def test_metrics_follow_the_scale_up(fast: Twin) -> None:
    done = fast.scale({"machineType": "e2-standard-4", "maxInstances": 10}, "machineType,maxInstances")
    end = datetime.fromisoformat(done["metadata"]["endTime"].replace("Z", "+00:00"))
    deadline = time.monotonic() + TIMEOUT
    while True:  # the twin samples every 2 s: wait for a point after the change
        (cpu,) = fast.series(CPU)
        if cpu.points[0].interval.end_time > end:
            break
        assert time.monotonic() < deadline, "no CPU point after the scale-up"
        time.sleep(0.2)
    assert distribution_quantile(cpu.points[0].value.distribution_value, 0.95) < 0.5
    before = [p for p in cpu.points if p.interval.end_time < datetime.fromisoformat(
        done["metadata"]["createTime"].replace("Z", "+00:00"))]
    assert before and all(distribution_quantile(p.value.distribution_value, 0.95) >= 0.95 for p in before)
    (inst,) = fast.series(INSTANCES)
    assert inst.points[0].value.int64_value == 2  # 900 Mbps needs 1 of 1,600 Mbps: the minimum, 2


def test_no_metric_point_when_the_scenario_reports_none(twin: Twin) -> None:
    twin.reset("connector-no-data")
    assert all(twin.series(m) == [] for m in (CPU, INSTANCES, SENT, RECEIVED))


# ---- 3. rules ------------------------------------------------------------------------------------------


def test_max_instances_above_10_is_invalid(incident: Twin) -> None:
    message = google_error(incident.patch({"maxInstances": 20}, "maxInstances"), 400, "INVALID_ARGUMENT")
    assert "max_instances" in message
    assert incident.connector()["maxInstances"] == 3


@pytest.mark.parametrize("body", [{"minInstances": 5, "maxInstances": 5}, {"minInstances": 6, "maxInstances": 5}],
                         ids=["equal", "above"])
def test_min_not_below_max_is_invalid(incident: Twin, body: dict[str, int]) -> None:
    google_error(incident.patch(body, "minInstances,maxInstances"), 400, "INVALID_ARGUMENT")


def test_unknown_machine_type_is_invalid(incident: Twin) -> None:
    google_error(incident.patch({"machineType": "n2-standard-8"}, "machineType"), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("body,mask", [({"maxInstances": 5}, "maxInstances"), ({"minInstances": 2}, "min_instances")],
                         ids=["max", "min"])
def test_scale_down_is_refused(fast: Twin, body: dict[str, int], mask: str) -> None:
    fast.scale({"minInstances": 3, "maxInstances": 6}, "minInstances,maxInstances")
    message = google_error(fast.patch(body, mask), 400, "INVALID_ARGUMENT")
    assert "scale-down is not supported" in message.lower()
    got = fast.connector()
    assert (got["minInstances"], got["maxInstances"], got["state"]) == (3, 6, "READY")


def test_patch_with_mask_changes_only_the_masked_fields(fast: Twin) -> None:
    before = fast.connector()
    # The body carries more than the mask names: only the masked field may change.
    fast.scale({"maxInstances": 10, "minInstances": 5, "machineType": "e2-standard-4"}, "maxInstances")
    after = fast.connector()
    assert after["maxInstances"] == 10
    assert {k: v for k, v in after.items() if k not in ("maxInstances", "maxThroughput")} == \
           {k: v for k, v in before.items() if k not in ("maxInstances", "maxThroughput")}


def test_patch_mask_accepts_snake_case_paths(fast: Twin) -> None:
    fast.scale({"maxInstances": 10, "machineType": "e2-standard-4"}, "max_instances,machine_type")
    got = fast.connector()
    assert (got["machineType"], got["minInstances"], got["maxInstances"]) == ("e2-standard-4", 2, 10)


def test_patch_without_mask_replaces_every_modifiable_field(fast: Twin) -> None:
    fast.scale({"machineType": "e2-standard-4", "minInstances": 3, "maxInstances": 5},
               "machineType,minInstances,maxInstances")
    # The hazard: without updateMask the API replaces every modifiable field. The body leaves out
    # machineType, which falls back to e2-micro: a quiet capacity loss the twin reproduces.
    fast.wait(json.loads(ok(fast.patch({"minInstances": 3, "maxInstances": 10}))))
    got = fast.connector()
    assert (got["machineType"], got["minInstances"], got["maxInstances"]) == ("e2-micro", 3, 10)
    # And leaving out minInstances (now 3) makes it the default 2: a scale-down, refused.
    message = google_error(fast.patch({"maxInstances": 10, "machineType": "e2-standard-4"}), 400, "INVALID_ARGUMENT")
    assert "scale-down" in message.lower()


def test_patch_refuses_unknown_fields_params_and_mask_paths(incident: Twin) -> None:
    google_error(incident.patch({"maxInstances": 10, "maxInstanceCount": 10}, "maxInstances"), 400, "INVALID_ARGUMENT")
    google_error(incident.api.patch(f"/v1/{CONNECTOR_NAME}", params={"updateMask": "maxInstances", "bogus": "1"},
                                    json={"maxInstances": 10}), 400, "INVALID_ARGUMENT")
    google_error(incident.patch({"maxInstances": 10}, "maxInstances,throughput"), 400, "INVALID_ARGUMENT")
    google_error(incident.patch({"network": "other"}, "network"), 400, "INVALID_ARGUMENT")
    assert incident.connector()["maxInstances"] == 3  # nothing was applied


def test_operation_completes_and_the_connector_is_ready_again(fast: Twin) -> None:
    op = json.loads(ok(fast.patch({"maxInstances": 10}, "maxInstances")))
    assert fast.connector()["state"] == "UPDATING"
    google_error(fast.patch({"maxInstances": 10}, "maxInstances"), 400, "FAILED_PRECONDITION")  # one at a time
    done = fast.wait(op)
    assert done["response"]["state"] == "READY"
    assert fast.connector()["state"] == "READY"


def test_egress_errors_stop_once_the_connector_is_scaled_up(fast: Twin) -> None:
    # Overloaded (900 Mbps over 3 × e2-micro ≈ 300 Mbps): the backend keeps printing timeouts.
    mark = datetime.now(timezone.utc)
    time.sleep(0.6)
    assert fast.entries(f'{EGRESS_FILTER} AND timestamp>="{mark.isoformat()}"')

    done = fast.scale({"machineType": "e2-standard-4", "maxInstances": 10}, "machineType,maxInstances")
    end = done["metadata"]["endTime"]
    during = fast.entries(f'{EGRESS_FILTER} AND timestamp>="{done["metadata"]["createTime"]}" '
                          f'AND timestamp<="{end}"')
    assert during  # UPDATING carries no traffic: still failing

    time.sleep(0.6)  # two grid steps past the completion
    assert fast.entries(f'{EGRESS_FILTER} AND timestamp>"{end}"') == []
    assert fast.entries(CONNECTOR_FILTER) == []  # never a connector log of its own


def test_all_entries_are_in_timestamp_order(incident: Twin) -> None:
    # The seeded request log holds one run per service; the backend's stderr interleaves with both.
    for order in ("timestamp asc", "timestamp desc"):
        entries = incident.entries("", order)
        stamps = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in entries]
        assert stamps == sorted(stamps, reverse=order.endswith("desc"))
        kinds = {e["resource"]["type"] for e in entries}
        assert kinds == {"cloud_run_revision"}


# ---- 4. data plane ---------------------------------------------------------------------------------------


def _peer_cert(twin: Twin, host: str) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(twin.home / "ca.pem"))
    with socket.create_connection(("127.0.0.1", twin.data_port), timeout=TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert()
    assert cert is not None, f"the twin served no certificate for {host}"  # (None only without a handshake)
    return dict(cert)


@pytest.mark.parametrize("host", [API_HOST, API_HOST_2])
def test_tls_serves_the_certificate_of_the_domain(incident: Twin, host: str) -> None:
    cert = _peer_cert(incident, host)  # verified: chain to the twin's CA and the host name
    assert sorted(v for k, v in cert["subjectAltName"] if k == "DNS") == sorted([API_HOST, API_HOST_2])
    expire = incident.get(f"/compute/v1/projects/{PROJECT}/global/sslCertificates/{CERT}")["expireTime"]
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), timezone.utc)
    assert abs(not_after - datetime.fromisoformat(expire.replace("Z", "+00:00"))) < timedelta(seconds=2)


def test_tls_for_a_domain_no_certificate_covers_fails_verification(incident: Twin) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
        _peer_cert(incident, UNCOVERED_HOST)


def test_health_db_follows_the_connector(fast: Twin) -> None:
    fast.route_all_traffic_to_new()
    status, body = fast.data_get(API_HOST, "/health/db")
    assert status == 503 and body["status"] == "unhealthy"
    assert body["cause"] == "vpc connector staging-connector overloaded (900 Mbps over 300 Mbps capacity)"
    assert fast.data_get(API_HOST, "/health/redis")[0] == 503
    assert fast.data_get(API_HOST, "/health")[0] == 200  # the shallow check does not see it

    op = json.loads(ok(fast.patch({"machineType": "e2-standard-4", "maxInstances": 10}, "machineType,maxInstances")))
    status, body = fast.data_get(API_HOST, "/health/db")
    assert status == 503 and "UPDATING" in body["cause"]  # no egress while the connector updates
    fast.wait(op)

    assert fast.data_get(API_HOST, "/health/db") == (200, {"status": "healthy", "revision": NEW})
    assert fast.data_get(API_HOST, "/health/redis")[0] == 200
    logged = fast.entries(f'httpRequest.requestUrl="https://{API_HOST}/health/db"')
    assert [e["httpRequest"]["status"] for e in logged] == [503, 503, 200]  # every request is logged


def test_health_db_is_healthy_in_the_healthy_scenario(twin: Twin) -> None:
    twin.reset("healthy")
    assert twin.data_get(API_HOST, "/health/db")[0] == 200


# ---- 5. Cloud SQL Admin v1 on the REST face ------------------------------------------------------------

INSTANCE = "netra-staging-db"
INSTANCE_URL = f"/v1/projects/{PROJECT}/instances/{INSTANCE}"
INCIDENT_FLAGS = {"max_connections": "100", "log_min_duration_statement": "1000", "cloudsql.iam_authentication": "on"}
SQL_RESTART_SECONDS = 0.5  # the sql_fast fixture's restart, so a flag change shows within a second
SQLADMIN = discovery_doc("sqladmin", "v1")


def schema_problems(schema: dict[str, Any], value: Any, where: str = "") -> list[str]:
    """Where ``value`` is not what sqladmin.v1.json describes: a field the schema lacks, or a JSON
    type other than the schema's (int64 is a string in REST JSON). The test's own reading of the
    document, independent of the twin's."""
    if "$ref" in schema:
        schema = SQLADMIN["schemas"][schema["$ref"]]
    kind = "string" if schema.get("format") in ("int64", "uint64") else schema.get("type", "any")
    types: dict[str, type | tuple[type, ...]] = {
        "string": str, "boolean": bool, "integer": int, "number": (int, float), "array": list, "object": dict}
    if kind != "any" and not isinstance(value, types[kind]):
        return [f"{where}: {type(value).__name__}, not {kind}"]
    if kind == "array":
        return [p for i, item in enumerate(value) for p in schema_problems(schema["items"], item, f"{where}[{i}]")]
    if kind == "object":
        props = schema.get("properties", {})
        return [p for k, v in value.items()
                for p in (schema_problems(props[k], v, f"{where}.{k}") if k in props else [f"{where}.{k}: unknown"])]
    return []


def sql_body(text: str, schema: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(text)
    assert schema_problems({"$ref": schema}, body) == [], body
    return body


def sql_flags(body: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f.get("value", "") for f in body["settings"].get("databaseFlags", [])}


def sql_patch(twin: Twin, flags: dict[str, str], version: int | None, **extra: Any) -> httpx.Response:
    settings: dict[str, Any] = {"databaseFlags": [{"name": k, "value": v} for k, v in flags.items()], **extra}
    if version is not None:
        settings["settingsVersion"] = str(version)
    return twin.api.patch(INSTANCE_URL, json={"settings": settings})


def sql_wait(twin: Twin, op: dict[str, Any], deadline_s: float = TIMEOUT) -> dict[str, Any]:
    """Poll a sql#operation until DONE, with a deadline."""
    deadline = time.monotonic() + deadline_s
    while op["status"] != "DONE":
        assert time.monotonic() < deadline, f"operation {op['name']} still {op['status']} after {deadline_s} s"
        time.sleep(0.05)
        op = sql_body(ok(twin.api.get(f"/v1/projects/{PROJECT}/operations/{op['name']}")), "Operation")
    return op


def target_for(twin: Twin) -> Target:
    """A target whose every API is the twin, with anonymous credentials: what the gate runs against."""
    return Target.model_validate({"project": PROJECT, "region": REGION, "services": [{"name": BACKEND}],
                                  "credentials": "anonymous", "endpoints": {a: twin.endpoint for a in APIS}})


@pytest.fixture
def sql_fast(twin: Twin) -> Twin:
    text = (SCENARIOS / "incident-1278.toml").read_text()
    assert text.count("restart_seconds = 3") == 1, "incident-1278.toml no longer says restart_seconds = 3"
    path = twin.scenario_dir / "incident-sql-fast.toml"
    path.write_text(text.replace("restart_seconds = 3", f"restart_seconds = {SQL_RESTART_SECONDS}"))
    twin.reset(str(path))
    return twin


def test_instance_get_body(incident: Twin) -> None:
    inst = sql_body(ok(incident.api.get(INSTANCE_URL)), "DatabaseInstance")
    assert (inst["kind"], inst["name"], inst["project"]) == ("sql#instance", INSTANCE, PROJECT)
    assert inst["connectionName"] == f"{PROJECT}:{REGION}:{INSTANCE}"
    assert inst["settings"]["settingsVersion"] == "41"  # int64: a string in REST JSON
    assert sql_flags(inst) == INCIDENT_FLAGS


def test_discovery_client_reads_and_patches_through_the_shipped_document(sql_fast: Twin) -> None:
    # Google's own discovery client, built from sqladmin.v1.json, against the twin: the paths and
    # verbs it builds must be the twin's.
    service = GcpSession(target_for(sql_fast)).discovery("sqladmin", "sqladmin", "v1")
    inst = service.instances().get(project=PROJECT, instance=INSTANCE).execute()
    merged = {**INCIDENT_FLAGS, "max_connections": "200"}
    body = {"settings": {"settingsVersion": inst["settings"]["settingsVersion"],
                         "databaseFlags": [{"name": k, "value": v} for k, v in merged.items()]}}
    op = service.instances().patch(project=PROJECT, instance=INSTANCE, body=body).execute()
    assert schema_problems({"$ref": "Operation"}, op) == []
    assert (op["kind"], op["operationType"], op["status"]) == ("sql#operation", "UPDATE", "RUNNING")
    assert (op["targetId"], op["targetProject"]) == (INSTANCE, PROJECT)
    assert op["targetLink"].endswith(f"/v1/projects/{PROJECT}/instances/{INSTANCE}")
    assert op["selfLink"].endswith(f"/v1/projects/{PROJECT}/operations/{op['name']}")
    assert op["user"] and op["insertTime"] and "endTime" not in op
    done = op
    deadline = time.monotonic() + TIMEOUT
    while done["status"] != "DONE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        done = service.operations().get(project=PROJECT, operation=op["name"]).execute()
    assert schema_problems({"$ref": "Operation"}, done) == [] and "error" not in done
    start, end = (datetime.fromisoformat(done[k].replace("Z", "+00:00")) for k in ("startTime", "endTime"))
    assert (end - start).total_seconds() == pytest.approx(SQL_RESTART_SECONDS, abs=0.01)
    after = service.instances().get(project=PROJECT, instance=INSTANCE).execute()
    assert sql_flags(after) == merged and after["settings"]["settingsVersion"] == "42"


def test_patch_with_only_max_connections_drops_the_other_flags(sql_fast: Twin) -> None:
    # The runbook's hazard, documented: databaseFlags in a patch REPLACES the list. A "fix" that
    # sends only max_connections silently removes log_min_duration_statement and IAM authentication.
    sql_wait(sql_fast, sql_body(ok(sql_patch(sql_fast, {"max_connections": "200"}, 41)), "Operation"))
    after = sql_body(ok(sql_fast.api.get(INSTANCE_URL)), "DatabaseInstance")
    assert sql_flags(after) == {"max_connections": "200"}
    assert after["settings"]["settingsVersion"] == "42"


def test_stale_settings_version_is_412_condition_does_not_match(incident: Twin) -> None:
    before = ok(incident.api.get(INSTANCE_URL))
    resp = sql_patch(incident, {**INCIDENT_FLAGS, "max_connections": "200"}, 40)
    assert resp.status_code == 412, resp.text
    err = resp.json()["error"]
    assert (err["code"], err["message"]) == (412, "Condition does not match.")
    assert [(e["reason"], e["location"]) for e in err["errors"]] == [("staleData", "If-Match")]
    assert ok(incident.api.get(INSTANCE_URL)) == before


def test_a_second_patch_while_the_instance_restarts_is_refused(sql_fast: Twin) -> None:
    op = sql_body(ok(sql_patch(sql_fast, {**INCIDENT_FLAGS, "max_connections": "200"}, 41)), "Operation")
    google_error(sql_patch(sql_fast, {**INCIDENT_FLAGS, "max_connections": "300"}, 42), 409, "ABORTED")
    sql_wait(sql_fast, op)
    assert sql_flags(json.loads(ok(sql_fast.api.get(INSTANCE_URL))))["max_connections"] == "200"


@pytest.mark.parametrize("request_", [
    {"body": {"settings": {"databaseFlags": [{"name": "max_connections", "value": "200"}], "maxConnections": 200}}},
    {"body": {"settings": {"databaseFlags": {"max_connections": "200"}}}},
    {"body": {"settings": {"settingsVersion": "forty-one"}}},
    {"body": {"settings": {"databaseFlags": []}}, "params": {"bogus": "1"}},
], ids=["unknown-field", "flags-not-a-list", "version-not-int64", "unknown-query-parameter"])
def test_patch_refuses_what_sqladmin_v1_does_not_describe(incident: Twin, request_: dict[str, Any]) -> None:
    before = ok(incident.api.get(INSTANCE_URL))
    resp = incident.api.patch(INSTANCE_URL, json=request_["body"], params=request_.get("params", {}))
    google_error(resp, 400, "INVALID_ARGUMENT")
    assert ok(incident.api.get(INSTANCE_URL)) == before


def test_documented_parameters_the_twin_does_not_implement_are_refused_not_ignored(incident: Twin) -> None:
    resp = incident.api.patch(INSTANCE_URL, params={"reconcilePscNetworking": "true"},
                              json={"settings": {"settingsVersion": "41"}})
    google_error(resp, 501, "UNIMPLEMENTED")
    google_error(incident.api.get(INSTANCE_URL, params={"location": REGION}), 501, "UNIMPLEMENTED")


def test_unknown_instance_and_operation_are_not_found(incident: Twin) -> None:
    google_error(incident.api.get(f"/v1/projects/{PROJECT}/instances/no-such-db"), 404, "NOT_FOUND")
    google_error(incident.api.get(f"/v1/projects/{PROJECT}/operations/00000000-0000-0000-0000-000000000000"),
                 404, "NOT_FOUND")


# ---- the gate's own adapter against the REST face ----


def test_the_gates_adapter_merges_flags_and_reports_the_operations_time(sql_fast: Twin) -> None:
    sql = CloudSql(GcpSession(target_for(sql_fast)))
    inst = sql.get(INSTANCE)
    assert (inst.settings_version, dict(inst.flags)) == (41, INCIDENT_FLAGS)
    merged = [(k, "200" if k == "max_connections" else v) for k, v in inst.flags]
    done = sql.set_flags(INSTANCE, merged, inst.settings_version)
    assert list(done.state.flags) == merged and done.state.settings_version == 42
    assert done.seconds == pytest.approx(SQL_RESTART_SECONDS, abs=0.01)  # the operation's own clock
    assert sql_fast.get("/_twin/status")["requests"]["by_method"]["sql.instances.patch"] == 1


def test_a_stale_settings_version_through_the_gates_adapter_is_refused_and_overwrites_nothing(
        sql_fast: Twin) -> None:
    sql = CloudSql(GcpSession(target_for(sql_fast)))
    planned_from = sql.get(INSTANCE)
    # Somebody else changes a flag after the gate read the instance (settingsVersion 41 → 42).
    theirs = {**INCIDENT_FLAGS, "log_min_duration_statement": "250"}
    sql_wait(sql_fast, sql_body(ok(sql_patch(sql_fast, theirs, 41)), "Operation"))

    merged = [(k, "200" if k == "max_connections" else v) for k, v in planned_from.flags]
    with pytest.raises(CheckError) as err:
        sql.set_flags(INSTANCE, merged, planned_from.settings_version)
    message = str(err.value)
    assert message.startswith(f"Refused to patch {INSTANCE}: its settings changed after the gate read them")
    assert "settingsVersion 41" in message and "412 Condition does not match." in message
    assert "Nothing was overwritten" in message and "run the gate again" in message
    now = sql_body(ok(sql_fast.api.get(INSTANCE_URL)), "DatabaseInstance")
    assert sql_flags(now) == theirs and now["settings"]["settingsVersion"] == "42"  # their change stands
