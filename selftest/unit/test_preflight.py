"""Preflight: what each phase's verification reads must be there before the first change.

The hosts are real loopback sockets: one listening (answers a TCP connect) and one free port that
nothing listens on (refuses it). Nothing outside loopback is contacted.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from goldenpath.config import APIS, Target
from goldenpath.remediation import phase2
from goldenpath.remediation.change import Change
from goldenpath.remediation.journal import Journal
from goldenpath.remediation.preflight import CONNECTOR_STEPS, DATABASE_STEPS, preflight, refusal
from goldenpath.remediation.runner import Runner
from goldenpath.twinctl import free_ports
from goldenpath.verdict import Verdict

REPO = Path(__file__).resolve().parents[2]
ENV = {"GP_USER": "u", "GP_PASSWORD": "p"}


@pytest.fixture(scope="module")
def listening() -> Iterator[int]:
    """A loopback port that accepts TCP connections."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def make(port: int, probe_port: int | None = None, **changes: Any) -> Target:
    """A target whose every API and probe host is a loopback port (the probes through ``resolve``)."""
    probe = probe_port or port
    data: dict[str, Any] = {
        "project": "p", "region": "r", "credentials": "anonymous", "name": "t", "source": str(REPO / "targets.toml"),
        "endpoints": {api: f"http://127.0.0.1:{port}" for api in APIS},
        "resolve": {"api.example.com:443": f"127.0.0.1:{probe}", "auth.example.com:443": f"127.0.0.1:{probe}"},
        "services": [{"name": "svc", "health_url": "https://api.example.com/health",
                      "health_endpoints": ["https://api.example.com/health"], "required_env": {"A": "1"}}],
        "websocket": {"url": "wss://api.example.com/ws"},
        "golden_path": {"login_url": "https://auth.example.com/login", "user_env": "GP_USER",
                        "password_env": "GP_PASSWORD"},
        "connector": {"name": "conn"}, "database": {"instance": "db", "max_connections": 200},
        "monitoring": {"definitions": "monitoring"},
    }
    data.update(changes)
    return Target.model_validate(data)


def change(phase: int, step: str, subject: str = "svc") -> Change:
    return Change(phase=phase, step=step, subject=subject, resource=f"r/{subject}", summary=f"{step} {subject}",
                  before={}, after={}, reversible=True)


@pytest.mark.parametrize("phase,step", [(1, "route-traffic"), (2, "scale-connector"), (2, "set-database-flags"),
                                        (3, "rollout-config"), (4, "create-log-metric")])
def test_a_fully_configured_target_passes(listening: int, phase: int, step: str) -> None:
    assert preflight(phase, make(listening), [change(phase, step)], environ=ENV) == []


def test_phase1_needs_the_changed_services_health_url(listening: int) -> None:
    t = make(listening, services=[{"name": "svc", "health_url": "https://api.example.com/health"},
                                  {"name": "other"}])
    (problem,) = preflight(1, t, [change(1, "route-traffic", "other")], environ=ENV)
    assert problem.startswith("service other has no health_url in ")
    assert "add health_url" in problem and "[[targets.t.services]]" in problem
    # a service the plan does not change needs none
    assert preflight(1, t, [change(1, "route-traffic", "svc")], environ=ENV) == []


def test_phase1_refuses_a_health_host_that_does_not_answer(listening: int) -> None:
    (closed,) = free_ports(1)
    (problem,) = preflight(1, make(listening, probe_port=closed), [change(1, "route-traffic")], environ=ENV)
    assert problem.startswith(f"api.example.com:443 (connecting to 127.0.0.1:{closed} as the target's resolve "
                              "map says), used by svc's health_url, does not answer a TCP connect (Connection refused)")


def test_an_api_endpoint_that_does_not_answer_is_named(listening: int) -> None:
    (closed,) = free_ports(1)
    t = make(listening, endpoints={**{a: f"http://127.0.0.1:{listening}" for a in APIS},
                                   "logging": f"http://127.0.0.1:{closed}"})
    (problem,) = preflight(1, t, [change(1, "route-traffic")], environ=ENV)
    assert problem.startswith(f"127.0.0.1:{closed}, used by the logging API, does not answer a TCP connect")


