"""The Success Confirmation's own criteria: the 503-free window, and one item from several verdicts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from goldenpath.criteria import confirmation as c
from goldenpath.observations import CleanWindow, RequestLog
from goldenpath.verdict import Status, Verdict

SVC = "netra-backend-staging"
REV = "netra-backend-staging-00750-69k"
NOW = datetime(2025, 1, 1, 12, 10, 0, tzinfo=timezone.utc)
CHANGE = datetime(2025, 1, 1, 12, 5, 0, tzinfo=timezone.utc)   # the service's last update
MIN_REQUESTS = 20                                                # Thresholds().min_requests


# ---- builders ------------------------------------------------------------------------------

def example(at: datetime, *, z: bool = False) -> dict[str, object]:
    """One 503 entry as goldenpath.gcp.logging reports it (``z``: an RFC 3339 "Z" timestamp)."""
    stamp = at.isoformat().replace("+00:00", "Z") if z else at.isoformat()
    return {"time": stamp, "revision": REV, "url": "https://api.staging.netrasystems.ai/health"}


def request_log(total: int = 50, errors: int = 0, *, latest: datetime | None = None, older: int = 0,
                capped: bool = False, errors_capped: bool = False, z: bool = False,
                since: datetime = NOW - timedelta(minutes=10)) -> RequestLog:
    """``latest``: the newest 503 (examples come newest first); ``older``: more examples before it."""
    examples: tuple[dict[str, object], ...] = ()
    if latest is not None:
        examples = tuple(example(latest - timedelta(seconds=5 * i), z=z) for i in range(1 + older))
    return RequestLog(service=SVC, since=since, total_seen=total, total_capped=capped,
                      errors_503=errors, errors_capped=errors_capped, examples=examples)


def window(log: RequestLog, *, now: datetime = NOW, last_change: datetime = CHANGE,
           window_seconds: float = 600, scale: float = 1.0) -> CleanWindow:
    return CleanWindow(service=SVC, now=now, window_seconds=window_seconds, clock_scale=scale,
                       last_change=last_change, log=log)


def verdict(status: Status, reason: str = "", value: str | None = None, subject: str = "x") -> Verdict:
    evidence = {"value": value} if value is not None else {}
    return Verdict("some_criterion", subject, status, reason or f"{subject}: {status.value}", evidence)


# ---- ITEMS ---------------------------------------------------------------------------------

def test_items_are_the_runbooks_five_in_its_order() -> None:
    assert list(c.ITEMS) == [c.HEALTH, c.WEBSOCKET, c.ZERO_503, c.DATABASE, c.GOLDEN_PATH]
    assert c.ITEMS[c.ZERO_503] == "Zero HTTP 503 errors for 10 minutes"
    assert c.ITEMS[c.DATABASE] == "Database utilization < 75%"


# ---- duration ------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (45, "45 s"), (59, "59 s"), (60, "1 min"), (61, "1 min 1 s"), (192, "3 min 12 s"),
    (600, "10 min"), (3600, "60 min"),
])
def test_duration_reads_in_minutes_and_seconds(seconds: float, text: str) -> None:
    assert c.duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (44.4, "44 s"), (44.6, "45 s"), (59.6, "1 min"), (191.7, "3 min 12 s"), (599.9, "10 min"), (0.3, "0 s"),
])
def test_duration_rounds_to_the_nearest_second_before_splitting(seconds: float, text: str) -> None:
    # 59.6 s is "1 min", never "0 min 60 s" nor "60 s"
    assert c.duration(seconds) == text


# ---- zero_503: no 503 ----------------------------------------------------------------------

def test_no_503_with_enough_requests_passes() -> None:
    v = c.zero_503(window(request_log(total=50)), MIN_REQUESTS)
    assert v.status is Status.PASS
    assert v.criterion == c.ZERO_503 and v.subject == SVC
    assert v.reason == f"{SVC}: no 503 in the last 10 min (50 requests)"
    assert v.evidence["clean_seconds"] == 600
    assert v.value == "503-free for 10 min of 10 min (50 requests)"


def test_exactly_the_minimum_of_requests_is_enough() -> None:
    v = c.zero_503(window(request_log(total=MIN_REQUESTS)), MIN_REQUESTS)
    assert v.status is Status.PASS


def test_capped_request_count_is_shown_with_a_plus() -> None:
    v = c.zero_503(window(request_log(total=20, capped=True)), MIN_REQUESTS)
    assert v.status is Status.PASS
    assert "(20+ requests)" in v.reason
    assert v.value == "503-free for 10 min of 10 min (20+ requests)"
    assert v.evidence["request_log"]["requests_seen"] == "20+"


def test_no_503_but_too_little_traffic_is_inconclusive_naming_count_and_minimum() -> None:
    v = c.zero_503(window(request_log(total=7)), MIN_REQUESTS)
    assert v.status is Status.INCONCLUSIVE
    assert "no 503 in the last 10 min, but only 7 requests were logged" in v.reason
    assert f"at least {MIN_REQUESTS} are needed" in v.reason
    assert v.value == "503-free for 10 min of 10 min (7 requests)"


def test_minimum_is_the_callers_threshold() -> None:
    v = c.zero_503(window(request_log(total=99)), 100)
    assert v.status is Status.INCONCLUSIVE
    assert "only 99 requests" in v.reason and "at least 100 are needed" in v.reason


def test_no_traffic_at_all_is_not_a_pass() -> None:
    v = c.zero_503(window(request_log(total=0)), MIN_REQUESTS)
    assert v.status is Status.INCONCLUSIVE
    assert "only 0 requests" in v.reason


# ---- zero_503: 503s before the last change (history) ----------------------------------------

def test_503s_before_the_last_change_are_not_yet_clean() -> None:
    latest = CHANGE - timedelta(minutes=1)  # 12:04:00; now 12:10:00 → 6 min clean
    v = c.zero_503(window(request_log(errors=3, latest=latest, older=2)), MIN_REQUESTS)
    assert v.status is Status.INCONCLUSIVE
    assert v.reason.startswith(f"{SVC}: not yet clean: 503-free for 6 min of 10 min")
    assert "the 3 503s in the window (latest 12:04:00 UTC)" in v.reason
    assert "predate the last change to the service at 12:05:00 UTC" in v.reason
    assert "--soak" in v.reason
    assert v.evidence["clean_seconds"] == 360
    assert v.value == "503-free for 6 min of 10 min (50 requests)"


def test_the_newest_example_dates_the_window_not_an_older_one() -> None:
    # examples come newest first (the log is read in descending order)
    latest = NOW - timedelta(minutes=7, seconds=30)
    v = c.zero_503(window(request_log(errors=5, latest=latest, older=4)), MIN_REQUESTS)
    assert v.evidence["clean_seconds"] == 450
    assert "503-free for 7 min 30 s of 10 min" in v.reason


def test_a_503_at_the_very_moment_of_the_change_is_history() -> None:
    v = c.zero_503(window(request_log(errors=1, latest=CHANGE)), MIN_REQUESTS)
    assert v.status is Status.INCONCLUSIVE
    assert "503-free for 5 min of 10 min" in v.reason


def test_not_yet_clean_at_clock_scale_10_counts_target_time() -> None:
    # a sped-up twin: 30 real seconds are 300 target seconds, half the 10-minute window
    latest = NOW - timedelta(seconds=30)
    v = c.zero_503(window(request_log(errors=2, latest=latest), last_change=NOW - timedelta(seconds=10),
                          scale=10), MIN_REQUESTS)
    assert v.status is Status.INCONCLUSIVE
    assert "not yet clean: 503-free for 5 min of 10 min" in v.reason
    assert v.evidence["clean_seconds"] == 300
    assert v.evidence["clock_scale"] == 10
    assert v.value == "503-free for 5 min of 10 min (50 requests)"


def test_not_yet_clean_at_clock_scale_10_with_seconds_left_over() -> None:
    latest = NOW - timedelta(seconds=19.2)  # 192 target seconds
    v = c.zero_503(window(request_log(errors=1, latest=latest), last_change=NOW - timedelta(seconds=5),
                          scale=10), MIN_REQUESTS)
    assert "503-free for 3 min 12 s of 10 min" in v.reason
    assert v.evidence["clean_seconds"] == 192


def test_clock_scale_1_counts_real_time() -> None:
    latest = NOW - timedelta(seconds=30)
    v = c.zero_503(window(request_log(errors=2, latest=latest), last_change=NOW - timedelta(seconds=10)),
                   MIN_REQUESTS)
    assert "503-free for 30 s of 10 min" in v.reason
    assert v.evidence["clean_seconds"] == 30


# ---- zero_503: 503s after the last change (failure) -----------------------------------------

def test_503s_after_the_last_change_fail_naming_count_time_and_clean_span() -> None:
    latest = NOW - timedelta(seconds=30)  # 12:09:30, after the 12:05:00 change
    v = c.zero_503(window(request_log(errors=3, latest=latest, older=2)), MIN_REQUESTS)
    assert v.status is Status.FAIL
    assert v.reason == (f"{SVC}: 3 503s in the last 10 min, the latest at 12:09:30 UTC, after the last change "
                        "to the service (12:05:00 UTC); 503-free for only 30 s")
    assert v.evidence["clean_seconds"] == 30
    assert v.value == "503-free for 30 s of 10 min (50 requests)"


def test_a_503_fails_even_with_too_little_traffic() -> None:
    v = c.zero_503(window(request_log(total=3, errors=1, latest=NOW - timedelta(minutes=2))), MIN_REQUESTS)
    assert v.status is Status.FAIL
    assert "1 503s in the last 10 min" in v.reason
    assert "503-free for only 2 min" in v.reason


def test_capped_503_count_is_shown_with_a_plus() -> None:
    v = c.zero_503(window(request_log(errors=100, errors_capped=True, latest=NOW - timedelta(seconds=3))),
                   MIN_REQUESTS)
    assert v.status is Status.FAIL
    assert "100+ 503s in the last 10 min" in v.reason
    assert v.evidence["request_log"]["http_503"] == "100+"


def test_failure_at_clock_scale_10_reports_target_time() -> None:
    latest = NOW - timedelta(seconds=12)  # 120 target seconds
    v = c.zero_503(window(request_log(errors=4, latest=latest), last_change=NOW - timedelta(seconds=50),
                          scale=10), MIN_REQUESTS)
    assert v.status is Status.FAIL
    assert "503-free for only 2 min" in v.reason
    assert v.evidence["clean_seconds"] == 120


def test_rfc3339_z_timestamps_are_read() -> None:
    latest = NOW - timedelta(seconds=30)
    v = c.zero_503(window(request_log(errors=1, latest=latest, z=True)), MIN_REQUESTS)
    assert v.status is Status.FAIL
    assert "the latest at 12:09:30 UTC" in v.reason
    assert v.evidence["clean_seconds"] == 30


def test_503s_with_no_example_to_date_them_count_as_now() -> None:
    # Unknown when: never assumed to be history, so a failure with nothing clean.
    v = c.zero_503(window(request_log(errors=2)), MIN_REQUESTS)
    assert v.status is Status.FAIL
    assert "503-free for only 0 s" in v.reason
    assert v.evidence["clean_seconds"] == 0


def test_clean_seconds_are_rounded_to_a_tenth() -> None:
    latest = NOW - timedelta(seconds=30.04)
    v = c.zero_503(window(request_log(errors=1, latest=latest)), MIN_REQUESTS)
    assert v.evidence["clean_seconds"] == 30.0


# ---- zero_503: the window's length and the evidence -------------------------------------------

def test_a_five_minute_window_is_named_as_such() -> None:
    passed = c.zero_503(window(request_log(), window_seconds=300), MIN_REQUESTS)
    assert passed.reason == f"{SVC}: no 503 in the last 5 min (50 requests)"
    assert passed.value == "503-free for 5 min of 5 min (50 requests)"
    assert passed.evidence["clean_seconds"] == 300

    waiting = c.zero_503(window(request_log(errors=1, latest=NOW - timedelta(minutes=3)),
                                last_change=NOW - timedelta(minutes=2), window_seconds=300), MIN_REQUESTS)
    assert waiting.status is Status.INCONCLUSIVE
    assert "not yet clean: 503-free for 3 min of 5 min" in waiting.reason
    assert waiting.value == "503-free for 3 min of 5 min (50 requests)"

    failed = c.zero_503(window(request_log(errors=1, latest=NOW - timedelta(minutes=1)),
                               last_change=NOW - timedelta(minutes=2), window_seconds=300), MIN_REQUESTS)
    assert failed.status is Status.FAIL
    assert "1 503s in the last 5 min" in failed.reason
    assert failed.value == "503-free for 1 min of 5 min (50 requests)"


def test_evidence_holds_the_log_summary_window_scale_and_last_change() -> None:
    log = request_log(errors=1, latest=NOW - timedelta(seconds=30))
    v = c.zero_503(window(log, scale=4), MIN_REQUESTS)
    assert v.evidence["request_log"] == log.summary()
    assert v.evidence["window_seconds"] == 600
    assert v.evidence["clock_scale"] == 4
    assert v.evidence["last_change"] == CHANGE.isoformat()


# ---- all_of --------------------------------------------------------------------------------

def test_all_of_nothing_is_inconclusive() -> None:
    v = c.all_of(c.HEALTH, "health endpoints", [])
    assert v.status is Status.INCONCLUSIVE
    assert v.criterion == c.HEALTH and v.subject == "health endpoints"
    assert v.reason == "health endpoints: nothing to check (none configured)"


def test_all_of_all_passing_passes() -> None:
    parts = [verdict(Status.PASS, subject=s) for s in "abc"]
    v = c.all_of(c.HEALTH, "health endpoints", parts)
    assert v.status is Status.PASS
    assert v.reason == "health endpoints: all 3 pass"
    assert v.value == "3/3"
    assert v.evidence["parts"] == [p.line() for p in parts]


def test_all_of_any_failure_fails_with_only_the_failures_reasons() -> None:
    parts = [verdict(Status.PASS, "a: fine"), verdict(Status.FAIL, "b: broken"),
             verdict(Status.INCONCLUSIVE, "c: unsure"), verdict(Status.FAIL, "d: broken too")]
    v = c.all_of(c.WEBSOCKET, "sockets", parts)
    assert v.status is Status.FAIL
    assert v.reason == "sockets: b: broken; d: broken too"


def test_all_of_inconclusive_without_failure_is_inconclusive() -> None:
    parts = [verdict(Status.PASS, "a: fine"), verdict(Status.INCONCLUSIVE, "b: unsure"),
             verdict(Status.PASS, "c: fine")]
    v = c.all_of(c.ZERO_503, "services", parts)
    assert v.status is Status.INCONCLUSIVE
    assert v.reason == "services: b: unsure"
    assert v.value == "2/3"


def test_all_of_failures_only_value_counts_the_rest() -> None:
    parts = [verdict(Status.FAIL, "a: bad"), verdict(Status.PASS, "b: fine")]
    v = c.all_of(c.HEALTH, "h", parts)
    assert v.value == "1/2"


def test_all_of_a_single_verdict_is_that_verdict() -> None:
    v = c.all_of(c.HEALTH, "h", [verdict(Status.INCONCLUSIVE, "a: unsure")])
    assert v.status is Status.INCONCLUSIVE
    assert v.reason == "h: a: unsure"
    assert v.value == "0/1"


def test_all_of_value_counts_passes_not_non_failures() -> None:
    parts = [verdict(Status.FAIL, "a: bad"), verdict(Status.INCONCLUSIVE, "b: unsure"),
             verdict(Status.PASS, "c: fine")]
    v = c.all_of(c.HEALTH, "h", parts)
    assert v.status is Status.FAIL
    assert v.value == "1/3"
