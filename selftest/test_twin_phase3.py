"""The twin's Phase 3 data plane, walked the way the gate walks it: a real twin subprocess, httpx over
TLS for the login, the ``websockets`` client for ``/ws``, each with the real host name as SNI and Host
and the twin's CA; and the startup logs a rollout leaves behind, read through ``entries:list``.

The oracles are the clients themselves (a refused upgrade must reach ``websockets`` as an HTTP status,
a close as a close code) and the logging client's LogEntry type for every log entry the twin serves.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
from google.cloud.logging_v2.types import ListLogEntriesResponse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from selftest.test_twin_contract import ok
from selftest.twinproc import running_twin
from twin import dataplane
from twin import scenario as scenarios
from twin.world import World

ROOT = Path(__file__).resolve().parents[1]

PROJECT, REGION = "netra-staging", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
SERVING = "netra-backend-staging-00750-69k"  # the backend revision at 100 % in the healthy-based scenarios
API_HOST, WS_HOST, AUTH_HOST = "api.staging.netrasystems.ai", "api-staging.netrasystems.ai", "auth.staging.netrasystems.ai"
REQUESTS_LOG = f"projects/{PROJECT}/logs/run.googleapis.com%2Frequests"
STDERR_LOG = f"projects/{PROJECT}/logs/run.googleapis.com%2Fstderr"

ACCOUNT = scenarios.GoldenPathSpec()  # the rehearsal account every scenario here uses
EVENTS = scenarios.load("healthy").golden_path.events

TIMEOUT = 10.0  # seconds, for every network call


# ---- the twin under test ------------------------------------------------------------------------------


class Twin:
    def __init__(self, home: Path, control: int, data: int) -> None:
        self.home, self.data_port = home, data
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{control}", timeout=TIMEOUT)
        self.tls = ssl.create_default_context(cafile=str(home / "ca.pem"))
        # No keep-alive: a pooled connection opened with one host's SNI must not carry another host's request.
        self.data = httpx.Client(verify=self.tls, timeout=TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self.api.close()
        self.data.close()

    def reset(self, scenario: str) -> None:
        ok(self.api.post("/_twin/reset", params={"scenario": scenario}))

    # -- data plane, over TLS with the real host name (SNI, certificate check and Host header)

    def request(self, method: str, host: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.data.request(method, f"https://127.0.0.1:{self.data_port}{path}", headers={"Host": host},
                                 extensions={"sni_hostname": host}, **kwargs)

    def login(self, email: str = ACCOUNT.user, password: str = ACCOUNT.password) -> httpx.Response:
        return self.request("POST", AUTH_HOST, "/auth/login", json={"email": email, "password": password})

    def token(self) -> str:
        resp = self.login()
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    @asynccontextmanager
    async def ws(self, token: str | None = None, query: str = "") -> AsyncIterator[ClientConnection]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The URL names the real host (SNI, certificate check and Host header); the TCP connection
        # goes to the twin. proxy=None: never whatever proxy the environment names.
        async with connect(f"wss://{WS_HOST}/ws{query}", host="127.0.0.1", port=self.data_port, ssl=self.tls,
                           server_hostname=WS_HOST, proxy=None, open_timeout=TIMEOUT, close_timeout=1,
                           additional_headers=headers) as ws:
            yield ws

    # -- control plane

    def entries(self, filter_: str) -> list[dict[str, Any]]:
        out, token = [], None
        while True:
            query: dict[str, Any] = {"resourceNames": [f"projects/{PROJECT}"], "filter": filter_, "pageSize": 1000}
            if token:
                query["pageToken"] = token
            text = ok(self.api.post("/v2/entries:list", json=query))
            ListLogEntriesResponse.from_json(text, ignore_unknown_fields=False)  # what the real client accepts
            page = json.loads(text)
            out += page.get("entries", [])
            token = page.get("nextPageToken")
            if not token:
                return out

    def service(self, name: str = BACKEND) -> dict[str, Any]:
        return json.loads(ok(self.api.get(f"/v2/{PARENT}/services/{name}")))

    def deploy(self, env: dict[str, str], to_latest: bool) -> str:
        """A template change through the Cloud Run API (what `gcloud run services update
        --update-env-vars` sends), waited for; returns the revision it created."""
        svc = self.service()
        body = copy.deepcopy(svc)
        container = body["template"]["containers"][0]
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        if to_latest:
            body["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
        op = json.loads(ok(self.api.patch(f"/v2/{PARENT}/services/{BACKEND}", json=body)))
        done = json.loads(ok(self.api.post(f"/v2/{op['name']}:wait", json={"timeout": "8s"})))
        assert done["done"] is True
        new = done["response"]["latestReadyRevision"].rsplit("/", 1)[-1]
        assert new != SERVING
        return new

    def route_all_to(self, revision: str) -> None:
        body = self.service()
        body["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": 100}]
        op = json.loads(ok(self.api.patch(f"/v2/{PARENT}/services/{BACKEND}", json=body)))
        assert json.loads(ok(self.api.post(f"/v2/{op['name']}:wait", json={"timeout": "8s"})))["done"] is True


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    home = tmp_path_factory.mktemp("twin-phase3")
    with running_twin(home, "healthy") as proc:
        t = Twin(home, proc.control_port, proc.data_port)
        yield t
        t.close()


def _scenario(name: str) -> Any:
    """A fixture: the module's twin, reset to scenario ``name``."""

    @pytest.fixture
    def fixture(twin: Twin) -> Twin:
        twin.reset(name)
        return twin

    return fixture


