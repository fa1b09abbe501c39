"""``targets.toml``: the names of one team's staging, kept out of the code.

Validation is strict (unknown keys are errors, required fields named) and every problem becomes
one :class:`~goldenpath.errors.ConfigError` paragraph that names the file, the key and the fix.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from goldenpath.errors import ConfigError

APIS = ("run", "logging", "sqladmin", "vpcaccess", "compute", "monitoring", "dashboards")
# The gate reaches these APIs over gRPC (Monitoring v3's client has no REST transport in the locked
# version); an http:// endpoint for them means plaintext gRPC, allowed on loopback only (the twin).
# Cloud SQL Admin is REST-only on Google's side and goes through the discovery client (gcp/sqladmin.py).
GRPC_APIS = ("monitoring",)


# Per-instance throughput (Mbps) of a Serverless VPC Access connector by machine type. Google's
# "Throughput and scaling" table (https://cloud.google.com/vpc/docs/serverless-vpc-access#scaling,
# read through copies citing it) gives f1-micro 100-500, e2-micro 200-1000, e2-standard-4
# 3200-16000 Mbps for 2 to 10 instances: 50 / 100 / 1600 per instance. The API's deprecated
# maxThroughput ("the expected throughput when using an e2-micro machine type", 100 per instance)
# agrees for e2-micro.
CONNECTOR_THROUGHPUT_MBPS = {"f1-micro": 50, "e2-micro": 100, "e2-standard-4": 1600}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """The runbook's numbers; a target may override any of them."""

    health_seconds: float = Field(2.0, gt=0, description="health endpoint must answer faster (p95 and max)")
    burst_size: int = Field(20, ge=1, le=200, description="concurrent requests in a health burst")
    min_requests: int = Field(20, ge=1, description="request-log entries needed for a conclusive 503 verdict")
    log_window_minutes: int = Field(60, ge=1, description="how far back the request log is read at most")
    db_utilization: float = Field(0.75, gt=0, le=1, description="connections in use / max_connections must stay below")
    db_escalation: float = Field(0.90, gt=0, le=1, description="above this after remediation: escalate")
    metric_window_minutes: int = Field(10, ge=1, description="how far back metrics are read")
    min_points: int = Field(3, ge=1, description="metric points needed for a conclusive verdict")
    # Google: Cloud SQL samples every 60 s and publishes a point up to 165 s later, so min_points
    # complete periods after a change can take 165 + 60 + 3 × 60 s; 300 s would end the wait (and
    # roll back a good fix as unverifiable) before real metrics can show it.
    metric_settle_seconds: float = Field(600, ge=0, description="after a change, wait this long at most for "
                                                                   "metric points newer than the change")
    connector_log_minutes: int = Field(15, ge=1, description="window for the connector's and its services' error logs")
    connector_load: float = Field(0.8, gt=0, le=1, description="the connector's CPU (p95 of its instances) and its "
                                                              "throughput over its capacity must stay below")
    certificate_min_days: float = Field(21, ge=0, description="a certificate must be valid at least this long")
    clean_window_minutes: float = Field(10, gt=0, description="Success Confirmation: zero 503s for this long")
    metric_propagation_seconds: float = Field(
        600, ge=0, le=3600,
        description="Phase 4: how long after a log-based metric's creation an alert policy reading it may "
                    "still be refused as not yet usable (Google: up to 10 minutes); the create is retried until "
                    "then, in the target's time (the twin's clock scale applies)")


class Timeouts(_Strict):
    api_seconds: float = Field(15, gt=0, description="one Google API call")
    probe_seconds: float = Field(15, gt=0, description="one HTTP probe request")
    operation_seconds: float = Field(600, gt=0, description="waiting for a long-running operation")


class Autoscaling(_Strict):
    """Phase 4's autoscaling rules for a service (the runbook: max 100, min 2, concurrency 80)."""

    min_instances: int = Field(ge=0, le=1000)
    max_instances: int = Field(ge=1, le=1000)
    concurrency: int = Field(ge=1, le=1000, description="requests one instance takes at once (Cloud Run: 1-1000)")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> "Autoscaling":
        if self.min_instances > self.max_instances:
            raise ValueError("autoscaling.min_instances must not exceed max_instances (Cloud Run refuses it)")
        return self


