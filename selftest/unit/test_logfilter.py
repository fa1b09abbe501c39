"""The twin's Cloud Logging filter subset, and its scenario files."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import scenario
from twin.logfilter import FilterError, matches, parse
from twin.scenario import ScenarioError

ENTRY = {
    "logName": "projects/netra-staging/logs/run.googleapis.com%2Frequests",
    "timestamp": "2025-01-01T12:30:00.123456Z",
    "severity": "ERROR",
    "resource": {"type": "cloud_run_revision",
                 "labels": {"service_name": "netra-backend-staging",
                            "revision_name": "netra-backend-staging-00749-6tr"}},
    "httpRequest": {"status": 503, "requestUrl": "https://api.staging.netrasystems.ai/health"},
}


# ---- parsing ---------------------------------------------------------------------------------

def test_parse_terms_and_quotes() -> None:
    assert parse('resource.type="cloud_run_revision" AND httpRequest.status>=500 severity:err') == [
        ("resource.type", "=", "cloud_run_revision"), ("httpRequest.status", ">=", "500"),
        ("severity", ":", "err")]
    assert parse('textPayload="say \\"hi\\""') == [("textPayload", "=", 'say "hi"')]
    assert parse("") == [] and parse("   ") == []


# ---- matching --------------------------------------------------------------------------------

@pytest.mark.parametrize("flt", [
    'resource.type="cloud_run_revision"',
    "resource.type=cloud_run_revision",
    'resource.labels.service_name="netra-backend-staging"',
    'resource.labels.service_name!="auth-service-staging"',
])
def test_equality_matches(flt: str) -> None:
    assert matches(flt, ENTRY)


@pytest.mark.parametrize("flt", [
    'resource.type="cloud_run_job"',
    'resource.labels.service_name="auth-service-staging"',
    'resource.labels.service_name!="netra-backend-staging"',
])
def test_equality_rejects(flt: str) -> None:
    assert not matches(flt, ENTRY)


@pytest.mark.parametrize("flt, expected", [
    ("httpRequest.status=503", True),
    ('httpRequest.status="503"', True),
    ("httpRequest.status=200", False),
    ("httpRequest.status>=500", True),
    ("httpRequest.status<500", False),
    ("httpRequest.status>502", True),
    ("httpRequest.status<=503", True),
    ("httpRequest.status!=503", False),
])
def test_numeric_status(flt: str, expected: bool) -> None:
    assert matches(flt, ENTRY) is expected


@pytest.mark.parametrize("flt, expected", [
    ('timestamp>="2025-01-01T12:00:00Z"', True),
    ('timestamp>="2025-01-01T12:30:00.123456Z"', True),  # equal is included
    ('timestamp>"2025-01-01T12:30:00.123456Z"', False),
    ('timestamp>="2025-01-01T13:00:00Z"', False),
    ('timestamp>="2025-01-01T13:00:00+01:00"', True),  # same instant as 12:00Z
    ('timestamp<"2025-01-01T12:31:00Z"', True),
    ("timestamp>=2025-01-01T12:00:00Z", True),  # unquoted works too
])
def test_timestamp_comparison(flt: str, expected: bool) -> None:
    assert matches(flt, ENTRY) is expected


@pytest.mark.parametrize("severity, expected", [
    ("DEBUG", False), ("INFO", False), ("WARNING", False), ("ERROR", True), ("CRITICAL", True),
    ("EMERGENCY", True),
])
def test_severity_at_least_error_uses_the_severity_order(severity: str, expected: bool) -> None:
    assert matches("severity>=ERROR", {**ENTRY, "severity": severity}) is expected


def test_severity_is_case_insensitive_on_the_filter_side() -> None:
    assert matches("severity>=error", ENTRY)
    assert matches("severity<CRITICAL", ENTRY)
    assert not matches("severity>=ERROR", {k: v for k, v in ENTRY.items() if k != "severity"})  # absent


def test_colon_is_a_case_insensitive_substring() -> None:
    assert matches('logName:"requests"', ENTRY)
    assert matches("httpRequest.requestUrl:/HEALTH", ENTRY)
    assert matches("resource.labels.revision_name:00749", ENTRY)
    assert not matches("resource.labels.revision_name:00750", ENTRY)


def test_missing_field_matches_only_not_equal() -> None:
    assert not matches('labels.instanceId="x"', ENTRY)
    assert not matches('labels.instanceId:"x"', ENTRY)
    assert matches('labels.instanceId!="x"', ENTRY)


@pytest.mark.parametrize("joiner", [" AND ", " ", "\nAND\n", " AND\n"])
def test_and_chains_every_term_must_hold(joiner: str) -> None:
    terms = ['resource.type="cloud_run_revision"', "httpRequest.status=503", "severity>=ERROR",
             'timestamp>="2025-01-01T12:00:00Z"']
    assert matches(joiner.join(terms), ENTRY)
    assert not matches(joiner.join([*terms, 'resource.labels.service_name="auth-service-staging"']), ENTRY)
    assert not matches(joiner.join(['httpRequest.status=200', *terms]), ENTRY)


def test_the_filter_the_gate_sends_for_a_request_log() -> None:
    # the shape built by goldenpath.gcp.logging.CloudLogging.request_log
    base = ('resource.type="cloud_run_revision" '
            'AND resource.labels.service_name="netra-backend-staging" '
            'AND logName="projects/netra-staging/logs/run.googleapis.com%2Frequests" '
            'AND timestamp>="2025-01-01T12:00:00+00:00"')
    assert matches(base, ENTRY)
    assert matches(base + " AND httpRequest.status=503", ENTRY)
    assert not matches(base + " AND httpRequest.status=503", {**ENTRY, "httpRequest": {"status": 200}})
    assert not matches(base, {**ENTRY, "timestamp": "2025-01-01T11:59:59.999999Z"})


STDERR = {"logName": "projects/netra-staging/logs/run.googleapis.com%2Fstderr", "severity": "DEFAULT",
          "resource": {"type": "cloud_run_revision", "labels": {"service_name": "netra-backend-staging"}},
          "textPayload": "failed to connect to database: dial tcp 10.20.0.3:5432: i/o timeout"}


@pytest.mark.parametrize(("flt", "expected"), [
    ('textPayload=~"i/o timeout"', True),                       # a regex matches anywhere in the value
    ('textPayload=~"^i/o timeout"', False),                     # unless anchored
    ('textPayload=~"I/O TIMEOUT"', False),                      # case-sensitive
    ('textPayload=~"(?i)(I/O TIMEOUT|ETIMEDOUT)"', True),       # unless (?i)
    ('textPayload!~"timeout"', False),
    ('jsonPayload.message!~"timeout"', True),                   # a missing field does not match =~
    ('jsonPayload.message=~"timeout"', False),
    ('logName=~"^projects/netra-staging/logs/run[.]googleapis[.]com%2Fstd(err|out)$"', True),
    ('resource.labels.service_name=~"^(netra-backend-staging|auth)$" AND severity>=ERROR', False),  # DEFAULT
])
def test_regular_expression_operators(flt: str, expected: bool) -> None:
    assert matches(flt, STDERR) is expected


@pytest.mark.parametrize("flt", [
    "httpRequest.status=503 OR httpRequest.status=500",
    'severity>=ERROR AND (httpRequest.status=503 OR httpRequest.status=500)',
    "(httpRequest.status=503)",
    "NOT httpRequest.status=503",
    "severity>=ERROR NOT httpRequest.status=503",
    "-httpRequest.status=503",
    "severity>=ERROR -httpRequest.status=503",
    'textPayload=~"(unclosed"',
    "httpRequest.status=503 OR",
])
def test_unsupported_syntax_is_refused(flt: str) -> None:
    with pytest.raises(FilterError):
        matches(flt, ENTRY)


# ---- scenarios -------------------------------------------------------------------------------

def test_builtin_scenarios_exist() -> None:
    assert {"incident-1278", "healthy", "broken-latest"} <= set(scenario.available())


@pytest.mark.parametrize("name", scenario.available())
def test_every_builtin_scenario_loads(name: str) -> None:
    s = scenario.load(name)
    assert s.name == name
    assert s.project == "netra-staging" and s.region == "us-central1"
    for svc in s.services:
        assert sum(t.percent for t in svc.traffic) == 100
        assert {t.revision for t in svc.traffic} <= {r.name for r in svc.revisions}


def test_default_scenario_is_the_incident() -> None:
    s = scenario.load(None)
    assert s.name == "incident-1278"
    backend = next(svc for svc in s.services if svc.name == "netra-backend-staging")
    assert sorted(t.percent for t in backend.traffic) == [50, 50]


def test_scenario_loads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(_scenario_text(100))
    assert scenario.load(str(path)).name == "mine"


def _scenario_text(second_percent: int) -> str:
    return f"""
