"""goldenpath.polling: how far apart the looks of a wait are, on a clock the test moves."""

from __future__ import annotations

import pytest

from goldenpath import polling


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(polling.time, "monotonic", c)
    return c


def test_delay_is_the_floor_then_a_tenth_of_the_time_waited() -> None:
    assert polling.delay(0) == 0.5
    assert polling.delay(4.9) == 0.5
    assert polling.delay(30) == pytest.approx(3.0)


def test_a_look_s_own_time_is_counted_in_the_delay(clock: Clock) -> None:
    pauses = polling.delays()
    clock.now += 0.3                      # the first look took 0.3 s
    assert next(pauses) == pytest.approx(0.2)   # the second starts 0.5 s after the first did
    clock.now += 0.2 + 0.1                # the pause, then a look of 0.1 s
    assert next(pauses) == pytest.approx(0.4)


def test_a_look_longer_than_the_delay_is_followed_at_once(clock: Clock) -> None:
    pauses = polling.delays()
    clock.now += 0.7
    assert next(pauses) == 0.0
    clock.now += 0.05
    assert next(pauses) == pytest.approx(0.45)


def test_later_in_a_long_wait_the_delay_grows_and_the_last_look_is_at_the_deadline(clock: Clock) -> None:
    start = clock.now
    pauses = polling.delays(deadline=start + 24)
    clock.now += 0.1
    assert next(pauses) == pytest.approx(0.4)   # the second look at +0.5 s
    clock.now = start + 20.0                    # it took 19.5 s
    assert next(pauses) == 0.0
    clock.now += 0.1                            # the third look, at +20 s, took 0.1 s
    assert next(pauses) == pytest.approx(2.01 - 0.1)  # 10 % of the 20.1 s waited, from the look's start
    clock.now = start + 22.01 + 0.1
    assert next(pauses) == pytest.approx(24 - 22.11)  # the delay (2.2 s) would pass the deadline
    clock.now = start + 24.5
    assert next(pauses) == 0.0


class Drifting(Clock):
    """A clock that moves on at each read by ``drift``: 5 ms once the wait has begun, as between two
    reads when other threads hold the interpreter lock (a phase's steps run in threads side by side).
    retry_target reads it after the pause was computed; with its deadline the wait's own end, that
    lag made the pause to the end look past it, and the wait gave up one pause early."""

    def __init__(self) -> None:
        super().__init__()
        self.drift = 0.0

    def __call__(self) -> float:
        self.now += self.drift
        return self.now


@pytest.mark.parametrize("wait", [2.0, 60.0, 600.0])
def test_a_retry_paced_by_polling_looks_last_at_the_end_of_the_wait_and_then_stops(
        monkeypatch: pytest.MonkeyPatch, wait: float) -> None:
    from google.api_core import exceptions, retry

    clock = Drifting()
    monkeypatch.setattr(polling.time, "monotonic", clock)  # the time module: api_core's clock too

    def sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr(polling.time, "sleep", sleep)
    start, looks = clock.now, []

    def look() -> None:
        clock.drift = 0.005
        looks.append(clock.now - start)
        raise exceptions.NotFound("not yet")

    pauses, timeout = polling.retrying(wait)
    with pytest.raises(exceptions.RetryError):
        retry.retry_target(look, retry.if_exception_type(exceptions.NotFound), pauses, timeout=timeout)
    assert looks[-1] == pytest.approx(wait, abs=0.05)  # the last look at the end of the wait, not a pause before
    assert looks[-2] < wait - 0.05  # and only one there
    gaps = [b - a for a, b in zip(looks, looks[1:])]
    assert all(gap <= max(polling.FLOOR, polling.FRACTION * t) + 0.05 for gap, t in zip(gaps, looks[1:]))
