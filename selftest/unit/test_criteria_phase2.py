"""Phase-2 criteria as pure functions of observations: connector, database, connector logs, certificates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from goldenpath.config import Connector, Target, Thresholds
from goldenpath.criteria import phase2 as c
from goldenpath.observations import (
    CertificateState,
    ConnectorLog,
    ConnectorMetrics,
    ConnectorState,
    MetricSeries,
    Phase2Observation,
    SqlInstanceState,
    TlsResult,
)
from goldenpath.verdict import Status

PROJECT, REGION = "netra-staging", "us-central1"
CONNECTOR = "staging-connector"
INSTANCE = "netra-staging-db"
CERT = "staging-ssl-cert"
API = "api.staging.netrasystems.ai"
WS = "api-staging.netrasystems.ai"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
SINCE = NOW - timedelta(minutes=15)
THRESHOLDS = Thresholds()  # utilization 75 %, escalation 90 %, min_points 3, certificate 21 days
EXPECTED = Connector(name=CONNECTOR, min_instances=4, max_instances=10, machine_type="e2-standard-4")


# ---- builders ------------------------------------------------------------------------------

def connector(min_instances: int = 4, max_instances: int = 10, machine_type: str = "e2-standard-4",
              state: str = "READY") -> ConnectorState:
    full = f"projects/{PROJECT}/locations/{REGION}/connectors/{CONNECTOR}"
    return ConnectorState(name=CONNECTOR, full_name=full, state=state, machine_type=machine_type,
                          min_instances=min_instances, max_instances=max_instances,
                          raw={"name": full, "state": state, "machineType": machine_type,
                               "minInstances": min_instances, "maxInstances": max_instances})


def instance(*flags: tuple[str, str], tier: str = "db-custom-2-7680") -> SqlInstanceState:
    return SqlInstanceState(name=INSTANCE, state="RUNNABLE", tier=tier, settings_version=41, flags=tuple(flags),
                            raw={"name": INSTANCE})


def max_connections(value: int) -> tuple[str, str]:
    return ("max_connections", str(value))


def backends(*values: float) -> MetricSeries:
    """Points newest first, one a minute, as Cloud Monitoring returns num_backends aligned to 60 s
    periods (each point ends its period) and summed over the instance's three databases."""
    return MetricSeries("cloudsql.googleapis.com/database/postgresql/num_backends",
                        tuple((NOW - timedelta(minutes=i), v) for i, v in enumerate(values)),
                        period_seconds=60, series=3)


def test_db_point_whose_period_began_before_the_change_is_not_judged() -> None:
    # The newest point ends at NOW but averages the minute before it, half of it before the change:
    # it does not describe the changed instance yet, whatever it says.
    changed = NOW - timedelta(seconds=30)
    v = c.db_connections(instance(max_connections(200)), backends(88, 88, 88), THRESHOLDS, since=changed)
    assert v.status is Status.INCONCLUSIVE
    assert "no num_backends point since the change at 11:59:30 UTC yet" in v.reason
    assert "run again shortly" in v.reason


def test_db_point_whose_whole_period_is_after_the_change_is_judged() -> None:
    changed = NOW - timedelta(seconds=60)
    v = c.db_connections(instance(max_connections(200)), backends(88, 170, 170), THRESHOLDS, since=changed)
    assert v.status is Status.PASS
    assert "88 of 200 connections in use (44%" in v.reason
    assert v.evidence["aggregation"] == "ALIGN_MEAN over 60 s, REDUCE_SUM of 3 database series"


def test_db_without_a_change_judges_the_newest_point() -> None:
    v = c.db_connections(instance(max_connections(100)), backends(88, 87, 86), THRESHOLDS, since=None)
    assert v.status is Status.FAIL and "88 of 100 connections in use (88%" in v.reason


BACKEND = "netra-backend-staging"
TIMEOUT = "failed to connect to database: dial tcp 10.20.0.3:5432: i/o timeout"


