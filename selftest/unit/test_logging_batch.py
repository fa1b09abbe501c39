"""The shared Logging reads' bookkeeping (goldenpath.gcp.logging): which services a read capped at a
shared limit decides, and the pacing of entries.list under the per-project quota. Entries are made
up here; the real reads against the twin are in selftest/test_twin_logging.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from goldenpath.gcp.logging import _Pacer, _service_of, _split

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)


@dataclass
class Resource:
    labels: dict[str, str]


@dataclass
class Entry:
    timestamp: datetime
    resource: Resource = field(default_factory=lambda: Resource({}))


def entries(*spec: tuple[str, int]) -> list[Any]:
    """(service, seconds after T0), newest first as the gate reads them."""
    out = [Entry(T0 + timedelta(seconds=s), Resource({"service_name": n})) for n, s in spec]
    return sorted(out, key=lambda e: e.timestamp, reverse=True)


def test_a_read_short_of_its_limit_decides_every_service_from_its_own_window() -> None:
    read = entries(("a", 50), ("a", 40), ("b", 30), ("b", 5))
    got = _split(read, 10, {"a": T0, "b": T0 + timedelta(seconds=10)}, 3, _service_of)
    assert got["a"] is not None and len(got["a"]) == 2
    assert got["b"] is not None and len(got["b"]) == 1  # the entry at +5 s is before b's window


def test_a_capped_read_leaves_undecided_only_a_service_whose_window_reaches_past_it() -> None:
    # The newest four entries are all a's: b (window from T0) may have entries older than +60 s.
    read = entries(("a", 90), ("a", 80), ("a", 70), ("a", 60))
    windows = {"a": T0, "b": T0, "c": T0 + timedelta(seconds=65)}
    got = _split(read, 4, windows, 2, _service_of)
    assert got["a"] is not None and len(got["a"]) == 4   # it has what it needs already
    assert got["b"] is None                               # must be read on its own
    assert got["c"] == []                                 # its window starts after the oldest seen: complete


def test_the_pacer_waits_for_the_oldest_call_to_leave_the_minute() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = _Pacer(2, window=60.0, clock=lambda: now[0], sleep=sleep)
    pacer.admit()
    now[0] += 10
    pacer.admit()
    assert slept == []
    pacer.admit()  # the third within the minute waits until the first is a minute old
    assert slept == [50.0]
    assert now[0] == 160.0
