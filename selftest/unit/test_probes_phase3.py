"""Phase-3 probes without a network: each failure is named by its layer, and credentials never leak."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from goldenpath.observations import GoldenPathResult
from goldenpath.probes import journey, resolve
from goldenpath.probes.journey import walk
from goldenpath.probes.websocket import cause

LOGIN = "https://auth.staging.netrasystems.ai/auth/login"
WS_URL = "wss://api-staging.netrasystems.ai/ws"
USER = "golden.path.tester@netrasystems.ai"
PASSWORD = "S3cr3t-Pa55word-xyz"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.token-body.signature"


# ---- websocket.cause -----------------------------------------------------------------------

def _response(status: int, reason: str) -> Response:
    # as websockets 17 builds it when it parses the handshake answer
    return Response(status, reason, Headers([("Content-Type", "text/plain"), ("Content-Length", "9")]), b"Forbidden")


def test_refused_upgrade_names_the_http_status() -> None:
    assert cause(InvalidStatus(_response(403, "Forbidden"))) == "upgrade refused: HTTP 403"


def test_refused_upgrade_with_another_status() -> None:
    assert cause(InvalidStatus(_response(502, "Bad Gateway"))) == "upgrade refused: HTTP 502"


def test_close_frame_names_code_and_reason() -> None:
    exc = ConnectionClosedError(Close(1011, "db down"), None)
    assert cause(exc) == "closed 1011: db down"


def test_close_frame_without_a_reason_says_so() -> None:
    exc = ConnectionClosedError(Close(1011, ""), Close(1011, ""), True)
    assert cause(exc) == "closed 1011: no reason given"


def test_normal_close_is_also_a_close() -> None:
    assert cause(ConnectionClosedOK(Close(1000, "bye"), None)) == "closed 1000: bye"


def test_connection_dropped_without_a_close_frame() -> None:
    assert cause(ConnectionClosedError(None, None)) == "closed without a close frame"


@pytest.mark.parametrize("exc", [TimeoutError(), asyncio.TimeoutError()])
def test_timeout_is_named_as_such(exc: BaseException) -> None:
    assert cause(exc).startswith("timeout")


def test_certificate_verification_failure_is_dns_tls() -> None:
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.verify_message = "Hostname mismatch, certificate is not valid for 'api-staging.netrasystems.ai'"
    text = cause(exc)
    assert text.startswith("dns/tls")
    assert text == "dns/tls: Hostname mismatch, certificate is not valid for 'api-staging.netrasystems.ai'"


def test_certificate_failure_without_a_verify_message_still_says_dns_tls() -> None:
    text = cause(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert text.startswith("dns/tls: ") and "certificate verify failed" in text


def test_refused_connection_is_dns_tls_cannot_connect() -> None:
    text = cause(ConnectionRefusedError(111, "Connection refused"))
    assert text.startswith("dns/tls: cannot connect")
    assert text == "dns/tls: cannot connect (Connection refused)"


def test_unresolvable_name_is_dns_tls_cannot_connect() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert cause(exc).startswith("dns/tls: cannot connect")


def test_anything_else_names_its_type() -> None:
    assert cause(ValueError("bad frame")) == "ValueError: bad frame"


# ---- journey.walk never reveals the credentials ----------------------------------------------

class FakeResponse:
    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self._body = body
        self.text = json.dumps(body)

    def json(self) -> dict[str, Any]:
        return self._body


class FakeClient:
    """What resolve.client returns, reduced to the login POST; the server echoes what it was sent."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.posts: list[tuple[str, Any]] = []

    async def __aenter__(self) -> "FakeClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def post(self, url: str, json: Any = None, **kwargs: Any) -> FakeResponse:
        self.posts.append((url, json))
        return self.answer(json)


def _patch_client(monkeypatch: pytest.MonkeyPatch, answer: Any) -> list[FakeClient]:
    made: list[FakeClient] = []

    def fake(resolve_map: Any, ca_bundle: Any, timeout: Any, connections: int = 1) -> FakeClient:
        made.append(FakeClient(answer))
        return made[-1]

    monkeypatch.setattr(resolve, "client", fake)
    return made


def _walk(**overrides: Any) -> GoldenPathResult:
    kwargs: dict[str, Any] = dict(login_url=LOGIN, ws_url=WS_URL, user=USER, password=PASSWORD,
                                  message="What is the status of my last optimization?",
                                  final_event="agent_completed", deadline=5, resolve_map={}, ca_bundle=None,
                                  timeout=1)
    kwargs.update(overrides)
    return asyncio.run(walk(**kwargs))


def _assert_no_credentials(result: GoldenPathResult) -> None:
    text = repr(result)
    assert PASSWORD not in text
    assert USER not in text
    assert TOKEN not in text


