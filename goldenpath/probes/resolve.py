"""curl ``--resolve`` / ``--connect-to`` for httpx: connect elsewhere, keep the host name.

Only the TCP connect address changes; SNI, certificate verification and the Host header still use
the URL's host name, so a probe of the twin exercises the same TLS path as a probe of staging.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any, Iterable, Mapping

import certifi
import httpcore
import httpx

from goldenpath.config import parse_address
from goldenpath.trail import logger

LOG = logger("probes")


class ResolvingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, resolve: Mapping[str, str]) -> None:
        self._inner = httpcore.AnyIOBackend()
        # Parsed at each lookup, not here: a client is made per probe and connects to one host, and
        # the map has an entry per host of every service (the target's validation has parsed them all).
        self._map = resolve

    def target(self, host: str, port: int) -> tuple[str, int]:
        addr = self._map.get(f"{host}:{port}")
        if addr is None:
            return host, port
        ip, new_port = parse_address(addr)
        return ip, new_port or port

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ip, real_port = self.target(host, port)
        if (ip, real_port) != (host, port):
            LOG.debug("resolve %s:%d → connect to %s:%d (the target's resolve map; SNI and Host stay %s)",
                      host, port, ip, real_port, host)
        return await self._inner.connect_tcp(ip, real_port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify against the target's CA bundle, or the public roots when it names none.

    One context per bundle file as it is now (path, modification time, size), shared by every probe:
    each probe made its own, and loading certifi's public roots (what a real target uses) costs about
    14 ms of CPU on the probes' event loop, while other probes' clocks run (20 services: about 90
    probes, over a second). The twin's one-certificate bundle loads in 0.2 ms, which hid it. A
    changed file (a twin restarted with a new CA) is loaded again."""
    path = ca_bundle or certifi.where()
    st = os.stat(path)
    return _context(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _context(path: str, mtime_ns: int, size: int) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=path)
    # httpcore sets ALPN to http/1.1 on the context at each connection; set here, the shared context
    # is never changed afterwards, and the WebSocket and TLS probes offer the same (WebSocket runs
    # over HTTP/1.1).
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client(resolve: Mapping[str, str], ca_bundle: str | None, timeout: float, connections: int) -> httpx.AsyncClient:
    ctx = ssl_context(ca_bundle)
    transport = httpx.AsyncHTTPTransport(verify=ctx)
    # httpx has no resolve hook; its transport delegates to an httpcore pool, which does take a
    # network backend. Swapping the pool is the narrowest change (httpx is pinned below 0.29).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ctx, max_connections=connections, network_backend=ResolvingBackend(resolve),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, headers={"user-agent": "goldenpath-probe"})
