"""Gather observations concurrently; cache them until a mutation makes them stale.

Every API read and probe of a phase starts at once (threads for the blocking Google clients,
asyncio for the probes); only the request log waits, because it must include the burst just sent.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from goldenpath.config import Service, Target
from goldenpath.gcp.logging import CloudLogging
from goldenpath.gcp.run import CloudRun
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import ApiCall, Burst, ServiceObservation
from goldenpath.probes import http


class Observer:
    def __init__(self, target: Target, session: GcpSession | None = None) -> None:
        self.target = target
        self.session = session or GcpSession(target)
        self.run = CloudRun(self.session)
        self.logging = CloudLogging(self.session)
        self._phase1: dict[str, ServiceObservation] | None = None

    def phase1(self) -> dict[str, ServiceObservation]:
        if self._phase1 is None:
            self._phase1 = asyncio.run(self._gather_phase1())
        return self._phase1

    def invalidate(self) -> None:
        """Forget what was seen: called after every mutation, so nothing is judged on stale data."""
        self._phase1 = None

    async def _gather_phase1(self) -> dict[str, ServiceObservation]:
        results = await asyncio.gather(*(self._observe_service(s) for s in self.target.services))
        return {s.name: r for s, r in zip(self.target.services, results)}

    async def _observe_service(self, cfg: Service) -> ServiceObservation:
        t = self.target
        reads = [asyncio.to_thread(self.run.get_service, cfg.name),
                 asyncio.to_thread(self.run.list_revisions, cfg.name)]
        if cfg.health_url:
            reads.append(self._burst(cfg.health_url))
        svc, revisions, *rest = await asyncio.gather(*reads)
        burst = rest[0] if rest else None
        log = None
        if burst is not None:
            # The window starts at the last change to the service: what was true before the
            # traffic change says nothing about now. Bounded so a quiet service is not read forever.
            floor = datetime.now(timezone.utc) - timedelta(minutes=t.thresholds.log_window_minutes)
            since = max(svc.update_time, floor)
            log = await asyncio.to_thread(self.logging.request_log, cfg.name, since, t.thresholds.min_requests)
        return ServiceObservation(service=svc, revisions=revisions, burst=burst, request_log=log)

    async def _burst(self, url: str) -> Burst:
        t = self.target
        t0 = time.perf_counter()
        result = await http.burst(url, t.thresholds.burst_size, resolve_map=t.resolve,
                                  ca_bundle=str(t.ca_path) if t.ca_path else None,
                                  timeout=t.timeouts.probe_seconds)
        self.session.calls.append(ApiCall("https", f"GET ×{len(result.samples)} (concurrent)", url,
                                          time.perf_counter() - t0, str(result.statuses())))
        return result
