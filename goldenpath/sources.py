"""Observation sources: each API read, probe, log query and metric query a phase's observation is
made of, named once, and what a source that failed records.

Each source is gathered on its own (goldenpath/observe.py): one that fails records a
:class:`SourceFailure` in its observation (``failures``, by source id) and the rest are observed as
usual. A criterion declares the sources it reads (``Criterion.sources``): it is judged when they are
all present, and "could not check" (INCONCLUSIVE, never a pass) when one of them failed. The run's
summary then names each failed source once, with the criteria it cost.

A source id is ``<api>.<method>``, the API's short name as in goldenpath/gcp/session.py and the
method as Google names it (``sqladmin.instances.get``); a probe's api is its scheme or kind
(``https``, ``tls``, ``wss``, ``journey``). No I/O, no Google import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, Mapping

# ---- the sources ---------------------------------------------------------------------------------
RUN_SERVICE: Final = "run.services.get"
RUN_REVISIONS: Final = "run.revisions.list"
LOG_ENTRIES: Final = "logging.entries.list"
LOG_METRICS: Final = "logging.metrics.get"
VPC_CONNECTOR: Final = "vpcaccess.connectors.get"
SQL_INSTANCE: Final = "sqladmin.instances.get"
SSL_CERTIFICATE: Final = "compute.sslCertificates.get"
TIME_SERIES: Final = "monitoring.timeSeries.list"
ALERT_POLICIES: Final = "monitoring.alertPolicies.list"
CHANNELS: Final = "monitoring.notificationChannels.list"
DASHBOARD: Final = "dashboards.dashboards.get"
BURST: Final = "https.burst"            # Phase 1's concurrent GETs of a health_url
HTTP_CHECK: Final = "https.get"         # Phase 3's GET of a health endpoint
TLS_HANDSHAKE: Final = "tls.handshake"  # Phase 2's live TLS to a domain
WEBSOCKET: Final = "wss.ping"           # Phase 3's websocket batch
JOURNEY: Final = "journey.walk"         # the Golden Path: login → websocket → response

ALL: Final = (RUN_SERVICE, RUN_REVISIONS, LOG_ENTRIES, LOG_METRICS, VPC_CONNECTOR, SQL_INSTANCE, SSL_CERTIFICATE,
              TIME_SERIES, ALERT_POLICIES, CHANNELS, DASHBOARD, BURST, HTTP_CHECK, TLS_HANDSHAKE, WEBSOCKET, JOURNEY)

# What went wrong, as an operator acts on it: nothing answered (the endpoint, the network), the API
# answered with an error status, no answer in time, the identity may not read it; "failed" when the
# error says none of these.
Kind = Literal["unreachable", "refused", "timed out", "permission", "failed"]
KINDS: Final = ("unreachable", "refused", "timed out", "permission", "failed")


def api_of(source: str) -> str:
    return source.split(".", 1)[0]


def method_of(source: str) -> str:
    return source.split(".", 1)[1] if "." in source else source


@dataclass(frozen=True)
class SourceFailure:
    """One source that could not be read: what it is, what kind of failure, and the one paragraph
    (what is wrong, what to do) the error carried."""

    source: str       # a source id above
    kind: str         # one of KINDS
    message: str      # the operator's paragraph
    status: str = ""  # the API's answer (``403 PERMISSION_DENIED``), "" when it did not answer
    where: str = ""   # the endpoint, "" when not known

    @property
    def api(self) -> str:
        return api_of(self.source)

    @property
    def method(self) -> str:
        return method_of(self.source)

    @property
    def name(self) -> str:
        """``sqladmin instances.get``: how an operator reads a source."""
        return f"{self.api} {self.method}"

    def short(self) -> str:
        """``sqladmin instances.get: unreachable at http://127.0.0.1:PORT`` (one line, no advice)."""
        how = {"refused": f"refused ({self.status})" if self.status else "refused",
               "permission": f"permission denied ({self.status})" if self.status else "permission denied"}
        at = f" at {self.where}" if self.where else ""
        return f"{self.name}: {how.get(self.kind, self.kind)}{at}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SourceFailure":
        return cls(**{k: str(data.get(k, "")) for k in ("source", "kind", "message", "status", "where")})


def failure(source: str, exc: BaseException) -> SourceFailure:
    """What ``exc`` says of ``source``: the kind, status and endpoint a CheckError carries
    (goldenpath/gcp/session.py sets them), else "failed" with the error's text."""
    kind = str(getattr(exc, "kind", "") or "")
    if kind not in KINDS:
        kind = "timed out" if isinstance(exc, TimeoutError) else \
            "unreachable" if isinstance(exc, ConnectionError) else "failed"
    message = str(exc) or type(exc).__name__
    if not hasattr(exc, "kind"):  # not an operator's paragraph (a probe's or a library's error): its type too
        message = f"{type(exc).__name__}: {message}"
    return SourceFailure(source, kind, message, str(getattr(exc, "status", "") or ""),
                         str(getattr(exc, "where", "") or ""))
