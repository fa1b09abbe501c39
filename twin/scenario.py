"""Scenario files: the twin's starting states, as documented TOML data.

A scenario is looked up by name in ``twin/scenarios/`` or read from a path. Validation is strict
(unknown keys are errors) so a typo in a rehearsal scenario is caught before the twin serves it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.logging import ENTRIES_SCANNED_PER_PAGE, READ_REQUESTS_PER_MINUTE, check_metric_name
from twin.store import ApiError

SCENARIO_DIR = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = "incident-1278"


class ScenarioError(Exception):
    """A scenario that cannot be found or read; the message says which and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Strict):
    deploy_seconds: float = Field(1.5, ge=0)
    delete_seconds: float = Field(0.4, ge=0)
    metric_period_seconds: int = Field(60, ge=1, le=60)  # Cloud Monitoring sample period of the twin's metrics
    # "After sampling, data is not visible for up to 165 seconds" (num_backends, Google's metrics
    # list): a point becomes readable this long after its sample time. Rehearsals set a few seconds.
    metric_lag_seconds: float = Field(165, ge=0)
    # How long after a log-based metric's creation (its createTime) an alert policy reading it is
    # still refused, in the twin's time (the clock scale applies). Google: "If a metric was created
    # recently, it could take up to 10 minutes to become available" (the NOT_FOUND of
    # alertPolicies.create; hashicorp/terraform-provider-google#11102).
    metric_propagation_seconds: float = Field(600, ge=0, le=86_400)


class Contention(_Strict):
    latency_seconds: tuple[float, float] = (2.2, 3.4)
    error_rate: float = Field(0.3, ge=0, le=1)


class History(_Strict):
    minutes: int = Field(30, ge=0)
    requests_per_minute: int = Field(6, ge=0)


class LoggingSpec(_Strict):
    """How the twin's Cloud Logging searches and meters ``entries.list`` (the sources: twin.logging)."""

    # Entries of the query's time range one call looks at; a slice with no match is an empty page
    # with a nextPageToken, as the API's "did not have time to search" page is.
    entries_scanned_per_page: int = Field(ENTRIES_SCANNED_PER_PAGE, ge=1)
    # The per-project read quota, over a rolling minute of real time (not the twin's clock scale).
    read_requests_per_minute: int = Field(READ_REQUESTS_PER_MINUTE, ge=1)


class RevisionSpec(_Strict):
    name: str
    created_minutes_ago: float = 60
    min_instances: int = Field(0, ge=0)
    max_instances: int = Field(100, ge=1)
    image: str = "us-docker.pkg.dev/cloudrun/container/hello"
    env: dict[str, str] = {}
    broken: bool = False
    startup_errors: list[str] = []      # logged at severity ERROR when the revision started


class TrafficSpec(_Strict):
    revision: str
    percent: int = Field(ge=0, le=100)
    # A traffic tag: the revision gets its own URL (https://TAG---SERVICE-HOST), even at 0 %.
    tag: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]*$")


class ServiceScalingSpec(_Strict):
    """Service-level scaling (run.v2 ServiceScaling): totals divided among the revisions with traffic."""

    min_instance_count: int = Field(0, ge=0)
    max_instance_count: int = Field(0, ge=0)   # 0: unset
    scaling_mode: str = "AUTOMATIC"            # AUTOMATIC | MANUAL (ServiceScaling.ScalingMode names)
    manual_instance_count: int | None = Field(None, ge=0)


class ConnectorSpec(_Strict):
    """A Serverless VPC Access connector and the traffic it carries."""

    name: str
    state: str = "READY"               # READY | ERROR | … (the API's Connector.State names)
    machine_type: str = "e2-micro"
    min_instances: int = Field(2, ge=2, le=9)
    max_instances: int = Field(3, ge=3, le=10)
    network: str = "default"
    ip_cidr_range: str = "10.8.0.0/28"
    load_mbps: float = Field(0, ge=0)  # egress through it; above capacity it drops connections
    # While it is overloaded or not READY, each service behind it prints this many socket errors a
    # minute to its own stderr (0: the services log nothing, only the metrics show the trouble).
    errors_per_minute: int = Field(4, ge=0)
    # False: Cloud Monitoring has no point of the connector's metrics (vpcaccess.googleapis.com/connector/*).
    reports_metrics: bool = True


