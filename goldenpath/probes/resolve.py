"""curl ``--resolve`` / ``--connect-to`` for httpx: connect elsewhere, keep the host name.

Only the TCP connect address changes; SNI, certificate verification and the Host header still use
the URL's host name, so a probe of the twin exercises the same TLS path as a probe of staging.
"""

from __future__ import annotations

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
        self._map = {key: parse_address(addr) for key, addr in resolve.items()}

    def target(self, host: str, port: int) -> tuple[str, int]:
        addr = self._map.get(f"{host}:{port}")
        if addr is None:
            return host, port
        ip, new_port = addr
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
    """Verify against the target's CA bundle, or the public roots when it names none."""
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


def client(resolve: Mapping[str, str], ca_bundle: str | None, timeout: float, connections: int) -> httpx.AsyncClient:
    ctx = ssl_context(ca_bundle)
    transport = httpx.AsyncHTTPTransport(verify=ctx)
    # httpx has no resolve hook; its transport delegates to an httpcore pool, which does take a
    # network backend. Swapping the pool is the narrowest change (httpx is pinned below 0.29).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ctx, max_connections=connections, network_backend=ResolvingBackend(resolve),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, headers={"user-agent": "goldenpath-probe"})
