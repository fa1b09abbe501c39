"""Retries as the APIs allow, against a real twin with injected faults (scenario [[faults]]).

The gate's own API adapters (goldenpath.gcp), on the shipped sim target moved to a twin of this
module's: a transient error on a read is retried and recorded in the call log; one that lasts is
reported in the API's words ("answered 503 UNAVAILABLE", not "Cannot reach"); an operation whose
poll fails transiently is still waited on; one whose state cannot be read ends in OutcomeUnknown
naming the operation, as does a write that fails with a 5xx; a refusal stays a plain CheckError.
"""

from __future__ import annotations

import time

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from goldenpath import config
from goldenpath.errors import CheckError, OutcomeUnknown
from goldenpath.gcp.logging import CloudLogging
from goldenpath.gcp.monitoring import Monitoring
from goldenpath.gcp.run import CloudRun
from goldenpath.gcp.session import GcpSession
from goldenpath.gcp.sqladmin import CloudSql
from goldenpath.gcp.vpcaccess import VpcAccess
from goldenpath.observations import TrafficShare
from goldenpath.twinctl import relocate_sim
from selftest.conftest import Sandbox
from selftest.twinproc import TwinProcess, running_twin

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "twin" / "scenarios"
BACKEND = "netra-backend-staging"
NEW, OLD = "netra-backend-staging-00750-69k", "netra-backend-staging-00749-6tr"
INSTANCE = "netra-staging-db"
CONNECTOR = "staging-connector"


class Twin:
    def __init__(self, proc: TwinProcess, root: Path) -> None:
        self.proc, self.root = proc, root
        self.control = f"http://127.0.0.1:{proc.control_port}"

    def reset(self, faults: list[dict[str, Any]], name: str) -> None:
        """incident-1278 with these [[faults]] (method, code, status, and times/after_calls)."""
        text = (SCENARIOS / "incident-1278.toml").read_text().replace('name = "incident-1278"', f'name = "{name}"', 1)
        for f in faults:
            text += "\n[[faults]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in
                                                {"message": f"injected {f['status']}", **f}.items())
        path = self.root / f"{name}.toml"
        path.write_text(text)
        resp = httpx.post(f"{self.control}/_twin/reset", params={"scenario": str(path)}, timeout=10)
        assert resp.status_code == 200, resp.text

    def status(self) -> dict[str, Any]:
        return httpx.get(f"{self.control}/_twin/status", timeout=10).json()

    def fault(self, method: str) -> dict[str, Any]:
        return next(f for f in self.status()["faults"] if f["method"] == method)

    def calls(self, method: str) -> int:
        return int(self.status()["requests"]["by_method"].get(method, 0))

    def serving(self) -> dict[str, int]:
        svc = next(s for s in self.status()["run"]["services"] if s["name"].endswith("/" + BACKEND))
        return {t["revision"]: t.get("percent", 0) for t in svc["trafficStatuses"]}

    def session(self, api_seconds: float = 15, operation_seconds: float = 600) -> GcpSession:
        """A session of the gate on the shipped sim target moved to this twin, with these timeouts."""
        p = self.proc
        path = self.root / "targets.toml"
        path.write_text(relocate_sim(ROOT / "targets.toml", p.home, f"127.0.0.1:{p.control_port}",
                                     f"127.0.0.1:{p.data_port}", f"127.0.0.1:{p.grpc_port}"))
        target = config.load(path, "sim")
        target = target.model_copy(update={"timeouts": config.Timeouts(
            api_seconds=api_seconds, operation_seconds=operation_seconds)})
        return GcpSession(target)


@pytest.fixture(scope="module")
def twin_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TwinProcess, Path]]:
    root = tmp_path_factory.mktemp("twin-retries")
    with running_twin(root / "home", "incident-1278") as proc:
        yield proc, root


@pytest.fixture
def twin(twin_process: tuple[TwinProcess, Path]) -> Twin:
    return Twin(*twin_process)


def fault(method: str, code: int, status: str, **more: Any) -> dict[str, Any]:
    return {"method": method, "code": code, "status": status, **more}


