"""The twin's contract with Google: its control plane must look like the real APIs.

Two oracles, neither written by us:

* the discovery documents shipped in google-api-python-client say which methods exist, under which
  HTTP verb and path template (route fidelity, no server needed);
* the client libraries' message types say which fields a body may have. Every body the twin
  answers is parsed with unknown fields refused, so a field the real API does not have fails here,
  not in a user's incident (body fidelity, against a real twin subprocess).

The rule tests then check that the twin refuses what Cloud Run refuses, in Google's error shape.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator

import googleapiclient
import httpx
import pytest
from google.cloud import run_v2
from google.cloud.logging_v2.types import ListLogEntriesResponse
from google.longrunning import operations_pb2
from google.protobuf import json_format

from selftest.twinproc import running_twin
from twin.server import ROUTES, ApiRoute

ROOT = Path(__file__).resolve().parents[1]
DISCOVERY = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"

SCENARIO = "incident-1278"
PROJECT, REGION = "netra-staging", "us-central1"
BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
OLD, NEW = "netra-backend-staging-00749-6tr", "netra-backend-staging-00750-69k"
PARENT = f"projects/{PROJECT}/locations/{REGION}"

# Every network call goes through a client with this timeout (seconds).
TIMEOUT = 10.0

# google.rpc.Code -> the HTTP status Google's REST front end answers with it (google/rpc/code.proto).
HTTP_FOR_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ABORTED": 409, "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}


# ---- 1. route fidelity: the discovery documents -------------------------------------------------


@functools.cache
def discovery_doc(api: str, version: str) -> dict[str, Any]:
    path = DISCOVERY / f"{api}.{version}.json"
    assert path.exists(), f"google-api-python-client ships no discovery document {path.name}"
    return json.loads(path.read_text())


def discovery_methods(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every method of a discovery document, however deeply its resources nest."""
    yield from node.get("methods", {}).values()
    for child in node.get("resources", {}).values():
        yield from discovery_methods(child)


def normalised(template: str) -> str:
    # The twin names placeholders after what they hold ({service}), the documents after the
    # collection ({servicesId}); only their positions matter.
    return re.sub(r"\{[^}]*\}", "{}", template.removeprefix("/"))


# Method-id prefixes that are not their document's name: sqladmin.v1.json names its methods "sql.*".
DOCUMENT_OF_PREFIX = {"sql": "sqladmin"}


def doc_method(route: ApiRoute) -> dict[str, Any]:
    prefix = route.method_id.split(".", 1)[0]
    api = DOCUMENT_OF_PREFIX.get(prefix, prefix)
    # The version follows the API's service path, if it has one (/compute/v1/..., but /v2/... for Run).
    segments = route.path.removeprefix("/").split("/")
    version = segments[1] if segments[0] == api else segments[0]
    doc = discovery_doc(api, version)
    assert doc["version"] == version
    found = [m for m in discovery_methods(doc) if m["id"] == route.method_id]
    assert len(found) == 1, f"{api}.{version} has {len(found)} methods with id {route.method_id}"
    # flatPath is relative to the service path ("compute/v1/" for Compute, "" for the others).
    return {**found[0], "flatPath": doc["servicePath"] + found[0]["flatPath"]}


@pytest.mark.parametrize("route", ROUTES, ids=[r.method_id for r in ROUTES])
def test_route_matches_discovery_document(route: ApiRoute) -> None:
    method = doc_method(route)
    assert method["httpMethod"] == route.verb
    assert normalised(method["flatPath"]) == normalised(route.path)


WRITE_ROUTES = [r for r in ROUTES if r.write]


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=[r.method_id for r in WRITE_ROUTES])
def test_write_route_is_not_a_get(route: ApiRoute) -> None:
    # The twin counts writes by this flag; a "write" the API serves with GET would be a lie.
    assert doc_method(route)["httpMethod"] != "GET"


# ---- the twin under test ---------------------------------------------------------------------






