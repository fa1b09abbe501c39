"""Gather observations concurrently; cache them until a mutation makes them stale.

Every API read of a phase starts at once (threads for the blocking Google clients); only the request
log waits, because it must include the burst just sent. Timed probes (asyncio) share a budget of
two bursts' connections (goldenpath.probes.slots), and a phase with timed probes first lets any
background import end and imports its own clients and probe modules (goldenpath.warmup): what a
probe measures is the service, not the gate's own CPU.

Each source (an API read, a probe, a log query, a metric query: goldenpath.sources) is gathered on
its own, through :class:`Reads`: one that fails records its failure in the phase's observation
(``failures``) and leaves its value None, and every other source is observed as usual. So one API
down costs only the criteria that read it (``Criterion.sources``), never the whole phase.

A read that several phases make the same way (a Cloud Run service, its revisions: Phases 1 to 4 all
read them) is made once until the next mutation (:class:`SharedReads`), as the observations are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import time
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, Iterable, TypeVar

from goldenpath.config import Service, Target
from goldenpath import definitions, polling
from goldenpath import sources as src
from goldenpath.criteria import failures_in
from goldenpath.errors import ConfigError
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
    WsResult,
)
# Only the burst's and health checks' module here: the TLS probe (cryptography, 17 ms) is Phase 2's,
# the WebSocket and Golden Path probes (10 ms) Phase 3's, and `-m phase1` in an incident needs neither.
from goldenpath.probes import http
from goldenpath.probes.slots import TIMED_BURSTS, TimedSlots
from goldenpath.sources import SourceFailure
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


class Reads:
    """One observation's sources, each read on its own: a source that fails is recorded (its first
    failure, by source id) and answers None; it never fails the reads beside it. A configuration
    error (no credentials, a bad definition) is not a source's failure: it stops the run as before."""

    def __init__(self) -> None:
        self.failures: dict[str, SourceFailure] = {}

    async def call(self, source: str, read: Callable[..., T], *args: Any) -> T | None:
        """A blocking API read, in a thread."""
        return await self.wait(source, asyncio.to_thread(read, *args))

    async def wait(self, source: str, read: Awaitable[T]) -> T | None:
        """A probe, or a read that is a coroutine (the metric reads that wait for fresh points)."""
        return (await self.attempt(source, read))[1]

    async def attempt(self, source: str, read: Awaitable[T]) -> tuple[bool, T | None]:
        """(whether it answered, its answer): for a read whose answer may be None (not found)."""
        try:
            return True, await read
        except ConfigError:
            raise
        except Exception as exc:
            failed = src.failure(source, exc)
            if source not in self.failures:
                self.failures[source] = failed
            # The trail only: the paragraph is printed once, in the run's summary of failed sources.
            LOG.info("source %s could not be read (%s): %s", source, failed.kind, failed.message)
            return False, None


