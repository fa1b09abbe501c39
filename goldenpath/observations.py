"""Observations: what is true now, as plain frozen data. No client objects, no I/O.

Criteria judge these; remediation plans from them; reports attach their ``raw`` JSON as evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from goldenpath.sources import SourceFailure

# Every phase's observation holds values or source failures: ``failures`` maps the id of each source
# that could not be read (goldenpath.sources) to what it recorded, and the value it would have filled
# is None (or left out of its dict). A criterion that needs a failed source is not judged on it.

@dataclass(frozen=True)
class TrafficShare:
    revision: str  # short revision name
    percent: int


@dataclass(frozen=True)
class ServiceState:
    name: str            # short name (the last part of full_name)
    full_name: str       # projects/…/locations/…/services/…
    serving: tuple[TrafficShare, ...]    # traffic_statuses: what is served now
    requested: tuple[TrafficShare, ...]  # traffic: what was asked for
    latest_ready: str
    latest_created: str
    reconciling: bool
    ready: bool
    ready_message: str
    etag: str
    generation: int
    observed_generation: int
    update_time: datetime  # updateTime: when the last update was ACCEPTED ("the last-modified time")
    raw: dict[str, Any] = field(repr=False, compare=False)
    # terminalCondition.lastTransitionTime: when the Ready condition last changed, i.e. when the last
    # update's rollout finished (or failed); None when the API gives none.
    ready_transition_time: datetime | None = None

    @property
    def holding_traffic(self) -> tuple[TrafficShare, ...]:
        return tuple(s for s in self.serving if s.percent > 0)

    def split_text(self) -> str:
        shares = self.holding_traffic or self.serving
        return ", ".join(f"{s.revision} {s.percent} %" for s in shares) or "no revision"


@dataclass(frozen=True)
class RevisionState:
    name: str
    full_name: str
    create_time: datetime
    min_instances: int
    ready: bool
    raw: dict[str, Any] = field(repr=False, compare=False)
    env: tuple[tuple[str, str], ...] = ()   # the first container's plain env values, in order
    # scalingStatus.desiredMinInstanceCount: the min instances Cloud Run says it provisions for it now
    # (0 when the API does not say).
    provisioned_min: int = 0

    def env_value(self, name: str) -> str | None:
        return next((v for k, v in self.env if k == name), None)


@dataclass(frozen=True)
class Sample:
    status: int | None   # None: no HTTP answer at all (see error)
    seconds: float
    error: str | None


@dataclass(frozen=True)
class Burst:
    url: str
    started: float
    samples: tuple[Sample, ...]

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            key = str(s.status) if s.status is not None else (s.error or "error")
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def percentile(self, q: float) -> float:
        xs = sorted(s.seconds for s in self.samples)
        if not xs:
            return math.nan
        # nearest-rank: the value below which q of the samples fall, never interpolated upward
        return xs[max(0, math.ceil(q * len(xs)) - 1)]

    @property
    def max_seconds(self) -> float:
        return max((s.seconds for s in self.samples), default=math.nan)

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "requests": len(self.samples),
            "statuses": self.statuses(),
            "p50_s": round(self.percentile(0.5), 3),
            "p95_s": round(self.percentile(0.95), 3),
            "max_s": round(self.max_seconds, 3),
        }


@dataclass(frozen=True)
class RequestLog:
    """Request-log counts for one service since a moment (the last change to the service)."""

    service: str
    since: datetime
    total_seen: int        # entries seen, capped at the minimum-traffic threshold (we only need "enough")
    total_capped: bool
    errors_503: int        # 503 entries seen, capped at errors_cap
    errors_capped: bool
    examples: tuple[dict[str, Any], ...]  # a few 503 entries: time and revision, for the report

    def summary(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "since": self.since.isoformat(),
            "requests_seen": f"{self.total_seen}{'+' if self.total_capped else ''}",
            "http_503": f"{self.errors_503}{'+' if self.errors_capped else ''}",
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class ServiceObservation:
    service: ServiceState | None  # None: run services.get failed (see failures)
    revisions: tuple[RevisionState, ...]
    burst: Burst | None          # None when the target names no health URL for the service
    request_log: RequestLog | None
    failures: dict[str, SourceFailure] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiCall:
    """One call made while observing or remediating, for the report's steps."""

    api: str
    method: str
    resource: str
    seconds: float
    outcome: str  # "ok" or the error
    # The transient errors the call met (e.g. "503 UNAVAILABLE"), oldest first: each was retried, but
    # for the last one when the call failed with it.
    retried: tuple[str, ...] = ()


# ---- Phase 2 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorState:
    name: str
    full_name: str
    state: str            # READY, ERROR, UPDATING, … (the API's names)
    machine_type: str
    min_instances: int
    max_instances: int
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class SqlInstanceState:
    name: str
    state: str
    tier: str
    settings_version: int
    flags: tuple[tuple[str, str], ...]  # in the instance's own order
    raw: dict[str, Any] = field(repr=False, compare=False)

    def flag(self, name: str) -> str | None:
        return next((v for k, v in self.flags if k == name), None)


@dataclass(frozen=True)
class MetricSeries:
    metric: str
    points: tuple[tuple[datetime, float], ...]  # (end time, value), newest first, as Cloud Monitoring returns them
    # Aligned points: each describes the period (end - period_seconds, end]; 0 for raw points.
    period_seconds: float = 0
    series: int = 1  # how many series (e.g. databases) each point sums

    def newest_after(self, moment: datetime) -> bool:
        """Whether the newest point describes only time after ``moment`` (its whole period)."""
        return bool(self.points) and self.points[0][0] - timedelta(seconds=self.period_seconds) >= moment

    @property
    def latest(self) -> float | None:
        return self.points[0][1] if self.points else None

    @property
    def peak(self) -> float | None:
        return max((v for _, v in self.points), default=None)


