"""Cloud Logging v2: request logs of Cloud Run services, and log-based metrics (Phase 4).

Uses the official client's JSON transport (the gapic logging client has no REST transport), with
the endpoint override. Reads are capped: a criterion only needs to know "at least N".

Every call gets the target's ``timeouts.api_seconds`` (the JSON transport's own default is 60 s),
and every read a retry with backoff within that time (api_core's, on transient errors: 429, 500,
503, 504 and the network's). ``entries.list`` is metered: "Number of entries.list requests — 60 per minute, per Google
Cloud project" (https://cloud.google.com/logging/quotas#api-limits), and a page may come back empty
with a nextPageToken while the search goes on (logging.v2.json, ListLogEntriesResponse). The
client's iterator follows such pages; each read stops at what its criterion needs (``max_results``)
and after at most ``MAX_PAGES`` calls, so a gate run's reads stay well inside the quota.

The quota is per project, not per service: with one read per service a 20-service target would
spend over 100 calls in one gate run. So the request logs and the startup errors of all services
are each read at once (``request_logs``, ``startup_errors_of``: one filter naming every service or
revision, split here), with a follow-up read only for a service the shared cap left undecided.
And every entries.list of this process is paced (``_Pacer``) to stay under the minute's quota,
whatever reads it (the gate, ``python -m twin capture``).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

from goldenpath.errors import CheckError
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import ConnectorLog, RequestLog, StartupLog
from goldenpath.trail import logger

LOG = logger("logging")

EXAMPLES = 5
STARTUP_MINUTES = 10  # what a revision logs after this is runtime, not startup
ERRORS_CAP = 100
# What applications print when a connection through a Serverless VPC Access connector times out or
# is reset (Go's net package, Node's ETIMEDOUT/ECONNRESET, Python's errno 110/104; the shapes quoted
# in public issue threads). Google documents no platform log line for it. RE2, case-insensitive.
EGRESS_ERROR_PATTERN = ("(?i)(i/o timeout|ETIMEDOUT|ECONNRESET|ECONNREFUSED|connection timed out|"
                        "connection reset by peer|connection refused|no route to host|network is unreachable)")
# entries.list calls one read may make. The gate's filters span an hour at most, which Logging
# searches in one or a few calls; a search still going after this many is stopped rather than
# paged on into the project's read quota (a could-not-check, never a partial verdict).
MAX_PAGES = 6
ENTRIES_LIST = "/entries:list"  # the JSON transport's path of entries.list (a POST that only reads)
QUOTA = "Logging read quota, 60 entries.list a minute per project"
# The calls this process lets itself make in any rolling minute: under the quota's 60, leaving room
# for the Logs Explorer or another reader of the same project.
PACED_PER_MINUTE = 50
# Cloud Run service and revision names are lowercase letters, digits and hyphens
# (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services: "must ... only
# contain lowercase letters, numbers and hyphens"): safe inside a regular expression as they are.
_NAME = re.compile(r"^[a-z0-9-]+$")


class _Pacer:
    """Every entries.list of this process, kept under PACED_PER_MINUTE in a rolling minute: a call
    that would exceed it waits until the oldest of the minute leaves the window (never a fixed
    sleep). One per process: the quota counts the project's calls, whichever client makes them."""

    def __init__(self, per_minute: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.per_minute, self.window = per_minute, window
        self._clock, self._sleep = clock, sleep
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and self._calls[0] <= now - self.window:
                    self._calls.popleft()
                if len(self._calls) < self.per_minute:
                    self._calls.append(now)
                    return
                wait = self._calls[0] + self.window - now
            LOG.info("pausing %.1f s before the next entries.list: %d calls in the last minute (%s)", wait,
                     self.per_minute, QUOTA)
            self._sleep(wait)


PACER = _Pacer(PACED_PER_MINUTE)


def _ts(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class _Pages(threading.local):
    """The entries.list calls of the read running in this thread (a read's pages are fetched in
    the thread that iterates them; request_log runs two reads side by side)."""

    count = 0
    limit: int | None = None


class TooManyPages(Exception):
    """A read that would need more than MAX_PAGES calls."""


class CloudLogging:
    API = "logging"

    def __init__(self, session: GcpSession) -> None:
        self.session = session
        self._pages = _Pages()

    @cached_property
    def _client(self) -> Any:
        from google.cloud import logging as gcl

        client = gcl.Client(project=self.session.target.project, credentials=self.session.credentials,
                            client_options=self.session.client_options(self.API) or None, _use_grpc=False)
        # Every call of the JSON transport goes through this one method, which takes a timeout the
        # library's helpers never pass: bound it here, before the entries and metrics helpers (built
        # lazily) take hold of it.
        connection = client._connection
        # (mypy: replacing a method on this one instance is the point)
        connection.api_request = self._bounded(connection.api_request)  # type: ignore[method-assign]
        # Each entry read comes with a Logger for its log, and a Logger without a resource asks the
        # GCE metadata server where it runs (two requests of up to 5 s each off Google Cloud, per log
        # per read). The gate writes no entries: give those Loggers the global resource instead.
        here = gcl.Resource(type="global", labels={"project_id": self.session.target.project})
        make_logger = client.logger

        def logger(name: str, *, labels: dict[str, str] | None = None, resource: Any = None) -> Any:
            return make_logger(name, labels=labels, resource=resource or here)

        client.logger = logger  # type: ignore[method-assign]  # this client only, as above
        return client

    def _bounded(self, api_request: Callable[..., Any]) -> Callable[..., Any]:
        """``api_request`` within the target's api_seconds per call: reads (GET, and entries.list)
        retried with backoff within that time as every read is (GcpSession.read_retry: 429, 500, 503,
        504, lost connections, timeouts), each attempt given the time left. Writes are sent once: a
        metric created by an attempt that timed out would make the next one a conflict."""
        seconds = self.session.target.timeouts.api_seconds

        def call(*args: Any, **kwargs: Any) -> Any:
            read = kwargs.get("method") == "GET" or kwargs.get("path") == ENTRIES_LIST
            if kwargs.get("path") == ENTRIES_LIST:
                if self._pages.limit is not None:
                    self._pages.count += 1
                    if self._pages.count > self._pages.limit:
                        raise TooManyPages()
                PACER.admit()
            kwargs.pop("timeout", None)
            if read:
                return self.session.read_retry()(api_request)(*args, **kwargs)
            return api_request(*args, timeout=seconds, **kwargs)

        return call

    def _list(self, filter_: str, limit: int) -> list[Any]:
        from google.cloud import logging as gcl

        project = f"projects/{self.session.target.project}"
        self._pages.count, self._pages.limit = 0, MAX_PAGES
        try:
            with self.session.call(self.API, "entries.list", filter_):
                # One more per page than needed: the client's pager checks max_results only when it
                # asks for the next entry, so a page of exactly `limit` would cost a call for nothing.
                return list(self._client.list_entries(resource_names=[project], filter_=filter_,
                                                      order_by=gcl.DESCENDING, max_results=limit,
                                                      page_size=min(limit + 1, 1000)))
        except CheckError as exc:
            raise self._explain_read(exc, filter_) from exc.__cause__
        finally:
            self._pages.limit = None

    def _explain_read(self, exc: CheckError, filter_: str) -> CheckError:
        """What only a log read can run into: the read quota, and a search that does not finish."""
        from google.api_core import exceptions as gexc

        cause = exc.__cause__
        last = cause.cause if isinstance(cause, gexc.RetryError) else cause
        t = self.session.target
        if isinstance(last, gexc.TooManyRequests):
            return CheckError(
                f"logging entries.list answered 429 RESOURCE_EXHAUSTED ({QUOTA}) for {filter_!r}, still after "
                f"retrying for {t.timeouts.api_seconds:g} s: {last.message} Nothing was judged from this log. "
                f"Something else is reading project {t.project}'s logs heavily (a console open on the Logs "
                "Explorer, a script, other gate runs at the same time): run again in a minute, or request a "
                "higher 'Read requests per minute' quota for logging.googleapis.com "
                "(https://cloud.google.com/logging/quotas).", api=exc.api, method=exc.method, kind="refused",
                status="429 RESOURCE_EXHAUSTED", where=exc.where)
        if isinstance(cause, TooManyPages):
            return CheckError(
                f"logging entries.list had not finished searching for {filter_!r} after {MAX_PAGES} calls (it "
                "answered pages with a nextPageToken, empty or not, to continue the search). The gate stops there "
                f"to stay inside the {QUOTA}; nothing was judged from this log. Run again; if it recurs, the "
                "project logs far more than this filter selects: narrow the target's log windows "
                "(thresholds.log_window_minutes, connector_log_minutes) in targets.toml.", api=exc.api,
                method=exc.method, where=exc.where)
        return exc

    def _request_filter(self, services: Sequence[str], since: datetime) -> str:
        project = self.session.target.project
        return (
            'resource.type="cloud_run_revision" '
            f'AND {_one_of("resource.labels.service_name", services)} '
            f'AND logName="projects/{project}/logs/run.googleapis.com%2Frequests" '
            f'AND timestamp>="{_ts(since)}"'
        )

    def request_log(self, service: str, since: datetime, min_requests: int) -> RequestLog:
        """Requests to ``service`` since ``since``: enough for a verdict, and every 503 up to a cap."""
        return self.request_logs({service: since}, min_requests)[service]

    def request_logs(self, windows: Mapping[str, datetime], min_requests: int) -> dict[str, RequestLog]:
        """The request log of each service since its own moment (``windows``), read for all of them at
        once: two entries.list reads (every request, and the 503s) whatever the number of services,
        side by side, then a read of its own only for a service the shared read cannot decide."""
        names = sorted(windows)
        if not names:
            return {}
        if len(names) > 1 and not all(_NAME.match(n) for n in names):
            return {n: self.request_logs({n: windows[n]}, min_requests)[n] for n in names}
        base = self._request_filter(names, min(windows.values()))
        with ThreadPoolExecutor(max_workers=2) as pool:
            total_f = pool.submit(self._list, base, min_requests * len(names))
            errors_f = pool.submit(self._list, base + " AND httpRequest.status=503", ERRORS_CAP * len(names))
            total, errors = total_f.result(), errors_f.result()
        totals = _split(total, min_requests * len(names), windows, min_requests, _service_of)
        found = _split(errors, ERRORS_CAP * len(names), windows, ERRORS_CAP, _service_of)
        undecided = [n for n in names if totals[n] is None or found[n] is None]
        if undecided:
            LOG.debug("request logs: the shared read did not decide %s; reading each on its own", ", ".join(undecided))
        with ThreadPoolExecutor(max_workers=max(1, min(4, 2 * len(undecided)))) as pool:
            again = {n: (pool.submit(self._list, self._request_filter([n], windows[n]), min_requests)
                         if totals[n] is None else None,
                         pool.submit(self._list, self._request_filter([n], windows[n]) + " AND httpRequest.status=503",
                                     ERRORS_CAP) if found[n] is None else None)
                     for n in undecided}
            for n, (t_f, e_f) in again.items():
                if t_f is not None:
                    totals[n] = t_f.result()
                if e_f is not None:
                    found[n] = e_f.result()
        out = {}
        for n in names:
            seen, bad = totals[n] or [], found[n] or []
            out[n] = RequestLog(
                service=n, since=windows[n],
                total_seen=min(len(seen), min_requests), total_capped=len(seen) >= min_requests,
                errors_503=min(len(bad), ERRORS_CAP), errors_capped=len(bad) >= ERRORS_CAP,
                examples=tuple(
                    {
                        "time": e.timestamp.isoformat() if e.timestamp else None,
                        "revision": (e.resource.labels or {}).get("revision_name") if e.resource else None,
                        "url": (e.http_request or {}).get("requestUrl"),
                    }
                    for e in bad[:EXAMPLES]
                ),
            )
        return out

    def request_entries(self, service: str, since: datetime, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` request-log entries of ``service`` since ``since``, each reduced to what
        a capture summarises (time, revision, HTTP status, latency in seconds): no URL query, header
        or payload is kept."""
        project = self.session.target.project
        flt = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name="{service}" '
            f'AND logName="projects/{project}/logs/run.googleapis.com%2Frequests" '
            f'AND timestamp>="{_ts(since)}"'
        )
        out = []
        for e in self._list(flt, limit):
            req = e.http_request or {}
            latency = str(req.get("latency") or "").rstrip("s")
            try:
                seconds: float | None = float(latency)
            except ValueError:
                seconds = None
            out.append({"time": e.timestamp, "status": req.get("status"), "latency": seconds,
                        "revision": (e.resource.labels or {}).get("revision_name") if e.resource else None})
        return out

    def connector_errors(self, connector: str, services: tuple[str, ...], since: datetime) -> ConnectorLog:
        """What the logs say about ``connector`` since ``since``.

        Two reads, side by side: the runbook's query (``resource.type="vpc_access_connector"``,
        severity ≥ ERROR; Google documents only audit logs for Serverless VPC Access, so this is
        normally empty and its emptiness proves nothing), and the socket errors that the Cloud Run
        ``services`` behind it print to stdout/stderr when their egress fails. Plain lines have no
        severity, so those are matched by log name and text, not by severity.
        """
        project = self.session.target.project
        runbook = (
            'resource.type="vpc_access_connector" '
            f'AND resource.labels.connector_name="{connector}" '
            f'AND severity>=ERROR AND timestamp>="{_ts(since)}"'
        )
        names = "|".join(sorted(services))

        # Each log named by "=", not both by one regular expression: logName is one of the fields
        # Logging indexes (https://cloud.google.com/logging/docs/analyze/custom-index), so the search
        # reads that log's entries only, not every request log of the services in between (with 20
        # services a regex-named search had not finished after MAX_PAGES calls).
        def egress(log: str) -> str:
            return ('resource.type="cloud_run_revision" '
                    f'AND resource.labels.service_name=~"^({names})$" '
                    f'AND logName="projects/{project}/logs/run.googleapis.com%2F{log}" '
                    f'AND textPayload=~"{EGRESS_ERROR_PATTERN}" '
                    f'AND timestamp>="{_ts(since)}"')

        with ThreadPoolExecutor(max_workers=3) as pool:
            runbook_f = pool.submit(self._list, runbook, ERRORS_CAP)
            egress_f = [pool.submit(self._list, egress(log), ERRORS_CAP) for log in ("stderr", "stdout")] \
                if services else []
            ours, per_log = runbook_f.result(), [f.result() for f in egress_f]
        theirs = [e for log in per_log for e in log]
        texts = [_text(e) for e in (*ours, *theirs)]
        return ConnectorLog(
            connector=connector, since=since, runbook_errors=len(ours), services=tuple(sorted(services)),
            egress_errors=min(len(theirs), ERRORS_CAP),
            capped=max(len(ours), *(len(log) for log in per_log), 0) >= ERRORS_CAP,
            examples=tuple(t[:160] for t in texts[:EXAMPLES]),
        )

    def _startup_filter(self, revisions: Sequence[str], since: datetime, until: datetime) -> str:
        project = self.session.target.project
        return (
            'resource.type="cloud_run_revision" '
            f'AND {_one_of("resource.labels.revision_name", revisions)} '
            f'AND logName!="projects/{project}/logs/run.googleapis.com%2Frequests" '
            f'AND severity>=ERROR AND timestamp>="{_ts(since)}" AND timestamp<="{_ts(until)}"'
        )

    def startup_errors(self, service: str, revision: str, since: datetime) -> StartupLog:
        """What a revision logged at severity ≥ ERROR while it started (its first STARTUP_MINUTES),
        request logs aside (a 5xx request is logged as an error too, and says nothing about startup)."""
        return self.startup_errors_of({service: (revision, since)})[service]

    def startup_errors_of(self, serving: Mapping[str, tuple[str, datetime]]) -> dict[str, StartupLog]:
        """``startup_errors`` of each service's (revision, creation time), read for all at once: one
        entries.list over the union of their startup windows, split by revision and each revision's
        own window; a revision the shared cap leaves undecided is read on its own."""
        if not serving:
            return {}
        revisions = {rev: since for rev, since in serving.values()}
        if len(revisions) > 1 and not all(_NAME.match(r) for r in revisions):
            return {s: self.startup_errors_of({s: serving[s]})[s] for s in serving}
        lo = min(revisions.values())
        hi = max(revisions.values()) + timedelta(minutes=STARTUP_MINUTES)
        cap = ERRORS_CAP * len(revisions)
        entries = self._list(self._startup_filter(sorted(revisions), lo, hi), cap)
        upto = {rev: since + timedelta(minutes=STARTUP_MINUTES) for rev, since in revisions.items()}
        # A revision's own window ends STARTUP_MINUTES after its creation: later errors in the union's
        # range are another revision's startup, or runtime.
        found = _split(entries, cap, revisions, ERRORS_CAP, _revision_of,
                       keep=lambda e: e.timestamp is None or e.timestamp <= upto.get(_revision_of(e) or "", e.timestamp))
        for rev in [r for r, got in found.items() if got is None]:
            found[rev] = self._list(self._startup_filter([rev], revisions[rev], upto[rev]), ERRORS_CAP)
        out = {}
        for service, (rev, since) in serving.items():
            errs = found[rev] or []
            out[service] = StartupLog(service=service, revision=rev, since=since, errors=len(errs),
                                      examples=tuple(_text(e)[:160] for e in errs[:EXAMPLES]))
        return out

    # ---- log-based metrics (Phase 4) ----------------------------------------------------------

    def list_metrics(self) -> list[dict[str, Any]]:
        """Every log-based metric of the project (REST JSON)."""
        project = self.session.target.project
        with self.session.call(self.API, "metrics.list", f"projects/{project}"):
            # The client's pager follows nextPageToken itself; each item is a logging Metric.
            return [{"name": m.name, "filter": m.filter_, "description": m.description or ""}
                    for m in self._client.metrics_api.list_metrics(project)]

    def get_metric(self, name: str) -> dict[str, Any] | None:
        """The metric as the API returns it (REST JSON), or None when it does not exist."""
        from google.api_core.exceptions import NotFound

        project = self.session.target.project
        with self.session.call(self.API, "metrics.get", f"projects/{project}/metrics/{name}"):
            try:
                return dict(self._client.metrics_api.metric_get(project, name))
            except NotFound:
                return None

    def create_metric(self, metric: dict[str, Any]) -> dict[str, Any]:
        project = self.session.target.project
        with self.session.call(self.API, "metrics.create", f"projects/{project}/metrics/{metric['name']}", write=True):
            self._client.metrics_api.metric_create(project, metric["name"], metric["filter"],
                                                   metric.get("description", ""))
        return self.get_metric(metric["name"]) or {}

    def update_metric(self, metric: dict[str, Any]) -> dict[str, Any]:
        """Replace the metric's filter and description (the API's update is a PUT of the whole metric)."""
        project = self.session.target.project
        with self.session.call(self.API, "metrics.update", f"projects/{project}/metrics/{metric['name']}", write=True):
            return dict(self._client.metrics_api.metric_update(project, metric["name"], metric["filter"],
                                                               metric.get("description", "")))

    def delete_metric(self, name: str) -> None:
        project = self.session.target.project
        with self.session.call(self.API, "metrics.delete", f"projects/{project}/metrics/{name}", write=True):
            self._client.metrics_api.metric_delete(project, name)


def _one_of(field: str, names: Sequence[str]) -> str:
    """A filter term for ``field`` equal to one of ``names`` (plain equality for one: the filter the
    gate has always sent)."""
    if len(names) == 1:
        return f'{field}="{names[0]}"'
    return f'{field}=~"^({"|".join(names)})$"'


def _service_of(entry: Any) -> str | None:
    return (entry.resource.labels or {}).get("service_name") if entry.resource else None


def _revision_of(entry: Any) -> str | None:
    return (entry.resource.labels or {}).get("revision_name") if entry.resource else None


def _oldest(entries: Sequence[Any]) -> datetime | None:
    stamps = [e.timestamp for e in entries if e.timestamp is not None]
    return min(stamps) if stamps else None


def _split(read: Sequence[Any], limit: int, since: Mapping[str, datetime], need: int,
           key: Callable[[Any], str | None], keep: Callable[[Any], bool] = lambda e: True,
           ) -> dict[str, list[Any] | None]:
    """A shared read's entries (newest first, at most ``limit``), each name's own from its ``since``
    on (and those ``keep`` accepts); None for a name the read cannot decide. A read that came back
    short of its limit saw every matching entry. One that reached it saw all entries newer than its
    oldest: a name is decided if it has ``need`` entries already, or if its window starts after that
    oldest entry."""
    by: dict[str, list[Any]] = {n: [] for n in since}
    for e in read:
        n = key(e)
        if n in by and (e.timestamp is None or e.timestamp >= since[n]) and keep(e):
            by[n].append(e)
    if len(read) < limit:
        return dict(by)
    edge = _oldest(read)
    return {n: got if len(got) >= need or (edge is not None and since[n] > edge) else None
            for n, got in by.items()}


def _text(entry: Any) -> str:
    payload = getattr(entry, "payload", None)
    if isinstance(payload, dict):
        return str(payload.get("message") or payload)
    return str(payload or "")
