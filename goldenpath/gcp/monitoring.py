"""Cloud Monitoring v3: the metrics the runbook's criteria read. gRPC only in the client library."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from goldenpath.gcp.session import GcpSession
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

    def num_backends(self, instance: str, minutes: int) -> MetricSeries:
        t = self.session.target
        return self._series(NUM_BACKENDS, f'resource.labels.database_id = "{t.project}:{instance}"', minutes)

    def _series(self, metric: str, extra_filter: str, minutes: int) -> MetricSeries:
        from google.cloud import monitoring_v3

        now = time.time()
        interval = monitoring_v3.TimeInterval(end_time={"seconds": int(now)},
                                              start_time={"seconds": int(now - minutes * 60)})
        name = f"projects/{self.session.target.project}"
        flt = f'metric.type = "{metric}"' + (f" AND {extra_filter}" if extra_filter else "")
        with self.session.call(self.API, "timeSeries.list", flt):
            pager = self._client.list_time_series(
                request=monitoring_v3.ListTimeSeriesRequest(
                    name=name, filter=flt, interval=interval,
                    view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL),
                retry=self.session.read_retry(), timeout=self.session.target.timeouts.api_seconds)
            series = list(pager)
        # Cloud SQL reports one num_backends series per database: the instance's connections are
        # their sum at each sample time.
        totals: dict[datetime, float] = {}
        for ts in series:
            for p in ts.points:
                end = p.interval.end_time
                when = end if isinstance(end, datetime) else datetime.fromtimestamp(end.seconds, timezone.utc)
                value = p.value.int64_value if "int64_value" in p.value else p.value.double_value
                totals[when] = totals.get(when, 0.0) + float(value)
        points = sorted(totals.items(), key=lambda x: x[0], reverse=True)
        return MetricSeries(metric=metric, points=tuple(points))