def test_phase2_needs_the_connector_and_the_database(listening: int) -> None:
    t = make(listening, connector=None, database=None)
    problems = preflight(2, t, [change(2, "scale-connector", "conn"), change(2, "set-database-flags", "db")],
                         environ=ENV)
    assert [p.split(" in ")[0] for p in problems] == ["target 't' configures no connector",
                                                       "target 't' configures no database"]
    assert "'VPC connector READY'" in problems[0] and "'database connections < 75 %'" in problems[1]


def test_phase2_steps_agree_with_its_executors() -> None:
    assert set(CONNECTOR_STEPS) == {phase2.SCALE, phase2.RECREATE} and DATABASE_STEPS == (phase2.FLAGS,)


def test_phase3_names_the_missing_account_variables(listening: int) -> None:
    (problem,) = preflight(3, make(listening), [change(3, "rollout-config")], environ={"GP_USER": "u"})
    assert "the environment variable(s) GP_PASSWORD (golden_path.user_env / password_env) are not set" in problem
    assert "GP_USER" not in problem
    both = preflight(3, make(listening), [change(3, "rollout-config")], environ={})
    assert "GP_USER and GP_PASSWORD" in both[0]


def test_phase3_needs_websocket_golden_path_and_health_endpoints(listening: int) -> None:
    t = make(listening, websocket=None, golden_path=None, services=[{"name": "svc"}])
    problems = preflight(3, t, [change(3, "rollout-config")], environ=ENV)
    assert [p.split(" in ")[0] for p in problems] == ["service svc has no health_endpoints",
                                                       "target 't' configures no websocket",
                                                       "target 't' configures no golden_path"]


def test_phase4_needs_the_monitoring_definitions(listening: int, tmp_path: Path) -> None:
    (problem,) = preflight(4, make(listening, monitoring=None), [change(4, "create-log-metric", "m")], environ=ENV)
    assert problem.startswith("target 't' configures no monitoring in ")
    t = make(listening, monitoring={"definitions": str(tmp_path / "absent")})
    (problem,) = preflight(4, t, [change(4, "create-log-metric", "m")], environ=ENV)
    assert problem.startswith(f"the monitoring definitions folder {tmp_path / 'absent'} ")


def test_adc_credentials_must_be_found(listening: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # google.auth.default() reads GOOGLE_APPLICATION_CREDENTIALS first and refuses a missing file
    # without any request.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    (problem,) = preflight(1, make(listening, credentials="adc"), [change(1, "route-traffic")], environ=ENV)
    assert "gcloud auth application-default login" in problem


def test_the_refusal_is_one_paragraph() -> None:
    text = refusal(3, ["A is missing.", "B does not answer."])
    assert "\n" not in text and text.startswith("phase 3 remediation refused before any change")
    assert "A is missing. B does not answer. Nothing was changed. Fix these and run again" in text


class _Remedy:
    """A phase whose preflight fails: the runner must neither journal nor apply anything."""

    phase, title = 3, "Phase 3"

    def __init__(self) -> None:
        self.applied: list[Change] = []

    def plan(self) -> list[Change]:
        return [change(3, "rollout-config")]

    def manual(self) -> list[str]:
        return []

    def preflight(self) -> list[str]:
        return ["the account is missing."]

    def executor(self, step: str) -> Any:
        raise AssertionError("no executor may be reached")

    def verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        raise AssertionError("nothing to verify")

    def escalation(self, failed: list[Verdict], restored: bool) -> str:
        return ""

    def invalidate(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["apply", "plan"])
def test_the_runner_refuses_before_the_first_journal_line(tmp_path: Path, mode: str) -> None:
    journal = Journal(tmp_path / "journal.jsonl", "t", "me", "run-1")
    out = Runner(_Remedy(), journal, consent=True, rollback=True).run(mode)  # type: ignore[arg-type]
    assert out.refused == refusal(3, ["the account is missing."])
    assert out.applied == [] and not (tmp_path / "journal.jsonl").exists()
    assert f"  refused: {out.refused}" in out.lines()