healthy = _scenario("healthy")
incident = _scenario("incident-1278")
silent = _scenario("ws-silent")
rollout_broken = _scenario("config-rollout-broken")
startup_errors = _scenario("startup-errors")


async def _until_close(ws: ClientConnection) -> ConnectionClosedError:
    with pytest.raises(ConnectionClosedError) as info:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await ws.recv()
    return info.value


async def _chat(ws: ClientConnection, content: str) -> list[dict[str, Any]]:
    """Send one user message; every event up to the final one (or the first error)."""
    await ws.send(json.dumps({"type": "user_message", "payload": {"content": content}}))
    events = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            event = json.loads(await ws.recv())
            events.append(event)
            if event["type"] in ("error", EVENTS[-1]):
                return events


# ---- login ------------------------------------------------------------------------------------------------


def test_healthy_login_issues_a_bearer_token(healthy: Twin) -> None:
    resp = healthy.login()
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    assert healthy.token() != body["access_token"]  # opaque and random: a new one each time
    # The world keeps only digests: the world file holds no usable token.
    assert body["access_token"] not in (healthy.home / "world.json").read_text()


def test_wrong_password_is_401(healthy: Twin) -> None:
    resp = healthy.login(password="not-the-password")
    assert (resp.status_code, resp.json()) == (401, {"error": "invalid credentials"})
    assert healthy.login(email="someone@else.example").status_code == 401


def test_incident_login_is_refused_by_demo_mode(incident: Twin) -> None:
    resp = incident.login()
    assert (resp.status_code, resp.json()) == (403, {"error": "demo mode: real accounts cannot log in"})


def test_malformed_login_is_400_and_logins_are_logged(healthy: Twin) -> None:
    assert healthy.request("POST", AUTH_HOST, "/auth/login", content=b"not json").status_code == 400
    assert healthy.request("GET", AUTH_HOST, "/auth/login").status_code == 405
    healthy.login(password="wrong")
    healthy.login()
    logged = healthy.entries(f'logName="{REQUESTS_LOG}" AND httpRequest.requestUrl="https://{AUTH_HOST}/auth/login"')
    assert [(e["httpRequest"]["requestMethod"], e["httpRequest"]["status"]) for e in logged][-2:] == \
        [("POST", 401), ("POST", 200)]
    assert {e["resource"]["labels"]["service_name"] for e in logged} == {AUTH}


def test_auth_health_is_served_over_tls(healthy: Twin) -> None:
    resp = healthy.request("GET", AUTH_HOST, "/health")
    assert resp.status_code == 200 and resp.json()["status"] == "healthy"


# ---- WebSocket -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_anonymous_ping_pong_but_no_chat(healthy: Twin) -> None:
    async with healthy.ws() as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == {"type": "pong"}
        assert await _chat(ws, "hello") == [{"type": "error", "error": "authentication required"}]