def connector_log(egress: int = 0, runbook: int = 0, capped: bool = False) -> ConnectorLog:
    examples = tuple([TIMEOUT] * min(egress, 3))
    return ConnectorLog(connector=CONNECTOR, since=SINCE, runbook_errors=runbook, services=(BACKEND,),
                        egress_errors=egress, capped=capped, examples=examples)


def connector_metrics(cpu: tuple[float, ...] = (), instances: tuple[int, ...] = (),
                      mbps: tuple[float, ...] = ()) -> ConnectorMetrics:
    """Points newest first, one a minute."""
    at = [NOW - timedelta(minutes=i) for i in range(max(len(cpu), len(instances), len(mbps)))]
    return ConnectorMetrics(connector=CONNECTOR, since=SINCE,
                            cpu=tuple((at[i], p, p * 0.9) for i, p in enumerate(cpu)),
                            instances=tuple((at[i], n) for i, n in enumerate(instances)),
                            throughput=tuple((at[i], v) for i, v in enumerate(mbps)))


CLEAN: dict[str, Any] = dict(cpu=(0.3, 0.31, 0.29), instances=(4, 4, 4), mbps=(900, 905, 880))


def certificate(*domains: str, status: str = "ACTIVE", expires_in_days: float | None = 60,
                now: datetime = NOW) -> CertificateState:
    domains = domains or (API, WS)
    expiry = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
    return CertificateState(name=CERT, type="MANAGED", status=status, domains=domains, subject_alt_names=domains,
                            expire_time=expiry, raw={"name": CERT, "managed": {"status": status}})


def tls(domain: str = API, verified: bool = True, error: str | None = None, expires_in_days: float | None = 60,
        sans: tuple[str, ...] = (API, WS), now: datetime = NOW) -> TlsResult:
    expiry = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
    return TlsResult(domain=domain, address="34.120.1.1", verified=verified, error=error, subject_alt_names=sans,
                     not_after=expiry)


def target(**extra: object) -> Target:
    data = {"project": PROJECT, "region": REGION, "credentials": "adc",
            "services": [{"name": "netra-backend-staging"}],
            "connector": {"name": CONNECTOR, "min_instances": 4, "max_instances": 10, "machine_type": "e2-standard-4"},
            "database": {"instance": INSTANCE, "max_connections": 200},
            "certificate": {"name": CERT}, "domains": [API, WS], **extra}
    return Target.model_validate(data)


# ---- connector_ready -------------------------------------------------------------------------

def test_ready_connector_with_the_expected_shape_passes() -> None:
    v = c.connector_ready(connector(), EXPECTED)
    assert v.status is Status.PASS
    assert v.criterion == c.CONNECTOR_READY and v.subject == CONNECTOR
    assert f"{CONNECTOR}: READY, 4-10 × e2-standard-4 instances" in v.reason


def test_max_three_where_ten_is_expected_fails_naming_both() -> None:
    expected = Connector(name=CONNECTOR, min_instances=2, max_instances=10, machine_type="e2-standard-4")
    v = c.connector_ready(connector(min_instances=2, max_instances=3), expected)
    assert v.status is Status.FAIL
    assert "max instances 3 (expected 10)" in v.reason
    assert "min instances" not in v.reason and "machine type" not in v.reason
    assert "expected READY with the target's capacity" in v.reason


def test_incident_connector_fails_on_every_part_of_its_shape() -> None:
    v = c.connector_ready(connector(min_instances=2, max_instances=3, machine_type="e2-micro"), EXPECTED)
    assert v.status is Status.FAIL
    assert "max instances 3 (expected 10)" in v.reason
    assert "min instances 2 (expected 4)" in v.reason
    assert "machine type e2-micro (expected e2-standard-4)" in v.reason


def test_other_machine_type_fails() -> None:
    v = c.connector_ready(connector(machine_type="e2-micro"), EXPECTED)
    assert v.status is Status.FAIL
    assert "machine type e2-micro (expected e2-standard-4)" in v.reason
    assert "max instances" not in v.reason and "min instances" not in v.reason