@dataclass(frozen=True)
class ConnectorLog:
    """What the logs say about the connector since ``since``: the runbook's query
    (``resource.type="vpc_access_connector"``, severity ≥ ERROR: Google documents no such log, so
    it is normally empty) and the egress failures the services behind it print to stdout/stderr."""

    connector: str
    since: datetime
    runbook_errors: int               # entries of the runbook's query
    services: tuple[str, ...]         # the Cloud Run services whose logs were read
    egress_errors: int                # socket errors (timeouts, resets) in their stdout/stderr
    capped: bool
    examples: tuple[str, ...]


@dataclass(frozen=True)
class ConnectorMetrics:
    """The connector's Cloud Monitoring points since ``since`` (newest first), raw (unaggregated)."""

    connector: str
    since: datetime
    cpu: tuple[tuple[datetime, float, float], ...]    # (end, p95 of the instances' utilization 0-1, mean)
    instances: tuple[tuple[datetime, int], ...]       # active instances
    throughput: tuple[tuple[datetime, float], ...]    # Mbps, sent + received, per sample interval


@dataclass(frozen=True)
class CertificateState:
    name: str
    type: str
    status: str           # managed status, e.g. ACTIVE
    domains: tuple[str, ...]
    subject_alt_names: tuple[str, ...]
    expire_time: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TlsResult:
    """A live TLS handshake to one domain, as a browser would make it."""

    domain: str
    address: str          # where it connected (after `resolve`)
    verified: bool        # chain verifies against the CA bundle and the name matches
    error: str | None
    subject_alt_names: tuple[str, ...]
    not_after: datetime | None


@dataclass(frozen=True)
class Phase2Observation:
    connector: ConnectorState | None
    connector_users: tuple[str, ...]      # Cloud Run services whose egress goes through it
    instance: SqlInstanceState | None
    backends: MetricSeries | None
    connector_log: ConnectorLog | None
    certificate: CertificateState | None
    tls: dict[str, TlsResult]
    backends_since: datetime | None = None   # the gate's last change to the instance: older points are stale
    connector_metrics: ConnectorMetrics | None = None
    failures: dict[str, SourceFailure] = field(default_factory=dict)


# ---- Phase 3 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCheck:
    """One GET of one endpoint: what came back, how fast, and what the body said."""

    url: str
    status: int | None
    seconds: float
    body_status: str | None   # the body's "status" field, e.g. "healthy"
    detail: str | None        # the cause when there was no usable answer, or the body's own cause


@dataclass(frozen=True)
class WsResult:
    """One WebSocket connection: ping → pong, or why not (cause names the layer that failed)."""

    ok: bool
    cause: str | None          # "dns/tls: …", "upgrade refused: HTTP 403", "timeout: …", "closed 1011: …"
    seconds: float


@dataclass(frozen=True)
class GoldenPathResult:
    """The user journey, leg by leg. Never holds the credentials or the token."""

    ok: bool
    failed_leg: str | None     # login, websocket, response
    cause: str | None
    legs: dict[str, float]     # leg → seconds since the journey started
    events: tuple[str, ...]    # event types received, in order
    response_chars: int = 0


@dataclass(frozen=True)
class StartupLog:
    service: str
    revision: str
    since: datetime
    errors: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Phase3Observation:
    services: dict[str, ServiceState]
    serving: dict[str, RevisionState | None]        # the revision serving 100 % (None: no single one)
    health: dict[str, HttpCheck]                    # by URL
    startup: dict[str, StartupLog | None]           # by service
    websocket: tuple[WsResult, ...]
    golden_path: GoldenPathResult | None
    golden_path_problem: str | None = None          # why the journey could not be attempted (config)
    failures: dict[str, SourceFailure] = field(default_factory=dict)


@dataclass(frozen=True)
class Phase4Observation:
    """Phase 4: the monitoring as it is, next to the definitions it is judged against."""

    log_metrics: dict[str, dict[str, Any] | None]   # each defined metric's name → the API's JSON, None: missing
    policies: tuple[dict[str, Any], ...]            # every alert policy of the project
    channels: tuple[dict[str, Any], ...]            # every notification channel of the project
    dashboards: dict[str, dict[str, Any] | None]    # each defined dashboard's name → JSON, None: missing
    services: dict[str, ServiceState]
    serving: dict[str, RevisionState | None]        # the single revision serving 100 %, if there is one
    failures: dict[str, SourceFailure] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanWindow:
    """The request log of the last ``window_seconds`` (in the target's time) for one service."""

    service: str
    now: datetime
    window_seconds: float      # the runbook's 10 minutes, in the target's time
    clock_scale: float         # target seconds per real second: 1, or more on a sped-up twin
    last_change: datetime | None  # when the service's last change was complete (Observer._changed_since): 503s
                                  # before it are history, after it a failure
    log: RequestLog | None        # None (and last_change None): its source failed, see failures
    failures: dict[str, SourceFailure] = field(default_factory=dict)

    def target_seconds(self, since: datetime) -> float:
        """Real time since ``since``, in the target's time."""
        return max(0.0, (self.now - since).total_seconds() * self.clock_scale)
