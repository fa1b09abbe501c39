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
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Callable

from goldenpath.errors import CheckError
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import ConnectorLog, RequestLog, StartupLog

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
            if kwargs.get("path") == ENTRIES_LIST and self._pages.limit is not None:
                self._pages.count += 1
                if self._pages.count > self._pages.limit:
                    raise TooManyPages()
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

    def request_log(self, service: str, since: datetime, min_requests: int) -> RequestLog:
        """Requests to ``service`` since ``since``: enough for a verdict, and every 503 up to a cap."""
        project = self.session.target.project
        base = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name="{service}" '
            f'AND logName="projects/{project}/logs/run.googleapis.com%2Frequests" '
            f'AND timestamp>="{_ts(since)}"'
        )
        # The two reads are independent: run them side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            total_f = pool.submit(self._list, base, min_requests)
            errors_f = pool.submit(self._list, base + " AND httpRequest.status=503", ERRORS_CAP)
            total, errors = total_f.result(), errors_f.result()
        examples = tuple(
            {
                "time": e.timestamp.isoformat() if e.timestamp else None,
                "revision": (e.resource.labels or {}).get("revision_name") if e.resource else None,
                "url": (e.http_request or {}).get("requestUrl"),
            }
            for e in errors[:EXAMPLES]
        )
        return RequestLog(
            service=service, since=since,
            total_seen=len(total), total_capped=len(total) >= min_requests,
            errors_503=len(errors), errors_capped=len(errors) >= ERRORS_CAP,
            examples=examples,
        )

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
        egress = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name=~"^({names})$" '
            f'AND logName=~"^projects/{project}/logs/run[.]googleapis[.]com%2Fstd(err|out)$" '
            f'AND textPayload=~"{EGRESS_ERROR_PATTERN}" '
            f'AND timestamp>="{_ts(since)}"'
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            runbook_f = pool.submit(self._list, runbook, ERRORS_CAP)
            egress_f = pool.submit(self._list, egress, ERRORS_CAP) if services else None
            ours, theirs = runbook_f.result(), egress_f.result() if egress_f else []
        texts = [_text(e) for e in (*ours, *theirs)]
        return ConnectorLog(
            connector=connector, since=since, runbook_errors=len(ours), services=tuple(sorted(services)),
            egress_errors=len(theirs), capped=max(len(ours), len(theirs)) >= ERRORS_CAP,
            examples=tuple(t[:160] for t in texts[:EXAMPLES]),
        )

    def startup_errors(self, service: str, revision: str, since: datetime) -> StartupLog:
        """What a revision logged at severity ≥ ERROR while it started (its first STARTUP_MINUTES),
        request logs aside (a 5xx request is logged as an error too, and says nothing about startup)."""
        project = self.session.target.project
        until = since + timedelta(minutes=STARTUP_MINUTES)
        filter_ = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.revision_name="{revision}" '
            f'AND logName!="projects/{project}/logs/run.googleapis.com%2Frequests" '
            f'AND severity>=ERROR AND timestamp>="{_ts(since)}" AND timestamp<="{_ts(until)}"'
        )
        entries = self._list(filter_, ERRORS_CAP)
        return StartupLog(service=service, revision=revision, since=since, errors=len(entries),
                          examples=tuple(_text(e)[:160] for e in entries[:EXAMPLES]))

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


def _text(entry: Any) -> str:
    payload = getattr(entry, "payload", None)
    if isinstance(payload, dict):
        return str(payload.get("message") or payload)
    return str(payload or "")
