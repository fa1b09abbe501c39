"""--soak (goldenpath.soak): look again, probing meanwhile, until the 503 window is clean or the wait is over."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from goldenpath.observations import CleanWindow, RequestLog
from goldenpath.soak import SOAK_MIN_PAUSE_SECONDS, soak

SVC = "netra-backend-staging"
CHANGE = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)   # the service's last update


def window(minutes_after_change: float, *, latest_503: datetime | None = CHANGE - timedelta(seconds=30),
           total: int = 50, scale: float = 1.0) -> CleanWindow:
    """The window ``minutes_after_change`` after the last change; ``latest_503``: None for none."""
    now = CHANGE + timedelta(minutes=minutes_after_change)
    examples = () if latest_503 is None else ({"time": latest_503.isoformat(), "revision": "r", "url": "u"},)
    log = RequestLog(service=SVC, since=now - timedelta(minutes=10), total_seen=total, total_capped=False,
                     errors_503=0 if latest_503 is None else 3, errors_capped=False, examples=examples)
    return CleanWindow(service=SVC, now=now, window_seconds=600, clock_scale=scale, last_change=CHANGE, log=log)


class Clock:
    """Time that passes only when the soak waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_a_clean_window_needs_no_wait() -> None:
    clock, lines = Clock(), list[str]()
    clean = {SVC: window(11, latest_503=None)}
    assert soak(clean, lambda: clean, 15, 20, wait=clock.wait, progress=lines.append, clock=clock) is clean
    assert clock.waits == [] and lines == []


def test_a_503_after_the_last_change_is_not_waited_for() -> None:
    clock, lines = Clock(), list[str]()
    failing = {SVC: window(5, latest_503=CHANGE + timedelta(minutes=1))}
    assert soak(failing, lambda: failing, 15, 20, wait=clock.wait, progress=lines.append, clock=clock) is failing
    assert clock.waits == []


def test_it_waits_until_the_old_503s_leave_the_window_saying_so_each_time() -> None:
    clock, lines = Clock(), list[str]()
    looks = iter([window(9.4), window(10.6, latest_503=None)])  # then 6 s to go, then clean
    first = window(2)   # 503-free for 2.5 min of 10: 450 s to go
    out = soak({SVC: first}, lambda: {SVC: next(looks)}, 15, 20, wait=clock.wait, progress=lines.append, clock=clock)
    log = out[SVC].log
    assert log is not None and log.errors_503 == 0
    assert clock.waits == [450.0, SOAK_MIN_PAUSE_SECONDS]  # what the window still needs, never under the minimum
    assert lines[0] == (f"soak: {SVC}: 503-free for 2 min 30 s of 10 min (50 requests); next look in 450 s "
                        "(gives up in 900 s)")
    assert len(lines) == 2


def test_it_gives_up_at_the_deadline_with_the_window_as_it_is() -> None:
    clock, lines = Clock(), list[str]()
    stuck = {SVC: window(2)}
    out = soak(stuck, lambda: stuck, 1, 20, wait=clock.wait, progress=lines.append, clock=clock)
    assert out is stuck
    assert clock.waits == [60.0]  # one minute at most: the last pause is cut to the deadline


def test_a_faster_twin_clock_waits_fewer_real_seconds() -> None:
    clock, lines = Clock(), list[str]()
    looks = iter([window(1, latest_503=None, scale=10)])
    # 15 real seconds after the change (and its last 503) are 150 s of twin time: 450 twin s to go,
    # 45 real ones; the 15 minutes of --soak are 90 real seconds
    soak({SVC: window(0.25, latest_503=CHANGE, scale=10)}, lambda: {SVC: next(looks)}, 15, 20, wait=clock.wait,
         progress=lines.append, clock=clock)
    assert clock.waits == [45.0]
    assert lines[0].endswith("next look in 45 s (gives up in 90 s)")