class SqlSpec(_Strict):
    """A Cloud SQL for PostgreSQL instance and its connection load."""

    name: str
    database_version: str = "POSTGRES_15"
    tier: str = "db-custom-2-7680"
    flags: dict[str, str] = {}
    settings_version: int = Field(1, ge=1)
    backends: int = Field(0, ge=0)        # connections in use (num_backends, summed over the databases)
    # num_backends has one series per database (its `database` label). The application's database
    # holds every connection the system databases do not; a system database holds its count here
    # (or what is left of the total), so a scenario's total stays ``backends``.
    database: str = "app"
    system_databases: dict[str, int] = Field(default_factory=lambda: {"cloudsqladmin": 2, "postgres": 1})
    # > 0: after a max_connections change the application's pools grow to this share of the new max
    # (the "utilization stays above 90 %" scenario); 0: the number of backends stays as it is.
    backends_follow_max: float = Field(0, ge=0, le=1.5)
    restart_seconds: float = Field(3, ge=0)

    @model_validator(mode="after")
    def _databases_are_distinct(self) -> "SqlSpec":
        if self.database in self.system_databases:
            raise ValueError(f"database {self.database!r} is also listed in system_databases")
        if any(n < 0 for n in self.system_databases.values()):
            raise ValueError("system_databases counts must be >= 0")
        return self


class CertificateSpec(_Strict):
    """A Compute Engine SSL certificate, and what the data plane serves for its domains."""

    name: str
    domains: list[str]
    status: str = "ACTIVE"               # managed status: ACTIVE | PROVISIONING | FAILED_NOT_VISIBLE | …
    expires_in_days: float = 60


class GoldenPathSpec(_Strict):
    """The twin's rehearsal account and how its agent answers (the data plane's Golden Path)."""

    user: str = "rehearsal@netrasystems.ai"
    password: str = "rehearsal-only-not-a-secret"
    events: list[str] = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
    event_delay_seconds: float = Field(0.05, ge=0)


class WebSocketSpec(_Strict):
    silent: bool = False                # accepts the upgrade, then never answers


class RolloutSpec(_Strict):
    """What happens to revisions the control plane creates from a template change."""

    new_revisions_broken: bool = False  # they fail their health checks and log startup errors
    # The deploy itself fails: a revision from a template none of the service's revisions had never
    # becomes ready, its operation ends in error (FAILED_PRECONDITION) and the service keeps serving
    # its last ready state. A template a revision already had (a restore) deploys.
    deploy_fails: bool = False
    startup_seconds: float = Field(1.0, ge=0)
    # Background users (a twin mechanism, not a Google rule): this many requests to the service's
    # first host while each of its update operations runs, evenly spread from the update's
    # acceptance to its operation's end, each answered and logged when its time comes by the traffic
    # the service serves until the operation completes (the old split: trafficStatuses changes at
    # completion). With a broken or contended split some of them get 503s, before the change is done.
    user_requests: int = Field(0, ge=0)


