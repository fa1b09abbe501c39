"""A live TLS handshake per domain: does what users reach verify, match, and stay valid?

Connects through the target's ``resolve`` map with the real host name as SNI, verifies against the
target's CA bundle, and reads the served certificate even when verification fails (a second,
unverified look), so the report can say what was served instead.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import datetime, timezone
from typing import Mapping

from cryptography import x509

from goldenpath.observations import TlsResult
from goldenpath.probes.resolve import ResolvingBackend, ssl_context
from goldenpath.trail import logger

LOG = logger("probes")


async def handshake(domain: str, *, port: int = 443, resolve_map: Mapping[str, str], ca_bundle: str | None,
                    timeout: float) -> TlsResult:
    ip, real_port = ResolvingBackend(resolve_map).target(domain, port)
    address = f"{ip}:{real_port}"
    t0 = time.perf_counter()
    result = await _handshake(domain, ip, real_port, address, ca_bundle, timeout)
    LOG.info("tls handshake %s via %s: %s in %.3f s", domain, address,
             "verified" if result.verified else result.error, time.perf_counter() - t0)
    return result


async def _handshake(domain: str, ip: str, real_port: int, address: str, ca_bundle: str | None,
                     timeout: float) -> TlsResult:
    error = None
    try:
        der = await _peer_cert(ip, real_port, domain, ssl_context(ca_bundle), timeout)
        verified = True
    except ssl.SSLCertVerificationError as exc:
        verified, error = False, f"certificate not valid for {domain}: {exc.verify_message}"
        der = await _unverified(ip, real_port, domain, timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
        return TlsResult(domain, address, False, f"no TLS handshake with {address}: {type(exc).__name__} {exc}",
                         (), None)
    sans, not_after = _describe(der) if der else ((), None)
    return TlsResult(domain, address, verified, error, sans, not_after)


async def _peer_cert(ip: str, port: int, domain: str, ctx: ssl.SSLContext, timeout: float) -> bytes | None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, ssl=ctx, server_hostname=domain), timeout)
    try:
        return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()


async def _unverified(ip: str, port: int, domain: str, timeout: float) -> bytes | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only to read what is served after verification already failed
    try:
        return await _peer_cert(ip, port, domain, ctx, timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return None


def _describe(der: bytes) -> tuple[tuple[str, ...], datetime | None]:
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = tuple(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                     .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    return sans, cert.not_valid_after_utc.astimezone(timezone.utc)
