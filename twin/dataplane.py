"""The services' own behaviour on the data plane: the auth service's login, the backend's WebSocket,
and what each revision logs when it starts.

:mod:`twin.world` routes a request to a revision the way Cloud Run does (traffic split, broken
revisions, contention) and keeps the request log; this module decides what the application on that
revision answers. Behaviour follows the SERVING revision's environment (``containers[0].env``), so a
rollout that changes the environment changes the answers, exactly as on staging:

* ``POST /auth/login`` on services of kind ``auth``: ``DEMO_MODE=1`` → 403, wrong credentials → 401,
  otherwise 200 with an opaque bearer token valid for an hour (kept in the world by its SHA-256 only);
* ``/ws`` on services of kind ``backend``, a WebSocket: a broken revision refuses the upgrade with 503,
  an unknown or expired token with 403; no token means an anonymous session (ping works, chat does
  not). A database path that is down (the rule of ``/health/db``) closes the session with 1011; a
  silent scenario accepts and never answers. ``user_message`` streams the scenario's agent events,
  or answers ``demo mode: agent execution disabled`` when the revision runs with ``DEMO_MODE=1``;
* every revision logs its start on ``run.googleapis.com%2Fstderr``: "Container started" when it
  could, ERROR entries when it could not (or when its scenario says it logged some).

A WebSocket upgrade is not subject to the contention's random 503s (plain requests are): what breaks
a session is named precisely (broken revision, token, database path), so a probe reports one cause.

World logic runs under the twin's lock (the functions taking a :class:`Store`); :func:`websocket` is
the ASGI side and never holds the lock while it waits or sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from twin import logging, run, sqladmin, vpcaccess
from twin.store import DataAnswer, Store, imposed_event

TOKEN_SECONDS = 3600
# RFC 6455: a close frame's reason must fit in 123 bytes of UTF-8.
CLOSE_REASON_BYTES = 123
CLOSE_INTERNAL_ERROR = 1011

# What the scenario's [golden_path] defaults to, for a world persisted before it existed.
DEFAULT_GOLDEN_PATH = {
    "user": "rehearsal@netrasystems.ai", "password": "rehearsal-only-not-a-secret",
    "events": ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"],
    "event_delay_seconds": 0.05,
}

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# ---- the serving revision ------------------------------------------------------------------------


def kind(world: Store, service: str) -> str:
    return world.state["services"][service].get("kind", "backend")


def demo_mode(world: Store, revision: str) -> bool:
    return run.revision_env(world, revision).get("DEMO_MODE") == "1"


def _golden_path(world: Store) -> dict[str, Any]:
    return {**DEFAULT_GOLDEN_PATH, **world.state.get("golden_path", {})}


def rehearsal_account(world: Store) -> dict[str, str]:
    """The account the auth service accepts (a scenario value, not a secret): the gate's twin target
    logs in with it, so plain pytest needs no exported variable."""
    gp = _golden_path(world)
    return {"user": gp["user"], "password": gp["password"]}


# ---- the platform: routing a request to a revision ------------------------------------------------


def service_for_host(world: Store, host: str) -> str | None:
    for name, svc in world.state["services"].items():
        if host in svc["hosts"]:
            return name
    return None


def serve(world: Store, host: str, path: str, at: float | None = None, method: str = "GET",
          body: bytes = b"") -> DataAnswer:
    """Answer one data-plane request and write it to the request log, as Cloud Run would."""
    now = time.time() if at is None else at
    name = service_for_host(world, host)
    if name is None:
        return DataAnswer(404, {"error": f"no service is mapped to host {host}"}, 0.0)
    svc = world.state["services"][name]["resource"]
    revision, n, contended = run.pick_revision(world, name)
    contention = world.state["contention"]
    route = path.rstrip("/")
    lo, hi = contention["latency_seconds"]
    slow = lo + (hi - lo) * ((n * 29) % 100) / 100
    if world.state["revisions"].get(revision, {}).get("broken"):
        answer = DataAnswer(503, {"status": "unhealthy", "revision": revision, "error": "startup dependency failed"}, 0.05)
    elif contended and (n * 53) % 100 < contention["error_rate"] * 100:
        answer = DataAnswer(503, {"error": "Service Unavailable", "revision": revision}, slow)
    elif (app := app_answer(world, name, revision, method, route, body, n, now)) is not None:
        # The service's own routes (login, …) behind the same platform: contention slows them too.
        answer = replace(app, latency=slow) if contended else app
    elif route in ("/health/db", "/health/redis"):
        # Contention slows these down too, but their answer is their dependencies'.
        cause = dependency_failure(world, name, route, now)
        latency = slow if contended else 0.03 + (n % 5) * 0.005
        answer = (DataAnswer(503, {"status": "unhealthy", "revision": revision, "cause": cause}, latency) if cause
                  else DataAnswer(200, {"status": "healthy", "revision": revision}, latency))
    elif contended:
        answer = DataAnswer(200, {"status": "healthy", "revision": revision}, slow)
    elif route in ("/health", ""):
        answer = DataAnswer(200, {"status": "healthy", "revision": revision}, 0.02 + (n % 5) * 0.005)
    else:
        answer = DataAnswer(404, {"error": "not found"}, 0.01)
    logging.log_request(world, svc, revision, host, path, answer, now, method)
    if at is None and answer.latency > 0:
        _hold(world, host, now, now + answer.latency)
    return answer


def users_during_updates(world: Store, now: float) -> None:
    """The scenario's background users ([rollout] user_requests) while a service update runs: the
    requests whose time has come, up to ``now``, served and logged with their own timestamps.

    Called before :func:`twin.run.advance` completes the operations due, so every one of them, the
    last included, meets the traffic served before the update (an operation's requests are spread
    over [accepted, done_at), all earlier than its completion)."""
    count = int(world.state.get("rollout", {}).get("user_requests", 0))
    if not count:
        return
    for op in world.state["operations"].values():
        if op["done"] or op["kind"] != "update_service" or "started_at" not in op:
            continue
        hosts = world.state["services"][op["service"]]["hosts"]
        served = int(op.get("users_served", 0))
        while hosts and served < count:
            at = op["started_at"] + (op["done_at"] - op["started_at"]) * served / count
            if at > now:
                break
            serve(world, hosts[0], "/", at=at)
            served += 1
            op["users_served"] = served
            world.dirty = True


def _hold(world: Store, host: str, start: float, end: float) -> None:
    """Note that a live answer of ``host`` is held back over [start, end] (the face sleeps its
    latency). Overlapping answers of one host merge into one interval (a burst is one wait), so the
    record stays small and its seconds are wall time, not a sum over concurrent requests."""
    spans = world.state.setdefault("data_plane_held", {}).setdefault(host, [])
    if spans and start <= spans[-1][1]:
        spans[-1][1] = max(spans[-1][1], end)
        spans[-1][2] += 1
    else:
        spans.append([start, end, 1])


def imposed(world: Store) -> list[dict[str, Any]]:
    """``latency``: the time live data-plane answers are held back (the services' own latency, which
    contention makes seconds long) and the pauses between a WebSocket agent's streamed events, per
    host, overlapping ones merged (twin.world.imposed)."""
    return [imposed_event("latency", "dataplane", host, start, end, requests=n)
            for host, spans in world.state.get("data_plane_held", {}).items() for start, end, n in spans]


def dependency_failure(world: Store, service: str, path: str, now: float) -> str | None:
    """Why ``/health/db`` or ``/health/redis`` of ``service`` fails now, or None when it passes.

    Both go through the service's VPC connector (its template's vpcAccess); the database also
    needs its Cloud SQL instance to accept connections.
    """
    template = world.state["services"][service]["resource"].get("template", {})
    ref = (template.get("vpcAccess") or {}).get("connector")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        rec = world.state["connectors"].get(name)
        if rec is None:
            return f"vpc connector {name} does not exist"
        cause = vpcaccess.trouble(rec)
        if cause:
            return cause
    elif path == "/health/redis":
        # Memorystore has only a private address: without a connector there is no route to it.
        return "no vpc connector: the private network (redis) is unreachable"
    if path == "/health/db":
        for instance in world.state.get("sql_instances", {}):
            if not sqladmin.is_available(world, instance, now):
                return f"cloud sql instance {instance} is not available"
    return None


# ---- HTTP routes of the applications ---------------------------------------------------------------


def app_answer(world: Store, service: str, revision: str, method: str, route: str, body: bytes, n: int,
           now: float) -> DataAnswer | None:
    """The application's answer to an HTTP request, or None when the route is not one of its own
    (the platform's answers and the health routes are :func:`serve`'s)."""
    k = kind(world, service)
    if k == "auth" and route == "/auth/login":
        return login(world, revision, method, body, n, now)
    if k == "backend" and route == "/ws":
        return DataAnswer(426, {"error": "upgrade required: /ws is a WebSocket endpoint"}, 0.01)
    return None


def login(world: Store, revision: str, method: str, body: bytes, n: int, now: float) -> DataAnswer:
    latency = 0.03 + (n % 5) * 0.005
    if method != "POST":
        return DataAnswer(405, {"error": "method not allowed: POST a JSON body with email and password"}, 0.01)
    try:
        creds = json.loads(body or b"{}")
        email, password = creds["email"], creds["password"]
        if not isinstance(email, str) or not isinstance(password, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return DataAnswer(400, {"error": "expected a JSON body with email and password"}, latency)
    # Demo mode refuses every real account, right credentials or not: what the incident's users saw.
    if demo_mode(world, revision):
        return DataAnswer(403, {"error": "demo mode: real accounts cannot log in"}, latency)
    gp = _golden_path(world)
    # Both compared in constant time, and both always compared, so timing says nothing about which was wrong.
    user_ok = hmac.compare_digest(email.strip().lower().encode(), gp["user"].lower().encode())
    password_ok = hmac.compare_digest(password.encode(), gp["password"].encode())
    if not (user_ok and password_ok):
        return DataAnswer(401, {"error": "invalid credentials"}, latency)
    token = secrets.token_urlsafe(32)
    tokens = world.state.setdefault("tokens", {})
    for digest in [d for d, t in tokens.items() if t["expires_at"] <= now]:
        del tokens[digest]
    # Only the digest is kept: the world file and `twin status` never hold a usable token.
    tokens[_digest(token)] = {"user": gp["user"], "issued_at": now, "expires_at": now + TOKEN_SECONDS}
    world.dirty = True
    return DataAnswer(200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS}, latency)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_user(world: Store, token: str, now: float) -> str | None:
    """The user a token was issued to, or None when the auth service never issued it or it expired."""
    rec = world.state.get("tokens", {}).get(_digest(token))
    if rec is None or rec["expires_at"] <= now:
        return None
    return str(rec["user"])


# ---- WebSocket: world logic --------------------------------------------------------------------------


@dataclass
class Session:
    service: str
    revision: str          # a WebSocket stays on the revision that accepted it, as on Cloud Run
    user: str | None       # None: anonymous


@dataclass(frozen=True)
class Upgrade:
    """What the backend does with an upgrade request."""

    status: int                            # 101 accepted; otherwise the HTTP status of the refusal
    body: dict[str, Any] = field(default_factory=dict)
    session: Session | None = None
    silent: bool = False                   # accepted, then never a word
    close: tuple[int, str] | None = None   # accepted, then closed with (code, reason)


@dataclass(frozen=True)
class Turn:
    """The backend's answer to one message: events to send (with a delay between them), then maybe a close."""

    events: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    close: tuple[int, str] | None = None