class NotificationChannelSpec(_Strict):
    """A Cloud Monitoring notification channel that exists already (the gate never creates one)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")  # the last part of projects/P/notificationChannels/ID
    type: str = "email"
    display_name: str = ""
    email: str | None = None            # labels.email_address of an email channel


class LogMetricSpec(_Strict):
    """A log-based metric someone already created by hand."""

    name: str
    filter: str
    description: str = ""

    @model_validator(mode="after")
    def _name_is_the_apis(self) -> "LogMetricSpec":
        try:
            check_metric_name(self.name)
        except ApiError as exc:
            raise ValueError(exc.message) from None
        return self


# google.rpc.Code -> the HTTP code Google's front end answers with it (google/rpc/code.proto).
HTTP_FOR_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ABORTED": 409, "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}


class FaultSpec(_Strict):
    """An injected fault of one method, on REST and gRPC alike (a twin mechanism, not a Google rule).

    Which calls it hits: every call of ``method`` is counted (a validateOnly call only when
    ``dry_runs``; otherwise a dry run is neither counted nor faulted). The first ``after_calls``
    counted calls are served normally; then calls ``after_calls + 1`` to ``after_calls + times`` are
    hit (every later call, when ``times`` is unset); after those, calls are served normally again.

    What a hit call gets:

    * an error (``code``, ``status``, ``message``, all three or none): by default the call is refused
      before anything happens, the world is unchanged. With ``applied = true`` the call is carried out
      first (its change lands in the world, an operation it starts runs) and the error is answered in
      place of the result: a front end whose answer from the backend was lost. Google says a write
      answered so may have been carried out: google/rpc/code.proto DEADLINE_EXCEEDED ("this error may
      be returned even if the operation has completed successfully") and UNAVAILABLE ("not always
      safe to retry non-idempotent operations"); https://google.aip.dev/194 (no automatic retry of a
      request whose repeat "would cause unintended state changes").
    * a delay (``delay_seconds``, real seconds: a network delay is not twin time, the clock scale does
      not apply): the answer (result or error) is held back this long. The call itself is carried
      out (or refused) when it arrives; only its answer is late, and other requests are served
      meanwhile. A delay with no error is a slow answer to a call that succeeded: a caller whose
      deadline is shorter sees its own timeout while the change has landed.

    A fault has an error, a delay, or both.
    """

    method: str                         # a discovery method id the twin serves (checked at reset: twin.world)
    code: int | None = None             # the HTTP code, as Google's REST front end answers
    status: str | None = None           # the canonical status, e.g. RESOURCE_EXHAUSTED
    message: str | None = None
    dry_runs: bool = False              # validateOnly calls are counted and hit too (default: they pass)
    after_calls: int = Field(0, ge=0)   # the first N counted calls are served normally
    times: int | None = Field(None, ge=1)  # then only this many are hit, and every later call is served again
    delay_seconds: float | None = Field(None, ge=0)  # each hit call's answer is held back this long (real seconds)
    applied: bool = False               # a hit call is carried out before its error is answered

    @property
    def has_error(self) -> bool:
        return self.code is not None

    @model_validator(mode="after")
    def _is_a_real_error_or_a_delay(self) -> "FaultSpec":
        given = [k for k in ("code", "status", "message") if getattr(self, k) is not None]
        if given and len(given) < 3:
            missing = [k for k in ("code", "status", "message") if k not in given]
            raise ValueError(f"an error needs code, status and message; {', '.join(missing)} missing")
        if not given and not self.delay_seconds:
            raise ValueError("a fault needs an error (code, status, message), a delay_seconds > 0, or both")
        if self.has_error and HTTP_FOR_STATUS.get(self.status or "") != self.code:
            expected = HTTP_FOR_STATUS.get(self.status or "")
            raise ValueError(f"status {self.status!r} is answered with HTTP {expected}, not {self.code}"
                             if expected else f"{self.status!r} is not a canonical status ({', '.join(HTTP_FOR_STATUS)})")
        return self


class ServiceSpec(_Strict):
    name: str
    kind: str = "backend"               # backend: /health*, /ws; auth: /health, /auth/login
    hosts: list[str] = []
    vpc_connector: str | None = None     # the connector its egress goes through
    updated_minutes_ago: float = 60
    traffic: list[TrafficSpec]
    revisions: list[RevisionSpec]
    scaling: ServiceScalingSpec | None = None
    # The deployer names its revisions (gcloud deploy --revision-suffix): the service's template
    # carries the latest revision's name (template.revision), as a read of the service shows it.
    named_revisions: bool = False

    @model_validator(mode="after")
    def _traffic_is_consistent(self) -> "ServiceSpec":
        names = {r.name for r in self.revisions}
        for t in self.traffic:
            if t.revision not in names:
                raise ValueError(f"traffic names revision {t.revision!r}, which the service does not list")
        tags = [t.tag for t in self.traffic if t.tag]
        if len(tags) != len(set(tags)):
            raise ValueError(f"traffic tags repeat: {', '.join(sorted(tags))}; each tag is one URL")
        if sum(t.percent for t in self.traffic) != 100:
            raise ValueError("traffic percents must sum to 100, as Cloud Run requires")
        return self


class Scenario(_Strict):
    name: str
    description: str
    project: str
    region: str
    timing: Timing = Timing()
    contention: Contention = Contention()
    history: History = History()
    logging: LoggingSpec = LoggingSpec()
    services: list[ServiceSpec]
    connector: ConnectorSpec | None = None
    sql: SqlSpec | None = None
    certificates: list[CertificateSpec] = []
    golden_path: GoldenPathSpec = GoldenPathSpec()
    websocket: WebSocketSpec = WebSocketSpec()
    rollout: RolloutSpec = RolloutSpec()
    # Phase 4: the channels alert policies may notify, metrics made by hand, and injected API failures.
    notification_channels: list[NotificationChannelSpec] = []
    log_metrics: list[LogMetricSpec] = []
    # Alert policies and dashboards that exist already, each as the API's REST JSON read back
    # (monitoring v3 AlertPolicy, dashboard v1 Dashboard, with their names): what `python -m twin
    # capture` found on a target. The shipped scenarios have none (Phase 4 creates them).
    alert_policies: list[dict[str, Any]] = []
    dashboards: list[dict[str, Any]] = []
    faults: list[FaultSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _expand_replicas(cls, data: Any) -> Any:
        """A service with ``replicas = N`` (a twin option, for scale rehearsals) stands for N services:
        itself and N - 1 copies, copy i named ``NAME-ii`` (its revisions renamed the same way) and
        serving on ``FIRST-ii.REST`` for each of its hosts ``FIRST.REST``; each copy's hosts are added to
        the certificate that covers the original host, so the copies' TLS verifies as the original's."""
        if not isinstance(data, dict) or not isinstance(data.get("services"), list):
            return data
        services: list[Any] = []
        certificates = [dict(c) for c in data.get("certificates", []) if isinstance(c, dict)]
        for svc in data["services"]:
            if not isinstance(svc, dict) or "replicas" not in svc:
                services.append(svc)
                continue
            svc = dict(svc)
            n = svc.pop("replicas")
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_REPLICAS:
                raise ValueError(f"services.replicas of {svc.get('name')!r} must be an integer from 1 to {MAX_REPLICAS}")
            services.append(svc)
            for i in range(2, n + 1):
                services.append(_replica(svc, i, certificates))
        return {**data, "services": services,
                **({"certificates": certificates} if "certificates" in data else {})}

    @model_validator(mode="after")
    def _names_are_unique(self) -> "Scenario":
        for what, names in (("notification_channels.id", [c.id for c in self.notification_channels]),
                            ("log_metrics.name", [m.name for m in self.log_metrics]),
                            ("faults.method", [f.method for f in self.faults])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} repeats {', '.join(dupes)}")
        return self


MAX_REPLICAS = 50


def _replica(svc: dict[str, Any], i: int, certificates: list[dict[str, Any]]) -> dict[str, Any]:
    name = str(svc["name"])
    copy_name = f"{name}-{i:02d}"

    def rename(rev: str) -> str:
        return copy_name + rev[len(name):] if rev.startswith(name + "-") else f"{copy_name}-{rev}"

    hosts = []
    for host in svc.get("hosts", []):
        first, _, rest = str(host).partition(".")
        copy_host = f"{first}-{i:02d}.{rest}" if rest else f"{first}-{i:02d}"
        hosts.append(copy_host)
        for cert in certificates:
            if host in cert.get("domains", []):
                cert["domains"] = [*cert["domains"], copy_host]
                break
    return {**svc, "name": copy_name, "hosts": hosts,
            "traffic": [{**t, "revision": rename(t["revision"])} for t in svc.get("traffic", [])],
            "revisions": [{**r, "name": rename(r["name"])} for r in svc.get("revisions", [])]}


def available() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load(name_or_path: str | None) -> Scenario:
    ref = name_or_path or DEFAULT_SCENARIO
    path = Path(ref)
    if not (path.suffix == ".toml" and path.exists()):
        path = SCENARIO_DIR / f"{ref}.toml"
    if not path.exists():
        raise ScenarioError(
            f"No twin scenario named {ref!r}. Built-in scenarios: {', '.join(available())}; "
            "or give the path of a scenario .toml file."
        )
    try:
        data = tomllib.loads(path.read_text())
        return Scenario.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"Scenario file {path} is not valid TOML: {exc}.") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"Scenario file {path} is invalid: {problems}.") from None
