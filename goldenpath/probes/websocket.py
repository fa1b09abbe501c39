"""WebSocket probes: the upgrade over TLS, ping → pong, and why a connection failed.

Connects through the target's ``resolve`` map (the TCP address moves, SNI and Host stay), with the
target's CA bundle. Each failure names its layer, because "WebSocket failed" is not actionable.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Mapping
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from goldenpath.observations import WsResult
from goldenpath.probes.resolve import ResolvingBackend, ssl_context
from goldenpath.trail import logger

LOG = logger("probes")


@asynccontextmanager
async def open_ws(url: str, *, resolve_map: Mapping[str, str], ca_bundle: str | None, timeout: float,
                  headers: Mapping[str, str] | None = None) -> AsyncIterator[ClientConnection]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    ip, real_port = ResolvingBackend(resolve_map).target(host, port)
    tls: dict[str, Any] = {"ssl": ssl_context(ca_bundle), "server_hostname": host} if parts.scheme == "wss" else {}
    # proxy=None: a probe must reach the service itself, never whatever proxy the environment names.
    async with connect(url, host=ip, port=real_port, open_timeout=timeout, close_timeout=1, proxy=None,
                       additional_headers=dict(headers or {}), user_agent_header="goldenpath-probe", **tls) as ws:
        yield ws


def cause(exc: BaseException) -> str:
    """The failed layer, in an operator's words."""
    if isinstance(exc, InvalidStatus):
        return f"upgrade refused: HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return f"closed {rcvd.code}: {rcvd.reason or 'no reason given'}" if rcvd else "closed without a close frame"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout: no answer in time"
    if isinstance(exc, ssl.SSLError):
        return f"dns/tls: {getattr(exc, 'verify_message', None) or exc}"
    if isinstance(exc, OSError):
        return f"dns/tls: cannot connect ({exc.strerror or exc})"
    return f"{type(exc).__name__}: {exc}"


async def ping(url: str, *, resolve_map: Mapping[str, str], ca_bundle: str | None, timeout: float) -> WsResult:
    t0 = time.perf_counter()
    try:
        async with open_ws(url, resolve_map=resolve_map, ca_bundle=ca_bundle, timeout=timeout) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            async with asyncio.timeout(timeout):  # one deadline, however many other messages arrive
                while True:
                    answer = json.loads(await ws.recv())
                    if answer.get("type") == "pong":
                        LOG.info("websocket ping %s: pong in %.3f s", url, time.perf_counter() - t0)
                        return WsResult(True, None, time.perf_counter() - t0)
    except Exception as exc:  # every failure is a finding, reported by its cause
        LOG.info("websocket ping %s: %s after %.3f s", url, cause(exc), time.perf_counter() - t0)
        return WsResult(False, cause(exc), time.perf_counter() - t0)


async def ping_batch(url: str, n: int, *, resolve_map: Mapping[str, str], ca_bundle: str | None,
                     timeout: float) -> tuple[WsResult, ...]:
    """``n`` concurrent connections, each ping → pong: what a small crowd sees."""
    return tuple(await asyncio.gather(*(ping(url, resolve_map=resolve_map, ca_bundle=ca_bundle, timeout=timeout)
                                        for _ in range(n))))