@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real twin subprocess on free loopback ports, in a temporary home; yields its control plane."""
    home = tmp_path_factory.mktemp("twin-contract")
    with running_twin(home, SCENARIO) as proc, \
            httpx.Client(base_url=f"http://127.0.0.1:{proc.control_port}", timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def api(twin_server: httpx.Client) -> httpx.Client:
    """The control plane, with the world put back to the incident so no test depends on another."""
    resp = twin_server.post("/_twin/reset", params={"scenario": SCENARIO})
    assert resp.status_code == 200, resp.text
    return twin_server


def ok(resp: httpx.Response) -> str:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.text


def google_error(resp: httpx.Response, code: int, status: str) -> str:
    """Assert a Google-shaped error body ({"error": {code, message, status}}); return its message."""
    assert resp.status_code == code, f"{resp.status_code} {resp.text}"
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"code", "message", "status"} <= set(err), err
    assert err["code"] == code and err["status"] == status, err
    assert HTTP_FOR_STATUS[status] == code  # the canonical mapping, so the test itself cannot drift
    assert isinstance(err["message"], str) and err["message"], err
    return err["message"]


def service_url(name: str = BACKEND) -> str:
    return f"/v2/{PARENT}/services/{name}"


def get_service(api: httpx.Client, name: str = BACKEND) -> dict[str, Any]:
    return json.loads(ok(api.get(service_url(name))))


def with_traffic(service: dict[str, Any], split: dict[str, int]) -> dict[str, Any]:
    """The service as read, with its traffic replaced (a read-modify-write, as gcloud does it)."""
    body = copy.deepcopy(service)
    body["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": rev, "percent": pct}
                       for rev, pct in split.items()]
    return body


def parse_operation(text: str) -> operations_pb2.Operation:
    # Any fields resolve through the default descriptor pool; importing run_v2 put
    # google.cloud.run.v2.Service and Revision there.
    return json_format.Parse(text, operations_pb2.Operation(), ignore_unknown_fields=False)


def unpack(any_field: Any, message_type: Any) -> Any:
    """An Any field as the client library's message, asserting its type URL."""
    pb = message_type.pb()
    assert any_field.Is(pb.DESCRIPTOR), any_field.type_url
    msg = pb()
    any_field.Unpack(msg)
    return message_type.wrap(msg)


# ---- 2. body fidelity: the client libraries' message types ---------------------------------------


def test_services_list_body(api: httpx.Client) -> None:
    resp = run_v2.ListServicesResponse.from_json(ok(api.get(f"/v2/{PARENT}/services")),
                                                 ignore_unknown_fields=False)
    assert {s.name for s in resp.services} == {f"{PARENT}/services/{BACKEND}", f"{PARENT}/services/{AUTH}"}


@pytest.mark.parametrize("name", [BACKEND, AUTH])
def test_services_get_body(api: httpx.Client, name: str) -> None:
    svc = run_v2.Service.from_json(ok(api.get(service_url(name))), ignore_unknown_fields=False)
    assert svc.name == f"{PARENT}/services/{name}"
    assert svc.etag and sum(t.percent for t in svc.traffic) == 100


def test_revisions_list_body(api: httpx.Client) -> None:
    resp = run_v2.ListRevisionsResponse.from_json(ok(api.get(service_url() + "/revisions")),
                                                  ignore_unknown_fields=False)
    names = {r.name.rsplit("/", 1)[-1] for r in resp.revisions}
    assert {OLD, NEW} <= names


@pytest.mark.parametrize("revision", [OLD, NEW])
def test_revisions_get_body(api: httpx.Client, revision: str) -> None:
    rev = run_v2.Revision.from_json(ok(api.get(f"{service_url()}/revisions/{revision}")),
                                    ignore_unknown_fields=False)
    assert rev.name == f"{PARENT}/services/{BACKEND}/revisions/{revision}"
    assert rev.service == f"{PARENT}/services/{BACKEND}"


def test_validate_only_patch_body(api: httpx.Client) -> None:
    body = with_traffic(get_service(api), {NEW: 100})
    op = parse_operation(ok(api.patch(service_url(), params={"validateOnly": "true"}, json=body)))
    assert op.name.startswith(f"{PARENT}/operations/")
    # Whether a dry run answers done is not ours to assert; if it carries a result, that must be a Service.
    if op.done:
        preview = unpack(op.response, run_v2.Service)
        assert [(t.revision, t.percent) for t in preview.traffic] == [(NEW, 100)]


def test_patch_operation_bodies(api: httpx.Client) -> None:
    body = with_traffic(get_service(api), {NEW: 100})
    started = parse_operation(ok(api.patch(service_url(), json=body)))
    assert started.name.startswith(f"{PARENT}/operations/")
    assert unpack(started.metadata, run_v2.Service).name == f"{PARENT}/services/{BACKEND}"

    fetched = parse_operation(ok(api.get(f"/v2/{started.name}")))
    assert fetched.name == started.name

    # :wait until done, so the finished shape (with its response) is checked too.
    finished = parse_operation(ok(api.post(f"/v2/{started.name}:wait", json={"timeout": "8s"})))
    assert finished.done and finished.WhichOneof("result") == "response"
    served = unpack(finished.response, run_v2.Service)
    assert [(t.revision, t.percent) for t in served.traffic_statuses] == [(NEW, 100)]


