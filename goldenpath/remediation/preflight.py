"""Preflight: never change what cannot be verified.

Before a phase's first mutation the gate checks that every criterion its verification reads can be
evaluated: the credentials it needs are present, the target configures the keys it reads, and every
API and probe host it reads answers a TCP connect. A change whose verification cannot be made would
only be rolled back again (Phase 3 without the test account's variables rolls out two revisions,
cannot walk the Golden Path, rolls them back and escalates), so the phase's remediation is refused
up front instead, and nothing is changed.

What each phase's verification reads (``remediation/phase*.py`` ``verify()``, ``criteria/phase*.py``
``evaluate()`` and the observation behind it in ``observe.py``):

* Phase 1: the Cloud Run service and its revisions (run), the burst to the changed services'
  ``health_url`` and the request log after it (logging). Without a ``health_url`` neither "503s
  eliminated" nor "health < 2 s" is judged, so a traffic change would rest on the control plane alone.
* Phase 2: the connector (vpcaccess), the services using it (run), their and its error logs (logging),
  its metrics and the database's num_backends (monitoring), the instance (sqladmin), and the
  certificate (compute) the same observation reads.
* Phase 3: the services and their serving revisions (run), their startup logs (logging), the changed
  services' ``health_endpoints``, the ``websocket`` and the ``golden_path`` (login URL and the test
  account's ``user_env``/``password_env`` variables).
* Phase 4: the log-based metrics (logging), alert policies and channels (monitoring), dashboards
  (dashboards), the services' serving revisions (run), and the ``monitoring`` definitions.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence
from urllib.parse import urlsplit

from goldenpath.config import Target, parse_address
from goldenpath.errors import ConfigError
from goldenpath.gcp.session import GcpSession
from goldenpath.remediation.change import Change

# Google's default host for each API the gate reads (the client libraries' DEFAULT_HOST), used when
# the target names no endpoint. Dashboards v1 is served by Monitoring's host.
DEFAULT_HOSTS = {
    "run": "run.googleapis.com", "logging": "logging.googleapis.com", "sqladmin": "sqladmin.googleapis.com",
    "vpcaccess": "vpcaccess.googleapis.com", "compute": "compute.googleapis.com",
    "monitoring": "monitoring.googleapis.com", "dashboards": "monitoring.googleapis.com",
}
DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}
# Phase 2's steps (remediation/phase2.py SCALE, RECREATE, FLAGS; selftest/unit/test_preflight.py
# checks they agree): which target key each one's verification reads.
CONNECTOR_STEPS = ("scale-connector", "recreate-connector")
DATABASE_STEPS = ("set-database-flags",)


@dataclass
class _Reads:
    """What one phase's verification reads: keys missing (sentences), APIs and probe URLs by purpose."""

    problems: list[str] = field(default_factory=list)
    apis: list[str] = field(default_factory=list)
    probes: list[tuple[str, str]] = field(default_factory=list)  # (what, url)


def preflight(phase: int, target: Target, changes: Sequence[Change], *, environ: Mapping[str, str] | None = None,
              session: GcpSession | None = None) -> list[str]:
    """Why ``phase``'s verification of ``changes`` could not be evaluated on ``target``: one sentence
    per problem, empty when it can. Reads the environment, the target and (TCP connect only) the
    hosts the verification would reach; sends no request and changes nothing."""
    env = os.environ if environ is None else environ
    reads = _READS[phase](target, changes, env)
    problems = list(reads.problems)
    problems += _credentials(target, session or GcpSession(target))
    problems += asyncio.run(_unreachable(target, reads))
    return problems


def refusal(phase: int, problems: Sequence[str]) -> str:
    """The one paragraph a refused phase reports."""
    return (f"phase {phase} remediation refused before any change, because its verification could not be "
            f"evaluated: {' '.join(problems)} Nothing was changed. Fix {'this' if len(problems) == 1 else 'these'} "
            "and run again (--remediate=plan shows whether the preflight passes).")


# ---- what each phase reads ------------------------------------------------------------------------

def _phase1(target: Target, changes: Sequence[Change], env: Mapping[str, str]) -> _Reads:
    reads = _Reads(apis=["run", "logging"])
    for name in sorted({c.subject for c in changes}):
        svc = target.service(name)
        if svc.health_url is None:
            reads.problems.append(
                f"service {name} has no health_url in {target.source}, so Phase 1 cannot send its burst and "
                "cannot judge '503 errors eliminated' nor 'health endpoint < 2 s' after the traffic change: "
                f"add health_url = \"https://…/health\" to its [[targets.{target.name}.services]] entry.")
        else:
            reads.probes.append((f"{name}'s health_url", svc.health_url))
    return reads


def _phase2(target: Target, changes: Sequence[Change], env: Mapping[str, str]) -> _Reads:
    reads = _Reads()
    steps = {c.step for c in changes}
    if steps & set(CONNECTOR_STEPS):
        if target.connector is None:
            reads.problems.append(f"target {target.name!r} configures no connector in {target.source}, so "
                                  "'VPC connector READY' and 'no VPC connectivity errors' cannot be judged: add "
                                  "connector = { name = \"…\" }.")
        reads.apis += ["vpcaccess", "run", "logging", "monitoring"]
    if steps & set(DATABASE_STEPS):
        if target.database is None:
            reads.problems.append(f"target {target.name!r} configures no database in {target.source}, so "
                                  "'database connections < 75 %' cannot be judged: add database = "
                                  "{ instance = \"…\", max_connections = N }.")
        reads.apis += ["sqladmin", "monitoring"]
    # The same observation reads the certificate; its failure would stop the verification too.
    if target.certificate is not None and changes:
        reads.apis.append("compute")
    return reads


