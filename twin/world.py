"""The twin's world: one state that drives both the control plane and the data plane.

This module composes the per-API modules (``twin.run``, ``twin.logging``, ``twin.vpcaccess``,
``twin.compute``, ``twin.sqladmin``, ``twin.monitoring``, ``twin.dashboards``) and the data plane
(``twin.dataplane``): a reset seeds each from the scenario, time advances each, and the status page
shows each. Nothing imports this module but the twin's entry points and faces; the API modules
build on :mod:`twin.store` only, so the imports have no cycle.

Time-driven changes (an operation finishing) are applied lazily by :meth:`World.advance` at the
start of every request, so the twin needs no background scheduler and stays deterministic.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from twin import compute, dashboards, dataplane, logging, monitoring, run, sqladmin, vpcaccess
from twin import scenario as scenarios
from twin.grpcserver import RPCS
from twin.server import ROUTES
from twin.store import DataAnswer, Store, no_requests, rfc3339


class World(Store):
    def load_or_reset(self, scenario: str | None) -> None:
        if not self.load():
            self.reset(scenario)

    def reset(self, scenario_ref: str | None, now: float | None = None, clock_scale: float = 1.0) -> None:
        """Start the world from a scenario. ``clock_scale`` > 1 makes time windows pass faster for a
        rehearsal: one real second counts as that many seconds of the twin's time (the gate reads the
        scale from the twin and measures the 503 window in twin time; a real target is always 1)."""
        if not 1 <= clock_scale <= 3600:
            raise scenarios.ScenarioError(f"clock_scale must be between 1 and 3600, got {clock_scale:g}")
        sc = scenarios.load(scenario_ref)
        check_faults(sc)
        now = time.time() if now is None else now
        self.state = {
            "scenario": sc.name,
            "scenario_ref": scenario_ref or scenarios.DEFAULT_SCENARIO,
            "description": sc.description,
            "reset_at": now,
            "clock_scale": clock_scale,
            "project": sc.project,
            "region": sc.region,
            "timing": sc.timing.model_dump(),
            "contention": sc.contention.model_dump(),
            "requests": no_requests(),
            # The data plane's application side (twin.dataplane): the rehearsal account and its agent,
            # how the WebSocket behaves, what happens to revisions a template change creates, and the
            # tokens the auth service issued (by digest).
            "golden_path": sc.golden_path.model_dump(),
            "websocket": sc.websocket.model_dump(),
            "rollout": sc.rollout.model_dump(),
            "tokens": {},
        }
        # Order matters only where one API's seed reads another's: the request history below is
        # served through the data plane, which reads services, the connector and Cloud SQL.
        logging.seed(self, sc, now)
        run.seed(self, sc, now)
        vpcaccess.seed(self, sc, now)
        sqladmin.seed(self, sc, now)
        compute.seed(self, sc, now)
        monitoring.seed(self, sc)
        dashboards.seed(self, sc)
        self.seed_faults(sc.faults)
        self._seed_history(sc, now)
        self.dirty = True

    def _seed_history(self, sc: scenarios.Scenario, now: float) -> None:
        total = sc.history.minutes * sc.history.requests_per_minute
        if not total:
            return
        step = 60.0 / sc.history.requests_per_minute
        for svc in sc.services:
            if not svc.hosts:
                continue
            for i in range(total):
                ts = now - sc.history.minutes * 60 + i * step
                self.serve(svc.hosts[0], "/health", at=ts)
        # Seeding is history, not traffic this reset should count.
        self.state["requests"] = no_requests()

    def advance(self, now: float | None = None) -> None:
        """Let time pass up to ``now``: finish every operation whose time has come, write the logs due."""
        now = time.time() if now is None else now
        dataplane.users_during_updates(self, now)   # before run.advance: they meet the split before it changes
        run.advance(self, now)
        vpcaccess.advance(self, now)
        sqladmin.advance(self, now)

    def serve(self, host: str, path: str, at: float | None = None, method: str = "GET",
              body: bytes = b"") -> DataAnswer:
        return dataplane.serve(self, host, path, at=at, method=method, body=body)

    def status(self) -> dict[str, Any]:
        st = self.state
        return {
            "scenario": st["scenario"],
            "description": st["description"],
            "reset_at": rfc3339(st["reset_at"]),
            "clock_scale": st.get("clock_scale", 1.0),
            "project": st["project"],
            "region": st["region"],
            **run.status(self),
            **vpcaccess.status(self),
            **compute.status(self),
            **sqladmin.status(self),
            **logging.status(self),
            **_monitoring_status(self),
            "data_plane": {name: s["hosts"] for name, s in st["services"].items()},
            "rehearsal_account": dataplane.rehearsal_account(self),
            "requests": st["requests"],
            "imposed": imposed(self),
        }


# Every kind of wait the twin imposes; the totals name each, 0 when none happened.
IMPOSED_KINDS = ("operations", "restarts", "metric_periods", "propagation", "latency")


def imposed(world: World) -> dict[str, Any]:
    """The time the twin itself makes a caller wait, so a benchmark can tell it from the caller's own.

    Each event is ``{kind, api, resource, start, end, seconds}`` (plus what names it: the operation,
    the metric), in REAL epoch seconds whatever the clock scale (the windows kept in twin time are
    divided by it), sorted by start. An event whose end is still ahead is a wait not over yet. The
    kinds (each module's ``imposed`` says exactly what it counts):

    * ``operations``: a long-running operation (Cloud Run, VPC Access), from its acceptance to its ``done``;
    * ``restarts``: a Cloud SQL restart (the patch's operation), from acceptance to ``done``;
    * ``metric_periods``: from a change a metric shows (a restart's end, a connector operation's end)
      until the first point sampled at or after it is published;
    * ``propagation``: a new log-based metric, from its creation until an alert policy may read it;
    * ``latency``: live data-plane answers held back, and the pauses between a WebSocket agent's
      streamed events (overlapping ones of one host merged).

    ``seconds`` by kind sums the events. Events may overlap (two rollouts at once): a caller
    attributing them to an interval should take the union of their intervals, not the sum.
    """
    events = [*run.imposed(world), *vpcaccess.imposed(world), *sqladmin.imposed(world),
              *monitoring.imposed(world), *dataplane.imposed(world)]
    events.sort(key=lambda e: (e["start"], e["kind"], e["resource"]))
    seconds = {kind: round(sum(e["seconds"] for e in events if e["kind"] == kind), 4) for kind in IMPOSED_KINDS}
    return {"seconds": seconds, "events": events}


def _monitoring_status(world: World) -> dict[str, Any]:
    st = world.state
    metrics = logging.log_metrics(world)
    policies = [r["resource"] for r in st.get("alert_policies", {}).values()]
    boards = dashboards.dashboards(world)
    channels = [r["resource"] for r in st.get("notification_channels", {}).values()]
    return {
        "monitoring": {
            "logMetrics": metrics,
            "alertPolicies": policies,
            "dashboards": boards,
            "notificationChannels": channels,
            # What `python -m twin status` prints: names only.
            "summary": {
                "logMetrics": [m["name"] for m in metrics],
                "alertPolicies": [{"displayName": p.get("displayName", ""), "enabled": bool(p.get("enabled", True))}
                                  for p in policies],
                "dashboards": [d.get("displayName", "") for d in boards],
                "notificationChannels": [c["name"] for c in channels],
            },
        },
        "faults": [{"method": method, **fault} for method, fault in st.get("faults", {}).items()],
    }


def served_method_ids() -> set[str]:
    """Every discovery method id the twin serves, on either face."""
    return {r.method_id for r in ROUTES} | {r.method_id for r in RPCS}


def check_faults(sc: scenarios.Scenario) -> None:
    served = served_method_ids()
    for i, f in enumerate(sc.faults):
        if f.method not in served:
            raise scenarios.ScenarioError(
                f"Scenario {sc.name!r} is invalid: faults.{i}.method: the twin serves no method {f.method!r}; "
                f"it serves {', '.join(sorted(served))}.")


class Twin:
    """Owns the world and debounces its persistence (every request would otherwise rewrite it)."""

    def __init__(self, home: Path, scenario: str | None) -> None:
        self.world = World(home)
        self.world.load_or_reset(scenario)
        self.world.save()
        self.lock = asyncio.Lock()

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self.world.save_due(time.monotonic()):
                self.world.save()