class Service(_Strict):
    name: str
    health_url: str | None = None                 # Phase 1's burst goes here
    health_endpoints: list[str] = []              # Phase 3: every one must answer 200, healthy, < 2 s
    required_env: dict[str, str] = {}             # Phase 3: the serving revision must carry these
    autoscaling: Autoscaling | None = None        # Phase 4: the serving revision's scaling

    @field_validator("health_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("https", "http"):
            raise ValueError("health_url must be an http(s) URL")
        return v


class Connector(_Strict):
    """The VPC connector and the capacity the target expects of it."""

    name: str
    min_instances: int = Field(2, ge=2, le=9, description="the API allows 2-9")
    max_instances: int = Field(10, ge=3, le=10, description="the API allows 3-10")
    machine_type: str | None = Field(None, description="expected machine type; None keeps the current one")

    @model_validator(mode="after")
    def _min_below_max(self) -> "Connector":
        if self.min_instances >= self.max_instances:
            raise ValueError("min_instances must be below max_instances (Serverless VPC Access requires it)")
        return self


class Database(_Strict):
    instance: str
    max_connections: int | None = Field(None, ge=14, description="the max_connections flag remediation sets")
    metric_alignment_seconds: int = Field(
        60, ge=1, description="num_backends is read aligned to periods this long and summed by Cloud Monitoring "
                              "(Google's minimum alignment period is 60 s; the twin samples faster)")


class Certificate(_Strict):
    name: str


class WebSocket(_Strict):
    url: str
    batch: int = Field(5, ge=1, le=100, description="concurrent connections that must all succeed")
    timeout_seconds: float = Field(5, gt=0, description="for the upgrade and for each answer")

    @field_validator("url")
    @classmethod
    def _ws(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("ws", "wss"):
            raise ValueError("websocket.url must be a ws:// or wss:// URL")
        return v


class GoldenPath(_Strict):
    """The user journey: log in, open the WebSocket with the token, get the AI response."""

    login_url: str
    user_env: str = Field(description="environment variable holding the test account's user name")
    password_env: str = Field(description="environment variable holding its password (never in this file)")
    message: str = "What is the status of my last optimization?"
    final_event: str = "agent_completed"
    deadline_seconds: float = Field(30, gt=0)


class Monitoring(_Strict):
    """Phase 4: where the monitoring definitions live and which notification channels alert."""

    definitions: str = Field("monitoring", description="folder of the definition files, relative to this file")
    # Channel ids (the last part of projects/P/notificationChannels/ID) or full names. Never invented:
    # with none, the policies are still created and the alert-policy criterion says what to do.
    notification_channels: list[str] = []


class Twin(_Strict):
    home: str = ".twin"
    control: str = "127.0.0.1:18780"
    data: str = "127.0.0.1:18743"
    grpc: str = "127.0.0.1:18781"
    scenario: str = "incident-1278"

    @field_validator("control", "data", "grpc")
    @classmethod
    def _loopback(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not port.isdigit() or not _is_loopback(host):
            raise ValueError(f"{v!r}: the twin listens on loopback only (127.0.0.1:PORT)")
        return v


class Target(_Strict):
    description: str = ""
    project: str
    region: str
    services: list[Service] = Field(min_length=1)
    credentials: Literal["adc", "anonymous"] = "adc"
    endpoints: dict[str, str] = {}
    resolve: dict[str, str] = {}
    ca_bundle: str | None = None
    remediation_allowed: bool = False
    thresholds: Thresholds = Thresholds()
    timeouts: Timeouts = Timeouts()
    twin: Twin | None = None
    connector: Connector | None = None
    database: Database | None = None
    certificate: Certificate | None = None
    domains: list[str] = []
    websocket: WebSocket | None = None
    golden_path: GoldenPath | None = None
    monitoring: Monitoring | None = None

    # Filled in by load(): which entry of which file this is.
    name: str = ""
    source: str = ""

    @field_validator("endpoints")
    @classmethod
    def _known_apis(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(APIS))
        if unknown:
            raise ValueError(f"unknown API {', '.join(unknown)} (known: {', '.join(APIS)})")
        for api, url in v.items():
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"endpoints.{api} = {url!r} is not an http(s) URL")
            if urlsplit(url).scheme == "http" and not _is_loopback(urlsplit(url).hostname or ""):
                # plain http would carry the credentials' bearer token in clear
                raise ValueError(f"endpoints.{api} = {url!r}: plain http is allowed on loopback only; use https")
        return v

    @field_validator("resolve")
    @classmethod
    def _resolve_format(cls, v: dict[str, str]) -> dict[str, str]:
        for key, addr in v.items():
            host, _, port = key.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"resolve key {key!r} must be HOST:PORT, as in curl --resolve")
            parse_address(addr)
        return v

    @model_validator(mode="after")
    def _safe_credentials(self) -> "Target":
        # Anonymous credentials are for the twin: never send an unauthenticated call to Google.
        if self.credentials == "anonymous":
            for api in APIS:
                host = urlsplit(self.endpoint(api)).hostname or ""
                if not _is_loopback(host):
                    raise ValueError(
                        f"credentials = \"anonymous\" needs every API endpoint on loopback, but {api} goes to {host}"
                    )
        return self

    # ---- derived ---------------------------------------------------------------------------

    @property
    def is_twin(self) -> bool:
        return self.twin is not None

    def endpoint(self, api: str) -> str:
        if api in self.endpoints:
            return self.endpoints[api]
        if self.twin is not None:
            return f"http://{self.twin.grpc if api in GRPC_APIS else self.twin.control}"
        return ""  # the client library's default (Google)

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def path(self, relative: str) -> Path:
        """A path from the file, taken relative to the file's folder."""
        p = Path(relative)
        return p if p.is_absolute() else Path(self.source).parent / p

    @property
    def twin_home(self) -> Path | None:
        return self.path(self.twin.home) if self.twin else None

    def channel_names(self) -> list[str]:
        chans = self.monitoring.notification_channels if self.monitoring else []
        return [c if c.startswith("projects/") else f"projects/{self.project}/notificationChannels/{c}" for c in chans]

    @property
    def ca_path(self) -> Path | None:
        return self.path(self.ca_bundle) if self.ca_bundle else None


def parse_address(addr: str) -> tuple[str, int | None]:
    """``ADDRESS`` (curl --resolve) or ``ADDRESS:PORT`` (curl --connect-to, the port moves too)."""
    text = addr.strip("[]")
    try:
        ipaddress.ip_address(text)
        return text, None
    except ValueError:
        pass
    host, _, port = addr.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"resolve address {addr!r} must be an IP address, optionally with :PORT") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"resolve address {addr!r}: port must be a number from 1 to 65535")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load(path: Path, name: str) -> Target:
    """Read one target from a targets file, or raise ConfigError saying exactly what to fix."""
    if not path.exists():
        raise ConfigError(
            f"The targets file {path} does not exist. Create it (see README, 'Targets') or point "
            "--targets-file at the right one."
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The targets file {path} is not valid TOML ({exc}). Fix the syntax and run again.") from None
    targets = data.get("targets")
    if not isinstance(targets, dict) or not targets:
        raise ConfigError(f"The targets file {path} has no [targets.NAME] tables. Add one (see README, 'Targets').")
    if name not in targets:
        raise ConfigError(
            f"Unknown target {name!r}: {path} defines {', '.join(sorted(targets))}. "
            f"Pass one of those with --target, or add [targets.{name}] to the file."
        )
    raw = targets[name]
    if not isinstance(raw, dict):
        raise ConfigError(f"In {path}, targets.{name} must be a table.")
    try:
        return Target.model_validate({**raw, "name": name, "source": str(path.resolve())})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
            msg = "unknown key (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ")
            problems.append(f"targets.{name}{'.' + loc if loc else ''}: {msg}")
        raise ConfigError(
            f"The targets file {path} is invalid: {'; '.join(problems)}. Fix these entries and run again."
        ) from None
