"""Phase-1 criteria as pure functions of observations: status and the reason an operator reads."""

from __future__ import annotations

from dataclasses import replace

import math
from datetime import datetime, timezone

from goldenpath.config import Thresholds
from goldenpath.criteria import phase1 as c
from goldenpath.observations import (
    Burst,
    RequestLog,
    RevisionState,
    Sample,
    ServiceObservation,
    ServiceState,
    TrafficShare,
)
from goldenpath.verdict import Status

SVC = "netra-backend-staging"
OLD = "netra-backend-staging-00749-6tr"
NEW = "netra-backend-staging-00750-69k"
ANCIENT = "netra-backend-staging-00748-q2d"
URL = "https://api.staging.netrasystems.ai/health"
SINCE = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
THRESHOLDS = Thresholds()  # health 2 s, min_requests 20


# ---- builders ------------------------------------------------------------------------------

def service(*split: tuple[str, int], name: str = SVC, latest: str = NEW, reconciling: bool = False,
            ready: bool = True, ready_message: str = "READY") -> ServiceState:
    shares = tuple(TrafficShare(r, p) for r, p in split)
    full = f"projects/netra-staging/locations/us-central1/services/{name}"
    return ServiceState(
        name=name, full_name=full, serving=shares, requested=shares,
        latest_ready=latest, latest_created=latest, reconciling=reconciling, ready=ready,
        ready_message=ready_message, etag="etag-1", generation=3, observed_generation=3,
        update_time=SINCE, raw={"name": full},
    )


def revision(name: str, min_instances: int = 0, service_name: str = SVC) -> RevisionState:
    full = f"projects/netra-staging/locations/us-central1/services/{service_name}/revisions/{name}"
    return RevisionState(name=name, full_name=full, create_time=SINCE, min_instances=min_instances,
                         ready=True, raw={"name": full, "scaling": {"minInstanceCount": min_instances}})


def burst(*samples: tuple[int | None, float] | tuple[int | None, float, str | None]) -> Burst:
    out = []
    for s in samples:
        status, seconds, *rest = s
        out.append(Sample(status, seconds, rest[0] if rest else None))
    return Burst(URL, 0.0, tuple(out))


def ok_burst(n: int = 20, seconds: float = 0.1) -> Burst:
    return burst(*[(200, seconds)] * n)


def request_log(total: int = 50, errors: int = 0, *, examples: tuple[dict, ...] = (),
                capped: bool = False, errors_capped: bool = False, name: str = SVC) -> RequestLog:
    return RequestLog(service=name, since=SINCE, total_seen=total, total_capped=capped,
                      errors_503=errors, errors_capped=errors_capped, examples=examples)


# ---- single_active_revision ----------------------------------------------------------------

def test_two_revisions_fifty_fifty_fail_with_the_split_in_the_reason() -> None:
    v = c.single_active_revision(service((OLD, 50), (NEW, 50)))
    assert v.status is Status.FAIL
    assert v.criterion == c.SINGLE_ACTIVE_REVISION and v.subject == SVC
    assert (f"2 revisions serve traffic: {OLD} 50 %, {NEW} 50 %; expected one revision at 100 %"
            in v.reason)
    assert v.reason.startswith(f"{SVC}: ")


def test_zero_percent_shares_do_not_count_as_serving() -> None:
    v = c.single_active_revision(service((OLD, 0), (NEW, 100)))
    assert v.status is Status.PASS


def test_one_revision_at_100_but_not_the_latest_ready_fails() -> None:
    v = c.single_active_revision(service((OLD, 100), latest=NEW))
    assert v.status is Status.FAIL
    assert f"{OLD} serves 100 % but the latest ready revision is {NEW}" in v.reason
    assert "expected the latest ready revision to serve" in v.reason


def test_reconciling_service_fails() -> None:
    v = c.single_active_revision(service((NEW, 100), reconciling=True))
    assert v.status is Status.FAIL
    assert "still reconciling" in v.reason and "expected a settled service" in v.reason


def test_not_ready_service_fails_with_its_message() -> None:
    v = c.single_active_revision(service((NEW, 100), ready=False, ready_message="Revision failed to start"))
    assert v.status is Status.FAIL
    assert "not ready (Revision failed to start)" in v.reason and "expected Ready" in v.reason


def test_latest_ready_at_100_settled_and_ready_passes() -> None:
    v = c.single_active_revision(service((NEW, 100)))
    assert v.status is Status.PASS
    assert v.passed and not v.failed
    assert f"{NEW} serves 100 % and is the latest ready revision" in v.reason
    assert v.line().startswith(f"PASS single_active_revision [{SVC}]")


def test_no_serving_revision_at_all_fails() -> None:
    v = c.single_active_revision(service())
    assert v.status is Status.FAIL
    assert "0 revisions serve traffic: no revision" in v.reason


# ---- no_503 ----------------------------------------------------------------------------------

