"""Cloud SQL's num_backends as Cloud Monitoring publishes it, read through the real monitoring_v3
client from a real twin subprocess, and through the gate's own reader (goldenpath.gcp.monitoring).

What the twin must reproduce (Google's metrics list, "database/postgresql/num_backends"; the
Aggregation message of google/monitoring/v3/common.proto): one GAUGE INT64 series per database of
the instance, system databases included, on a ``cloudsql_database`` resource; a point is not visible
until some time after it was sampled; the series of one instance do not end at the same time; and
``projects.timeSeries.list`` aligns and reduces them on the server as documented, refusing what it
cannot compute.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from google.api.metric_pb2 import MetricDescriptor
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

from goldenpath.config import load as load_target
from goldenpath.gcp.monitoring import Monitoring
from goldenpath.gcp.session import GcpSession
from goldenpath.twinctl import relocate_sim
from selftest.twinproc import TwinProcess, grpc_channel, running_twin
from twin import scenario as scenarios

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "incident-1278"
PROJECT, INSTANCE = "netra-staging", "netra-staging-db"
NUM_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"
FILTER = f'metric.type = "{NUM_BACKENDS}" AND resource.labels.database_id = "{PROJECT}:{INSTANCE}"'
TIMING = scenarios.load(SCENARIO).timing
PERIOD = TIMING.metric_period_seconds
TIMEOUT = 10.0

Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


class Twin:
    def __init__(self, proc: TwinProcess, control: httpx.Client, channel: Any) -> None:
        self.proc, self.control = proc, control
        self.metrics = monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=channel))

    def reset(self, scenario: str = SCENARIO) -> None:
        resp = self.control.post("/_twin/reset", params={"scenario": scenario})
        assert resp.status_code == 200, resp.text

    def series(self, flt: str = FILTER, minutes: float = 2, end: float | None = None, start: float | None = None,
               **aggregation: Any) -> list[monitoring_v3.TimeSeries]:
        end = time.time() if end is None else end
        start = end - minutes * 60 if start is None else start
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{PROJECT}", filter=flt,
            interval=monitoring_v3.TimeInterval(end_time={"seconds": int(end), "nanos": int(end % 1 * 1e9)},
                                                start_time={"seconds": int(start), "nanos": int(start % 1 * 1e9)}),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            **({"aggregation": monitoring_v3.Aggregation(**aggregation)} if aggregation else {}))
        return list(self.metrics.list_time_series(request=request, timeout=TIMEOUT))


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    home = tmp_path_factory.mktemp("twin-num-backends")
    with running_twin(home, SCENARIO) as proc, grpc_channel(proc, TIMEOUT) as channel, \
            httpx.Client(base_url=f"http://127.0.0.1:{proc.control_port}", timeout=TIMEOUT) as control:
        yield Twin(proc, control, channel)


@pytest.fixture
def twin(twin_server: Twin) -> Twin:
    twin_server.reset()
    return twin_server


def ends(ts: monitoring_v3.TimeSeries) -> list[float]:
    # proto-plus hands a Timestamp field out as a datetime (DatetimeWithNanoseconds); the generated
    # annotations name the protobuf Timestamp.
    return [p.interval.end_time.timestamp() for p in ts.points]  # type: ignore[attr-defined]


def value(point: monitoring_v3.Point) -> float:
    return point.value.int64_value if "int64_value" in point.value else point.value.double_value


# ---- raw series: one per database, lagged, not ending together ------------------------------------


def test_one_series_per_database_system_ones_included(twin: Twin) -> None:
    series = {ts.metric.labels["database"]: ts for ts in twin.series()}
    # The incident's 88 connections: the application's database holds most, Cloud SQL's own
    # databases (cloudsqladmin, used by the service's agent; postgres) a few.
    assert set(series) == {"app", "cloudsqladmin", "postgres"}
    for ts in series.values():
        assert ts.resource.type == "cloudsql_database"
        assert dict(ts.resource.labels) == {"project_id": PROJECT, "database_id": f"{PROJECT}:{INSTANCE}",
                                            "region": "us-central1"}
        assert (ts.metric_kind, ts.value_type) == (MetricDescriptor.GAUGE, MetricDescriptor.INT64)
        assert ends(ts) == sorted(ends(ts), reverse=True) and len(set(ends(ts))) == len(ends(ts))  # newest first
        assert all(b - a == pytest.approx(PERIOD) for a, b in zip(ends(ts)[1:], ends(ts)))  # one sample a period
    assert {db: {value(p) for p in ts.points} for db, ts in series.items()} == \
        {"app": {85}, "cloudsqladmin": {2}, "postgres": {1}}
    # Each database is sampled at its own moment: their newest points are not one instant's.
    assert len({ends(ts)[0] for ts in series.values()}) == 3


def test_a_point_is_invisible_until_the_lag_has_passed(twin: Twin, tmp_path: Path) -> None:
    lag = 30.0
    slow = tmp_path / "slow-metrics.toml"
    slow.write_text((scenarios.SCENARIO_DIR / f"{SCENARIO}.toml").read_text()
                    .replace("metric_lag_seconds = 3 ", f"metric_lag_seconds = {lag:g} ", 1))
    twin.reset(str(slow))
    before = time.time()
    series = twin.series()
    after = time.time()
    assert len(series) == 3
    for ts in series:
        # Nothing sampled in the last `lag` seconds is readable yet ...
        assert ends(ts)[0] <= after - lag
        # ... and what was sampled before that is (the newest point is at most a period older).
        assert ends(ts)[0] > before - lag - PERIOD
    # A zero-length interval at the newest sample instant of the application's database: a
    # sample exists there, but it is not published yet.
    newest = int(time.time()) // PERIOD * PERIOD
    assert twin.series(f'{FILTER} AND metric.labels.database = "app"', start=newest, end=newest) == []
    old = newest - int(lag) - 2 * PERIOD
    assert [ends(ts) for ts in twin.series(f'{FILTER} AND metric.labels.database = "app"', start=old, end=old)] \
        == [[float(old)]]


# ---- aggregation on the server ------------------------------------------------------------------


def test_sum_across_databases_equals_the_instance_total(twin: Twin) -> None:
    end = float(int(time.time()))
    agg: dict[str, Any] = dict(alignment_period={"seconds": PERIOD}, per_series_aligner=Aligner.ALIGN_MEAN,
               group_by_fields=["resource.labels.database_id"])
    # The count first: a period whole at that read is whole at the next (points only get published).
    [count] = twin.series(end=end, cross_series_reducer=Reducer.REDUCE_COUNT, **agg)
    [total] = twin.series(end=end, cross_series_reducer=Reducer.REDUCE_SUM, **agg)
    # The databases' labels are aggregated away; the group-by field stays.
    assert dict(total.resource.labels) == {"database_id": f"{PROJECT}:{INSTANCE}"}
    assert dict(total.metric.labels) == {}
    assert total.value_type == MetricDescriptor.DOUBLE  # ALIGN_MEAN's result, kept by REDUCE_SUM
    assert count.value_type == MetricDescriptor.INT64
    # Aligned points end their periods, which end at the interval's end, a period apart, newest
    # first (the newest periods, not published yet, have no point).
    assert ends(total) == sorted(ends(total), reverse=True)
    assert all((end - t) % PERIOD == 0 for t in ends(total)) and ends(total)[0] > end - TIMING.metric_lag_seconds - 2 * PERIOD
    databases = {ends(count)[i]: value(p) for i, p in enumerate(count.points)}
    complete = [value(p) for p in total.points if databases.get(p.interval.end_time.timestamp()) == 3]  # type: ignore[attr-defined]  # as in ends()
    assert len(complete) >= 10 and set(complete) == {88.0}


def test_aligner_without_reducer_keeps_one_series_per_database(twin: Twin) -> None:
    series = twin.series(alignment_period={"seconds": 2 * PERIOD}, per_series_aligner=Aligner.ALIGN_MAX)
    assert {ts.metric.labels["database"]: ts.value_type for ts in series} == {
        "app": MetricDescriptor.INT64, "cloudsqladmin": MetricDescriptor.INT64, "postgres": MetricDescriptor.INT64}
    assert {ts.metric.labels["database"]: {value(p) for p in ts.points} for ts in series} == \
        {"app": {85}, "cloudsqladmin": {2}, "postgres": {1}}


@pytest.mark.parametrize("aggregation", [
    {"cross_series_reducer": Reducer.REDUCE_SUM},
    {"cross_series_reducer": Reducer.REDUCE_SUM, "alignment_period": {"seconds": 60}},
    {"per_series_aligner": Aligner.ALIGN_MEAN},
    {"per_series_aligner": Aligner.ALIGN_MEAN, "alignment_period": {"seconds": 1}},
], ids=["reducer-without-aligner", "reducer-with-align-none", "aligner-without-period", "period-below-sample"])
def test_aggregation_google_refuses_is_invalid(twin: Twin, aggregation: dict[str, Any]) -> None:
    with pytest.raises(gexc.InvalidArgument):
        twin.series(**aggregation)


@pytest.mark.parametrize("aggregation", [
    {"per_series_aligner": Aligner.ALIGN_RATE, "alignment_period": {"seconds": 60}},
    {"per_series_aligner": Aligner.ALIGN_PERCENTILE_99, "alignment_period": {"seconds": 60}},
    {"per_series_aligner": Aligner.ALIGN_MEAN, "alignment_period": {"seconds": 60},
     "cross_series_reducer": Reducer.REDUCE_PERCENTILE_50},
    {"per_series_aligner": Aligner.ALIGN_MEAN, "alignment_period": {"seconds": 60},
     "cross_series_reducer": Reducer.REDUCE_SUM, "group_by_fields": ["metadata.system_labels.name"]},
], ids=["align-rate", "align-percentile", "reduce-percentile", "group-by-metadata"])
def test_aggregation_the_twin_cannot_compute_is_unimplemented(twin: Twin, aggregation: dict[str, Any]) -> None:
    with pytest.raises(gexc.MethodNotImplemented):
        twin.series(**aggregation)


def test_secondary_aggregation_is_unimplemented(twin: Twin) -> None:
    request = monitoring_v3.ListTimeSeriesRequest(
        name=f"projects/{PROJECT}", filter=FILTER,
        interval=monitoring_v3.TimeInterval(end_time={"seconds": int(time.time())}),
        secondary_aggregation=monitoring_v3.Aggregation(per_series_aligner=Aligner.ALIGN_MEAN,
                                                        alignment_period={"seconds": 60}))
    with pytest.raises(gexc.MethodNotImplemented):
        list(twin.metrics.list_time_series(request=request, timeout=TIMEOUT))


# ---- the gate's reader ------------------------------------------------------------------------


def test_the_gates_reader_keeps_only_periods_every_database_reported(twin: Twin, tmp_path: Path) -> None:
    proc = twin.proc
    targets = tmp_path / "targets.toml"
    targets.write_text(relocate_sim(ROOT / "targets.toml", tmp_path / "home", f"127.0.0.1:{proc.control_port}",
                                    f"127.0.0.1:{proc.data_port}", f"127.0.0.1:{proc.grpc_port}"))
    target = load_target(targets, "sim")
    assert target.database is not None and target.database.metric_alignment_seconds == PERIOD
    session = GcpSession(target)
    got = Monitoring(session).num_backends(INSTANCE, 2, PERIOD)
    assert got.series == 3 and got.period_seconds == PERIOD
    assert len(got.points) >= 10 and {v for _, v in got.points} == {88.0}
    assert [t for t, _ in got.points] == sorted((t for t, _ in got.points), reverse=True)
    # Two reads of the same aggregation: how many databases each period holds, then the sum.
    assert [c.method for c in session.calls] == ["timeSeries.list(REDUCE_COUNT)", "timeSeries.list(REDUCE_SUM)"]


def test_the_gates_reader_anchors_its_periods_at_the_change(twin: Twin, tmp_path: Path) -> None:
    """After a change, the read interval ends a whole number of periods after it, so the first period
    wholly after the change is read as soon as every database's sample in it is published. Ending the
    interval at "now" instead, the newest complete period straddles the change (not fresh), and the
    gate would wait a period more (60 s on Google)."""
    proc = twin.proc
    targets = tmp_path / "targets.toml"
    targets.write_text(relocate_sim(ROOT / "targets.toml", tmp_path / "home", f"127.0.0.1:{proc.control_port}",
                                    f"127.0.0.1:{proc.data_port}", f"127.0.0.1:{proc.grpc_port}"))
    session = GcpSession(load_target(targets, "sim"))
    lag = TIMING.metric_lag_seconds
    # A "change" a period and the publication lag ago (and a little more): exactly one whole period
    # after it is published by every database, the next one is not.
    changed = datetime.fromtimestamp(time.time() - PERIOD - lag - 0.3, timezone.utc)
    anchored = Monitoring(session).num_backends(INSTANCE, 2, PERIOD, changed)
    assert anchored.newest_after(changed), anchored.points[:3]
    assert anchored.latest == 88.0
    ends = [(t - changed).total_seconds() for t, _ in anchored.points]
    assert all(abs(e / PERIOD - round(e / PERIOD)) < 1e-3 for e in ends), ends[:5]
    # The same moment without the anchor: its newest complete period began before the change.
    unanchored = Monitoring(session).num_backends(INSTANCE, 2, PERIOD)
    assert not unanchored.newest_after(changed), unanchored.points[:3]
