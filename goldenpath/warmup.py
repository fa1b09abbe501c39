"""Import the Google clients a run will use in a background thread, while it does other things.

Each adapter imports its client on first use (a run that never reads Compute never pays for
``compute_v1``: about 3 s and 150 MB here). But the first use then waits for the import: Phase 2's
first look waited about 5 s on ``compute_v1`` while everything else of it had answered. Started
once the run's tests are known, the imports overlap pytest's collection and Phase 1's probes (which
wait on the network, not the CPU). Only the clients of the phases this run reads are imported, so
"lazy" still holds: ``-m phase1`` imports neither Compute nor Monitoring.

A module imported here and, at the same moment, by a read in another thread is imported once:
Python's per-module import lock makes the second importer wait for the first.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Iterable

from goldenpath.trail import logger

LOG = logger("gcp")  # the clients are the gcp adapters'

RUN, LOGGING = "google.cloud.run_v2", "google.cloud.logging"
DISCOVERY, MONITORING = "googleapiclient.discovery", "google.cloud.monitoring_v3"
COMPUTE, DASHBOARDS = "google.cloud.compute_v1", "google.cloud.monitoring_dashboard_v1"

# The clients each phase's observation and remediation use (goldenpath/gcp/*), the first needed first.
CLIENTS: dict[int, tuple[str, ...]] = {
    1: (RUN, LOGGING),
    2: (RUN, LOGGING, DISCOVERY, MONITORING, COMPUTE),  # VPC Access, Cloud SQL: discovery; certificates
    3: (RUN, LOGGING),
    4: (RUN, LOGGING, MONITORING, DASHBOARDS),
}


def modules(phases: Iterable[int]) -> list[str]:
    """The client modules of ``phases``, each once, in the order the phases first need them."""
    out: list[str] = []
    for phase in sorted(set(phases)):
        out += [m for m in CLIENTS.get(phase, ()) if m not in out]
    return out


def start(phases: Iterable[int]) -> threading.Thread | None:
    """Import the clients of ``phases`` in a daemon thread (None when there is nothing to import).
    A module that fails to import is left to the read that needs it, which reports it."""
    names = modules(phases)
    if not names:
        return None

    def run() -> None:
        for name in names:
            t0 = time.perf_counter()
            try:
                importlib.import_module(name)
            except Exception as exc:  # the read that uses it raises it again, with its own message
                LOG.debug("warm-up: importing %s failed (%s); left to the read that needs it", name, exc)
                return
            LOG.debug("warm-up: %s imported in %.3f s", name, time.perf_counter() - t0)

    thread = threading.Thread(target=run, name="goldenpath-warm-clients", daemon=True)
    thread.start()
    return thread
