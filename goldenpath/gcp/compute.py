"""Compute Engine v1: SSL certificates, read in a worker process of their own.

Importing ``compute_v1`` is 1.6–2.8 s of CPU (its types module builds every Compute message) and
~150 MB. In the gate's process that CPU holds the interpreter lock: it cannot overlap any other work,
and no timed probe may run beside it (goldenpath.warmup). So once a run knows it will read a
certificate (:meth:`Compute.start`, called by ``Observer.expect``), a single worker process is
spawned that imports the client at the lowest CPU priority (``nice`` 19: the kernel gives it a core
only when the gate and the twin leave one idle, so a timed probe is never slowed by it) and then
makes the Compute reads. The gate's process keeps everything else: each read is one
``session.call`` (recorded, explained), retried by the session's read retry, one attempt per
request to the worker; an API's error comes back as the same api_core exception with its response
body, so it is classified and explained as before.

Not started (a capture, a tool), or if the worker cannot be spawned or dies, the reads are made in
this process, as before.

The worker imports only the part of ``compute_v1`` it uses (:func:`_ssl_certificates_only`): half the
CPU of the whole package, which is what kept the certificate read last in a read-only run.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from functools import cached_property
from typing import Any

from goldenpath import failpoint
from goldenpath.config import Target
from goldenpath.gcp.session import GcpSession, to_json
from goldenpath.observations import CertificateState
from goldenpath.trail import logger

LOG = logger("gcp.compute")
# How long a read waits for the worker to have imported the client before the read is made in this
# process instead (the import takes seconds; a worker starved or stuck longer than this is not waited on).
READY_SECONDS = 30.0
# How often the worker looks whether the gate's process is still its parent.
PARENT_CHECK_SECONDS = 0.25


class Compute:
    API = "compute"

    def __init__(self, session: GcpSession) -> None:
        self.session = session
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[str] | None = None
        self._said_ready = False
        self._lock = threading.Lock()

    @cached_property
    def _certificates(self) -> Any:
        return _client(self.session)

    def start(self) -> None:
        """Spawn the worker and have it import the Compute client now, in the background."""
        with self._lock:
            if self._pool is not None:
                return
            import multiprocessing

            try:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_worker_init, initargs=(self.session.target, os.getpid()))
                self._ready = self._pool.submit(_worker_ready)
            except (OSError, RuntimeError) as exc:  # no processes here: the reads are made in this process
                LOG.warning("compute: the worker process could not start (%s); reading in the gate's process", exc)
                self._pool, self._ready = None, None
                return
            LOG.debug("compute: worker process %s started; it imports the Compute client at nice 19",
                      ", ".join(map(str, getattr(self._pool, "_processes", {}))) or "(pid unknown)")

    def close(self) -> None:
        """Stop the worker (a read still running in it is abandoned: its answer is not waited for)."""
        with self._lock:
            pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:  # an abandoned read must not hold the gate's exit
                proc.terminate()
            for proc in processes:
                proc.join(timeout=5)
            LOG.debug("compute: worker process %s stopped", ", ".join(str(p.pid) for p in processes) or "(none)")

    def certificates(self) -> list[CertificateState]:
        """Every SSL certificate of the project (the pager follows nextPageToken)."""
        project = self.session.target.project
        with self.session.call(self.API, "sslCertificates.list", f"projects/{project}/global/sslCertificates"):
            raws = self.session.read_retry()(lambda timeout: self._attempt("list", None, timeout))()
        return [_state(raw) for raw in raws]

    def certificate(self, name: str) -> CertificateState:
        project = self.session.target.project
        with self.session.call(self.API, "sslCertificates.get", f"projects/{project}/global/sslCertificates/{name}"):
            raw = self.session.read_retry()(lambda timeout: self._attempt("get", name, timeout))()
        return _state(raw)

    def _attempt(self, method: str, name: str | None, timeout: float) -> Any:
        """One attempt, in the worker when it runs, else here. An API's error is raised as itself."""
        pool = self._worker()
        if pool is not None:
            try:
                # The worker's client times the attempt out; this bound only guards a stuck worker.
                return _unwrap(pool.submit(_worker_read, method, name, timeout).result(timeout=timeout + 5))
            except BrokenProcessPool as exc:
                self._give_up(f"the worker process died ({exc})")
        return _read(self._certificates, self.session.target.project, method, name, timeout)

    def _worker(self) -> ProcessPoolExecutor | None:
        """The worker once it has imported the client (not part of an attempt's time), or None: not
        started, or given up on (it died, failed to import, or had not imported after READY_SECONDS)."""
        pool, ready = self._pool, self._ready
        if pool is None or ready is None:
            return None
        try:
            imported = ready.result(timeout=READY_SECONDS)
        except TimeoutError:
            self._give_up(f"the worker had not imported the client after {READY_SECONDS:g} s")
            return None
        except Exception as exc:  # died (BrokenProcessPool) or the import failed: this process says why
            self._give_up(f"the worker process failed ({type(exc).__name__}: {exc})")
            return None
        if not self._said_ready:
            self._said_ready = True
            LOG.debug("compute: the worker is ready: %s", imported)
        return pool

    def _give_up(self, why: str) -> None:
        LOG.warning("compute: %s; reading in the gate's process", why)
        self.close()


# ---- what runs in either process ----------------------------------------------------------------