def test_machine_type_is_not_judged_when_the_target_names_none() -> None:
    v = c.connector_ready(connector(machine_type="e2-micro"), Connector(name=CONNECTOR, min_instances=4))
    assert v.status is Status.PASS


def test_more_minimum_instances_than_expected_is_fine() -> None:
    v = c.connector_ready(connector(min_instances=6), EXPECTED)
    assert v.status is Status.PASS


def test_connector_in_error_fails_even_with_the_right_shape() -> None:
    v = c.connector_ready(connector(state="ERROR"), EXPECTED)
    assert v.status is Status.FAIL
    assert "state ERROR" in v.reason
    assert v.reason.startswith(f"{CONNECTOR}: ")


# ---- effective_max_connections ---------------------------------------------------------------

def test_the_flag_wins_when_set() -> None:
    assert c.effective_max_connections(instance(max_connections(100))) == (100, "the max_connections flag")


def test_unset_flag_on_custom_2_7680_is_the_tiers_default_of_400() -> None:
    value, source = c.effective_max_connections(instance(("log_min_duration_statement", "1000")))
    assert value == 400  # 7.5 GB of memory
    assert source == "the default for tier db-custom-2-7680"


def test_f1_micro_default_is_25() -> None:
    value, source = c.effective_max_connections(instance(tier="db-f1-micro"))
    assert value == 25
    assert "db-f1-micro" in source


def test_unknown_tier_has_no_known_default() -> None:
    value, source = c.effective_max_connections(instance(tier="db-perf-optimized-N-8"))
    assert value is None
    assert "db-perf-optimized-N-8" in source and "unknown" in source


# ---- db_connections --------------------------------------------------------------------------

def test_88_of_100_fails_with_count_and_share() -> None:
    v = c.db_connections(instance(max_connections(100)), backends(88, 87, 86), THRESHOLDS)
    assert v.status is Status.FAIL
    assert v.criterion == c.DB_CONNECTIONS and v.subject == INSTANCE
    assert "88 of 100" in v.reason and "88%" in v.reason
    assert "max_connections from the max_connections flag" in v.reason
    assert "expected below 75%" in v.reason
    assert "escalation trigger" not in v.reason  # 88 % is above 75 % but not above 90 %
    assert v.evidence["utilization"] == 0.88


def test_95_of_100_fails_and_names_the_90_percent_escalation_trigger() -> None:
    v = c.db_connections(instance(max_connections(100)), backends(95, 94, 93), THRESHOLDS)
    assert v.status is Status.FAIL
    assert "95 of 100" in v.reason
    assert "above the 90% escalation trigger" in v.reason


def test_88_of_200_passes() -> None:
    v = c.db_connections(instance(max_connections(200)), backends(88, 88, 88), THRESHOLDS)
    assert v.status is Status.PASS
    assert "88 of 200" in v.reason and "44%" in v.reason


def test_tier_default_is_used_and_named_when_the_flag_is_unset() -> None:
    v = c.db_connections(instance(), backends(88, 88, 88), THRESHOLDS)
    assert v.status is Status.PASS
    assert "88 of 400" in v.reason
    assert "the default for tier db-custom-2-7680" in v.reason


def test_fewer_points_than_min_points_is_inconclusive_never_pass() -> None:
    v = c.db_connections(instance(max_connections(200)), backends(10, 10), THRESHOLDS)
    assert v.status is Status.INCONCLUSIVE
    assert not v.passed
    assert "only 2 num_backends points" in v.reason
    assert f"at least {THRESHOLDS.min_points} needed" in v.reason


def test_no_points_at_all_is_inconclusive() -> None:
    v = c.db_connections(instance(max_connections(200)), backends(), THRESHOLDS)
    assert v.status is Status.INCONCLUSIVE