def _token(headers: dict[str, str], query: str) -> str | None:
    """The bearer token from ``Authorization`` or ``?token=``; "" for a malformed Authorization."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return parse_qs(query).get("token", [None])[0] or None


def _reason(text: str) -> str:
    raw = text.encode()[:CLOSE_REASON_BYTES]
    return raw.decode(errors="ignore")


def database_failure(world: Store, service: str, now: float) -> str | None:
    """Why the backend cannot reach its database now: the rule of ``/health/db`` (connector not
    READY or overloaded, Cloud SQL not available), so the WebSocket and the health check agree."""
    return dependency_failure(world, service, "/health/db", now)


def open_session(world: Store, host: str, path: str, headers: dict[str, str], query: str, now: float) -> Upgrade:
    """Decide an upgrade request and write it to the request log (101 accepted, 4xx/5xx refused)."""
    name = service_for_host(world, host)
    if name is None:
        return Upgrade(404, {"error": f"no service is mapped to host {host}"})
    svc = world.state["services"][name]["resource"]
    revision, n, _ = run.pick_revision(world, name)
    token = _token(headers, query)
    user = token_user(world, token, now) if token else None
    if kind(world, name) != "backend" or path.rstrip("/") != "/ws":
        up = Upgrade(404, {"error": "not found"})
    elif world.state["revisions"].get(revision, {}).get("broken"):
        up = Upgrade(503, {"status": "unhealthy", "revision": revision, "error": "startup dependency failed"})
    elif token is not None and user is None:
        # The handshake is where a bad token is refused: before any frame, with a plain HTTP status.
        up = Upgrade(403, {"error": "invalid or expired token"})
    else:
        session = Session(name, revision, user)
        cause = database_failure(world, name, now)
        if world.state.get("websocket", {}).get("silent"):
            up = Upgrade(101, session=session, silent=True)
        elif cause:
            up = Upgrade(101, session=session, close=(CLOSE_INTERNAL_ERROR, _reason(f"database unavailable: {cause}")))
        else:
            up = Upgrade(101, session=session)
    # Cloud Run logs a WebSocket as one GET request; the path only, so a ?token= never reaches the log.
    logging.log_request(world, svc, revision, host, path, DataAnswer(up.status, up.body, 0.01 + (n % 5) * 0.002), now)
    return up


def on_message(world: Store, session: Session, text: str, now: float) -> Turn:
    """The backend's answer to one text frame of an accepted session."""
    try:
        msg = json.loads(text)
        if not isinstance(msg, dict):
            raise ValueError
    except ValueError:
        return Turn([{"type": "error", "error": "invalid message: expected a JSON object with a type"}])
    kind_ = msg.get("type")
    if kind_ == "ping":
        return Turn([{"type": "pong"}])
    if kind_ != "user_message":
        return Turn([{"type": "error", "error": f"unknown message type {str(kind_)[:40]!r}"}])
    if session.user is None:
        return Turn([{"type": "error", "error": "authentication required"}])
    content = (msg.get("payload") or {}).get("content") if isinstance(msg.get("payload"), dict) else None
    if not isinstance(content, str) or not content.strip():
        return Turn([{"type": "error", "error": "user_message needs payload.content"}])
    if demo_mode(world, session.revision):
        return Turn([{"type": "error", "error": "demo mode: agent execution disabled"}])
    # The agent needs the database: if its path went down since the session opened, the session dies
    # the way it would have died at the upgrade.
    cause = database_failure(world, session.service, now)
    if cause:
        return Turn(close=(CLOSE_INTERNAL_ERROR, _reason(f"database unavailable: {cause}")))
    gp = _golden_path(world)
    return Turn(agent_events(gp["events"], content), float(gp["event_delay_seconds"]))