@pytest.mark.asyncio
async def test_unknown_token_is_refused_with_http_403(healthy: Twin) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with healthy.ws(token="not-a-token-the-auth-service-issued"):
            pass
    assert info.value.response.status_code == 403
    assert json.loads(info.value.response.body or b"{}") == {"error": "invalid or expired token"}


@pytest.mark.asyncio
async def test_authenticated_chat_streams_the_agent_events(healthy: Twin) -> None:
    token = healthy.token()
    async with healthy.ws(token) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        events = await _chat(ws, "What is the state of staging?")
    assert [e["type"] for e in events] == EVENTS
    assert EVENTS[-1] == "agent_completed"
    response = events[-1]["payload"]["response"]
    assert "What is the state of staging?" in response
    assert len({e["payload"]["run_id"] for e in events}) == 1  # one agent run


@pytest.mark.asyncio
async def test_token_in_the_query_string_works_and_is_not_logged(healthy: Twin) -> None:
    token = healthy.token()
    async with healthy.ws(query=f"?token={token}") as ws:
        assert [e["type"] for e in await _chat(ws, "hi")] == EVENTS
    logged = healthy.entries(f'httpRequest.requestUrl="https://{WS_HOST}/ws"')
    assert logged and logged[-1]["httpRequest"]["status"] == 101
    assert all(token not in json.dumps(e) for e in healthy.entries(""))


@pytest.mark.asyncio
async def test_websocket_sessions_are_logged_101_and_403(healthy: Twin) -> None:
    async with healthy.ws() as ws:
        await ws.send(json.dumps({"type": "ping"}))
        await ws.recv()
    with pytest.raises(InvalidStatus):
        async with healthy.ws(token="bogus"):
            pass
    logged = healthy.entries(f'logName="{REQUESTS_LOG}" AND httpRequest.requestUrl="https://{WS_HOST}/ws"')
    assert [e["httpRequest"]["status"] for e in logged] == [101, 403]
    assert logged[0]["resource"]["labels"]["revision_name"] == SERVING


@pytest.mark.asyncio
async def test_demo_mode_backend_refuses_agent_execution(rollout_broken: Twin) -> None:
    # config-rollout-broken: the auth service lets users in, the backend runs with DEMO_MODE=1.
    async with rollout_broken.ws(rollout_broken.token()) as ws:
        assert await _chat(ws, "hello") == [{"type": "error", "error": "demo mode: agent execution disabled"}]


@pytest.mark.asyncio
async def test_incident_websocket_closes_1011_with_the_database_cause(incident: Twin) -> None:
    async with incident.ws() as ws:
        closed = await _until_close(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1011
    assert closed.rcvd.reason == ("database unavailable: vpc connector staging-connector overloaded "
                                  "(900 Mbps over 300 Mbps capacity)")


@pytest.mark.asyncio
async def test_silent_websocket_accepts_and_never_answers(silent: Twin) -> None:
    async with silent.ws(silent.token()) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 1.0)


@pytest.mark.asyncio
async def test_behaviour_follows_the_serving_revision_env(healthy: Twin) -> None:
    healthy.deploy({"VPC_CONNECTOR_TIMEOUT": "600", "DATABASE_TIMEOUT": "600", "DEMO_MODE": "1"}, to_latest=True)
    async with healthy.ws(healthy.token()) as ws:
        assert await _chat(ws, "hello") == [{"type": "error", "error": "demo mode: agent execution disabled"}]


# ---- startup logs ---------------------------------------------------------------------------------------------


def _startup_filter(revision: str, since: str) -> str:
    # What the gate asks for: the revision's own log lines, not its request log, since it was created.
    return (f'resource.type="cloud_run_revision" AND resource.labels.revision_name="{revision}" '
            f'AND logName!="{REQUESTS_LOG}" AND severity>=ERROR AND timestamp>="{since}"')


def _revision(twin: Twin, name: str) -> dict[str, Any]:
    return json.loads(ok(twin.api.get(f"/v2/{PARENT}/services/{BACKEND}/revisions/{name}")))


