"""Cloud Monitoring v3: the metrics the runbook's criteria read, alert policies and notification
channels (Phase 4). gRPC only in the client library."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Callable

from goldenpath.errors import NotYetUsable
from goldenpath.gcp.session import GcpSession, from_json, to_json
from goldenpath.observations import MetricSeries

NUM_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"
# The backoff of a policy write waiting for a new log-based metric, in the target's seconds.
BACKOFF_INITIAL_SECONDS, BACKOFF_MAX_SECONDS = 0.5, 20.0


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

    def create_alert_policy(self, policy: dict[str, Any], wait_for_metrics: float | None = None,
                            refusals: list[str] | None = None, clock_scale: float = 1.0) -> dict[str, Any]:
        """Create the policy. ``wait_for_metrics``: for this many (real) seconds, a refusal because a
        log-based metric it reads is not usable yet is retried with backoff (in the target's time,
        ``clock_scale`` target seconds per real second), and once more at most one backoff after that;
        each refusal is appended to ``refusals``; when the time is up, :class:`NotYetUsable`."""
        from google.cloud import monitoring_v3

        body = from_json(monitoring_v3.AlertPolicy, policy)
        return self._write("alertPolicies.create", policy.get("displayName", ""), wait_for_metrics, refusals,
                           lambda retry: self._policies.create_alert_policy(
                               name=self._project, alert_policy=body, retry=retry,
                               timeout=self.session.target.timeouts.api_seconds), clock_scale)

    def update_alert_policy(self, name: str, fields: dict[str, Any], wait_for_metrics: float | None = None,
                            refusals: list[str] | None = None, clock_scale: float = 1.0) -> dict[str, Any]:
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
                               timeout=self.session.target.timeouts.api_seconds), clock_scale)

    def _write(self, method: str, resource: str, wait_for_metrics: float | None, refusals: list[str] | None,
               call: Callable[[Any], Any], clock_scale: float = 1.0) -> dict[str, Any]:
        from google.api_core import exceptions as gexc
        from google.api_core import retry as api_retry

        refused: list[str] = refusals if refusals is not None else []
        longest = BACKOFF_MAX_SECONDS / clock_scale
        # No retry at all without a wait: a write is not retried blindly (it is not idempotent). The
        # Retry never sleeps past its timeout, so one longest backoff is added: the last attempt then
        # comes after the wait is over (a metric exactly as old as the bound gets its chance).
        policy = None if wait_for_metrics is None else api_retry.Retry(
            predicate=metric_not_yet_usable, initial=BACKOFF_INITIAL_SECONDS / clock_scale, multiplier=1.5,
            maximum=longest, timeout=max(0.0, wait_for_metrics) + longest,
            on_error=lambda exc: refused.append(_refusal(exc)))
        with self.session.call(self.API, method, resource):
            try:
                return to_json(call(policy))
            except gexc.RetryError as exc:
                last = exc.cause if exc.cause is not None else exc
                refused.append(_refusal(last))
                raise NotYetUsable(f"{resource}: refused {len(refused)} time(s) because a log-based metric it "
                                   f"reads is not usable yet (last: {_refusal(last)})", len(refused)) from exc

    def delete_alert_policy(self, name: str) -> None:
        with self.session.call(self.API, "alertPolicies.delete", name):
            self._policies.delete_alert_policy(name=name, timeout=self.session.target.timeouts.api_seconds)

    # ---- metrics -------------------------------------------------------------------------------

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
