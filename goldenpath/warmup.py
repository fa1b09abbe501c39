"""Heavy client imports, made while the gate only waits on an operation, never beside a timed probe.

Importing Monitoring, the dashboards client and the discovery client is a few tenths of a second of
CPU each (``google.cloud.compute_v1``, 1.6–2.8 s, is imported by the Compute reads' own worker
process, goldenpath.gcp.compute, never here). Made when
a phase first reads the API, all of that is added to the phase. Made in a thread while the gate waits
on a long-running operation (the waiting thread is blocked in a socket read or a sleep, and the
operation takes seconds on the twin, tens of seconds on Google), it costs nearly nothing.

Never beside a timed probe: the import holds the interpreter lock in long C calls (up to ~90 ms
each, measured here), and a probe's clock runs on while its event loop waits for the lock. Side by
side with the Phase 3 health checks it made healthy endpoints measure 2.01–2.12 s against the 2 s
limit, a false FAIL made by the gate itself. So a gather whose probes are timed first calls
:meth:`Warmup.quiet`, which waits for a running warm-up to end (the phase pays only what the
operation's wait did not hide).

Only the modules of phases this run reads are imported (`Warmup.want`).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time

from goldenpath.trail import logger

LOG = logger("warmup")


class Warmup:
    def __init__(self) -> None:
        self._wanted: tuple[str, ...] = ()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def want(self, modules: tuple[str, ...]) -> None:
        """The heavy modules this run will import (in this order); nothing is imported yet."""
        self._wanted = tuple(dict.fromkeys(modules))

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(m for m in self._wanted if m not in sys.modules)

    def start(self, why: str) -> None:
        """Import the next wanted module not imported yet, in a thread (called when the gate starts to
        wait on an operation: ``why`` says which, for the trail). One module per wait, so that a
        short wait is not followed by a long one of the next timed gather (on the twin an operation
        takes 0.4–3 s)."""
        with self._lock:
            if (self._thread is not None and self._thread.is_alive()) or not self.pending:
                return
            modules = self.pending[:1]
            self._thread = threading.Thread(target=self._import, args=(modules,), name="warmup", daemon=True)
            LOG.debug("importing %s in the background while %s", ", ".join(modules), why)
            self._thread.start()

    def _import(self, modules: tuple[str, ...]) -> None:
        t0 = time.perf_counter()
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # the read that needs it imports it again and reports the error
                LOG.debug("background import of %s failed: %s", name, exc)
        LOG.debug("background import of %s ended in %.3f s", ", ".join(modules), time.perf_counter() - t0)

    def quiet(self, why: str, clients: tuple[str, ...] = ()) -> None:
        """Before timed probes (``why`` says which): wait until no background import runs, then
        import ``clients``, the modules the probes' own API reads need, here and now. Left to their
        reads' threads, those imports ran beside the probes too: a healthy burst measured 0.34 s
        instead of 0.15 s."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            t0 = time.perf_counter()
            thread.join()
            LOG.debug("%s waited %.3f s for the background import to end (no timed probe runs beside it)",
                      why, time.perf_counter() - t0)
        missing = [m for m in clients if m not in sys.modules]
        if missing:
            t0 = time.perf_counter()
            for name in missing:
                importlib.import_module(name)
            LOG.debug("%s: imported %s in %.3f s before its timed probes", why, ", ".join(missing),
                      time.perf_counter() - t0)
