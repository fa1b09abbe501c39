"""Cloud Monitoring v3: the metrics the runbook's criteria read, alert policies and notification
channels (Phase 4). gRPC only in the client library."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from goldenpath.gcp.session import GcpSession, from_json, to_json
from goldenpath.observations import MetricSeries

NUM_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"


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
                                                       timeout=self.session.target.timeouts.api_seconds)
            return tuple(to_json(p) for p in pager)

    def notification_channels(self) -> tuple[dict[str, Any], ...]:
        with self.session.call(self.API, "notificationChannels.list", self._project):
            pager = self._channels.list_notification_channels(name=self._project, retry=self.session.read_retry(),
                                                              timeout=self.session.target.timeouts.api_seconds)
            return tuple(to_json(c) for c in pager)

    def get_alert_policy(self, name: str) -> dict[str, Any] | None:
        from google.api_core.exceptions import NotFound

        with self.session.call(self.API, "alertPolicies.get", name):
            try:
                return to_json(self._policies.get_alert_policy(name=name, retry=self.session.read_retry(),
                                                               timeout=self.session.target.timeouts.api_seconds))
            except NotFound:
                return None

    def create_alert_policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        from google.cloud import monitoring_v3

        with self.session.call(self.API, "alertPolicies.create", policy.get("displayName", "")):
            created = self._policies.create_alert_policy(
                name=self._project, alert_policy=from_json(monitoring_v3.AlertPolicy, policy),
                timeout=self.session.target.timeouts.api_seconds)
        return to_json(created)

    def update_alert_policy(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change only ``fields`` (top-level REST names) of the policy, through an update mask."""
        from google.cloud import monitoring_v3
        from google.protobuf import field_mask_pb2

        paths = [_snake(k) for k in fields]
        # A field in the mask but absent from the body is cleared: how an empty previous value is restored.
        body = {k: v for k, v in fields.items() if v is not None}
        with self.session.call(self.API, f"alertPolicies.patch({','.join(paths)})", name):
            updated = self._policies.update_alert_policy(
                alert_policy=from_json(monitoring_v3.AlertPolicy, {**body, "name": name}),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
                timeout=self.session.target.timeouts.api_seconds)
        return to_json(updated)

    def delete_alert_policy(self, name: str) -> None:
        with self.session.call(self.API, "alertPolicies.delete", name):
            self._policies.delete_alert_policy(name=name, timeout=self.session.target.timeouts.api_seconds)

    # ---- metrics -------------------------------------------------------------------------------

    def num_backends(self, instance: str, minutes: int, alignment_seconds: int) -> MetricSeries:
        """The instance's connections: num_backends summed over its databases by Cloud Monitoring.

        The metric has one series per database, and they are not published together (each sampled
        and made visible on its own, "up to 165 seconds" after sampling), so the newest points of the
        series are not one moment's and their sum is not the instance's. The sum is asked of the
        server instead: each series averaged over aligned periods (ALIGN_MEAN), then REDUCE_SUM across
        databases grouped by the instance. A period some database has not reported yet is summed
        short as well, so the same aggregation with REDUCE_COUNT says how many databases each period
        holds, and only the periods that hold all of them are kept.
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

        interval = monitoring_v3.TimeInterval(end_time={"seconds": int(now)},
                                              start_time={"seconds": int(now - minutes * 60)})
        reducer = monitoring_v3.Aggregation.Reducer(aggregation.cross_series_reducer).name
        with self.session.call(self.API, f"timeSeries.list({reducer})", flt):
            pager = self._client.list_time_series(
                request=monitoring_v3.ListTimeSeriesRequest(
                    name=self._project, filter=flt, interval=interval, aggregation=aggregation,
                    view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL),
                retry=self.session.read_retry(), timeout=self.session.target.timeouts.api_seconds)
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


def _snake(name: str) -> str:
    """userLabels → user_labels: update masks name proto fields."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)
