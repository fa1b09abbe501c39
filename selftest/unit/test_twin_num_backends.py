"""num_backends in the twin at fixed instants (twin.sqladmin's series, twin.monitoring's lag and
aggregation): what a read at a given moment sees is deterministic, so the edge cases are pinned here."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import monitoring
from twin.world import World

T0 = 1_800_000_000.0  # reset time; the incident's 88 connections hold from 6 h before
FILTER = 'metric.type = "cloudsql.googleapis.com/database/postgresql/num_backends"'
AGG = {"alignmentPeriod": "2s", "perSeriesAligner": "ALIGN_MEAN", "groupByFields": ["resource.labels.database_id"]}


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.reset("incident-1278", now=T0)
    return w


def by_end(series: list[dict]) -> dict[str, float]:
    [s] = series
    return {p["interval"]["endTime"]: float(next(iter(p["value"].values()))) for p in s["points"]}


def test_a_sample_is_published_only_after_the_lag(world: World) -> None:
    t = T0 + 100  # a sample instant of the application's database (offset 0, every 2 s)
    app = f'{FILTER} AND metric.labels.database = "app"'
    assert monitoring.time_series(world, app, t, t, now=t + 2.9) == []  # lag 3 s: not yet
    [s] = monitoring.time_series(world, app, t, t, now=t + 3)
    assert [p["value"] for p in s["points"]] == [{"int64Value": "85"}]


def test_the_newest_period_is_summed_short_until_every_database_published(world: World) -> None:
    now = T0 + 101.0
    sums = by_end(monitoring.time_series(world, FILTER, now - 20, now, now=now,
                                         aggregation={**AGG, "crossSeriesReducer": "REDUCE_SUM"}))
    counts = by_end(monitoring.time_series(world, FILTER, now - 20, now, now=now,
                                           aggregation={**AGG, "crossSeriesReducer": "REDUCE_COUNT"}))
    assert sums.keys() == counts.keys()
    short = {end for end, n in counts.items() if n < 3}
    assert short and all(sums[end] < 88 for end in short)  # what a naive reader would judge
    assert {sums[end] for end in counts if end not in short} == {88.0}
    newest = max(sums)
    assert newest in short


def test_databases_do_not_end_together(world: World) -> None:
    now = T0 + 101.0
    newest = {s["metric"]["labels"]["database"]: s["points"][0]["interval"]["endTime"]
              for s in monitoring.time_series(world, FILTER, now - 20, now, now=now)}
    assert len(set(newest.values())) == 3