def test_unknown_limit_is_inconclusive() -> None:
    v = c.db_connections(instance(tier="db-perf-optimized-N-8"), backends(10, 10, 10), THRESHOLDS)
    assert v.status is Status.INCONCLUSIVE
    assert "set the flag explicitly" in v.reason


def test_the_newest_point_is_judged_not_an_older_one() -> None:
    # newest first: the connections dropped after remediation, the peak is history
    recovered = c.db_connections(instance(max_connections(100)), backends(40, 95, 95), THRESHOLDS)
    assert recovered.status is Status.PASS
    assert "40 of 100" in recovered.reason and "peak 95" in recovered.reason
    # and the other way round: an old calm point does not hide the current load
    loaded = c.db_connections(instance(max_connections(100)), backends(95, 40, 40), THRESHOLDS)
    assert loaded.status is Status.FAIL
    assert "95 of 100" in loaded.reason


def test_exactly_at_the_utilization_threshold_is_not_below_it() -> None:
    v = c.db_connections(instance(max_connections(100)), backends(75, 75, 75), THRESHOLDS)
    assert v.status is Status.FAIL


def test_min_points_is_the_targets_own() -> None:
    v = c.db_connections(instance(max_connections(200)), backends(10, 10, 10), Thresholds(min_points=5))
    assert v.status is Status.INCONCLUSIVE
    assert "at least 5 needed" in v.reason


# ---- no_connector_errors ---------------------------------------------------------------------

def test_overloaded_metrics_fail_without_any_log_entry() -> None:
    # 3 × e2-micro (about 300 Mbps): CPU saturated, at its maximum, carrying all it can; nothing logged.
    v = c.no_connector_errors(connector_log(), connector_metrics(cpu=(1.0, 1.0, 0.98), instances=(3, 3, 3),
                                                                 mbps=(300, 300, 299)),
                              connector(min_instances=2, max_instances=3, machine_type="e2-micro"), THRESHOLDS)
    assert v.status is Status.FAIL
    assert v.criterion == c.NO_CONNECTOR_ERRORS and v.subject == CONNECTOR
    assert "CPU p95 of its instances reached 100% (expected below 80%)" in v.reason
    assert "carrying 300 Mbps of the ~300 Mbps its 3 × e2-micro can" in v.reason
    assert "at its maximum of 3 instances: it cannot scale further" in v.reason
    assert "timeouts" not in v.reason


def test_cpu_alone_above_the_threshold_fails() -> None:
    v = c.no_connector_errors(connector_log(), connector_metrics(cpu=(0.5, 0.85, 0.5), instances=(6, 7, 6),
                                                                 mbps=(900, 900, 900)), connector(), THRESHOLDS)
    assert v.status is Status.FAIL and "reached 85%" in v.reason
    assert "maximum" not in v.reason  # 7 of 10: it can still scale


def test_egress_errors_in_the_services_logs_fail_without_metrics() -> None:
    v = c.no_connector_errors(connector_log(egress=12), None, connector(), THRESHOLDS)
    assert v.status is Status.FAIL
    assert f"12 connection timeouts/resets in the stdout/stderr of {BACKEND} since 11:45:00 UTC" in v.reason
    assert "i/o timeout" in v.reason


def test_runbook_query_entries_fail_and_a_capped_count_shows_as_at_least() -> None:
    v = c.no_connector_errors(connector_log(runbook=100, capped=True), connector_metrics(**CLEAN), connector(),
                              THRESHOLDS)
    assert v.status is Status.FAIL
    assert "100+ entries for the runbook's query (resource.type=vpc_access_connector, severity>=ERROR)" in v.reason


def test_clean_metrics_and_logs_pass_with_the_numbers() -> None:
    v = c.no_connector_errors(connector_log(), connector_metrics(**CLEAN), connector(), THRESHOLDS)
    assert v.status is Status.PASS
    assert v.reason == (f"{CONNECTOR}: CPU p95 peak 31%, 905 Mbps peak of ~16,000 Mbps, 4-4 instances of max 10 "
                        f"(below 80%) since 11:45:00 UTC; no connection error in the logs of {BACKEND} since 11:45:00 UTC")