def hooked(session: GcpSession) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    session.on_operation = lambda api, op: seen.append((api, op))
    return seen


# ---- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code,status", [(503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED"), (429, "RESOURCE_EXHAUSTED"),
                                         (500, "INTERNAL")])
def test_a_cloud_run_read_outlives_two_transient_errors(twin: Twin, code: int, status: str) -> None:
    method = "run.projects.locations.services.get"
    twin.reset([fault(method, code, status, times=2)], f"run-get-{code}-twice")
    session = twin.session()
    svc = CloudRun(session).get_service(BACKEND)
    assert {s.revision: s.percent for s in svc.serving} == {NEW: 50, OLD: 50}
    (call,) = session.calls
    assert (call.method, call.outcome, call.retried) == ("services.get", "ok", (f"{code} {status}",) * 2)
    assert twin.fault(method)["calls"] == twin.calls(method) == 3  # refused twice, then read


def test_a_lasting_504_on_a_read_is_reported_as_the_apis_answer(twin: Twin) -> None:
    method = "run.projects.locations.services.get"
    twin.reset([fault(method, 504, "DEADLINE_EXCEEDED")], "run-get-504")
    session = twin.session(api_seconds=2)
    with pytest.raises(CheckError) as err:
        CloudRun(session).get_service(BACKEND)
    message = str(err.value)
    assert not isinstance(err.value, OutcomeUnknown), message  # a read changes nothing
    assert f"run services.get on projects/netra-staging/locations/us-central1/services/{BACKEND} answered " \
           "504 DEADLINE_EXCEEDED: injected DEADLINE_EXCEEDED, still after retrying for" in message
    assert "Cannot reach" not in message
    assert twin.calls(method) > 1  # retried until the deadline
    assert len(session.calls[-1].retried) == twin.calls(method)  # every answer recorded, the last one too


def test_a_discovery_read_retries_503_and_reports_one_that_lasts(twin: Twin) -> None:
    method = "sql.instances.get"
    twin.reset([fault(method, 503, "UNAVAILABLE", times=2)], "sql-get-503-twice")
    session = twin.session()
    assert CloudSql(session).get(INSTANCE).settings_version == 41
    assert session.calls[-1].retried == ("503 UNAVAILABLE", "503 UNAVAILABLE")
    assert twin.calls(method) == 3

    twin.reset([fault(method, 503, "UNAVAILABLE")], "sql-get-503")
    session = twin.session(api_seconds=2)
    with pytest.raises(CheckError) as err:
        CloudSql(session).get(INSTANCE)
    assert f"sqladmin instances.get on projects/netra-staging/instances/{INSTANCE} answered 503 UNAVAILABLE: " \
           "injected UNAVAILABLE" in str(err.value)
    assert "Cannot reach" not in str(err.value)


def test_a_logging_read_retries_504_and_reports_one_that_lasts(twin: Twin) -> None:
    method = "logging.entries.list"
    twin.reset([fault(method, 504, "DEADLINE_EXCEEDED", times=2)], "entries-504-twice")
    session = twin.session()
    since = datetime.now(timezone.utc) - timedelta(minutes=15)
    log = CloudLogging(session).startup_errors(BACKEND, NEW, since)
    assert log.errors == 0
    assert session.calls[-1].retried == ("504 DEADLINE_EXCEEDED", "504 DEADLINE_EXCEEDED")

    twin.reset([fault(method, 504, "DEADLINE_EXCEEDED")], "entries-504")
    with pytest.raises(CheckError) as err:
        CloudLogging(twin.session(api_seconds=2)).startup_errors(BACKEND, NEW, since)
    assert "logging entries.list on " in str(err.value) and "answered 504 DEADLINE_EXCEEDED" in str(err.value)


def test_a_grpc_read_retries_unavailable(twin: Twin) -> None:
    method = "monitoring.projects.notificationChannels.list"
    twin.reset([fault(method, 503, "UNAVAILABLE", times=1)], "channels-503-once")
    session = twin.session()
    channels = Monitoring(session).notification_channels()
    assert [c["name"].rsplit("/", 1)[-1] for c in channels] == ["EMAIL_ALERT"]
    assert session.calls[-1].retried == ("503 UNAVAILABLE",)
    assert twin.calls(method) == 2


