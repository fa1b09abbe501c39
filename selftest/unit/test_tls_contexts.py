"""Where the gate loads CA bundles: goldenpath.probes.resolve makes one TLS context per bundle, loaded
again when the file changes; the twin's control plane (plain HTTP) loads none.

Real TLS against a server on 127.0.0.1 (trustme certificates): a context that kept an old bundle
after the file changed would fail the second handshake."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, Iterator

import pytest
import trustme

from goldenpath import twinctl
from goldenpath.probes import resolve
from goldenpath.twinctl import free_ports

HOST = "api.staging.example"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every CA bundle ssl.create_default_context loads (the test servers' contexts load none), from
    a cache emptied for the test."""
    made: list[str] = []
    real = ssl.create_default_context

    def counting(*args: Any, cafile: str | None = None, **kwargs: Any) -> ssl.SSLContext:
        if cafile is not None:
            made.append(cafile)
        return real(*args, cafile=cafile, **kwargs)

    resolve._context.cache_clear()
    monkeypatch.setattr(ssl, "create_default_context", counting)
    yield made
    resolve._context.cache_clear()


async def handshake(ca: trustme.CA, client: ssl.SSLContext) -> str | None:
    """A TLS server on a free loopback port serving ``ca``'s certificate for HOST; the ALPN the
    client's handshake settled on."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_ctx)
    server_ctx.set_alpn_protocols(["http/1.1"])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=HOST), 10)
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        writer.close()
        return str(alpn) if alpn else None
    finally:
        server.close()
        await server.wait_closed()


def test_one_context_per_bundle_for_every_probe(tmp_path: Path, loads: list[str]) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    first = resolve.ssl_context(str(bundle))
    assert resolve.ssl_context(str(bundle)) is first
    resolve.client({}, str(bundle), 2.0, connections=20)  # a burst's client takes the same context
    assert loads == [str(bundle)]
    assert asyncio.run(handshake(ca, first)) == "http/1.1"


def test_a_changed_bundle_is_loaded_again(tmp_path: Path, loads: list[str]) -> None:
    bundle = tmp_path / "ca.pem"
    old, new = trustme.CA(), trustme.CA()
    old.cert_pem.write_to_path(str(bundle))
    assert asyncio.run(handshake(old, resolve.ssl_context(str(bundle)))) == "http/1.1"

    new.cert_pem.write_to_path(str(bundle))  # a twin restarted with a CA of its own
    assert asyncio.run(handshake(new, resolve.ssl_context(str(bundle)))) == "http/1.1"
    assert loads == [str(bundle), str(bundle)]


def test_no_bundle_means_the_public_roots_loaded_once(loads: list[str]) -> None:
    import certifi

    assert resolve.ssl_context(None) is resolve.ssl_context(None)
    assert loads == [certifi.where()]


def test_the_twins_control_plane_loads_no_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain HTTP to loopback: httpx's default client would load certifi's roots for each call."""
    loaded: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(args or kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    (port,) = free_ports(1)
    assert twinctl._health(f"127.0.0.1:{port}") is None  # nothing listens there: no answer
    assert loaded == []
