"""The twin's contract with Google for Phase 2: Serverless VPC Access, Compute SSL certificates,
the connector error log, and the data plane's TLS and dependency health.

Same oracles as :mod:`selftest.test_twin_contract`: the discovery documents for routes, the client
libraries' message types (and the real generated clients where they have the method) for bodies.
The rule tests check that the twin refuses what Serverless VPC Access refuses, so a remediation
that breaks a rule fails in rehearsal, not on staging.
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
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import vpcaccess_v1
from google.cloud.logging_v2.types import ListLogEntriesResponse
from google.logging.type import log_severity_pb2

from selftest.test_twin_contract import doc_method, google_error, normalised, ok, parse_operation, unpack
from selftest.twinproc import running_twin
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
CONNECTOR_FILTER = f'resource.type="vpc_access_connector" AND resource.labels.connector_name="{CONNECTOR}"'

TIMEOUT = 10.0  # seconds, for every network call

PHASE2_IDS = {
    "vpcaccess.projects.locations.connectors.get", "vpcaccess.projects.locations.connectors.list",
    "vpcaccess.projects.locations.connectors.create", "vpcaccess.projects.locations.connectors.patch",
    "vpcaccess.projects.locations.connectors.delete", "vpcaccess.projects.locations.operations.get",
    "compute.sslCertificates.get", "compute.sslCertificates.list",
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
    def __init__(self, home: Path, control: int, data: int, scenario_dir: Path) -> None:
        self.home, self.data_port, self.scenario_dir = home, data, scenario_dir
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
    with running_twin(home, "incident-1278") as proc:
        t = Twin(home, proc.control_port, proc.data_port, scenario_dir)
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


def test_connector_log_entry_bodies(incident: Twin) -> None:
    # Every page of the search (a page covers a slice of the log: see test_twin_logging.py), each
    # parsed with unknown fields refused.
    entries, token = [], None
    while True:
        query = {"resourceNames": [f"projects/{PROJECT}"], "filter": CONNECTOR_FILTER, "pageSize": 1000,
                 **({"pageToken": token} if token else {})}
        resp = ListLogEntriesResponse.from_json(ok(incident.api.post("/v2/entries:list", json=query)),
                                                ignore_unknown_fields=False)
        entries += resp.entries
        if not (token := resp.next_page_token):
            break
    # The incident's half hour of history, 4 a minute (plus the odd one logged since the reset).
    assert 118 <= len(entries) <= 130
    entry = entries[0]
    assert entry.log_name == f"projects/{PROJECT}/logs/vpcaccess.googleapis.com%2Fconnector"
    assert dict(entry.resource.labels) == {"connector_name": CONNECTOR, "location": REGION, "project_id": PROJECT}
    assert entry.severity == log_severity_pb2.ERROR
    assert "error code 10035" in entry.json_payload["message"]


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


def test_error_log_stops_once_the_connector_is_scaled_up(fast: Twin) -> None:
    # Overloaded (900 Mbps over 3 × e2-micro = 600 Mbps): entries keep coming.
    mark = datetime.now(timezone.utc)
    time.sleep(0.6)
    fresh = fast.entries(f'{CONNECTOR_FILTER} AND timestamp>="{mark.isoformat()}"')
    assert fresh and all("overloaded" in e["jsonPayload"]["message"] for e in fresh)

    done = fast.scale({"machineType": "e2-standard-4", "maxInstances": 10}, "machineType,maxInstances")
    end = done["metadata"]["endTime"]
    during = fast.entries(f'{CONNECTOR_FILTER} AND timestamp>="{done["metadata"]["createTime"]}" '
                          f'AND timestamp<="{end}"')
    assert any("UPDATING" in e["jsonPayload"]["message"] for e in during)  # not READY: still failing

    time.sleep(0.6)  # two grid steps past the completion
    assert fast.entries(f'{CONNECTOR_FILTER} AND timestamp>"{end}"') == []


def test_all_entries_are_in_timestamp_order(incident: Twin) -> None:
    # The seeded request log holds one run per service; connector errors interleave with both.
    for order in ("timestamp asc", "timestamp desc"):
        entries = incident.entries("", order)
        stamps = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in entries]
        assert stamps == sorted(stamps, reverse=order.endswith("desc"))
        kinds = {e["resource"]["type"] for e in entries}
        assert kinds == {"cloud_run_revision", "vpc_access_connector"}


# ---- 4. data plane ---------------------------------------------------------------------------------------


def _peer_cert(twin: Twin, host: str) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(twin.home / "ca.pem"))
    with socket.create_connection(("127.0.0.1", twin.data_port), timeout=TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        return tls.getpeercert()


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
    assert body["cause"] == "vpc connector staging-connector overloaded (900 Mbps over 600 Mbps capacity)"
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