def test_a_401_that_echoes_the_credentials_never_reveals_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def echo(body: dict[str, str]) -> FakeResponse:
        return FakeResponse(401, {"error": f"invalid credentials for {body['email']} "
                                           f"(password {body['password']!s} rejected)"})

    made = _patch_client(monkeypatch, echo)
    result = _walk()
    assert made and made[0].posts == [(LOGIN, {"email": USER, "password": PASSWORD})]  # it did log in
    assert result.ok is False and result.failed_leg == "login"
    assert result.cause is not None
    assert f"{LOGIN} answered 401" in result.cause
    assert "***" in result.cause  # the echo was kept, the secrets masked
    _assert_no_credentials(result)


def test_an_echo_in_the_message_field_is_masked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_client(monkeypatch, lambda body: FakeResponse(403, {"message": f"{body['email']}:{body['password']}"}))
    result = _walk()
    assert result.failed_leg == "login" and "answered 403" in (result.cause or "")
    _assert_no_credentials(result)


def test_a_200_without_a_token_fails_at_login(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_client(monkeypatch, lambda body: FakeResponse(200, {"user": body["email"]}))
    result = _walk()
    assert result.failed_leg == "login"
    assert result.cause == f"{LOGIN} answered 200 without an access_token in a JSON body"
    _assert_no_credentials(result)


def test_no_answer_at_login_names_the_error_type_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(body: dict[str, str]) -> FakeResponse:
        raise httpx.ConnectError(f"connect failed for {body['email']} / {body['password']}")

    _patch_client(monkeypatch, boom)
    result = _walk()
    assert result.failed_leg == "login"
    assert result.cause == f"no answer from {LOGIN}: ConnectError"
    _assert_no_credentials(result)


# The WebSocket leg, with the socket replaced too: the token and credentials stay out of every cause.

def _logged_in(body: dict[str, str]) -> FakeResponse:
    return FakeResponse(200, {"access_token": TOKEN})


def test_a_refused_upgrade_fails_at_websocket(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_client(monkeypatch, _logged_in)
    seen: dict[str, Any] = {}

    @asynccontextmanager
    async def refused(url: str, **kwargs: Any) -> AsyncIterator[Any]:
        seen.update(kwargs)
        raise InvalidStatus(_response(403, "Forbidden"))
        yield  # pragma: no cover

    monkeypatch.setattr(journey, "open_ws", refused)
    result = _walk()
    assert seen["headers"] == {"Authorization": f"Bearer {TOKEN}"}  # the token went where it belongs
    assert result.ok is False and result.failed_leg == "websocket"
    assert result.cause == "upgrade refused: HTTP 403"
    assert list(result.legs) == ["login"]
    _assert_no_credentials(result)


class FakeWs:
    def __init__(self, *events: dict[str, Any]) -> None:
        self.events = [json.dumps(e) for e in events]
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def recv(self) -> str:
        if not self.events:
            await asyncio.sleep(3600)
        return self.events.pop(0)


def _socket(monkeypatch: pytest.MonkeyPatch, ws: FakeWs) -> None:
    @asynccontextmanager
    async def opened(url: str, **kwargs: Any) -> AsyncIterator[FakeWs]:
        yield ws

    monkeypatch.setattr(journey, "open_ws", opened)


def test_an_error_event_echoing_the_credentials_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_client(monkeypatch, _logged_in)
    _socket(monkeypatch, FakeWs({"type": "agent_started"},
                                {"type": "error", "error": f"session of {USER} (password {PASSWORD}) expired"}))
    result = _walk()
    assert result.failed_leg == "response"
    assert result.events == ("agent_started", "error")
    assert (result.cause or "").startswith("the agent answered with an error: session of ***")
    _assert_no_credentials(result)


def test_the_whole_journey_passes_and_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_client(monkeypatch, _logged_in)
    ws = FakeWs({"type": "agent_started"}, {"type": "agent_completed", "payload": {"response": "All good."}})
    _socket(monkeypatch, ws)
    result = _walk()
    assert result.ok is True and result.failed_leg is None and result.cause is None
    assert list(result.legs) == ["login", "websocket_open", "first_event", "final_response"]
    assert result.events == ("agent_started", "agent_completed")
    assert result.response_chars == len("All good.")
    assert json.loads(ws.sent[0]) == {"type": "user_message",
                                      "payload": {"content": "What is the status of my last optimization?"}}
    _assert_no_credentials(result)


def test_no_final_event_before_the_deadline_fails_at_response(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_client(monkeypatch, _logged_in)
    _socket(monkeypatch, FakeWs({"type": "agent_started"}))
    result = _walk(deadline=0.2)
    assert result.failed_leg == "response"
    assert "no agent_completed within the 0.2 s deadline (events so far: agent_started)" == result.cause
    _assert_no_credentials(result)
