"""Cloud Logging v2: request logs of Cloud Run services, and log-based metrics (Phase 4).

Uses the official client's JSON transport (the gapic logging client has no REST transport), with
the endpoint override. Reads are capped: a criterion only needs to know "at least N".
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

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


def _ts(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class CloudLogging:
    API = "logging"

    def __init__(self, session: GcpSession) -> None:
        self.session = session

    @cached_property
    def _client(self) -> Any:
        from google.cloud import logging as gcl

        return gcl.Client(project=self.session.target.project, credentials=self.session.credentials,
                          client_options=self.session.client_options(self.API) or None, _use_grpc=False)

    def _list(self, filter_: str, limit: int) -> list[Any]:
        from google.cloud import logging as gcl

        project = f"projects/{self.session.target.project}"
        with self.session.call(self.API, "entries.list", filter_):
            return list(self._client.list_entries(resource_names=[project], filter_=filter_,
                                                  order_by=gcl.DESCENDING, max_results=limit,
                                                  page_size=min(limit, 1000)))

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
        with self.session.call(self.API, "metrics.create", f"projects/{project}/metrics/{metric['name']}"):
            self._client.metrics_api.metric_create(project, metric["name"], metric["filter"],
                                                   metric.get("description", ""))
        return self.get_metric(metric["name"]) or {}

    def update_metric(self, metric: dict[str, Any]) -> dict[str, Any]:
        """Replace the metric's filter and description (the API's update is a PUT of the whole metric)."""
        project = self.session.target.project
        with self.session.call(self.API, "metrics.update", f"projects/{project}/metrics/{metric['name']}"):
            return dict(self._client.metrics_api.metric_update(project, metric["name"], metric["filter"],
                                                               metric.get("description", "")))

    def delete_metric(self, name: str) -> None:
        project = self.session.target.project
        with self.session.call(self.API, "metrics.delete", f"projects/{project}/metrics/{name}"):
            self._client.metrics_api.metric_delete(project, name)


def _text(entry: Any) -> str:
    payload = getattr(entry, "payload", None)
    if isinstance(payload, dict):
        return str(payload.get("message") or payload)
    return str(payload or "")
