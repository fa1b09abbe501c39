"""Gather observations concurrently; cache them until a mutation makes them stale.

Every API read and probe of a phase starts at once (threads for the blocking Google clients,
asyncio for the probes); only the request log waits, because it must include the burst just sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from goldenpath.config import Service, Target
from goldenpath import definitions, polling
from goldenpath.gcp.compute import Compute
from goldenpath.gcp.dashboards import Dashboards
from goldenpath.gcp.logging import CloudLogging
from goldenpath.gcp.monitoring import Monitoring
from goldenpath.gcp.run import CloudRun
from goldenpath.gcp.session import GcpSession
from goldenpath.gcp.sqladmin import CloudSql
from goldenpath.gcp.vpcaccess import VpcAccess
from goldenpath.observations import (
    ApiCall, Burst, CleanWindow, ConnectorLog, ConnectorMetrics, ConnectorState, GoldenPathResult, HttpCheck, MetricSeries, Phase2Observation,
    Phase3Observation, Phase4Observation, RevisionState, ServiceObservation, ServiceState, StartupLog, TlsResult,
)
from goldenpath.probes import http, journey, tls, websocket
from goldenpath.trail import logger

LOG = logger("observe")

T = TypeVar("T")


async def gather_named(**reads: Awaitable[Any]) -> dict[str, Any]:
    """Run every read at once; their results by name (a new observation is one more keyword)."""
    results = await asyncio.gather(*reads.values())
    return dict(zip(reads, results))


def none(value: Any = None) -> Awaitable[Any]:
    """A read that is not made (its target key is not configured): ``value`` at once."""
    return asyncio.sleep(0, result=value)


class Observer:
    # The named observation sources criteria records judge (Criterion.observation): each is a
    # method of the Observer and a session fixture of the same name (fixtures/remediation.py,
    # fixtures/confirmation.py).
    SOURCES = ("phase1", "phase2", "phase3", "phase4", "clean_window")

    def __init__(self, target: Target, session: GcpSession | None = None, journal: Path | None = None) -> None:
        self.target = target
        self.session = session or GcpSession(target)
        self.journal = journal
        self.run = CloudRun(self.session)
        self.logging = CloudLogging(self.session)
        self.vpcaccess = VpcAccess(self.session)
        self.sql = CloudSql(self.session)
        self.monitoring = Monitoring(self.session)
        self.compute = Compute(self.session)
        self.dashboards = Dashboards(self.session)
        self._definitions: definitions.Definitions | None = None
        self._phase1: dict[str, ServiceObservation] | None = None
        self._phase2: Phase2Observation | None = None
        self._phase3: Phase3Observation | None = None
        self._phase4: Phase4Observation | None = None

    def phase1(self) -> dict[str, ServiceObservation]:
        if self._phase1 is None:
            self._phase1 = self._gather(1, self._gather_phase1)
        else:
            LOG.debug("phase 1: observations reused (nothing changed since they were gathered)")
        return self._phase1

    def phase2(self) -> Phase2Observation:
        if self._phase2 is None:
            self._phase2 = self._gather(2, self._gather_phase2)
        else:
            LOG.debug("phase 2: observations reused (nothing changed since they were gathered)")
        return self._phase2

    def phase3(self) -> Phase3Observation:
        if self._phase3 is None:
            self._phase3 = self._gather(3, self._gather_phase3)
        else:
            LOG.debug("phase 3: observations reused (nothing changed since they were gathered)")
        return self._phase3

    def phase4(self) -> Phase4Observation:
        if self._phase4 is None:
            self._phase4 = self._gather(4, self._gather_phase4)
        else:
            LOG.debug("phase 4: observations reused (nothing changed since they were gathered)")
        return self._phase4

    def _gather(self, phase: int, gather: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one phase's concurrent gathering, with its start, end and timing in the trail."""
        LOG.info("phase %d: gathering observations", phase)
        t0, calls = time.perf_counter(), len(self.session.calls)
        try:
            result = asyncio.run(gather())
        except Exception as exc:
            LOG.warning("phase %d: gathering failed after %.3f s: %s", phase, time.perf_counter() - t0, exc)
            raise
        LOG.info("phase %d: observations gathered in %.3f s (%d calls and probes)", phase,
                 time.perf_counter() - t0, len(self.session.calls) - calls)
        return result

    def definitions(self) -> definitions.Definitions:
        """Phase 4's monitoring definitions, filled for this target (read once)."""
        if self._definitions is None:
            self._definitions = definitions.load(self.target)
        return self._definitions

    def clean_window(self) -> dict[str, CleanWindow]:
        """The last clean_window_minutes of the request log of every service the gate probes (those
        with a health URL: their traffic is known to exist). Never cached: the window moves."""
        return asyncio.run(self._gather_windows())

    async def _gather_windows(self) -> dict[str, CleanWindow]:
        from goldenpath import twinctl

        t = self.target
        scale = await asyncio.to_thread(twinctl.clock_scale, t)
        window = t.thresholds.clean_window_minutes * 60
        now = datetime.now(timezone.utc)
        since = now - timedelta(seconds=window / scale)
        names = [s.name for s in t.services if s.health_url]
        states, logs = await asyncio.gather(
            asyncio.gather(*(asyncio.to_thread(self.run.get_service, n) for n in names)),
            asyncio.gather(*(asyncio.to_thread(self.logging.request_log, n, since, t.thresholds.min_requests)
                             for n in names)))
        return {n: CleanWindow(service=n, now=now, window_seconds=window, clock_scale=scale,
                               last_change=state.update_time, log=log)
                for n, state, log in zip(names, states, logs)}

    def clock_scale(self) -> float:
        """Target seconds per real second: 1, or more on a sped-up twin (read from the twin each time:
        a reset may change it)."""
        from goldenpath import twinctl

        return twinctl.clock_scale(self.target)

    def invalidate(self) -> None:
        """Forget what was seen: called after every mutation, so nothing is judged on stale data."""
        LOG.debug("observations invalidated: the next look reads the target again")
        self._phase1 = None
        self._phase2 = None
        self._phase3 = None
        self._phase4 = None

    def last_change(self, resource: str) -> datetime | None:
        """When the gate last changed ``resource`` on this target, from the journal (None: never)."""
        if self.journal is None or not self.journal.exists():
            return None
        last = None
        for line in self.journal.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("target") == self.target.name and rec.get("resource") == resource \
                    and rec.get("event") in ("apply.after", "rollback.after"):
                last = rec["time"]
        return datetime.fromisoformat(last) if last else None

    async def _gather_phase2(self) -> Phase2Observation:
        t = self.target

        async def users() -> tuple[str, ...]:
            if t.connector is None:
                return ()
            services = await asyncio.gather(*(asyncio.to_thread(self.run.get_service, s.name) for s in t.services))
            return tuple(s.name for s in services
                         if s.raw.get("template", {}).get("vpcAccess", {}).get("connector", "").endswith(
                             f"/connectors/{t.connector.name}"))

        async def connector() -> tuple[ConnectorState | None, tuple[str, ...], ConnectorLog | None,
                                       ConnectorMetrics | None]:
            if t.connector is None:
                return None, (), None, None
            conn, using = await asyncio.gather(asyncio.to_thread(self.vpcaccess.get, t.connector.name), users())
            now = datetime.now(timezone.utc)
            changed = self.last_change(conn.full_name)
            # What was logged or measured before the gate's last change describes the old connector.
            log_since = now - timedelta(minutes=t.thresholds.connector_log_minutes)
            metric_since = now - timedelta(minutes=t.thresholds.metric_window_minutes)
            if changed:
                log_since, metric_since = max(log_since, changed), max(metric_since, changed)
            log, metrics = await asyncio.gather(
                asyncio.to_thread(self.logging.connector_errors, t.connector.name, using, log_since),
                self._connector_metrics(t.connector.name, metric_since, changed))
            return conn, using, log, metrics

        async def tls_all() -> dict[str, TlsResult]:
            results = await asyncio.gather(*(self._handshake(d) for d in t.domains))
            return {r.domain: r for r in results}

        db = t.database
        changed = self.last_change(f"projects/{t.project}/instances/{db.instance}") if db else None
        seen = await gather_named(
            connector=connector(),
            instance=asyncio.to_thread(self.sql.get, db.instance) if db else none(),
            backends=self._backends(db.instance, db.metric_alignment_seconds, changed) if db else none(),
            certificate=asyncio.to_thread(self.compute.certificate, t.certificate.name) if t.certificate else none(),
            tls=tls_all(),
        )
        conn, using, log, metrics = seen.pop("connector")
        return Phase2Observation(connector=conn, connector_users=using, connector_log=log, connector_metrics=metrics,
                                 backends_since=changed, **seen)

    async def _backends(self, instance: str, alignment: int, changed: datetime | None) -> MetricSeries:
        """num_backends summed over the instance's databases; right after a change, wait (paced by
        goldenpath.polling) for a point whose whole period is after the change, at most metric_settle_seconds: Cloud
        Monitoring samples every minute and publishes a point up to 165 s later."""
        th = self.target.thresholds
        deadline = time.monotonic() + th.metric_settle_seconds
        pauses = polling.delays(deadline)  # seen at most 10 % (or 0.5 s) after it is published
        while True:
            series = await asyncio.to_thread(self.monitoring.num_backends, instance, th.metric_window_minutes,
                                             alignment)
            fresh = changed is None or series.newest_after(changed)
            if fresh or time.monotonic() >= deadline:
                return series
            await asyncio.sleep(next(pauses))

    async def _connector_metrics(self, connector: str, since: datetime, changed: datetime | None) -> ConnectorMetrics:
        """The connector's metrics since ``since``; right after a change, wait (paced by goldenpath.polling) until
        min_points CPU points newer than the change are published, at most metric_settle_seconds."""
        th = self.target.thresholds
        deadline = time.monotonic() + th.metric_settle_seconds
        pauses = polling.delays(deadline)
        while True:
            metrics = await asyncio.to_thread(self.monitoring.connector_metrics, connector, since)
            if changed is None or len(metrics.cpu) >= th.min_points or time.monotonic() >= deadline:
                return metrics
            await asyncio.sleep(next(pauses))

    async def _handshake(self, domain: str) -> TlsResult:
        t = self.target
        t0 = time.perf_counter()
        result = await tls.handshake(domain, resolve_map=t.resolve, ca_bundle=str(t.ca_path) if t.ca_path else None,
                                     timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("tls", "handshake", f"{domain} via {result.address}",
                                          time.perf_counter() - t0, "verified" if result.verified else str(result.error)))
        return result

    async def _gather_phase1(self) -> dict[str, ServiceObservation]:
        results = await asyncio.gather(*(self._observe_service(s) for s in self.target.services))
        return {s.name: r for s, r in zip(self.target.services, results)}

    async def _observe_service(self, cfg: Service) -> ServiceObservation:
        t = self.target
        service = asyncio.to_thread(self.run.get_service, cfg.name)
        listed = asyncio.to_thread(self.run.list_revisions, cfg.name)
        burst: Burst | None = None
        if cfg.health_url:
            svc, revisions, burst = await asyncio.gather(service, listed, self.burst(cfg.health_url))
        else:
            svc, revisions = await asyncio.gather(service, listed)
        log = None
        if burst is not None:
            # The window starts at the last change to the service: what was true before the
            # traffic change says nothing about now. Bounded so a quiet service is not read forever.
            floor = datetime.now(timezone.utc) - timedelta(minutes=t.thresholds.log_window_minutes)
            since = max(svc.update_time, floor)
            log = await asyncio.to_thread(self.logging.request_log, cfg.name, since, t.thresholds.min_requests)
        return ServiceObservation(service=svc, revisions=revisions, burst=burst, request_log=log)

    async def burst(self, url: str) -> Burst:
        t = self.target
        t0 = time.perf_counter()
        result = await http.burst(url, t.thresholds.burst_size, resolve_map=t.resolve,
                                  ca_bundle=str(t.ca_path) if t.ca_path else None,
                                  timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("https", f"GET ×{len(result.samples)} (concurrent)", url,
                                          time.perf_counter() - t0, str(result.statuses())))
        return result

    # ---- Phase 3 -----------------------------------------------------------------------------

    def golden_path_credentials(self) -> tuple[str, str] | str:
        """(user, password) from the environment, or why they cannot be had (names the variable)."""
        gp = self.target.golden_path
        if gp is None:
            return (f"target {self.target.name!r} has no golden_path (the auth service's login URL and the "
                    f"test account's variables): add it to {self.target.source}")
        if self.target.twin_account:
            import httpx

            from goldenpath import twinctl

            try:
                return twinctl.rehearsal_account(self.target)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                return f"the twin's rehearsal account could not be read from its status ({exc}): is the twin running?"
        assert gp.user_env is not None and gp.password_env is not None  # the target's validation says so
        missing = [v for v in (gp.user_env, gp.password_env) if not os.environ.get(v)]
        if missing:
            return (f"the test account's credentials are missing: set the environment variable(s) "
                    f"{' and '.join(missing)} (never in targets.toml)")
        return os.environ[gp.user_env], os.environ[gp.password_env]

    async def _gather_phase3(self) -> Phase3Observation:
        t = self.target
        ca = str(t.ca_path) if t.ca_path else None

        async def service(name: str) -> tuple[ServiceState, RevisionState | None, StartupLog | None]:
            state, serving = await self._serving(name)
            log = None
            if serving is not None:
                log = await asyncio.to_thread(self.logging.startup_errors, name, serving.name, serving.create_time)
            return state, serving, log

        urls = [u for s in t.services for u in s.health_endpoints]
        creds = self.golden_path_credentials()
        walk = None
        if not isinstance(creds, str) and t.golden_path and t.websocket:
            walk = self._journey(*creds)
        seen = await gather_named(
            per_service=asyncio.gather(*(service(s.name) for s in t.services)),
            checks=asyncio.gather(*(self._check(u) for u in urls)),
            websocket=websocket.ping_batch(t.websocket.url, t.websocket.batch, resolve_map=t.resolve, ca_bundle=ca,
                                           timeout=t.websocket.timeout_seconds) if t.websocket else none(()),
            golden_path=walk if walk is not None else none(),
        )
        per_service, checks, ws, walked = seen["per_service"], seen["checks"], seen["websocket"], seen["golden_path"]
        if t.websocket:
            self.session.calls.append(ApiCall("wss", f"ping ×{len(ws)} (concurrent)", t.websocket.url, 0.0,
                                              f"{sum(r.ok for r in ws)} ok"))
        names = [s.name for s in t.services]
        problem = creds if isinstance(creds, str) else (None if t.websocket else "the target names no websocket")
        return Phase3Observation(
            services={n: r[0] for n, r in zip(names, per_service)},
            serving={n: r[1] for n, r in zip(names, per_service)},
            startup={n: r[2] for n, r in zip(names, per_service)},
            health={c.url: c for c in checks},
            websocket=tuple(ws),
            golden_path=walked,
            golden_path_problem=problem,
        )

    async def _serving(self, name: str) -> tuple[ServiceState, RevisionState | None]:
        """A service and the single revision serving all of its traffic (None when there is none)."""
        state, revisions = await asyncio.gather(asyncio.to_thread(self.run.get_service, name),
                                                asyncio.to_thread(self.run.list_revisions, name))
        holding = state.holding_traffic
        serving = next((r for r in revisions if len(holding) == 1 and r.name == holding[0].revision), None)
        return state, serving

    # ---- Phase 4 -----------------------------------------------------------------------------

    async def _gather_phase4(self) -> Phase4Observation:
        defs = self.definitions()
        names = [s.name for s in self.target.services]
        metric_names, dashboard_names = list(defs.log_metrics), list(defs.dashboards)
        seen = await gather_named(
            log_metrics=asyncio.gather(*(asyncio.to_thread(self.logging.get_metric, m) for m in metric_names)),
            policies=asyncio.to_thread(self.monitoring.alert_policies),
            channels=asyncio.to_thread(self.monitoring.notification_channels),
            dashboards=asyncio.gather(*(asyncio.to_thread(self.dashboards.get, d) for d in dashboard_names)),
            services=asyncio.gather(*(self._serving(n) for n in names)),
        )
        services = seen.pop("services")
        return Phase4Observation(
            log_metrics=dict(zip(metric_names, seen.pop("log_metrics"))),
            dashboards=dict(zip(dashboard_names, seen.pop("dashboards"))),
            services={n: r[0] for n, r in zip(names, services)},
            serving={n: r[1] for n, r in zip(names, services)}, **seen,
        )

    async def _check(self, url: str) -> HttpCheck:
        t = self.target
        result = await http.check(url, resolve_map=t.resolve, ca_bundle=str(t.ca_path) if t.ca_path else None,
                                  timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("https", "GET", url, result.seconds, str(result.status)))
        return result

    async def _journey(self, user: str, password: str) -> GoldenPathResult:
        t = self.target
        assert t.golden_path is not None and t.websocket is not None
        gp = t.golden_path
        result = await journey.walk(login_url=gp.login_url, ws_url=t.websocket.url, user=user, password=password,
                                    message=gp.message, final_event=gp.final_event, deadline=gp.deadline_seconds,
                                    resolve_map=t.resolve, ca_bundle=str(t.ca_path) if t.ca_path else None,
                                    timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("golden path", "login → websocket → response", gp.login_url,
                                          sum(result.legs.values()) and max(result.legs.values()),
                                          "ok" if result.ok else f"failed at {result.failed_leg}"))
        return result
