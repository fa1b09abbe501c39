"""Compute Engine v1: SSL certificates. Importing compute_v1 costs ~2.4 s, so only here, lazily."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from typing import Any

from goldenpath.gcp.session import GcpSession
from goldenpath.observations import CertificateState


class Compute:
    API = "compute"

    def __init__(self, session: GcpSession) -> None:
        self.session = session

    @cached_property
    def _certificates(self) -> Any:
        from google.cloud import compute_v1

        return compute_v1.SslCertificatesClient(transport="rest", credentials=self.session.credentials,
                                                client_options=self.session.client_options(self.API) or None)

    def certificates(self) -> list[CertificateState]:
        """Every SSL certificate of the project (the pager follows nextPageToken)."""
        project = self.session.target.project
        with self.session.call(self.API, "sslCertificates.list", f"projects/{project}/global/sslCertificates"):
            return [_state(m) for m in self._certificates.list(project=project, retry=self.session.read_retry(),
                                                                timeout=None)]

    def certificate(self, name: str) -> CertificateState:
        project = self.session.target.project
        with self.session.call(self.API, "sslCertificates.get", f"projects/{project}/global/sslCertificates/{name}"):
            msg = self._certificates.get(project=project, ssl_certificate=name,
                                         retry=self.session.read_retry(), timeout=None)
        return _state(msg)


def _state(msg: Any) -> CertificateState:
    """A certificate message as the gate reads it (REST JSON names)."""
    raw = json.loads(type(msg).to_json(msg, use_integers_for_enums=False,
                                       always_print_fields_with_no_presence=False, indent=None))
    expire = raw.get("expireTime")
    return CertificateState(
        name=msg.name,
        type=raw.get("type", ""),
        status=raw.get("managed", {}).get("status", ""),
        domains=tuple(raw.get("managed", {}).get("domains", [])),
        subject_alt_names=tuple(raw.get("subjectAlternativeNames", [])),
        expire_time=datetime.fromisoformat(expire.replace("Z", "+00:00")) if expire else None,
        raw=raw,
    )