class SharedReads:
    """The reads several phases make the same way, made once until the target is changed.

    Phases 1 to 4 all read each Cloud Run service, and 1, 3 and 4 its revisions: 14 reads for two
    services in a read-only run where 4 say the same, and 140 for twenty services, whose answers
    (protobuf to parse, in threads) held the interpreter lock while Phase 3's health checks were
    timed. A read asked for while the same one is under way waits for its answer (in any event loop:
    a concurrent future), and a read that failed is not kept (the next phase that needs it reads
    again; the phases waiting on it each record the failure). ``forget`` is called with the
    observations' own invalidation, after every mutation."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], concurrent.futures.Future[Any]] = {}

    def forget(self) -> None:
        # A new dict: a read still under way finishes into the old one, which nobody asks again.
        self._made = {}

    async def read(self, read: Callable[..., T], *args: Any) -> T:
        made, key = self._made, (read, *args)  # bound methods compare by function and instance
        shared = made.get(key)
        if shared is not None:
            return await asyncio.wrap_future(shared)
        made[key] = shared = concurrent.futures.Future()
        try:
            value = await asyncio.to_thread(read, *args)
        except BaseException as exc:
            if made.get(key) is shared:
                del made[key]
            shared.set_exception(exc)
            raise
        shared.set_result(value)
        return value


# Observer.prefetch: the phases whose probes are timed (1: the burst, 3: health endpoints, the Golden
# Path's deadline), then the phases that load the heavy clients (2: Compute, VPC Access and Cloud SQL
# through discovery, Monitoring; 4: Monitoring, dashboards).
PREFETCH_WAVES: tuple[tuple[int, ...], ...] = ((1, 3), (2, 4))
# The phases whose probes are timed: their gathering never runs beside a background import
# (goldenpath.warmup), and the modules they need (their API reads' clients, Phase 3's WebSocket and
# Golden Path probes) are imported before their probes start, not inside a probe's clock.
TIMED_MODULES: dict[int, tuple[str, ...]] = {
    1: ("google.cloud.run_v2", "google.cloud.logging"),
    3: ("google.cloud.run_v2", "google.cloud.logging", "goldenpath.probes.websocket", "goldenpath.probes.journey"),
}
TIMED_PHASES = tuple(TIMED_MODULES)


def timed_modules(phases: Iterable[int]) -> tuple[str, ...]:
    """The modules these phases' timed probes need, each once, in order."""
    return tuple(dict.fromkeys(m for p in phases for m in TIMED_MODULES.get(p, ())))