def agent_events(names: list[str], content: str) -> list[dict[str, Any]]:
    """The agent's run as events, the last one carrying the response."""
    run_id = uuid.uuid4().hex[:12]
    asked = " ".join(content.split())
    asked = asked if len(asked) <= 120 else asked[:117] + "..."
    out = []
    for i, name in enumerate(names):
        payload: dict[str, Any] = {"run_id": run_id}
        if i == len(names) - 1:
            payload["response"] = (f"You asked: \"{asked}\". The staging agent looked it up: the backend, its "
                                   "database and its tools all answered, so here is your answer from staging.")
        elif name == "agent_thinking":
            payload["thought"] = "planning which tool answers the question"
        elif name in ("tool_executing", "tool_completed"):
            payload["tool"] = "staging_lookup"
            if name == "tool_completed":
                payload["result"] = "ok"
        out.append({"type": name, "payload": payload})
    return out


# ---- WebSocket: the ASGI side --------------------------------------------------------------------------


def host_of(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return value.decode("latin-1").rsplit(":", 1)[0]
    return ""


async def websocket(lock: asyncio.Lock, world: Store, tick: Callable[[], None], scope: dict[str, Any],
                    receive: Receive, send: Send) -> None:
    """One WebSocket connection, from the upgrade request to the close. ``tick`` lets the world's time
    pass (twin.world.World.advance) before each look at it."""
    if (await receive())["type"] != "websocket.connect":
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    async with lock:
        tick()
        up = open_session(world, host_of(scope), scope["path"], headers,
                          scope.get("query_string", b"").decode("latin-1"), time.time())
    if up.status != 101 or up.session is None:
        await _refuse(scope, send, up)
        return
    await send({"type": "websocket.accept"})
    try:
        if up.close:
            await send({"type": "websocket.close", "code": up.close[0], "reason": up.close[1]})
            return
        if up.silent:
            # A hung backend: the upgrade succeeded, nothing ever follows until the client leaves.
            while (await receive())["type"] != "websocket.disconnect":
                pass
            return
        await _converse(lock, world, tick, host_of(scope), up.session, receive, send)
    except OSError:
        # uvicorn's ClientDisconnected: the client went away mid-answer, which ends the session.
        return


async def _converse(lock: asyncio.Lock, world: Store, tick: Callable[[], None], host: str, session: Session,
                    receive: Receive, send: Send) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg["type"] != "websocket.receive":
            continue
        text = msg.get("text")
        if text is None:
            text = (msg.get("bytes") or b"").decode("utf-8", errors="replace")
        async with lock:
            tick()
            now = time.time()
            turn = on_message(world, session, text, now)
            if turn.delay and len(turn.events) > 1:
                # The agent's pauses between its events are the service's own time, as a held answer's
                # latency is: the gate waits on them (twin.world.imposed, "latency").
                _hold(world, host, now, now + turn.delay * (len(turn.events) - 1))
                world.dirty = True
        # Streamed without the lock: a slow agent must not stall the rest of the twin.
        for i, event in enumerate(turn.events):
            if i and turn.delay:
                await asyncio.sleep(turn.delay)
            await send({"type": "websocket.send", "text": json.dumps(event)})
        if turn.close:
            await send({"type": "websocket.close", "code": turn.close[0], "reason": turn.close[1]})
            return


async def _refuse(scope: dict[str, Any], send: Send, up: Upgrade) -> None:
    """Refuse the upgrade with a plain HTTP response, so the client sees the status itself."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(up.body).encode()
        await send({"type": "websocket.http.response.start", "status": up.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        # A server without the denial extension turns a close before accept into HTTP 403.
        await send({"type": "websocket.close", "code": 1008})
