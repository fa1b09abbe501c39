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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """The runbook's numbers; a target may override any of them."""

    health_seconds: float = Field(2.0, gt=0, description="health endpoint must answer faster (p95 and max)")
    burst_size: int = Field(20, ge=1, le=200, description="concurrent requests in a health burst")
    min_requests: int = Field(20, ge=1, description="request-log entries needed for a conclusive 503 verdict")
    log_window_minutes: int = Field(60, ge=1, description="how far back the request log is read at most")


class Timeouts(_Strict):
    api_seconds: float = Field(15, gt=0, description="one Google API call")
    probe_seconds: float = Field(15, gt=0, description="one HTTP probe request")
    operation_seconds: float = Field(600, gt=0, description="waiting for a long-running operation")


class Service(_Strict):
    name: str
    health_url: str | None = None

    @field_validator("health_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("https", "http"):
            raise ValueError("health_url must be an http(s) URL")
        return v


class Twin(_Strict):
    home: str = ".twin"
    control: str = "127.0.0.1:18780"
    data: str = "127.0.0.1:18743"
    scenario: str = "incident-1278"

    @field_validator("control", "data")
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
    # Phase 2+ resources are named here so later phases read them from one place.
    connector: str | None = None
    sql_instance: str | None = None
    certificate: str | None = None
    domains: list[str] = []

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
            return f"http://{self.twin.control}"
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