name = "mine"
description = "test"
project = "p"
region = "r"
[[services]]
name = "svc"
traffic = [{{ revision = "svc-1", percent = 0 }}, {{ revision = "svc-2", percent = {second_percent} }}]
[[services.revisions]]
name = "svc-1"
[[services.revisions]]
name = "svc-2"
"""


def test_traffic_that_does_not_sum_to_100_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(_scenario_text(90))
    with pytest.raises(ScenarioError) as exc:
        scenario.load(str(path))
    assert "traffic percents must sum to 100" in str(exc.value)
    assert str(path) in str(exc.value)


def test_traffic_naming_an_unlisted_revision_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(_scenario_text(100).replace('revision = "svc-2"', 'revision = "svc-9"'))
    with pytest.raises(ScenarioError, match="svc-9"):
        scenario.load(str(path))


def test_unknown_key_in_a_scenario_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(_scenario_text(100) + "minimum_instances = 3\n")
    with pytest.raises(ScenarioError, match="minimum_instances"):
        scenario.load(str(path))


def test_invalid_toml_scenario(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        scenario.load(str(path))


def test_unknown_scenario_lists_the_builtin_ones() -> None:
    with pytest.raises(ScenarioError) as exc:
        scenario.load("no-such-scenario")
    msg = str(exc.value)
    assert "No twin scenario named 'no-such-scenario'" in msg
    for name in scenario.available():
        assert name in msg


def test_unknown_severity_is_refused_not_guessed() -> None:
    with pytest.raises(FilterError):
        matches("severity>=EROR", {"severity": "DEBUG"})
