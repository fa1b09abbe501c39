"""Cloud Monitoring v3: the metrics the runbook's criteria read, alert policies and notification
channels (Phase 4). gRPC only in the client library."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Callable

from goldenpath import failpoint, polling
from goldenpath.errors import NotYetUsable
from goldenpath.gcp.session import GcpSession, from_json, to_json
from goldenpath.observations import ConnectorMetrics, MetricSeries

NUM_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"
# A Serverless VPC Access connector's metrics (resource vpc_access_connector; Google's sample
# dashboard networking/vpc-connector-access-monitoring.json, metrics_gcp#gcp-vpcaccess).
CONNECTOR_CPU = "vpcaccess.googleapis.com/connector/cpu/utilizations"          # GAUGE, DISTRIBUTION
CONNECTOR_INSTANCES = "vpcaccess.googleapis.com/connector/instances"           # GAUGE, INT64
CONNECTOR_SENT = "vpcaccess.googleapis.com/connector/sent_bytes_count"         # DELTA, INT64, By
CONNECTOR_RECEIVED = "vpcaccess.googleapis.com/connector/received_bytes_count"  # DELTA, INT64, By


class Monitoring:
    API = "monitoring"

    def __init__(self, session: GcpSession) -> None:
        self.session = session

    @cached_property
    def _client(self) -> Any:
        from google.cloud import monitoring_v3
        from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

        return monitoring_v3.MetricServiceClient(
            transport=self.session.grpc_transport(self.API, MetricServiceGrpcTransport))

    @cached_property
    def _policies(self) -> Any:
        from google.cloud import monitoring_v3
        from google.cloud.monitoring_v3.services.alert_policy_service.transports import AlertPolicyServiceGrpcTransport

        return monitoring_v3.AlertPolicyServiceClient(
            transport=self.session.grpc_transport(self.API, AlertPolicyServiceGrpcTransport))

    @cached_property
    def _channels(self) -> Any:
        from google.cloud import monitoring_v3
        from google.cloud.monitoring_v3.services.notification_channel_service.transports import (
            NotificationChannelServiceGrpcTransport,
        )

        return monitoring_v3.NotificationChannelServiceClient(
            transport=self.session.grpc_transport(self.API, NotificationChannelServiceGrpcTransport))

    @property
    def _project(self) -> str:
        return f"projects/{self.session.target.project}"

    # ---- alert policies and notification channels (Phase 4) -----------------------------------

    def alert_policies(self) -> tuple[dict[str, Any], ...]:
        """Every alert policy of the project, as REST JSON."""
        with self.session.call(self.API, "alertPolicies.list", self._project):
            pager = self._policies.list_alert_policies(name=self._project, retry=self.session.read_retry(),
                                                       timeout=None)
            return tuple(to_json(p) for p in pager)

    def notification_channels(self) -> tuple[dict[str, Any], ...]:
        with self.session.call(self.API, "notificationChannels.list", self._project):
            pager = self._channels.list_notification_channels(name=self._project, retry=self.session.read_retry(),
                                                              timeout=None)
            return tuple(to_json(c) for c in pager)

    def get_alert_policy(self, name: str) -> dict[str, Any] | None:
        from google.api_core.exceptions import NotFound

        with self.session.call(self.API, "alertPolicies.get", name):
            try:
                return to_json(self._policies.get_alert_policy(name=name, retry=self.session.read_retry(),
                                                               timeout=None))
            except NotFound:
                return None

    def create_alert_policy(self, policy: dict[str, Any], wait_for_metrics: float | None = None,
                            refusals: list[str] | None = None) -> dict[str, Any]:
        """Create the policy. ``wait_for_metrics``: for this many (real) seconds, a refusal because a
        log-based metric it reads is not usable yet is tried again, paced as a poll
        (goldenpath.polling), the last time at the end of the wait; each refusal is appended to
        ``refusals``; when the time is up, :class:`NotYetUsable`."""
        from google.cloud import monitoring_v3

        body = from_json(monitoring_v3.AlertPolicy, policy)
        return self._write("alertPolicies.create", policy.get("displayName", ""), wait_for_metrics, refusals,
                           lambda retry: self._policies.create_alert_policy(
                               name=self._project, alert_policy=body, retry=retry,
                               timeout=self.session.target.timeouts.api_seconds))

    def update_alert_policy(self, name: str, fields: dict[str, Any], wait_for_metrics: float | None = None,
                            refusals: list[str] | None = None) -> dict[str, Any]:
        """Change only ``fields`` (top-level REST names) of the policy, through an update mask
        (``wait_for_metrics`` and ``refusals`` as for :meth:`create_alert_policy`)."""
        from google.cloud import monitoring_v3
        from google.protobuf import field_mask_pb2

        paths = [_snake(k) for k in fields]
        # A field in the mask but absent from the body is cleared: how an empty previous value is restored.
        body = from_json(monitoring_v3.AlertPolicy, {**{k: v for k, v in fields.items() if v is not None},
                                                     "name": name})
        return self._write(f"alertPolicies.patch({','.join(paths)})", name, wait_for_metrics, refusals,
                           lambda retry: self._policies.update_alert_policy(
                               alert_policy=body, update_mask=field_mask_pb2.FieldMask(paths=paths), retry=retry,
                               timeout=self.session.target.timeouts.api_seconds))

    def _write(self, method: str, resource: str, wait_for_metrics: float | None, refusals: list[str] | None,
               call: Callable[[Any], Any]) -> dict[str, Any]:
        from google.api_core import exceptions as gexc
        from google.api_core import retry as api_retry

        refused: list[str] = refusals if refusals is not None else []
        with self.session.call(self.API, method, resource, write=True):
            if wait_for_metrics is None:
                return to_json(call(None))  # no retry without a wait: a write is not retried blindly
            # Paced as a poll (goldenpath.polling), not by api_core's jittered exponential backoff: the
            # write succeeds once the metric is usable, and that backoff (0.5 s growing 1.5-fold up to
            # 20 s, each pause drawn between 0 and its bound) tried again up to 2.5 s after the twin's
            # 2 s propagation and up to 20 s after Google's; a poll is at most 10 % of the wait, or
            # 0.5 s, late. The last try is made at the end of the wait (a metric exactly as old as
            # the bound gets its chance).
            pauses, timeout = polling.retrying(max(0.0, wait_for_metrics))

            def refusal(exc: Exception) -> None:
                refused.append(_refusal(exc))
                failpoint.hit("monitoring.policy.refused")  # a selftest kills the gate mid-wait here

            try:
                return to_json(api_retry.retry_target(
                    lambda: call(None), metric_not_yet_usable, pauses, timeout=timeout, on_error=refusal))
            except gexc.RetryError as exc:
                # Every refusal is in ``refused`` already (on_error is called before retry_target
                # gives up): appending the last one again counted one attempt the API never saw.
                last = exc.cause if exc.cause is not None else exc
                raise NotYetUsable(f"{resource}: refused {len(refused)} time(s) because a log-based metric it "
                                   f"reads is not usable yet (last: {_refusal(last)})", len(refused)) from exc

    def delete_alert_policy(self, name: str) -> None:
        with self.session.call(self.API, "alertPolicies.delete", name, write=True):
            self._policies.delete_alert_policy(name=name, timeout=self.session.target.timeouts.api_seconds)

    # ---- metrics -------------------------------------------------------------------------------

    def num_backends(self, instance: str, minutes: int, alignment_seconds: int,
                     anchor: datetime | None = None) -> MetricSeries:
        """The instance's connections: num_backends summed over its databases by Cloud Monitoring.

        The metric has one series per database, and they are not published together (each sampled
        and made visible on its own, "up to 165 seconds" after sampling), so the newest points of the
        series are not one moment's and their sum is not the instance's. The sum is asked of the
        server instead: each series averaged over aligned periods (ALIGN_MEAN), then REDUCE_SUM across
        databases grouped by the instance. A period some database has not reported yet is summed
        short as well, so the same aggregation with REDUCE_COUNT says how many databases each period
        holds, and only the periods that hold all of them are kept.

        ``anchor`` (the moment of the gate's last change to the instance): the read interval ends a
        whole number of alignment periods after it, so that one period starts exactly at the change and
        the first point wholly after it is the first one whose samples are all new. Ending at "now",
        the period holding the change mixes old and new samples and the next one must be waited for
        (an alignment period more: 60 s on Google). Where Google anchors aligned periods is not
        documented (the twin ends the newest at the interval's end): elsewhere this is only slower,
        never wrong, because a point is judged fresh by its own end time (MetricSeries.newest_after).
        """
        from google.cloud import monitoring_v3

        Reducer = monitoring_v3.Aggregation.Reducer
        flt = f'metric.type = "{NUM_BACKENDS}" AND resource.labels.database_id = "{self.session.target.project}:{instance}"'

        def aggregation(reducer: Any) -> Any:
            return monitoring_v3.Aggregation(
                alignment_period={"seconds": alignment_seconds},
                per_series_aligner=monitoring_v3.Aggregation.Aligner.ALIGN_MEAN,
                cross_series_reducer=reducer, group_by_fields=["resource.labels.database_id"])

        now = time.time()
        if anchor is not None and (periods := math.floor((now - anchor.timestamp()) / alignment_seconds)) >= 1:
            now = anchor.timestamp() + periods * alignment_seconds
        # The count first: points only ever become visible, so a period every database had reported
        # at the first read is whole at the second too (the other order can pair a short sum read
        # first with a count that saw the missing database publish in between).
        counts = self._points(flt, aggregation(Reducer.REDUCE_COUNT), minutes, now)
        sums = self._points(flt, aggregation(Reducer.REDUCE_SUM), minutes, now)
        databases = int(max(counts.values(), default=0))
        complete = [(t, v) for t, v in sums.items() if counts.get(t) == databases]
        return MetricSeries(metric=NUM_BACKENDS, points=tuple(sorted(complete, key=lambda x: x[0], reverse=True)),
                            period_seconds=float(alignment_seconds), series=databases)

    def _points(self, flt: str, aggregation: Any, minutes: int, now: float) -> dict[datetime, float]:
        """The points of the one series an aggregated read returns, by end time."""
        from google.cloud import monitoring_v3

        interval = monitoring_v3.TimeInterval(end_time=_timestamp(now), start_time=_timestamp(now - minutes * 60))
        reducer = monitoring_v3.Aggregation.Reducer(aggregation.cross_series_reducer).name
        with self.session.call(self.API, f"timeSeries.list({reducer})", flt):
            pager = self._client.list_time_series(
                request=monitoring_v3.ListTimeSeriesRequest(
                    name=self._project, filter=flt, interval=interval, aggregation=aggregation,
                    view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL),
                retry=self.session.read_retry(), timeout=None)
            series = list(pager)
        if len(series) > 1:  # grouped by the instance: one series, or none when nothing is reported
            raise ValueError(f"Cloud Monitoring returned {len(series)} series for one instance ({flt}); "
                             "expected one after REDUCE_* grouped by resource.labels.database_id")
        points: dict[datetime, float] = {}
        for ts in series:
            for p in ts.points:
                end = p.interval.end_time
                when = end if isinstance(end, datetime) else datetime.fromtimestamp(end.seconds, timezone.utc)
                points[when] = float(p.value.int64_value if "int64_value" in p.value else p.value.double_value)
        return points


    # ---- the VPC connector's metrics (raw series: no aggregation asked of Monitoring) ---------

    def connector_metrics(self, connector: str, since: datetime) -> ConnectorMetrics:
        """The connector's CPU, instances and throughput points whose interval starts at or after
        ``since`` (a DELTA point that began before a change mixes the old connector with the new)."""
        flt = f'resource.type = "vpc_access_connector" AND resource.labels.connector_name = "{connector}"'
        metrics = (CONNECTOR_CPU, CONNECTOR_INSTANCES, CONNECTOR_SENT, CONNECTOR_RECEIVED)
        with ThreadPoolExecutor(max_workers=len(metrics)) as pool:
            cpu, instances, sent, received = pool.map(lambda m: self._raw_points(m, flt, since), metrics)
        bits: dict[datetime, float] = {}
        for begin, end, value in (*sent, *received):
            seconds = (end - begin).total_seconds()
            if seconds > 0:
                bits[end] = bits.get(end, 0.0) + float(value.int64_value) * 8 / seconds / 1e6
        return ConnectorMetrics(
            connector=connector, since=since,
            cpu=tuple((end, distribution_quantile(v.distribution_value, 0.95), v.distribution_value.mean)
                      for _, end, v in cpu if v.distribution_value.count),
            instances=tuple((end, int(v.int64_value)) for _, end, v in instances),
            throughput=tuple(sorted(bits.items(), key=lambda x: x[0], reverse=True)),
        )

    def _raw_points(self, metric: str, extra_filter: str, since: datetime) -> list[tuple[datetime, datetime, Any]]:
        """(interval start, end, TypedValue) of every point of every series of ``metric``, newest first."""
        from google.cloud import monitoring_v3

        interval = monitoring_v3.TimeInterval(end_time={"seconds": int(time.time())},
                                              start_time={"seconds": int(since.timestamp())})
        flt = f'metric.type = "{metric}" AND {extra_filter}'
        with self.session.call(self.API, "timeSeries.list", flt):
            pager = self._client.list_time_series(
                request=monitoring_v3.ListTimeSeriesRequest(
                    name=self._project, filter=flt, interval=interval,
                    view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL),
                retry=self.session.read_retry(), timeout=None)
            series = list(pager)
        out = []
        for ts in series:
            for p in ts.points:
                begin, end = _when(p.interval.start_time) or _when(p.interval.end_time), _when(p.interval.end_time)
                if end is not None and begin is not None and begin >= since:
                    out.append((begin, end, p.value))
        return sorted(out, key=lambda x: x[1], reverse=True)


def _when(stamp: Any) -> datetime | None:
    """A point's time, None when unset (a GAUGE point may leave its start time out)."""
    if stamp is None:
        return None
    if isinstance(stamp, datetime):
        return stamp if stamp.timestamp() > 0 else None
    return datetime.fromtimestamp(stamp.seconds, timezone.utc) if stamp.seconds else None


def distribution_quantile(dist: Any, q: float) -> float:
    """The ``q`` quantile of a google.api.Distribution, interpolated within its bucket (linear,
    exponential or explicit buckets, as google/api/distribution.proto defines them: bucket 0 is the
    underflow, the last the overflow); the mean when it has no bucket counts."""
    counts = [int(c) for c in dist.bucket_counts]  # trailing zero counts may be left out
    total = sum(counts)
    if not total:
        return float(dist.mean)
    opts = dist.bucket_options
    pb = getattr(opts, "_pb", opts)
    kind = pb.WhichOneof("options")
    if kind == "linear_buckets":
        b = pb.linear_buckets
        finite, lower = b.num_finite_buckets, (lambda i: b.offset + b.width * (i - 1))
    elif kind == "exponential_buckets":
        b = pb.exponential_buckets
        finite, lower = b.num_finite_buckets, (lambda i: b.scale * b.growth_factor ** (i - 1))
    else:
        bounds = list(pb.explicit_buckets.bounds)
        finite, lower = max(0, len(bounds) - 1), (lambda i: bounds[i - 1] if bounds else 0.0)
    rank, seen = q * total, 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i == 0:
                return min(float(dist.mean), lower(1))   # underflow: below the first bound
            if i > finite:
                return lower(finite + 1)                 # overflow: at least the last bound
            lo, hi = lower(i), lower(i + 1)
            return lo + (hi - lo) * (rank - seen) / n
        seen += n
    return float(dist.mean)


def metric_not_yet_usable(exc: BaseException) -> bool:
    """Google's answer to a policy reading a log-based metric that is too new: NOT_FOUND "Cannot find
    metric(s) that match type = "logging.googleapis.com/user/…". If a metric was created recently, it
    could take up to 10 minutes to become available. Please try again soon." (hashicorp/terraform-
    provider-google#11102). The same NOT_FOUND without "created recently" (a metric that does not
    exist at all, of another kind) is not retried."""
    from google.api_core import exceptions as gexc

    text = str(getattr(exc, "message", "") or exc)
    return (isinstance(exc, gexc.NotFound) and "Cannot find metric(s) that match type" in text
            and "created recently" in text)


def _refusal(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{code} {getattr(exc, 'message', exc)}" if code else str(exc)


def _snake(name: str) -> str:
    """userLabels → user_labels: update masks name proto fields."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _timestamp(seconds: float) -> dict[str, int]:
    """A protobuf Timestamp (whole seconds and nanos) for a POSIX time."""
    whole, nanos = divmod(round(seconds * 1e9), 1_000_000_000)
    return {"seconds": int(whole), "nanos": int(nanos)}