# ---- operation polls -----------------------------------------------------------------------------


def test_a_cloud_run_change_completes_through_transient_poll_errors(twin: Twin) -> None:
    method = "run.projects.locations.operations.wait"
    twin.reset([fault(method, 503, "UNAVAILABLE", times=2)], "run-op-503-twice")
    session = twin.session()
    seen = hooked(session)
    run = CloudRun(session)
    etag = run.get_service(BACKEND).etag
    svc = run.set_traffic(BACKEND, [TrafficShare(NEW, 100)], expected_etag=etag)
    assert {s.revision: s.percent for s in svc.serving} == {NEW: 100}
    assert twin.serving() == {NEW: 100}
    assert [api for api, _ in seen] == ["run"] and "/operations/" in seen[0][1]
    wait = next(c for c in session.calls if c.method == "operations.wait")
    assert wait.resource == seen[0][1] and wait.outcome == "ok"
    assert twin.fault(method)["calls"] >= 3  # both refusals were polled through


def test_a_cloud_run_poll_that_keeps_failing_is_an_unknown_outcome_naming_the_operation(twin: Twin) -> None:
    method = "run.projects.locations.operations.wait"
    twin.reset([fault(method, 503, "UNAVAILABLE")], "run-op-503")
    session = twin.session(api_seconds=1, operation_seconds=3)
    seen = hooked(session)
    run = CloudRun(session)
    etag = run.get_service(BACKEND).etag
    with pytest.raises(OutcomeUnknown) as err:
        run.set_traffic(BACKEND, [TrafficShare(NEW, 100)], expected_etag=etag)
    ((api, operation),) = seen
    assert (err.value.api, err.value.operation) == ("run", operation) == (api, operation)
    message = str(err.value)
    assert f"the operation {operation}'s state could not be read for " in message
    assert "(run operations.wait answered 503 UNAVAILABLE); it may have completed" in message
    # (the operation's name is a random UUID, which may itself contain "600")
    assert "did not complete within" not in message and "600" not in message.replace(operation, "<operation>")
    # The poll gave up after api_seconds of failures; the change itself lands when its operation
    # ends, as the resource (which the runner reads back) shows.
    deadline = time.monotonic() + 30
    while twin.serving() != {NEW: 100} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert twin.serving() == {NEW: 100}
    assert twin.fault(method)["calls"] > 1


def test_a_connector_patch_completes_through_transient_poll_errors_and_reports_lasting_ones(twin: Twin) -> None:
    method = "vpcaccess.projects.locations.operations.get"
    twin.reset([fault(method, 503, "UNAVAILABLE", times=2)], "vpc-op-503-twice")
    session = twin.session()
    seen = hooked(session)
    state = VpcAccess(session).update(CONNECTOR, {"maxInstances": 4})
    assert state.max_instances == 4
    assert [api for api, _ in seen] == ["vpcaccess"]
    assert twin.fault(method)["calls"] >= 3

    twin.reset([fault(method, 503, "UNAVAILABLE")], "vpc-op-503")
    session = twin.session(api_seconds=1, operation_seconds=3)
    seen = hooked(session)
    with pytest.raises(OutcomeUnknown) as err:
        VpcAccess(session).update(CONNECTOR, {"maxInstances": 5})
    ((_, operation),) = seen
    assert (err.value.api, err.value.operation) == ("vpcaccess", operation)
    assert f"updating connector {CONNECTOR}: the operation {operation}'s state could not be read for " in str(err.value)
    assert "vpcaccess operations.get answered 503 UNAVAILABLE" in str(err.value)


def test_a_sql_patch_whose_poll_keeps_failing_is_an_unknown_outcome(twin: Twin) -> None:
    method = "sql.operations.get"
    twin.reset([fault(method, 503, "UNAVAILABLE")], "sql-op-503")
    session = twin.session(api_seconds=1, operation_seconds=3)
    seen = hooked(session)
    sql = CloudSql(session)
    before = sql.get(INSTANCE)
    flags = [(k, "150" if k == "max_connections" else v) for k, v in before.flags]
    with pytest.raises(OutcomeUnknown) as err:
        sql.set_flags(INSTANCE, flags, before.settings_version)
    ((api, operation),) = seen
    assert (err.value.api, err.value.operation) == ("sqladmin", operation) == (api, operation)
    assert "state could not be read" in str(err.value) and "sqladmin operations.get answered 503 UNAVAILABLE" \
        in str(err.value)