def test_a_503_in_the_burst_fails() -> None:
    b = burst(*[(200, 0.1)] * 19, (503, 0.2))
    v = c.no_503(service((NEW, 100)), b, request_log(total=50), THRESHOLDS)
    assert v.status is Status.FAIL
    assert f"1 of 20 concurrent requests to {URL} answered 503" in v.reason
    assert v.reason.endswith("; expected none")


def test_503s_in_the_log_with_a_clean_burst_fail() -> None:
    log = request_log(total=50, errors=7, examples=({"time": "12:01", "revision": OLD},
                                                   {"time": "12:02", "revision": OLD}))
    v = c.no_503(service((NEW, 100)), ok_burst(), log, THRESHOLDS)
    assert v.status is Status.FAIL
    assert "the request log shows 7 503s since 12:00:00 UTC" in v.reason
    assert f"(from {OLD})" in v.reason
    assert "concurrent requests" not in v.reason  # the burst was clean, so it is not blamed
    assert "expected none" in v.reason


def test_capped_503_count_is_shown_as_at_least() -> None:
    v = c.no_503(service((NEW, 100)), ok_burst(), request_log(errors=100, errors_capped=True), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "100+ 503s" in v.reason


def test_clean_but_too_little_traffic_is_inconclusive_never_pass() -> None:
    v = c.no_503(service((NEW, 100)), ok_burst(), request_log(total=THRESHOLDS.min_requests - 1), THRESHOLDS)
    assert v.status is Status.INCONCLUSIVE
    assert not v.passed
    assert f"holds only {THRESHOLDS.min_requests - 1} requests" in v.reason
    assert f"at least {THRESHOLDS.min_requests} needed" in v.reason


def test_clean_with_no_traffic_at_all_is_inconclusive() -> None:
    v = c.no_503(service((NEW, 100)), ok_burst(), request_log(total=0), THRESHOLDS)
    assert v.status is Status.INCONCLUSIVE


def test_clean_and_enough_traffic_passes() -> None:
    v = c.no_503(service((NEW, 100)), ok_burst(), request_log(total=THRESHOLDS.min_requests, capped=True),
                 THRESHOLDS)
    assert v.status is Status.PASS
    assert "no 503 in 20 concurrent requests nor in the request log since 12:00:00 UTC" in v.reason
    assert f"({THRESHOLDS.min_requests}+ requests)" in v.reason


def test_min_requests_threshold_is_the_targets_own() -> None:
    strict = Thresholds(min_requests=100)
    v = c.no_503(service((NEW, 100)), ok_burst(), request_log(total=99), strict)
    assert v.status is Status.INCONCLUSIVE
    assert "at least 100 needed" in v.reason


# ---- health_fast -----------------------------------------------------------------------------

def test_fast_all_200_passes() -> None:
    # nearest rank: the 19th of 20 sorted samples is p95, so one slower answer is only the max
    v = c.health_fast(service((NEW, 100)), burst(*[(200, 0.1)] * 18, (200, 0.4), (200, 1.9)), THRESHOLDS)
    assert v.status is Status.PASS
    assert "p95 0.40 s, max 1.90 s over 20 requests, all 200" in v.reason
    assert URL in v.reason


def test_one_slow_sample_fails_and_mentions_the_2_second_limit() -> None:
    v = c.health_fast(service((NEW, 100)), burst(*[(200, 0.1)] * 19, (200, 2.5)), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "max 2.50 s" in v.reason
    assert "expected every answer under 2 s" in v.reason


def test_exactly_at_the_limit_is_not_under_it() -> None:
    v = c.health_fast(service((NEW, 100)), burst(*[(200, 0.1)] * 19, (200, 2.0)), THRESHOLDS)
    assert v.status is Status.FAIL


def test_a_non_200_answer_fails_even_when_fast() -> None:
    v = c.health_fast(service((NEW, 100)), burst(*[(200, 0.1)] * 19, (503, 0.1)), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "answers other than 200: 503 ×1" in v.reason


def test_no_answer_at_all_timeout_fails() -> None:
    v = c.health_fast(service((NEW, 100)), burst(*[(200, 0.1)] * 19, (None, 0.5, "timeout")), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "timeout ×1" in v.reason


def test_empty_burst_is_not_a_pass() -> None:
    v = c.health_fast(service((NEW, 100)), burst(), THRESHOLDS)
    assert v.status is Status.FAIL


# ---- no_contention ---------------------------------------------------------------------------

def test_tagged_revision_with_min_instances_fails_naming_it() -> None:
    svc = service((NEW, 100))
    svc = replace(svc, raw={**svc.raw, "trafficStatuses": [
        {"revision": NEW, "percent": 100}, {"revision": OLD, "percent": 0, "tag": "canary"}]})
    v = c.no_contention(svc, [revision(OLD, min_instances=1), revision(NEW, min_instances=1)])
    assert v.status is Status.FAIL
    assert f"{OLD} (min instances 1 (tagged))" in v.reason
    assert NEW + " (" not in v.reason  # the serving revision may hold instances


def test_untagged_revision_at_zero_percent_holds_no_min_instances() -> None:
    # Cloud Run starts minimum instances only for addressable revisions (traffic or a tag).
    svc = service((NEW, 100))
    v = c.no_contention(svc, [revision(OLD, min_instances=1), revision(NEW, min_instances=1)])
    assert v.status is Status.PASS
    assert v.evidence["revisions"][OLD] == {"min_instances": 1, "provisioned_min": 0, "addressable": False}


def test_two_serving_revisions_both_contend() -> None:
    svc = service((OLD, 50), (NEW, 50))
    v = c.no_contention(svc, [revision(OLD, min_instances=1), revision(NEW)])
    assert v.status is Status.FAIL
    assert f"{OLD} (50 % of traffic, min instances 1)" in v.reason
    assert f"{NEW} (50 % of traffic)" in v.reason


def test_old_revisions_with_no_traffic_and_min_zero_pass() -> None:
    svc = service((NEW, 100))
    v = c.no_contention(svc, [revision(ANCIENT), revision(OLD), revision(NEW, min_instances=1)])
    assert v.status is Status.PASS
    assert f"only {NEW} holds traffic or minimum instances" in v.reason


# ---- evaluate --------------------------------------------------------------------------------

def _observations() -> dict[str, ServiceObservation]:
    backend = ServiceObservation(
        service=service((OLD, 50), (NEW, 50)),
        revisions=(revision(OLD, 1), revision(NEW, 1)),
        burst=ok_burst(), request_log=request_log(total=50),
    )
    auth = ServiceObservation(
        service=service(("auth-00311-k8x", 100), name="auth-service-staging", latest="auth-00311-k8x"),
        revisions=(revision("auth-00311-k8x", 1, "auth-service-staging"),),
        burst=None, request_log=None,
    )
    return {SVC: backend, "auth-service-staging": auth}


def test_evaluate_all_criteria_for_all_services() -> None:
    verdicts = c.evaluate(_observations(), THRESHOLDS)
    got = [(v.subject, v.criterion) for v in verdicts]
    assert got == [
        (SVC, c.SINGLE_ACTIVE_REVISION), (SVC, c.NO_503), (SVC, c.HEALTH_FAST), (SVC, c.NO_CONTENTION),
        # no health URL: no burst, so neither no_503 nor health_fast is judged
        ("auth-service-staging", c.SINGLE_ACTIVE_REVISION), ("auth-service-staging", c.NO_CONTENTION),
    ]


def test_evaluate_only_some_criteria() -> None:
    verdicts = c.evaluate(_observations(), THRESHOLDS, criteria=[c.HEALTH_FAST, c.NO_CONTENTION])
    assert [(v.subject, v.criterion) for v in verdicts] == [
        (SVC, c.HEALTH_FAST), (SVC, c.NO_CONTENTION), ("auth-service-staging", c.NO_CONTENTION)]


def test_evaluate_only_some_subjects() -> None:
    verdicts = c.evaluate(_observations(), THRESHOLDS, subjects=["auth-service-staging"])
    assert {v.subject for v in verdicts} == {"auth-service-staging"}
    assert all(v.status is Status.PASS for v in verdicts)


def test_evaluate_with_no_subjects_judges_nothing() -> None:
    assert c.evaluate(_observations(), THRESHOLDS, subjects=[]) == []


# ---- Burst -----------------------------------------------------------------------------------

def test_percentile_is_nearest_rank_never_interpolated() -> None:
    b = burst(*[(200, float(x)) for x in (7, 1, 10, 3, 2, 9, 4, 6, 5, 8)])  # 1..10, unsorted
    assert b.percentile(0.5) == 5.0
    assert b.percentile(0.9) == 9.0
    assert b.percentile(0.95) == 10.0
    assert b.percentile(0.1) == 1.0
    assert b.percentile(0.0) == 1.0
    assert b.percentile(1.0) == 10.0
    assert b.max_seconds == 10.0


def test_p95_is_the_ceil_rank_for_every_burst_size() -> None:
    # burst_size is 1..200; float rounding of 0.95 * n must never push the rank one up
    for n in range(1, 201):
        b = burst(*[(200, float(i)) for i in range(1, n + 1)])
        assert b.percentile(0.95) == float(-(-95 * n // 100)), n


def test_percentile_of_no_samples_is_nan() -> None:
    assert math.isnan(burst().percentile(0.95))
    assert math.isnan(burst().max_seconds)


def test_statuses_counts_errors_by_name() -> None:
    b = burst((200, 0.1), (503, 0.1), (None, 1.0, "timeout"), (None, 1.0, None), (200, 0.1))
    assert b.statuses() == {"200": 2, "503": 1, "error": 1, "timeout": 1}