def _client(session: GcpSession, client_class: Any = None) -> Any:
    """The sslCertificates client (``client_class``: the class the worker imported on its own)."""
    if client_class is None:
        from google.cloud import compute_v1

        client_class = compute_v1.SslCertificatesClient
    return client_class(transport="rest", credentials=session.credentials,
                        client_options=session.client_options(Compute.API) or None)


def _read(client: Any, project: str, method: str, name: str | None, timeout: float) -> Any:
    """The REST JSON of one certificate (get) or of all of them (list); one attempt, no retry."""
    if method == "get":
        return to_json(client.get(project=project, ssl_certificate=name, retry=None, timeout=timeout))
    return [to_json(m) for m in client.list(project=project, retry=None, timeout=timeout)]


def _state(raw: dict[str, Any]) -> CertificateState:
    """A certificate as the gate reads it (REST JSON names)."""
    expire = raw.get("expireTime")
    return CertificateState(
        name=raw.get("name", ""),
        type=raw.get("type", ""),
        status=raw.get("managed", {}).get("status", ""),
        domains=tuple(raw.get("managed", {}).get("domains", [])),
        subject_alt_names=tuple(raw.get("subjectAlternativeNames", [])),
        expire_time=datetime.fromisoformat(expire.replace("Z", "+00:00")) if expire else None,
        raw=raw,
    )


# ---- the worker process ---------------------------------------------------------------------------

_session: GcpSession | None = None
_worker_client: Any = None


def _worker_init(target: Target, parent: int) -> None:
    # Ctrl-C is the gate's to handle (it stops the worker); the lowest priority keeps the import off
    # the cores the gate's probes and the twin need.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(19)
    except OSError:
        pass
    global _session
    _session = GcpSession(target)
    # The gate killed (SIGKILL, OOM) leaves its worker behind, mid-import or waiting for a read that
    # never comes (measured: still there 20 s later). It follows its parent out instead (``parent``
    # is the gate's pid, given: killed before this ran, the gate is no longer the worker's parent).
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _worker_ready() -> str:
    """Import the client and make it; what was imported and how long it took (the gate's trail says)."""
    global _worker_client
    assert _session is not None
    failpoint.hit("compute.worker.import")  # a selftest kills the worker while it imports
    t0 = time.perf_counter()
    client_class, what = _ssl_certificates_only()
    _worker_client = _client(_session, client_class)
    return f"imported {what} in {time.perf_counter() - t0:.3f} s (at nice 19)"


def _ssl_certificates_only() -> tuple[Any, str]:
    """``SslCertificatesClient`` without the rest of ``compute_v1`` (the worker process only).

    The package's ``__init__`` imports the client of every Compute service, about a hundred, each with
    its REST and gRPC transports: 1.1 s of the 2.3 s of CPU its import took here (measured, the
    types module being most of the rest), and 40 MB. The worker needs one of them. In the worker
    nothing else imports ``compute_v1``, so the package module is made from its spec without running
    its ``__init__`` (the same finder, the same files), and only the sslCertificates service and the
    types it imports are loaded: the same classes the whole package would give. If that fails (a
    client release laid out differently), the whole package is imported as in the gate's process."""
    import importlib.util
    import sys

    name = "google.cloud.compute_v1"
    if name not in sys.modules:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            sys.modules[name] = importlib.util.module_from_spec(spec)
            try:
                from google.cloud.compute_v1.services.ssl_certificates import SslCertificatesClient

                return SslCertificatesClient, "the sslCertificates client of google.cloud.compute_v1 alone"
            except Exception as exc:
                del sys.modules[name]
                LOG.debug("compute: the sslCertificates client alone could not be imported (%s): "
                          "importing google.cloud.compute_v1 whole", exc)
    from google.cloud import compute_v1

    return compute_v1.SslCertificatesClient, "google.cloud.compute_v1 whole"


def _worker_read(method: str, name: str | None, timeout: float) -> tuple[bool, Any]:
    """(True, the answer) or (False, the error, made fit to cross back to the gate's process)."""
    assert _session is not None
    failpoint.hit("compute.worker.read")  # a selftest kills the worker here (GOLDENPATH_FAILPOINT)
    try:
        if _worker_client is None:
            _worker_ready()
        return True, _read(_worker_client, _session.target.project, method, name, timeout)
    except Exception as exc:
        return False, _portable(exc)


class _Body:
    """An API error's response, as much of it as the gate reads (``error.message``, ``error.status``)."""

    def __init__(self, body: Any, status_code: int | None) -> None:
        self.body, self.status_code = body, status_code

    def json(self) -> Any:
        return self.body


def _portable(exc: Exception) -> Exception:
    """The error as the gate's process can receive it: api_core's exception of the same class with
    its message and response body; another error as itself when it pickles, else its type and text."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.GoogleAPICallError):
        response = getattr(exc, "response", None)
        try:
            body = response.json() if response is not None else None
        except Exception:
            body = None
        return type(exc)(exc.message, errors=tuple(exc.errors), details=tuple(exc.details),
                         response=_Body(body, getattr(response, "status_code", None)) if body is not None else None)
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        try:
            return type(exc)(str(exc))
        except Exception:
            return RuntimeError(f"{type(exc).__name__}: {exc}")


def _unwrap(answer: tuple[bool, Any]) -> Any:
    ok, value = answer
    if ok:
        return value
    raise value