def _phase3(target: Target, changes: Sequence[Change], env: Mapping[str, str]) -> _Reads:
    reads = _Reads(apis=["run", "logging"])
    where = target.source
    for name in sorted({c.subject for c in changes}):
        svc = target.service(name)
        if not svc.health_endpoints:
            reads.problems.append(f"service {name} has no health_endpoints in {where}, so 'all health endpoints "
                                  "operational' cannot be judged for it: add health_endpoints = [\"https://…\"] "
                                  f"to its [[targets.{target.name}.services]] entry.")
        reads.probes += [(f"{name}'s health endpoint", url) for url in svc.health_endpoints]
    ws, gp = target.websocket, target.golden_path
    if ws is None:
        reads.problems.append(f"target {target.name!r} configures no websocket in {where}, so neither 'WebSocket "
                              "connections successful' nor the Golden Path can be judged: add websocket = "
                              "{ url = \"wss://…\" }.")
    else:
        reads.probes.append(("the websocket", ws.url))
    if gp is None:
        reads.problems.append(f"target {target.name!r} configures no golden_path in {where}, so 'Golden Path "
                              "validation passes end-to-end' cannot be judged: add golden_path = { login_url = "
                              "\"https://…/auth/login\", user_env = \"…\", password_env = \"…\" }.")
    else:
        reads.probes.append(("the Golden Path's login_url", gp.login_url))
        missing = [] if target.twin_account else [v for v in (gp.user_env, gp.password_env) if v and not env.get(v)]
        if missing:
            hint = (" (or leave user_env/password_env out of this twin target to use the twin's own rehearsal "
                    "account)" if target.is_twin else "")
            reads.problems.append(
                f"the Golden Path's test account is missing: the environment variable(s) {' and '.join(missing)} "
                f"(golden_path.user_env / password_env) are not set, so 'Golden Path validation passes "
                f"end-to-end' cannot be judged: export them before running the gate{hint}, never in targets.toml.")
    return reads


def _phase4(target: Target, changes: Sequence[Change], env: Mapping[str, str]) -> _Reads:
    reads = _Reads(apis=["logging", "monitoring", "dashboards", "run"])
    if target.monitoring is None:
        reads.problems.append(f"target {target.name!r} configures no monitoring in {target.source}, so the "
                              "monitoring definitions Phase 4 is judged by cannot be read: add monitoring = "
                              "{ definitions = \"monitoring\" }.")
    elif not target.path(target.monitoring.definitions).is_dir():
        reads.problems.append(f"the monitoring definitions folder {target.path(target.monitoring.definitions)} "
                              f"(monitoring.definitions of target {target.name!r}) does not exist: point it at the "
                              "repository's monitoring/ folder.")
    return reads


_READS = {1: _phase1, 2: _phase2, 3: _phase3, 4: _phase4}


# ---- credentials and endpoints --------------------------------------------------------------------

def _credentials(target: Target, session: GcpSession) -> list[str]:
    """ADC must be found for a real target (the twin's are anonymous). Presence only: checking that they
    are accepted would need a request."""
    if target.credentials != "adc":
        return []
    try:
        _ = session.credentials  # read only to fail on a missing credential now
    except ConfigError as exc:
        return [str(exc)]
    return []


@dataclass(frozen=True)
class _Host:
    host: str           # as the URL names it
    port: int
    connect: tuple[str, int]  # where the TCP connect goes (the resolve map applied)
    timeout: float


def _api_host(target: Target, api: str) -> tuple[str, int]:
    endpoint = target.endpoint(api)
    if not endpoint:
        return DEFAULT_HOSTS[api], 443
    parts = urlsplit(endpoint)
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 443)


def _probe_host(target: Target, url: str) -> tuple[str, int, tuple[str, int]]:
    """A probe's host and port, and where the probes connect (curl --resolve / --connect-to)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    addr = target.resolve.get(f"{host}:{port}")
    if addr is None:
        return host, port, (host, port)
    ip, moved = parse_address(addr)
    return host, port, (ip, moved or port)


async def _unreachable(target: Target, reads: _Reads) -> list[str]:
    hosts: dict[tuple[str, int, tuple[str, int]], tuple[_Host, list[str]]] = {}

    def add(h: _Host, what: str) -> None:
        entry = hosts.setdefault((h.host, h.port, h.connect), (h, []))
        if what not in entry[1]:
            entry[1].append(what)

    for api in dict.fromkeys(reads.apis):
        host, port = _api_host(target, api)
        add(_Host(host, port, (host, port), target.timeouts.api_seconds), f"the {api} API")
    for what, url in reads.probes:
        host, port, connect = _probe_host(target, url)
        add(_Host(host, port, connect, target.timeouts.probe_seconds), what)
    results = await asyncio.gather(*(_connect(h) for h, _ in hosts.values()))
    twin = " Is the twin running (`python -m twin status`)?" if target.is_twin else ""
    problems = []
    for (h, whats), error in zip(hosts.values(), results):
        if error is None:
            continue
        via = f" (connecting to {h.connect[0]}:{h.connect[1]} as the target's resolve map says)" \
            if h.connect != (h.host, h.port) else ""
        problems.append(f"{h.host}:{h.port}{via}, used by {' and '.join(whats)}, does not answer a TCP "
                        f"connect ({error}): check the network, and the endpoints/resolve entries and the URLs "
                        f"in {target.source}.{twin}")
    return problems


async def _connect(h: _Host) -> str | None:
    """None when the host accepts a TCP connection within its timeout, else what happened."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*h.connect), timeout=h.timeout)
    except asyncio.TimeoutError:
        return f"no answer within {h.timeout:g} s"
    except OSError as exc:
        return os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None
