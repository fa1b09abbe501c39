"""The twin's local certificate authority and per-host server certificates.

The CA is created once per twin home and kept, so the CA bundle a target names stays valid across
twin restarts. Server certificates are issued on demand for the SNI name a client asks for, as a
real load balancer serves the certificate of the domain it fronts.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

CA_CERT = "ca.pem"
CA_KEY = "ca.key"


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


def server_context(ca: trustme.CA, default_host: str) -> ssl.SSLContext:
    """A TLS server context that answers each SNI name with a certificate for that name."""
    contexts: dict[str, ssl.SSLContext] = {}

    def context_for(host: str) -> ssl.SSLContext:
        if host not in contexts:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(host).configure_cert(ctx)
            contexts[host] = ctx
        return contexts[host]

    def on_sni(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if server_name:
            sslobj.context = context_for(server_name)

    base = context_for(default_host)
    base.sni_callback = on_sni
    return base