def test_a_healthy_rollout_logs_its_start(healthy: Twin) -> None:
    new = healthy.deploy({"VPC_CONNECTOR_TIMEOUT": "600", "DATABASE_TIMEOUT": "600", "DEMO_MODE": "0",
                          "FEATURE_FLAG": "on"}, to_latest=False)
    created = _revision(healthy, new)["createTime"]
    logged = healthy.entries(f'resource.labels.revision_name="{new}" AND logName="{STDERR_LOG}"')
    assert [(e["severity"], e["textPayload"]) for e in logged] == [("INFO", "Container started; listening on port 8080")]
    assert logged[0]["resource"]["labels"] == {"project_id": PROJECT, "location": REGION, "service_name": BACKEND,
                                               "revision_name": new, "configuration_name": BACKEND}
    assert healthy.entries(_startup_filter(new, created)) == []


@pytest.mark.asyncio
async def test_a_broken_rollout_logs_errors_and_answers_503(rollout_broken: Twin) -> None:
    new = rollout_broken.deploy({"VPC_CONNECTOR_TIMEOUT": "600", "DATABASE_TIMEOUT": "600", "DEMO_MODE": "0"},
                                to_latest=False)
    created = _revision(rollout_broken, new)["createTime"]
    errors = rollout_broken.entries(_startup_filter(new, created))
    texts = [e["textPayload"] for e in errors]
    assert len(errors) >= 2 and all(e["severity"] == "ERROR" and e["logName"] == STDERR_LOG for e in errors)
    assert any(t.startswith("Startup probe failed") and "connection refused" in t for t in texts)
    assert not rollout_broken.entries(f'resource.labels.revision_name="{new}" AND severity="INFO" '
                                      f'AND logName="{STDERR_LOG}"')  # it never started

    rollout_broken.route_all_to(new)
    resp = rollout_broken.request("GET", API_HOST, "/health")
    assert resp.status_code == 503 and resp.json()["revision"] == new
    with pytest.raises(InvalidStatus) as info:
        async with rollout_broken.ws():
            pass
    assert info.value.response.status_code == 503


def test_startup_errors_scenario_logs_errors_for_the_serving_revision(startup_errors: Twin) -> None:
    created = _revision(startup_errors, SERVING)["createTime"]
    errors = startup_errors.entries(_startup_filter(SERVING, created))
    assert [e["textPayload"] for e in errors] == list(
        next(r for s in scenarios.load("startup-errors").services for r in s.revisions if r.name == SERVING).startup_errors)
    # It came up anyway: healthy, and the Golden Path works.
    assert startup_errors.request("GET", API_HOST, "/health").status_code == 200
    assert startup_errors.login().status_code == 200


# ---- world rules without a server ------------------------------------------------------------------------------


def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    world, t0 = World(tmp_path), time.time()
    world.reset("healthy", now=t0)
    body = json.dumps({"email": ACCOUNT.user, "password": ACCOUNT.password}).encode()
    token = world.serve(AUTH_HOST, "/auth/login", at=t0, method="POST", body=body).body["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    assert dataplane.open_session(world, WS_HOST, "/ws", headers, "", t0 + 3599).status == 101
    assert dataplane.open_session(world, WS_HOST, "/ws", headers, "", t0 + 3600).status == 403


def test_a_close_reason_fits_a_close_frame() -> None:
    assert len(dataplane._reason("x" * 500).encode()) == 123
    assert len(dataplane._reason("é" * 100).encode()) <= 123  # never a split character


@pytest.mark.asyncio
async def test_the_agent_s_pauses_between_events_are_reported_as_imposed_latency(healthy: Twin) -> None:
    """The twin makes the caller wait event_delay_seconds between the agent's events: that is the
    service's time, not the caller's, and status --json says so (imposed ``latency`` on the
    WebSocket's host), as it does for a held answer."""
    token = healthy.token()
    before = time.time()
    async with healthy.ws(token) as ws:
        assert [e["type"] for e in await _chat(ws, "hi")] == EVENTS
    gp = scenarios.load("healthy").golden_path
    held = [e["seconds"] for e in healthy.api.get("/_twin/status").json()["imposed"]["events"]
            if e["kind"] == "latency" and e["resource"] == WS_HOST and e["start"] >= before - 0.001]
    assert held == [pytest.approx(gp.event_delay_seconds * (len(EVENTS) - 1), abs=0.001)]