def test_log_entries_list_body(api: httpx.Client) -> None:
    query = {"resourceNames": [f"projects/{PROJECT}"], "filter": 'resource.type="cloud_run_revision"',
             "pageSize": 5}
    resp = ListLogEntriesResponse.from_json(ok(api.post("/v2/entries:list", json=query)),
                                            ignore_unknown_fields=False)
    assert len(resp.entries) == 5
    assert all(e.resource.type == "cloud_run_revision" for e in resp.entries)
    assert resp.next_page_token  # the seeded half hour holds far more than one page


# ---- 3. rules: what Cloud Run refuses, refused the same way -------------------------------------


def test_stale_etag_is_aborted(api: httpx.Client) -> None:
    first_read = get_service(api)
    # Someone else changes the service (and it finishes reconciling), so our read's etag is stale.
    op = json.loads(ok(api.patch(service_url(), json=with_traffic(first_read, {NEW: 100}))))
    assert json.loads(ok(api.post(f"/v2/{op['name']}:wait", json={"timeout": "8s"})))["done"] is True
    assert get_service(api)["etag"] != first_read["etag"]

    resp = api.patch(service_url(), json=with_traffic(first_read, {OLD: 100}))
    google_error(resp, 409, "ABORTED")


def test_traffic_not_summing_to_100_is_invalid(api: httpx.Client) -> None:
    body = with_traffic(get_service(api), {OLD: 60, NEW: 30})
    google_error(api.patch(service_url(), json=body), 400, "INVALID_ARGUMENT")


def test_deleting_a_revision_with_traffic_fails_precondition(api: httpx.Client) -> None:
    # The incident splits 50/50, so the old revision still serves half the traffic.
    google_error(api.delete(f"{service_url()}/revisions/{OLD}"), 400, "FAILED_PRECONDITION")
    ok(api.get(f"{service_url()}/revisions/{OLD}"))  # and it is still there


def test_validate_only_changes_nothing(api: httpx.Client) -> None:
    before = get_service(api)
    writes_before = api.get("/_twin/status").json()["requests"]["writes"]

    ok(api.patch(service_url(), params={"validateOnly": "true"}, json=with_traffic(before, {NEW: 100})))

    assert get_service(api) == before
    assert api.get("/_twin/status").json()["requests"]["writes"] == writes_before


def test_unknown_field_is_invalid(api: httpx.Client) -> None:
    body = with_traffic(get_service(api), {NEW: 100})
    body["trafficSplit"] = {NEW: 100}  # not a field of google.cloud.run.v2.Service
    google_error(api.patch(service_url(), json=body), 400, "INVALID_ARGUMENT")
    assert get_service(api)["traffic"] != body["traffic"]  # and nothing was applied


@pytest.mark.parametrize("params", [{"validate_only": "true"}, {"validateOnly": "true"}], ids=["proto-name", "json-name"])
def test_validate_only_under_either_name_is_a_dry_run(api: httpx.Client, params: dict[str, str]) -> None:
    # Google accepts a query parameter under its JSON name and its proto field name alike; a twin
    # that read only one would turn the other into a real write.
    before = get_service(api)
    ok(api.patch(service_url(), params=params, json=with_traffic(before, {NEW: 100})))
    assert get_service(api) == before
    assert api.get("/_twin/status").json()["requests"]["writes"] == 0


def test_unknown_query_parameter_is_refused(api: httpx.Client) -> None:
    before = get_service(api)
    google_error(api.patch(service_url(), params={"bogusParam": "1"}, json=with_traffic(before, {NEW: 100})),
                 400, "INVALID_ARGUMENT")
    assert get_service(api) == before