# ---- writes --------------------------------------------------------------------------------------


def test_a_write_that_fails_with_503_is_an_unknown_outcome_and_is_not_retried(twin: Twin) -> None:
    method = "run.projects.locations.services.patch"
    twin.reset([fault(method, 503, "UNAVAILABLE", times=1)], "run-patch-503-once")
    session = twin.session()
    run = CloudRun(session)
    etag = run.get_service(BACKEND).etag
    with pytest.raises(OutcomeUnknown) as err:
        run.set_traffic(BACKEND, [TrafficShare(NEW, 100)], expected_etag=etag)
    assert (err.value.api, err.value.operation) == ("run", "")
    assert "run services.patch on " in str(err.value) and "answered 503 UNAVAILABLE" in str(err.value)
    assert "may have been applied" in str(err.value)
    assert twin.fault(method)["calls"] == 1  # sent once: a write is never retried here


def test_a_refused_write_stays_a_plain_check_error(twin: Twin) -> None:
    method = "run.projects.locations.services.patch"
    twin.reset([fault(method, 429, "RESOURCE_EXHAUSTED", times=1)], "run-patch-429-once")
    run = CloudRun(twin.session())
    etag = run.get_service(BACKEND).etag
    with pytest.raises(CheckError) as err:
        run.set_traffic(BACKEND, [TrafficShare(NEW, 100)], expected_etag=etag)
    assert not isinstance(err.value, OutcomeUnknown)
    assert "answered 429 RESOURCE_EXHAUSTED" in str(err.value)
    assert twin.serving() == {NEW: 50, OLD: 50}


def test_a_grpc_create_that_fails_with_503_is_an_unknown_outcome(twin: Twin) -> None:
    method = "monitoring.projects.alertPolicies.create"
    twin.reset([fault(method, 503, "UNAVAILABLE", times=1)], "policy-create-503")
    policy = {"displayName": "retries selftest", "combiner": "OR", "conditions": [{
        "displayName": "uptime", "conditionAbsent": {
            "filter": 'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision"',
            "duration": "300s"}}]}
    with pytest.raises(OutcomeUnknown) as err:
        Monitoring(twin.session()).create_alert_policy(policy)
    assert err.value.api == "monitoring" and "alertPolicies.create" in str(err.value)
    assert "answered 503 UNAVAILABLE" in str(err.value)
    assert twin.calls(method) == 1


# ---- through the real gate ------------------------------------------------------------------------


def test_phase1_remediation_completes_through_transient_operation_poll_errors(incident: Sandbox) -> None:
    # The reproduction (incident-1278 with operations.get answering 503), with the fault
    # counted: the gate's poll outlives it, the change is applied, verified, and the phase passes.
    path = incident.root / "incident-op-503-twice.toml"
    path.write_text((SCENARIOS / "incident-1278.toml").read_text().replace(
        'name = "incident-1278"', 'name = "incident-op-503-twice"', 1) + '''
[[faults]]
method = "run.projects.locations.operations.wait"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
times = 2
''')
    incident.reset(str(path))
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    # Cloud Run operations are waited on with the long-poll, never polled with operations.get.
    assert incident.status()["requests"]["by_method"].get("run.projects.locations.operations.get", 0) == 0
    assert run.returncode == 0, run.output
    assert "6 passed" in run.output and "did not complete within" not in run.output
    assert incident.serving() == {NEW: 100} and OLD not in incident.revisions()
    assert [r["event"] for r in incident.journal()] == ["apply.before", "apply.operation", "apply.after"] * 2
    fault_state = next(f for f in incident.status()["faults"]
                       if f["method"] == "run.projects.locations.operations.wait")
    assert fault_state["calls"] > 2  # both refusals were met, and polled through
