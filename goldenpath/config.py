"""``targets.toml``: the names of one team's staging, kept out of the code.

Validation is strict (unknown keys are errors, required fields named) and every problem becomes
one :class:`~goldenpath.errors.ConfigError` paragraph that names the file, the key and the fix.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


# The twin's shipped scenarios (twin/scenarios/NAME.toml): twin.scenario names one or gives a file.
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "twin" / "scenarios"

# Google's resource-name rules, so a typo is refused here rather than as a 400/404 mid-run.
# Compute resources (SSL certificates): RFC 1035, compute.v1.json SslCertificate.name.
RFC1035 = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
# Cloud Run serviceId (run.v2.json services.create): "must begin with letter, and cannot end with
# hyphen; must contain fewer than 50 characters" (lowercase: Cloud Run names are DNS labels).
RUN_SERVICE = re.compile(r"[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?")
HOSTNAME = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?")
# An environment variable name as shells and os.environ take it (POSIX portable names).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _url(v: str, schemes: tuple[str, ...], what: str) -> str:
    """``v`` must be an absolute URL of one of ``schemes`` with a host (``https:///health`` has none)."""
    try:
        parts = urlsplit(v)
        port = parts.port  # raises ValueError on a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError(f"{what} {v!r} is not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        label = f"{schemes[-1]}(s)" if schemes[0] == schemes[-1] + "s" else " or ".join(schemes)
        raise ValueError(f"{what} must be an {label} URL, not {v!r}")
    if not parts.hostname:
        raise ValueError(f"{what} {v!r} has no host: write it as {schemes[0]}://HOST/PATH")
    if port == 0:
        raise ValueError(f"{what} {v!r}: port 0 cannot be reached; give the real port or none")
    return v


def _http_url(what: str) -> AfterValidator:
    return AfterValidator(lambda v: _url(v, ("https", "http"), what))


def _nonblank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    return v


def _pattern(rx: re.Pattern[str], rule: str) -> AfterValidator:
    def check(v: str) -> str:
        if not rx.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid name: {rule}")
        return v
    return AfterValidator(check)


NonBlank = Annotated[str, AfterValidator(_nonblank)]
EnvName = Annotated[str, _pattern(ENV_NAME, "an environment variable name is letters, digits and _, "
                                            "not starting with a digit")]


class _Strict(BaseModel):
    # strict: TOML is typed, so "20" for a number or "yes" for a boolean is a mistake, not a value to
    # coerce (remediation_allowed = "false" would otherwise allow remediation); no inf / nan either.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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
    name: Annotated[str, _pattern(RUN_SERVICE, "Cloud Run service names are lowercase letters, digits and "
                                               "hyphens, start with a letter, do not end with a hyphen, "
                                               "fewer than 50 characters")]
    health_url: Annotated[str, _http_url("health_url")] | None = None             # Phase 1's burst goes here
    health_endpoints: list[Annotated[str, _http_url("health_endpoints")]] = [] # Phase 3: every one must answer 200, healthy, < 2 s
    required_env: dict[str, str] = {}             # Phase 3: the serving revision must carry these
    autoscaling: Autoscaling | None = None        # Phase 4: the serving revision's scaling

    @field_validator("required_env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not key or "=" in key:
                raise ValueError(f"{key!r} is not an environment variable name (non-empty, no '=')")
        return v


class Connector(_Strict):
    """The VPC connector and the capacity the target expects of it."""

    name: Annotated[str, _pattern(RFC1035, "lowercase letters, digits and hyphens, starting with a letter")]
    min_instances: int = Field(2, ge=2, le=9, description="the API allows 2-9")
    max_instances: int = Field(10, ge=3, le=10, description="the API allows 3-10")
    # The machine types Serverless VPC Access offers (and whose throughput the gate knows).
    machine_type: Literal["f1-micro", "e2-micro", "e2-standard-4"] | None = Field(
        None, description="expected machine type; None keeps the current one")

    @model_validator(mode="after")
    def _min_below_max(self) -> "Connector":
        if self.min_instances >= self.max_instances:
            raise ValueError("min_instances must be below max_instances (Serverless VPC Access requires it)")
        return self


def _instance_id(v: str) -> str:
    if not v or "/" in v or ":" in v or v != v.strip():
        raise ValueError(f"{v!r} is not a Cloud SQL instance ID: give the ID alone (e.g. netra-staging-db), "
                         "not the connection name PROJECT:REGION:INSTANCE or a resource path")
    return v


class Database(_Strict):
    instance: Annotated[str, AfterValidator(_instance_id)]
    max_connections: int | None = Field(None, ge=14, description="the max_connections flag remediation sets")
    metric_alignment_seconds: int = Field(
        60, ge=1, description="num_backends is read aligned to periods this long and summed by Cloud Monitoring "
                              "(Google's minimum alignment period is 60 s; the twin samples faster)")


class Certificate(_Strict):
    name: Annotated[str, _pattern(RFC1035, "Compute SSL certificate names are RFC 1035: lowercase letters, "
                                           "digits and hyphens, starting with a letter, 1-63 characters")]


class WebSocket(_Strict):
    url: str
    batch: int = Field(5, ge=1, le=100, description="concurrent connections that must all succeed")
    timeout_seconds: float = Field(5, gt=0, description="for the upgrade and for each answer")

    @field_validator("url")
    @classmethod
    def _ws(cls, v: str) -> str:
        return _url(v, ("wss", "ws"), "websocket.url")


class GoldenPath(_Strict):
    """The user journey: log in, open the WebSocket with the token, get the AI response."""

    login_url: Annotated[str, _http_url("login_url")]
    # A real target's test account comes only from the environment. A twin target may leave both out:
    # the account is then the twin's own rehearsal account (its scenario's, read from the twin).
    user_env: EnvName | None = Field(None, description="environment variable holding the test account's user name")
    password_env: EnvName | None = Field(None, description="environment variable holding its password (never in "
                                                           "this file)")
    message: NonBlank = "What is the status of my last optimization?"
    final_event: NonBlank = "agent_completed"
    deadline_seconds: float = Field(30, gt=0)


class Monitoring(_Strict):
    """Phase 4: where the monitoring definitions live and which notification channels alert."""

    definitions: NonBlank = Field("monitoring", description="folder of the definition files, relative to this file")
    # Channel ids (the last part of projects/P/notificationChannels/ID) or full names. Never invented:
    # with none, the policies are still created and the alert-policy criterion says what to do.
    notification_channels: list[str] = []

    @field_validator("notification_channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        for c in v:
            full = re.fullmatch(r"projects/[^/\s]+/notificationChannels/[^/\s]+", c)
            if not full and (not c or "/" in c or c != c.strip() or " " in c):
                raise ValueError(f"{c!r} is not a notification channel: give its ID or its full name "
                                 "projects/PROJECT/notificationChannels/ID")
        return v


class Twin(_Strict):
    home: NonBlank = ".twin"
    control: str = "127.0.0.1:18780"
    data: str = "127.0.0.1:18743"
    grpc: str = "127.0.0.1:18781"
    scenario: NonBlank = "incident-1278"

    @field_validator("control", "data", "grpc")
    @classmethod
    def _loopback(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not port.isdigit() or not _is_loopback(host):
            raise ValueError(f"{v!r}: the twin listens on loopback only (127.0.0.1:PORT)")
        if not 0 < int(port) < 65536:
            raise ValueError(f"{v!r}: the port must be a number from 1 to 65535")
        return v

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, v: str) -> str:
        # A file path is checked against the targets file's folder in check_files(); a bare name
        # must be one the twin ships, or the twin would fail to start with its own traceback.
        if not v.endswith(".toml") and not (SCENARIO_DIR / f"{v}.toml").is_file():
            raise ValueError(f"no twin scenario named {v!r}; the shipped ones are {', '.join(scenarios())}, "
                             "or give the path of a scenario .toml file")
        return v

    @model_validator(mode="after")
    def _distinct_ports(self) -> "Twin":
        addrs = [self.control, self.data, self.grpc]
        if len(set(addrs)) < 3:
            raise ValueError(f"control, data and grpc must be three different addresses, not {', '.join(addrs)}")
        return self


class Target(_Strict):
    description: str = ""
    # Lenient formats (Google's own rules are checked by its APIs): a bare ID, not a resource path.
    project: Annotated[str, _pattern(re.compile(r"[a-z][-a-z0-9.:]*"),
                                     "the project ID alone, lowercase (e.g. netra-staging), not projects/ID")]
    region: Annotated[str, _pattern(re.compile(r"[a-z][-a-z0-9]*"), "a region name such as us-central1")]
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
    domains: list[Annotated[str, _pattern(HOSTNAME, "a host name such as api.example.com, "
                                                    "without https:// or a path")]] = []
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
            _url(url, ("https", "http"), f"endpoints.{api}")
            if urlsplit(url).scheme == "http" and not _is_loopback(urlsplit(url).hostname or ""):
                # plain http would carry the credentials' bearer token in clear
                raise ValueError(f"endpoints.{api} = {url!r}: plain http is allowed on loopback only; use https")
        return v

    @field_validator("resolve")
    @classmethod
    def _resolve_format(cls, v: dict[str, str]) -> dict[str, str]:
        for key, addr in v.items():
            host, _, port = key.rpartition(":")
            if not HOSTNAME.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"resolve key {key!r} must be HOST:PORT, as in curl --resolve")
            parse_address(addr)
        return v

    @field_validator("services")
    @classmethod
    def _unique_services(cls, v: list[Service]) -> list[Service]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"service {', '.join(dupes)} is listed more than once; keep one "
                             "[[targets.NAME.services]] entry per service")
        return v

    @model_validator(mode="after")
    def _account_from_environment(self) -> "Target":
        gp = self.golden_path
        if gp is None:
            return self
        if (gp.user_env is None) != (gp.password_env is None):
            raise ValueError("golden_path names only one of user_env and password_env: name both environment "
                             "variables" + (", or neither to use the twin's rehearsal account" if self.twin else ""))
        if self.twin is None and gp.user_env is None:
            missing = " and ".join(k for k in ("user_env", "password_env") if getattr(gp, k) is None)
            raise ValueError(
                f"golden_path needs {missing}: a real target's test account comes from environment variables "
                "it names (golden_path = { …, user_env = \"MY_USER\", password_env = \"MY_PASSWORD\" }), never "
                "from this file; only a twin target may leave them out and use the twin's rehearsal account")
        return self

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

    @property
    def twin_account(self) -> bool:
        """The Golden Path logs in with the twin's own rehearsal account (a twin target naming no
        variables); otherwise with the environment variables the target names."""
        return self.twin is not None and self.golden_path is not None and self.golden_path.user_env is None

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


def scenarios() -> list[str]:
    """The names of the twin's shipped scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def ca_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as a CA bundle (None: it can): missing, unreadable or not PEM."""
    if not path.is_file():
        return f"{path} does not exist" if not path.exists() else f"{path} is not a file"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    if "-----BEGIN CERTIFICATE-----" not in text:
        return f"{path} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)"
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        return f"{path} is not a valid PEM CA bundle ({exc.reason or exc})"
    return None


def check_files(target: Target) -> None:
    """The files a target names must be there before anything is contacted: the CA bundle, the
    monitoring definitions folder and a twin scenario file. A ConfigError paragraph otherwise."""
    problems: list[str] = []
    if target.ca_path is not None:
        home = target.twin_home.resolve() if target.twin_home else None
        # The twin writes its CA on its first start: a bundle inside the twin's home may not exist
        # yet (twinctl.ensure_running checks it once the twin answers).
        pending = home is not None and target.ca_path.resolve().is_relative_to(home) and not target.ca_path.exists()
        why = None if pending else ca_problem(target.ca_path)
        if why:
            problems.append(f"ca_bundle: {why}; point it at the PEM file of the CA that signs the services' "
                            "certificates, or remove the key to use the system's CAs")
    if target.monitoring is not None:
        folder = target.path(target.monitoring.definitions)
        if not folder.is_dir():
            problems.append(f"monitoring.definitions: the folder {folder} does not exist; give the folder of the "
                            "monitoring definitions (the repository's is `monitoring`), relative to this file")
    if target.twin is not None and target.twin.scenario.endswith(".toml"):
        scenario = target.path(target.twin.scenario)
        if not scenario.is_file():
            problems.append(f"twin.scenario: the scenario file {scenario} does not exist; give an existing .toml "
                            f"file (relative to this file) or one of the shipped scenarios: {', '.join(scenarios())}")
    if problems:
        raise ConfigError(f"The targets file {target.source} is invalid: "
                          + "; ".join(f"targets.{target.name}.{p}" for p in problems)
                          + ". Fix these entries and run again.")


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
        raise ConfigError(f"In {path}, targets.{name} must be a table: write its keys under [targets.{name}] "
                          "and run again.")
    # name and source are the gate's own (which entry of which file): not keys a file may set.
    reserved = sorted({"name", "source"} & set(raw))
    if reserved:
        raise ConfigError(f"The targets file {path} is invalid: "
                          + "; ".join(f"targets.{name}.{k}: unknown key (the gate sets it; remove it)" for k in reserved)
                          + ". Fix these entries and run again.")
    try:
        return Target.model_validate({**raw, "name": name, "source": str(path.resolve())})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
            msg = "unknown key (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ").replace("targets.NAME.", f"targets.{name}.")
            problems.append(f"targets.{name}{'.' + loc if loc else ''}: {msg}")
        raise ConfigError(
            f"The targets file {path} is invalid: {'; '.join(problems)}. Fix these entries and run again."
        ) from None