# The heavy client modules a phase's reads import (goldenpath.warmup imports them while an operation
# of an earlier phase is waited on). Not compute_v1: its reads have a worker process of their own
# (goldenpath.gcp.compute), started by Observer.expect where a certificate is read (Phase 2).
HEAVY_MODULES: dict[int, tuple[str, ...]] = {
    2: ("google.cloud.monitoring_v3", "googleapiclient.discovery"),
    4: ("google.cloud.monitoring_v3", "google.cloud.monitoring_dashboard_v1"),
}


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
        self._prefetch_failed: dict[int, Exception] = {}
        self._shared = SharedReads()
        self._slots: tuple[asyncio.AbstractEventLoop, TimedSlots] | None = None

    def expect(self, phases: Iterable[int]) -> None:
        """The phases this run reads: their heavy client modules may be imported in the background
        while an operation is waited on (goldenpath.warmup), and only theirs; where Phase 2 reads a
        certificate, the Compute worker process starts now and imports its client meanwhile."""
        wanted = sorted(set(phases))
        self.session.warmup.want(tuple(m for p in wanted for m in HEAVY_MODULES.get(p, ())))
        if 2 in wanted and self.target.certificate is not None:
            self.compute.start()

    def close(self) -> None:
        """The run is over: stop the Compute worker process, if one was started."""
        self.compute.close()

    def prefetch(self, phases: Iterable[int]) -> None:
        """Gather these phases' observations together, when nothing will change between them (a
        read-only or plan run): the run then costs about its slowest phases, not the sum. The phase
        order binds remediation (each phase's fix changes what the next one sees), not reading. A
        phase whose gathering raised (a configuration error) raises it when it is asked for.

        In two waves (PREFETCH_WAVES), not all at once: Phases 1 and 3 time what they probe (the
        burst's p95, each health endpoint's answer < 2 s), and Phases 2 and 4 first load the heavy
        clients (compute_v1 alone is seconds of CPU). Side by side, that CPU work held up the probes'
        event loop, and healthy endpoints measured over 2 s: a false FAIL made by the gate itself."""
        wanted = [p for p in sorted(set(phases)) if getattr(self, f"_phase{p}") is None]
        if len(wanted) < 2:
            return  # one phase: its fixture gathers it as usual
        for wave in PREFETCH_WAVES:
            together = [p for p in wanted if p in wave]
            if together:
                self._gather_together(together)

    def _gather_together(self, wanted: list[int]) -> None:
        async def every() -> list[Any]:
            return await asyncio.gather(*(getattr(self, f"_gather_phase{p}")() for p in wanted), return_exceptions=True)

        LOG.info("phases %s: gathering observations together (nothing is changed between them)",
                 ", ".join(map(str, wanted)))
        if set(wanted) & set(TIMED_PHASES):
            self.session.warmup.quiet(f"phases {', '.join(map(str, wanted))}", timed_modules(wanted))
        t0, calls = time.perf_counter(), len(self.session.calls)
        for p, result in zip(wanted, asyncio.run(every())):
            if isinstance(result, Exception):
                self._prefetch_failed[p] = result
            elif isinstance(result, BaseException):
                raise result  # an interrupt is not a phase's failure
            else:
                setattr(self, f"_phase{p}", result)
        LOG.info("phases %s: observations gathered in %.3f s (%d calls and probes)", ", ".join(map(str, wanted)),
                 time.perf_counter() - t0, len(self.session.calls) - calls)

    def _raise_prefetched(self, phase: int) -> None:
        failed = self._prefetch_failed.pop(phase, None)
        if failed is not None:
            raise failed

    def phase1(self) -> dict[str, ServiceObservation]:
        self._raise_prefetched(1)
        if self._phase1 is None:
            self._phase1 = self._gather(1, self._gather_phase1)
        else:
            LOG.debug("phase 1: observations reused (nothing changed since they were gathered)")
        return self._phase1

    def phase2(self) -> Phase2Observation:
        self._raise_prefetched(2)
        if self._phase2 is None:
            self._phase2 = self._gather(2, self._gather_phase2)
        else:
            LOG.debug("phase 2: observations reused (nothing changed since they were gathered)")
        return self._phase2

    def phase3(self) -> Phase3Observation:
        self._raise_prefetched(3)
        if self._phase3 is None:
            self._phase3 = self._gather(3, self._gather_phase3)
        else:
            LOG.debug("phase 3: observations reused (nothing changed since they were gathered)")
        return self._phase3

    def phase4(self) -> Phase4Observation:
        self._raise_prefetched(4)
        if self._phase4 is None:
            self._phase4 = self._gather(4, self._gather_phase4)
        else:
            LOG.debug("phase 4: observations reused (nothing changed since they were gathered)")
        return self._phase4

    def _gather(self, phase: int, gather: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one phase's concurrent gathering, with its start, end and timing in the trail."""
        LOG.info("phase %d: gathering observations", phase)
        if phase in TIMED_PHASES:
            self.session.warmup.quiet(f"phase {phase}", timed_modules([phase]))
        t0, calls = time.perf_counter(), len(self.session.calls)
        try:
            result = asyncio.run(gather())
        except Exception as exc:
            LOG.warning("phase %d: gathering failed after %.3f s: %s", phase, time.perf_counter() - t0, exc)
            raise
        failed = failures_of(result)
        LOG.info("phase %d: observations gathered in %.3f s (%d calls and probes)%s", phase,
                 time.perf_counter() - t0, len(self.session.calls) - calls,
                 f"; sources that failed: {', '.join(sorted(failed))}" if failed else "")
        return result

    def failures(self, phase: int) -> dict[str, SourceFailure]:
        """The sources that failed in ``phase``'s current observation (read now if not cached)."""
        return failures_of(getattr(self, f"phase{phase}")())

    def definitions(self) -> definitions.Definitions:
        """Phase 4's monitoring definitions, filled for this target (read once)."""
        if self._definitions is None:
            self._definitions = definitions.load(self.target)
        return self._definitions

    def clean_window(self, fresh: bool = False) -> dict[str, CleanWindow]:
        """The last clean_window_minutes of the request log of every service the gate probes (those
        with a health URL: their traffic is known to exist). The log is read each time: the window
        moves. The services (when each last changed) come from the reads the phases shared, which
        every change of this run made them read again; ``fresh``: read now (a soak's later looks:
        minutes apart, time enough for someone else's deploy)."""
        return asyncio.run(self._gather_windows(fresh))

    async def _gather_windows(self, fresh: bool) -> dict[str, CleanWindow]:
        from goldenpath import twinctl

        t = self.target
        scale = await asyncio.to_thread(twinctl.clock_scale, t)
        window = t.thresholds.clean_window_minutes * 60
        now = datetime.now(timezone.utc)
        since = now - timedelta(seconds=window / scale)
        names = [s.name for s in t.services if s.health_url]

        async def state(name: str) -> tuple[Reads, ServiceState | None]:
            reads = Reads()
            if fresh:
                return reads, await reads.call(src.RUN_SERVICE, self.run.get_service, name)
            return reads, await self._service(reads, name)

        # One request-log read for every service (the entries.list quota is per project).
        logs_read = Reads()
        states, logs = await asyncio.gather(
            asyncio.gather(*(state(n) for n in names)),
            logs_read.call(src.LOG_ENTRIES, self.logging.request_logs, {n: since for n in names},
                           t.thresholds.min_requests) if names else none({}))
        return {n: CleanWindow(service=n, now=now, window_seconds=window, clock_scale=scale,
                               last_change=self._changed_since(svc) if svc else None,
                               log=logs.get(n) if logs is not None else None,
                               failures={**reads.failures, **logs_read.failures})
                for n, (reads, svc) in zip(names, states)}

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
        self._prefetch_failed = {}
        self._shared.forget()

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
        reads = Reads()

        async def users() -> tuple[str, ...]:
            if t.connector is None:
                return ()
            services = await asyncio.gather(*(self._service(reads, s.name) for s in t.services))
            return tuple(s.name for s in services if s is not None
                         and s.raw.get("template", {}).get("vpcAccess", {}).get("connector", "").endswith(
                             f"/connectors/{t.connector.name}"))

        async def connector() -> tuple[ConnectorState | None, tuple[str, ...], ConnectorLog | None,
                                       ConnectorMetrics | None]:
            if t.connector is None:
                return None, (), None, None
            # The connector's logs and metrics need its name only, not its read: each is a source of
            # its own (the services using it are read first, their logs are part of the query).
            using = await users()
            now = datetime.now(timezone.utc)
            changed = self.last_change(self.vpcaccess.path(t.connector.name))
            # What was logged or measured before the gate's last change describes the old connector.
            log_since = now - timedelta(minutes=t.thresholds.connector_log_minutes)
            metric_since = now - timedelta(minutes=t.thresholds.metric_window_minutes)
            if changed:
                log_since, metric_since = max(log_since, changed), max(metric_since, changed)
            log, metrics = await asyncio.gather(
                reads.call(src.LOG_ENTRIES, self.logging.connector_errors, t.connector.name, using, log_since),
                reads.wait(src.TIME_SERIES, self._connector_metrics(t.connector.name, metric_since, changed)))
            return None, using, log, metrics

        async def tls_all() -> dict[str, TlsResult]:
            results = await asyncio.gather(*(reads.wait(src.TLS_HANDSHAKE, self._handshake(d)) for d in t.domains))
            return {r.domain: r for r in results if r is not None}

        db = t.database
        changed = self.last_change(f"projects/{t.project}/instances/{db.instance}") if db else None
        seen = await gather_named(
            connector=connector(),
            connector_state=reads.call(src.VPC_CONNECTOR, self.vpcaccess.get, t.connector.name) if t.connector
            else none(),
            instance=reads.call(src.SQL_INSTANCE, self.sql.get, db.instance) if db else none(),
            backends=reads.wait(src.TIME_SERIES, self._backends(db.instance, db.metric_alignment_seconds, changed))
            if db else none(),
            certificate=reads.call(src.SSL_CERTIFICATE, self.compute.certificate, t.certificate.name)
            if t.certificate else none(),
            tls=tls_all(),
        )
        _, using, log, metrics = seen.pop("connector")
        conn = seen.pop("connector_state")
        return Phase2Observation(connector=conn, connector_users=using, connector_log=log, connector_metrics=metrics,
                                 backends_since=changed, failures=reads.failures, **seen)

    async def _backends(self, instance: str, alignment: int, changed: datetime | None) -> MetricSeries:
        """num_backends summed over the instance's databases; right after a change, wait (paced by
        goldenpath.polling) for a point whose whole period is after the change, at most metric_settle_seconds: Cloud
        Monitoring samples every minute and publishes a point up to 165 s later."""
        th = self.target.thresholds
        deadline = time.monotonic() + th.metric_settle_seconds
        pauses = polling.delays(deadline)  # seen at most 10 % (or 0.5 s) after it is published
        while True:
            series = await asyncio.to_thread(self.monitoring.num_backends, instance, th.metric_window_minutes,
                                             alignment, changed)
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
        from goldenpath.probes import tls

        t = self.target
        t0 = time.perf_counter()
        result = await tls.handshake(domain, resolve_map=t.resolve, ca_bundle=str(t.ca_path) if t.ca_path else None,
                                     timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("tls", "handshake", f"{domain} via {result.address}",
                                          time.perf_counter() - t0, "verified" if result.verified else str(result.error)))
        return result

    async def _gather_phase1(self) -> dict[str, ServiceObservation]:
        t = self.target
        seen = await asyncio.gather(*(self._observe_service(s) for s in t.services))
        # The window of each service starts once its last change was complete: what was true before
        # the traffic change says nothing about now. Bounded so a quiet service is not read forever.
        # Without the service its last change is not known, so neither is the window: its log is not
        # read (every criterion that reads the log reads the service too).
        floor = datetime.now(timezone.utc) - timedelta(minutes=t.thresholds.log_window_minutes)
        windows = {cfg.name: max(self._changed_since(svc), floor)
                   for cfg, (_, svc, _, burst) in zip(t.services, seen) if burst is not None and svc is not None}
        # One read for every service's request log after all the bursts (the quota is per project).
        logs_read = Reads()
        logs = await logs_read.call(src.LOG_ENTRIES, self.logging.request_logs, windows, t.thresholds.min_requests) \
            if windows else {}
        out = {}
        for cfg, (reads, svc, revisions, burst) in zip(t.services, seen):
            failures = {**reads.failures, **(logs_read.failures if cfg.name in windows else {})}
            out[cfg.name] = ServiceObservation(service=svc, revisions=tuple(revisions or ()), burst=burst,
                                               request_log=(logs or {}).get(cfg.name), failures=failures)
        return out

    async def _observe_service(self, cfg: Service) -> tuple[Reads, ServiceState | None,
                                                            tuple[RevisionState, ...] | None, Burst | None]:
        """A service, its revisions and (with a health_url) a burst to it, read side by side."""
        reads = Reads()
        service = self._service(reads, cfg.name)
        listed = self._revisions(reads, cfg.name)
        burst: Burst | None = None
        if cfg.health_url:
            svc, revisions, burst = await asyncio.gather(service, listed, reads.wait(src.BURST, self.burst(cfg.health_url)))
        else:
            svc, revisions = await asyncio.gather(service, listed)
        return reads, svc, revisions, burst

    def _changed_since(self, svc: ServiceState) -> datetime:
        """When the last change to ``svc`` was complete: the latest of its updateTime (when the update
        was accepted), its Ready condition's lastTransitionTime (when the rollout finished) and the
        journal's record of the gate's own change to it (written once its operation was done).

        Not updateTime alone: Cloud Run keeps serving the old traffic while the operation runs, so
        users' requests between the acceptance and the end (503s from the very split being fixed)
        would fail the verification of a change that worked, and trigger a false rollback."""
        times = [svc.update_time, svc.ready_transition_time, self.last_change(svc.full_name)]
        return max(t for t in times if t is not None)

    def timed(self, connections: int) -> AbstractAsyncContextManager[None]:
        """Slots for a timed probe opening ``connections`` at once (goldenpath.probes.slots), shared by
        everything gathered in this event loop (a prefetch gathers phases together in one)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, TimedSlots(TIMED_BURSTS * self.target.thresholds.burst_size))
        return self._slots[1].hold(connections)

    async def burst(self, url: str) -> Burst:
        t = self.target
        async with self.timed(t.thresholds.burst_size):
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
        reads = Reads()

        async def services_and_startup() -> list[tuple[ServiceState | None, RevisionState | None, StartupLog | None]]:
            states = await asyncio.gather(*(self._serving(s.name, reads) for s in t.services))
            # One startup-log read for every serving revision (the entries.list quota is per project).
            serving = {s.name: (rev.name, rev.create_time) for s, (_, rev) in zip(t.services, states) if rev is not None}
            logs = await reads.call(src.LOG_ENTRIES, self.logging.startup_errors_of, serving) if serving else {}
            return [(state, rev, (logs or {}).get(s.name)) for s, (state, rev) in zip(t.services, states)]

        urls = [u for s in t.services for u in s.health_endpoints]
        creds = self.golden_path_credentials()
        walk = None
        if not isinstance(creds, str) and t.golden_path and t.websocket:
            walk = reads.wait(src.JOURNEY, self._journey(*creds))
        seen = await gather_named(
            per_service=services_and_startup(),
            checks=asyncio.gather(*(reads.wait(src.HTTP_CHECK, self._check(u)) for u in urls)),
            websocket=reads.wait(src.WEBSOCKET, self._pings()) if t.websocket else none(()),
            golden_path=walk if walk is not None else none(),
        )
        per_service, checks, walked = seen["per_service"], seen["checks"], seen["golden_path"]
        ws = seen["websocket"] or ()
        if t.websocket and src.WEBSOCKET not in reads.failures:
            self.session.calls.append(ApiCall("wss", f"ping ×{len(ws)} (concurrent)", t.websocket.url, 0.0,
                                              f"{sum(r.ok for r in ws)} ok"))
        names = [s.name for s in t.services]
        problem = creds if isinstance(creds, str) else (None if t.websocket else "the target names no websocket")
        return Phase3Observation(
            services={n: r[0] for n, r in zip(names, per_service) if r[0] is not None},
            serving={n: r[1] for n, r in zip(names, per_service) if r[0] is not None},
            startup={n: r[2] for n, r in zip(names, per_service) if r[0] is not None},
            health={c.url: c for c in checks if c is not None},
            websocket=tuple(ws),
            golden_path=walked,
            golden_path_problem=problem,
            failures=reads.failures,
        )

    def _service(self, reads: Reads, name: str) -> Awaitable[ServiceState | None]:
        """A Cloud Run service, read once for every phase until the next change (SharedReads)."""
        return reads.wait(src.RUN_SERVICE, self._shared.read(self.run.get_service, name))

    def _revisions(self, reads: Reads, name: str) -> Awaitable[tuple[RevisionState, ...] | None]:
        """A service's revisions, read once for every phase until the next change (SharedReads)."""
        return reads.wait(src.RUN_REVISIONS, self._shared.read(self.run.list_revisions, name))

    async def _serving(self, name: str, reads: Reads) -> tuple[ServiceState | None, RevisionState | None]:
        """A service and the single revision serving all of its traffic (None when there is none, or
        when a read failed: the failure is in ``reads``)."""
        state, revisions = await asyncio.gather(self._service(reads, name), self._revisions(reads, name))
        if state is None:
            return None, None
        holding = state.holding_traffic
        serving = next((r for r in revisions or () if len(holding) == 1 and r.name == holding[0].revision), None)
        return state, serving

    # ---- Phase 4 -----------------------------------------------------------------------------

    async def _gather_phase4(self) -> Phase4Observation:
        defs = self.definitions()
        names = [s.name for s in self.target.services]
        metric_names, dashboard_names = list(defs.log_metrics), list(defs.dashboards)
        reads = Reads()
        # A metric or dashboard that does not exist reads as None (what Phase 4 creates); one whose
        # read failed is left out, and its source's failure says why.
        seen = await gather_named(
            log_metrics=asyncio.gather(*(self._present(reads, src.LOG_METRICS, self.logging.get_metric, m)
                                         for m in metric_names)),
            policies=reads.call(src.ALERT_POLICIES, self.monitoring.alert_policies),
            channels=reads.call(src.CHANNELS, self.monitoring.notification_channels),
            dashboards=asyncio.gather(*(self._present(reads, src.DASHBOARD, self.dashboards.get, d)
                                        for d in dashboard_names)),
            services=asyncio.gather(*(self._serving(n, reads) for n in names)),
        )
        services = seen.pop("services")
        return Phase4Observation(
            log_metrics={m: v for m, (ok, v) in zip(metric_names, seen.pop("log_metrics")) if ok},
            dashboards={d: v for d, (ok, v) in zip(dashboard_names, seen.pop("dashboards")) if ok},
            policies=tuple(seen.pop("policies") or ()), channels=tuple(seen.pop("channels") or ()),
            services={n: r[0] for n, r in zip(names, services) if r[0] is not None},
            serving={n: r[1] for n, r in zip(names, services) if r[0] is not None},
            failures=reads.failures,
        )

    @staticmethod
    async def _present(reads: Reads, source: str, read: Callable[[str], T], name: str) -> tuple[bool, T | None]:
        """(whether the read answered, its value): an answer None (not found) is not a failure."""
        return await reads.attempt(source, asyncio.to_thread(read, name))

    async def _pings(self) -> tuple[WsResult, ...]:
        from goldenpath.probes import websocket  # imported before the probes start (TIMED_MODULES)

        ws = self.target.websocket
        assert ws is not None
        async with self.timed(ws.batch):
            return await websocket.ping_batch(ws.url, ws.batch, resolve_map=self.target.resolve,
                                              ca_bundle=str(self.target.ca_path) if self.target.ca_path else None,
                                              timeout=ws.timeout_seconds)

    async def _check(self, url: str) -> HttpCheck:
        t = self.target
        async with self.timed(1):
            result = await http.check(url, resolve_map=t.resolve, ca_bundle=str(t.ca_path) if t.ca_path else None,
                                      timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("https", "GET", url, result.seconds, str(result.status)))
        return result

    async def _journey(self, user: str, password: str) -> GoldenPathResult:
        from goldenpath.probes import journey  # imported before the probes start (TIMED_MODULES)

        t = self.target
        assert t.golden_path is not None and t.websocket is not None
        gp = t.golden_path
        async with self.timed(1):
            result = await journey.walk(login_url=gp.login_url, ws_url=t.websocket.url, user=user,
                                        password=password, message=gp.message, final_event=gp.final_event,
                                        deadline=gp.deadline_seconds, resolve_map=t.resolve,
                                        ca_bundle=str(t.ca_path) if t.ca_path else None,
                                        timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("golden path", "login → websocket → response", gp.login_url,
                                          sum(result.legs.values()) and max(result.legs.values()),
                                          "ok" if result.ok else f"failed at {result.failed_leg}"))
        return result


def failures_of(observation: Any) -> dict[str, SourceFailure]:
    """The failed sources of any phase's observation: its own ``failures``, or (Phase 1, the clean
    window: one observation per service) every service's together."""
    return dict(failures_in(observation))