def test_at_maximum_alone_passes_but_says_there_is_no_headroom() -> None:
    v = c.no_connector_errors(connector_log(), connector_metrics(cpu=(0.5,) * 3, instances=(10,) * 3,
                                                                 mbps=(5000,) * 3), connector(), THRESHOLDS)
    assert v.status is Status.PASS and "at its maximum: no headroom left to scale" in v.reason


@pytest.mark.parametrize("metrics", [None, connector_metrics(), connector_metrics(cpu=(0.3, 0.3), instances=(4, 4))])
def test_no_data_is_inconclusive_never_a_pass(metrics: ConnectorMetrics | None) -> None:
    v = c.no_connector_errors(connector_log(), metrics, connector(), THRESHOLDS)
    assert v.status is Status.INCONCLUSIVE
    assert "at least 3 needed" in v.reason and "An empty log proves nothing" in v.reason
    assert f"connector_name={CONNECTOR}" in v.reason and "Metrics Explorer" in v.reason


# ---- certificate_valid -----------------------------------------------------------------------

def test_covered_active_verified_and_far_from_expiry_passes() -> None:
    v = c.certificate_valid(API, certificate(), tls(API), 21, now=NOW)
    assert v.status is Status.PASS
    assert v.criterion == c.CERTIFICATE_VALID and v.subject == API
    assert f"covered by {CERT} (ACTIVE); live TLS verifies, valid 60 more days" in v.reason


def test_domain_missing_from_the_certificate_fails_naming_it() -> None:
    v = c.certificate_valid(WS, certificate(API), tls(WS, sans=(API,)), 21, now=NOW)
    assert v.status is Status.FAIL
    assert v.subject == WS
    assert f"certificate {CERT} does not cover {WS} (it covers {API})" in v.reason


def test_provisioning_certificate_fails() -> None:
    v = c.certificate_valid(API, certificate(status="PROVISIONING"), tls(API), 21, now=NOW)
    assert v.status is Status.FAIL
    assert f"certificate {CERT} is PROVISIONING, not ACTIVE" in v.reason


def test_resource_expiring_in_5_days_fails_with_21_wanted() -> None:
    v = c.certificate_valid(API, certificate(expires_in_days=5), tls(API), 21, now=NOW)
    assert v.status is Status.FAIL
    assert f"certificate {CERT} expires in 5 days (at least 21 wanted)" in v.reason


def test_tls_that_does_not_verify_fails_with_the_tls_error() -> None:
    err = "certificate verify failed: Hostname mismatch, certificate is not valid for 'api-staging.netrasystems.ai'"
    v = c.certificate_valid(WS, certificate(), tls(WS, verified=False, error=err, sans=(API,)), 21, now=NOW)
    assert v.status is Status.FAIL
    assert f"live TLS to {WS} via 34.120.1.1: {err}" in v.reason


def test_served_certificate_near_expiry_fails_even_if_the_resource_is_fine() -> None:
    v = c.certificate_valid(API, certificate(expires_in_days=60), tls(API, expires_in_days=5), 21, now=NOW)
    assert v.status is Status.FAIL
    assert f"the certificate served for {API} expires in 5 days (at least 21 wanted)" in v.reason
    assert f"certificate {CERT} expires" not in v.reason


def test_every_problem_is_named_at_once() -> None:
    v = c.certificate_valid(WS, certificate(API, status="PROVISIONING", expires_in_days=5),
                            tls(WS, verified=False, error="handshake failed"), 21, now=NOW)
    assert v.status is Status.FAIL
    assert "PROVISIONING" in v.reason and f"does not cover {WS}" in v.reason
    assert "expires in 5 days" in v.reason and "handshake failed" in v.reason


# ---- evaluate --------------------------------------------------------------------------------

