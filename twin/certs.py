"""The twin's local certificate authority and the server certificates the data plane presents.

The CA is created once per twin home and kept, so the CA bundle a target names stays valid across
twin restarts. The certificate served for an SNI name comes from the world's Compute Engine SSL
certificates, as a real load balancer serves the certificate attached to it:

* a certificate whose domains include the name is served as a leaf for ALL its domains, expiring at
  its ``expireTime``;
* a name no certificate covers gets the first certificate anyway, so hostname verification fails
  (what a browser sees when a domain is missing from the staging certificate);
* a world without certificates gets a leaf for the SNI name itself.

Leaves are cached per (certificate name, domains, expireTime), so a reset to a scenario with other
certificates takes effect on the next handshake.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import trustme

CA_CERT = "ca.pem"
CA_KEY = "ca.key"

# The world's certificates (name -> {"resource": compute SslCertificate JSON}), read at each handshake.
Certificates = Callable[[], dict[str, Any]]


def load_ca(home: Path) -> trustme.CA:
    cert, key = home / CA_CERT, home / CA_KEY
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
    home.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="goldenpath staging twin")
    ca.cert_pem.write_to_path(str(cert))
    ca.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return ca


def _domains(resource: dict[str, Any]) -> tuple[str, ...]:
    # Managed certificates list their domains; self-managed ones only their subject alternative names.
    return tuple((resource.get("managed") or {}).get("domains") or resource.get("subjectAlternativeNames") or ())


def leaf_for(host: str, certificates: dict[str, Any]) -> tuple[str, tuple[str, ...], str | None]:
    """(certificate name, domains, expireTime) of the leaf to present for ``host``."""
    resources = [entry["resource"] for entry in certificates.values()]
    for res in resources:
        if host in _domains(res):
            return res["name"], _domains(res), res.get("expireTime")
    if resources and _domains(resources[0]):
        first = resources[0]
        return first["name"], _domains(first), first.get("expireTime")
    return "", (host,), None


def server_context(ca: trustme.CA, default_host: str, certificates: Certificates | None = None) -> ssl.SSLContext:
    """A TLS server context that answers each SNI name with the certificate the world serves for it."""
    contexts: dict[tuple[str, tuple[str, ...], str | None], ssl.SSLContext] = {}

    def context_for(host: str) -> ssl.SSLContext:
        key = leaf_for(host, certificates() if certificates else {})
        if key not in contexts:
            _, domains, expire = key
            not_after = datetime.fromisoformat(expire.replace("Z", "+00:00")) if expire else None
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(*domains, not_after=not_after).configure_cert(ctx)
            contexts[key] = ctx
        return contexts[key]

    def on_sni(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        # Called without a name too (a client that sends no SNI): it gets the default host's leaf.
        sslobj.context = context_for(server_name or default_host)

    base = context_for(default_host)
    base.sni_callback = on_sni
    return base