def test_percent_outside_0_100_is_invalid(api: httpx.Client) -> None:
    body = with_traffic(get_service(api), {OLD: 150, NEW: -50})
    google_error(api.patch(service_url(), json=body), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("body", [{"bogus": 1}, {"pageSize": -1}, {"pageToken": "abc"}],
                         ids=["unknown-field", "negative-page-size", "bad-page-token"])
def test_entries_list_validates_its_request(api: httpx.Client, body: dict[str, Any]) -> None:
    google_error(api.post("/v2/entries:list", json={"resourceNames": [f"projects/{PROJECT}"], **body}),
                 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("change", [
    {"scaling": {"minInstanceCount": 5, "maxInstanceCount": 2}},
    {"maxInstanceRequestConcurrency": 1001},
    {"maxInstanceRequestConcurrency": -1},
], ids=["min-above-max", "concurrency-above-1000", "negative-concurrency"])
@pytest.mark.parametrize("params", [{}, {"validateOnly": "true"}], ids=["write", "dry-run"])
def test_template_outside_cloud_run_limits_is_invalid(api: httpx.Client, change: dict[str, Any],
                                                      params: dict[str, str]) -> None:
    before = get_service(api)
    body = copy.deepcopy(before)
    body["template"].update(change)
    message = google_error(api.patch(service_url(), params=params, json=body), 400, "INVALID_ARGUMENT")
    assert "Violation in UpdateServiceRequest.service.template" in message
    assert get_service(api) == before


def test_template_min_without_max_is_valid(api: httpx.Client) -> None:
    # An unset maximum (0 in proto3) bounds nothing.
    body = copy.deepcopy(get_service(api))
    body["template"]["scaling"] = {"minInstanceCount": 2}
    ok(api.patch(service_url(), params={"validateOnly": "true"}, json=body))


# ---- 4. Cloud Run as it really is: tags, deletions, min instances, named revisions, failed deploys ----

TAGGED, DEPLOY_FAILS = "tagged-idle-revision", "config-rollout-deploy-fails"
CANARY = "netra-backend-staging-00749-6tr"  # tagged "canary" at 0 % in tagged-idle-revision
ANCIENT = "netra-backend-staging-00748-q2d"


def reset(api: httpx.Client, scenario: str) -> None:
    ok(api.post("/_twin/reset", params={"scenario": scenario}))


def wait(api: httpx.Client, op: dict[str, Any]) -> dict[str, Any]:
    done = json.loads(ok(api.post(f"/v2/{op['name']}:wait", json={"timeout": "8s"})))
    assert done["done"] is True, done
    return done


def revision_url(name: str, service: str = BACKEND) -> str:
    return f"{service_url(service)}/revisions/{name}"


def provisioned(api: httpx.Client, name: str) -> int:
    rev = run_v2.Revision.from_json(ok(api.get(revision_url(name))), ignore_unknown_fields=False)
    return int(rev.scaling_status.desired_min_instance_count)


def test_a_tag_gets_its_own_url_derived_from_the_service_url(api: httpx.Client) -> None:
    reset(api, TAGGED)
    svc = run_v2.Service.from_json(ok(api.get(service_url())), ignore_unknown_fields=False)
    (tagged,) = [t for t in svc.traffic_statuses if t.tag]
    assert (tagged.revision, tagged.percent, tagged.tag) == (CANARY, 0, "canary")
    host = svc.uri.removeprefix("https://")
    assert tagged.uri == f"https://canary---{host}"  # TAG---SERVICE-HASH-REGION.a.run.app
    assert [t.tag for t in svc.traffic if t.revision == CANARY] == ["canary"]


def test_an_update_that_leaves_a_tag_out_removes_its_url(api: httpx.Client) -> None:
    reset(api, TAGGED)
    before = get_service(api)
    wait(api, json.loads(ok(api.patch(service_url(), json=with_traffic(before, {NEW: 100})))))
    after = get_service(api)
    assert all("tag" not in t and "uri" not in t for t in after["trafficStatuses"]), after["trafficStatuses"]


def test_min_instances_run_only_while_a_revision_is_addressable(api: httpx.Client) -> None:
    # incident-1278: OLD holds 50 % and min 1, so its instance runs; routed away and untagged, it stops.
    assert provisioned(api, OLD) == 1
    wait(api, json.loads(ok(api.patch(service_url(), json=with_traffic(get_service(api), {NEW: 100})))))
    assert provisioned(api, OLD) == 0 and provisioned(api, NEW) == 1
    reset(api, TAGGED)
    assert provisioned(api, CANARY) == 1  # at 0 %, but tagged: started all the same
    assert provisioned(api, ANCIENT) == 0


def test_service_level_scaling_is_stored_and_divided_among_revisions_with_traffic(api: httpx.Client) -> None:
    reset(api, TAGGED)
    body = get_service(api)
    assert body["scaling"]["minInstanceCount"] == 2
    assert provisioned(api, NEW) == 2  # 100 % of the service's 2; the tagged revision gets none of them
    assert provisioned(api, CANARY) == 1
    body["scaling"] = {"minInstanceCount": 3}
    wait(api, json.loads(ok(api.patch(service_url(), json=body))))
    assert run_v2.Service.from_json(ok(api.get(service_url())), ignore_unknown_fields=False).scaling.min_instance_count == 3
    assert provisioned(api, NEW) == 3


@pytest.mark.parametrize("params", [{}, {"validateOnly": "true"}], ids=["write", "dry-run"])
def test_deleting_a_tagged_revision_at_zero_percent_is_refused(api: httpx.Client, params: dict[str, str]) -> None:
    reset(api, TAGGED)
    message = google_error(api.delete(revision_url(CANARY), params=params), 400, "FAILED_PRECONDITION")
    assert message == f'Revision "{CANARY}" cannot be directly deleted because it is actively serving.'
    ok(api.get(revision_url(CANARY)))


def test_deleting_the_only_revision_is_refused(api: httpx.Client) -> None:
    only = "auth-service-staging-00311-k8x"
    message = google_error(api.delete(revision_url(only, AUTH)), 400, "FAILED_PRECONDITION")
    assert "only revision" in message


def test_deleting_a_revision_with_a_stale_etag_is_aborted(api: httpx.Client) -> None:
    google_error(api.delete(revision_url(ANCIENT), params={"etag": '"not-its-etag"'}), 409, "ABORTED")
    ok(api.get(revision_url(ANCIENT)))


def test_deleting_an_idle_untagged_revision_with_its_etag_works(api: httpx.Client) -> None:
    etag = json.loads(ok(api.get(revision_url(ANCIENT))))["etag"]
    op = json.loads(ok(api.delete(revision_url(ANCIENT), params={"etag": etag})))
    wait(api, op)
    assert api.get(revision_url(ANCIENT)).status_code == 404


def changed_env(service: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(service)
    body["template"]["containers"][0]["env"] = [{"name": "DEMO_MODE", "value": "0"}]
    return body


@pytest.mark.parametrize("params", [{}, {"validateOnly": "true"}], ids=["write", "dry-run"])
def test_a_changed_template_naming_an_existing_revision_is_refused(api: httpx.Client, params: dict[str, str]) -> None:
    reset(api, DEPLOY_FAILS)
    before = get_service(api)
    assert before["template"]["revision"] == NEW  # the deployer names its revisions
    message = google_error(api.patch(service_url(), params=params, json=changed_env(before)), 409, "ALREADY_EXISTS")
    assert message == f"Revision named '{NEW}' with different configuration already exists."
    assert get_service(api) == before
    # The same template under the same name is no conflict (a traffic-only read-modify-write).
    ok(api.patch(service_url(), params={"validateOnly": "true"}, json=with_traffic(before, {NEW: 100})))


def test_a_failed_deploy_ends_the_operation_in_error_and_keeps_serving(api: httpx.Client) -> None:
    reset(api, DEPLOY_FAILS)
    body = changed_env(get_service(api))
    del body["template"]["revision"]  # let Cloud Run name it
    finished = parse_operation(ok(api.post(f"/v2/{json.loads(ok(api.patch(service_url(), json=body)))['name']}:wait",
                                           json={"timeout": "8s"})))
    assert finished.done and finished.WhichOneof("result") == "error"
    assert finished.error.code == 9  # google.rpc.Code.FAILED_PRECONDITION
    assert "is not ready and cannot serve traffic" in finished.error.message
    assert "failed to start and listen on the port defined provided by the PORT=8080" in finished.error.message
    svc = run_v2.Service.from_json(ok(api.get(service_url())), ignore_unknown_fields=False)
    failed = svc.latest_created_revision.rsplit("/", 1)[-1]
    assert failed != NEW and svc.latest_ready_revision.endswith("/" + NEW)
    assert [(t.revision, t.percent) for t in svc.traffic_statuses] == [(NEW, 100)]
    assert svc.terminal_condition.state.name == "CONDITION_FAILED"
    assert failed in svc.terminal_condition.message
    rev = run_v2.Revision.from_json(ok(api.get(revision_url(failed))), ignore_unknown_fields=False)
    assert [c.state.name for c in rev.conditions if c.type_ == "Ready"] == ["CONDITION_FAILED"]
    # The latest revision cannot be deleted, even when it serves nothing.
    assert "latest revision" in google_error(api.delete(revision_url(failed)), 400, "FAILED_PRECONDITION")
    # Back to the configuration the service had: a known one, which deploys.
    restore = get_service(api)
    restore["template"]["containers"] = get_service(api)["template"]["containers"]
    restore["template"]["containers"][0]["env"] = [{"name": "DEMO_MODE", "value": "1"}]
    done = wait(api, json.loads(ok(api.patch(service_url(), json=restore))))
    assert "error" not in done, done
    assert get_service(api)["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"