def _observation(**changes: object) -> Phase2Observation:
    now = datetime.now(timezone.utc)  # evaluate() judges certificates against the clock
    data = dict(
        connector=connector(min_instances=2, max_instances=3, machine_type="e2-micro"),
        connector_users=("netra-backend-staging",),
        instance=instance(max_connections(100), ("log_min_duration_statement", "1000")),
        backends=backends(88, 87, 86),
        connector_log=connector_log(egress=12),
        connector_metrics=connector_metrics(cpu=(1.0,) * 3, instances=(3,) * 3, mbps=(300,) * 3),
        certificate=certificate(API, now=now),
        tls={API: tls(API, sans=(API,), now=now),
             WS: tls(WS, verified=False, error="hostname mismatch", sans=(API,), now=now)},
    )
    data.update(changes)
    return Phase2Observation(**data)  # type: ignore[arg-type]


def test_evaluate_judges_every_criterion_and_each_domain_once() -> None:
    verdicts = c.evaluate(_observation(), target())
    assert [(v.criterion, v.subject) for v in verdicts] == [
        (c.CONNECTOR_READY, CONNECTOR), (c.DB_CONNECTIONS, INSTANCE), (c.NO_CONNECTOR_ERRORS, CONNECTOR),
        (c.CERTIFICATE_VALID, API), (c.CERTIFICATE_VALID, WS),
    ]
    status = {(v.criterion, v.subject): v.status for v in verdicts}
    assert status[(c.CERTIFICATE_VALID, API)] is Status.PASS
    assert status[(c.CERTIFICATE_VALID, WS)] is Status.FAIL
    assert status[(c.CONNECTOR_READY, CONNECTOR)] is Status.FAIL
    assert status[(c.DB_CONNECTIONS, INSTANCE)] is Status.FAIL
    assert status[(c.NO_CONNECTOR_ERRORS, CONNECTOR)] is Status.FAIL


def test_evaluate_certificate_verdicts_follow_the_observed_domains() -> None:
    now = datetime.now(timezone.utc)
    obs = _observation(tls={WS: tls(WS, now=now)}, certificate=certificate(now=now))
    certs = [v for v in c.evaluate(obs, target()) if v.criterion == c.CERTIFICATE_VALID]
    assert [(v.subject, v.status) for v in certs] == [(WS, Status.PASS)]


def test_evaluate_uses_the_targets_thresholds() -> None:
    lenient = target(thresholds={"db_utilization": 0.95, "db_escalation": 0.98})
    db = [v for v in c.evaluate(_observation(), lenient) if v.criterion == c.DB_CONNECTIONS]
    assert [v.status for v in db] == [Status.PASS]


def test_evaluate_only_some_criteria() -> None:
    verdicts = c.evaluate(_observation(), target(), [c.CONNECTOR_READY, c.DB_CONNECTIONS])
    assert [v.criterion for v in verdicts] == [c.CONNECTOR_READY, c.DB_CONNECTIONS]


@pytest.mark.parametrize("missing", ["connector", "instance", "backends", "connector_log", "certificate"])
def test_evaluate_skips_what_was_not_observed(missing: str) -> None:
    verdicts = c.evaluate(_observation(**{missing: None}), target())
    gone = {"connector": c.CONNECTOR_READY, "instance": c.DB_CONNECTIONS, "backends": c.DB_CONNECTIONS,
            "connector_log": c.NO_CONNECTOR_ERRORS, "certificate": c.CERTIFICATE_VALID}[missing]
    assert gone not in {v.criterion for v in verdicts}
    assert len({v.criterion for v in verdicts}) == 3


def test_evaluate_without_a_connector_in_the_target_does_not_judge_it() -> None:
    plain = Target.model_validate({"project": PROJECT, "region": REGION, "services": [{"name": "x"}]})
    assert c.CONNECTOR_READY not in {v.criterion for v in c.evaluate(_observation(), plain)}
