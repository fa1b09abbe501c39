"""The twin's injected faults and its own commands, against real twin processes.

* Faults (twin.scenario.FaultSpec): a counted one-off error (``times``), a delayed answer
  (``delay_seconds``) that does not stop the twin serving others meanwhile, and an error answered
  after the call was carried out (``applied``), on the REST face (the real Cloud Run and Logging
  clients) and the gRPC face (the real Monitoring client).
* Cloud Run's server-side ``operations:wait`` does not block other requests while it waits.
* ``python -m twin``: ``stop`` returns once the server has exited, a stale server file is said so
  and cleared, ``reset``/``status`` act only on a twin of their own home, and an unknown scenario is
  one paragraph and exit 4.

Nothing here asserts a duration: where concurrency matters the tests assert the order in which
answers came back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import httpx
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging
from google.cloud import monitoring_v3, run_v2
from google.cloud.monitoring_v3.services.alert_policy_service.transports import AlertPolicyServiceGrpcTransport
from google.cloud.monitoring_v3.services.notification_channel_service.transports import (
    NotificationChannelServiceGrpcTransport,
)

from goldenpath.twinctl import free_ports
from selftest.twinproc import TwinProcess, grpc_channel, running_twin

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "twin" / "scenarios"
PROJECT, REGION = "netra-staging", "us-central1"
PARENT = f"projects/{PROJECT}"
LOCATION = f"{PARENT}/locations/{REGION}"
BACKEND = f"{LOCATION}/services/netra-backend-staging"
IDLE_REVISION = f"{BACKEND}/revisions/netra-backend-staging-00748-q2d"  # healthy: no traffic, not the latest
TIMEOUT = 30.0  # seconds, for every network call (longer than any delay injected here)
DELAY = 5.0     # seconds an injected delay holds an answer back


# ---- the twin under test -------------------------------------------------------------------------


class Twin:
    """A real twin subprocess and the real clients on both its faces."""

    def __init__(self, proc: TwinProcess, channel: grpc.Channel, scenario_dir: Path) -> None:
        self.proc, self.scenario_dir = proc, scenario_dir
        self.endpoint = f"http://127.0.0.1:{proc.control_port}"
        self.api = httpx.Client(base_url=self.endpoint, timeout=TIMEOUT)
        self.run = run_v2.ServicesClient(transport="rest", credentials=AnonymousCredentials(),
                                         client_options={"api_endpoint": self.endpoint})
        self.metrics = cloud_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                            client_options={"api_endpoint": self.endpoint}).metrics_api
        self.alerts = monitoring_v3.AlertPolicyServiceClient(
            transport=AlertPolicyServiceGrpcTransport(channel=channel))
        self.channels = monitoring_v3.NotificationChannelServiceClient(
            transport=NotificationChannelServiceGrpcTransport(channel=channel))

    def reset_with(self, name: str, extra: str, base: str = "healthy", **timing: float) -> None:
        """Reset to a shipped scenario with TOML appended (its [[faults]]) and [timing] values replaced."""
        lines = (SCENARIOS / f"{base}.toml").read_text().splitlines()
        if "[timing]" not in lines:
            lines.append("[timing]")
        at = lines.index("[timing]") + 1
        lines = [ln for ln in lines if ln.split("=", 1)[0].strip() not in timing]
        lines[at:at] = [f"{k} = {float(v)!r}" for k, v in timing.items()]
        path = self.scenario_dir / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n" + extra)
        resp = self.api.post("/_twin/reset", params={"scenario": str(path)})
        assert resp.status_code == 200, resp.text

    def status(self) -> dict[str, Any]:
        resp = self.api.get("/_twin/status")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def fault(self, method: str) -> dict[str, Any]:
        return next(f for f in self.status()["faults"] if f["method"] == method)

    def wait_until(self, what: str, done: Callable[[], bool], deadline_s: float = TIMEOUT) -> None:
        """Poll the twin (with backoff, bounded) until ``done``; each poll is itself a request the
        twin must answer while another one is held."""
        deadline, delay = time.monotonic() + deadline_s, 0.01
        while not done():
            assert time.monotonic() < deadline, f"the twin never got to: {what}"
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)


def policy(name: str) -> monitoring_v3.AlertPolicy:
    return monitoring_v3.AlertPolicy(
        display_name=name, combiner=monitoring_v3.AlertPolicy.ConditionCombinerType.OR,
        conditions=[monitoring_v3.AlertPolicy.Condition(
            display_name="requests",
            condition_threshold=monitoring_v3.AlertPolicy.Condition.MetricThreshold(
                filter='resource.type="cloud_run_revision" AND metric.type="run.googleapis.com/request_count"',
                comparison=monitoring_v3.ComparisonType.COMPARISON_GT, threshold_value=1,
                duration={"seconds": 60}))])


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    home = tmp_path_factory.mktemp("twin-faults") / "home"
    scenario_dir = tmp_path_factory.mktemp("fault-scenarios")
    with running_twin(home, "healthy") as proc, grpc_channel(proc, TIMEOUT) as channel:
        yield Twin(proc, channel, scenario_dir)


@pytest.fixture
def twin(twin_server: Twin) -> Twin:
    twin_server.reset_with("plain", "")
    return twin_server


def in_order(calls: dict[str, Callable[[], Any]], first_done: Callable[[], bool], second: str) -> tuple[list[str], dict[str, Any]]:
    """Start ``calls[slow]`` in a thread (the one not named ``second``), wait until the twin has it
    (``first_done``), then make ``calls[second]``; return the order in which they returned and
    what each returned (or raised)."""
    (slow,) = [k for k in calls if k != second]
    order: list[str] = []
    results: dict[str, Any] = {}
    lock = threading.Lock()

    def run(name: str) -> None:
        try:
            results[name] = calls[name]()
        except Exception as exc:  # the outcome is asserted by the test
            results[name] = exc
        with lock:
            order.append(name)

    thread = threading.Thread(target=run, args=(slow,))
    thread.start()
    try:
        deadline, delay = time.monotonic() + TIMEOUT, 0.01
        while not first_done():
            assert time.monotonic() < deadline, f"the twin never received the {slow} call"
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        run(second)
    finally:
        thread.join(TIMEOUT + DELAY)
    return order, results


# ---- times -----------------------------------------------------------------------------------------


def test_a_fault_with_times_1_answers_503_once_then_the_call_succeeds(twin: Twin) -> None:
    twin.reset_with("one-503", '''
[[faults]]
method = "run.projects.locations.services.get"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
times = 1

[[faults]]
method = "monitoring.projects.alertPolicies.list"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
times = 1
''')
    # retry=None: the clients' own retry would hide the one error this test is about.
    with pytest.raises(gexc.ServiceUnavailable) as err:
        twin.run.get_service(name=BACKEND, retry=None, timeout=TIMEOUT)
    assert "currently unavailable" in err.value.message
    assert twin.run.get_service(name=BACKEND, retry=None, timeout=TIMEOUT).name == BACKEND
    with pytest.raises(gexc.ServiceUnavailable):
        list(twin.alerts.list_alert_policies(name=PARENT, retry=None, timeout=TIMEOUT))
    assert list(twin.alerts.list_alert_policies(name=PARENT, retry=None, timeout=TIMEOUT)) == []
    for method in ("run.projects.locations.services.get", "monitoring.projects.alertPolicies.list"):
        fault = twin.fault(method)
        assert (fault["calls"], fault["hits"]) == (2, 1), fault


def test_after_calls_lets_the_first_calls_through_then_times_fails_that_many(twin: Twin) -> None:
    twin.reset_with("second-and-third", '''
[[faults]]
method = "run.projects.locations.services.get"
code = 500
status = "INTERNAL"
message = "Internal error."
after_calls = 1
times = 2
''')
    outcomes = []
    for _ in range(4):
        try:
            twin.run.get_service(name=BACKEND, retry=None, timeout=TIMEOUT)
            outcomes.append("ok")
        except gexc.InternalServerError:
            outcomes.append("500")
    assert outcomes == ["ok", "500", "500", "ok"]


# ---- delay_seconds ---------------------------------------------------------------------------------


def test_a_delayed_rest_answer_does_not_hold_up_other_requests(twin: Twin) -> None:
    twin.reset_with("slow-get", f'''
[[faults]]
method = "run.projects.locations.services.get"
delay_seconds = {DELAY}
times = 1
''')
    method = "run.projects.locations.services.get"
    order, results = in_order({
        "delayed": lambda: twin.run.get_service(name=BACKEND, retry=None, timeout=TIMEOUT),
        "other": lambda: [s.name for s in twin.run.list_services(parent=LOCATION, retry=None, timeout=TIMEOUT)],
    }, first_done=lambda: twin.fault(method)["hits"] == 1, second="other")
    assert order == ["other", "delayed"], results
    assert results["delayed"].name == BACKEND   # a delay alone is a slow success
    assert BACKEND in results["other"]


def test_a_delayed_grpc_answer_does_not_hold_up_other_requests(twin: Twin) -> None:
    twin.reset_with("slow-list", f'''
[[faults]]
method = "monitoring.projects.alertPolicies.list"
delay_seconds = {DELAY}
times = 1
''')
    method = "monitoring.projects.alertPolicies.list"
    order, results = in_order({
        "delayed": lambda: list(twin.alerts.list_alert_policies(name=PARENT, retry=None, timeout=TIMEOUT)),
        "other": lambda: [c.name for c in twin.channels.list_notification_channels(name=PARENT, timeout=TIMEOUT)],
    }, first_done=lambda: twin.fault(method)["hits"] == 1, second="other")
    assert order == ["other", "delayed"], results
    assert results["delayed"] == []
    assert results["other"] == [f"{PARENT}/notificationChannels/EMAIL_ALERT"]


def test_a_delay_and_an_error_answer_the_error_late(twin: Twin) -> None:
    twin.reset_with("slow-503", f'''
[[faults]]
method = "run.projects.locations.services.get"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
delay_seconds = {DELAY}
times = 1
''')
    method = "run.projects.locations.services.get"
    order, results = in_order({
        "delayed": lambda: twin.run.get_service(name=BACKEND, retry=None, timeout=TIMEOUT),
        "other": twin.status,
    }, first_done=lambda: twin.fault(method)["hits"] == 1, second="other")
    assert order == ["other", "delayed"]
    assert isinstance(results["delayed"], gexc.ServiceUnavailable), results["delayed"]


# ---- applied ---------------------------------------------------------------------------------------


def test_an_applied_fault_changes_the_world_and_still_answers_the_error(twin: Twin) -> None:
    twin.reset_with("answers-lost", '''
[[faults]]
method = "logging.projects.metrics.create"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
applied = true
times = 1

[[faults]]
method = "monitoring.projects.alertPolicies.create"
code = 504
status = "DEADLINE_EXCEEDED"
message = "Deadline exceeded."
applied = true
times = 1

[[faults]]
method = "monitoring.projects.dashboards.create"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
times = 1
''')
    flt = 'resource.type="cloud_run_revision" AND httpRequest.status=503'
    with pytest.raises(gexc.ServiceUnavailable):
        twin.metrics.metric_create(PROJECT, "backend_503s", flt, "")
    # The caller got 503, but the metric exists: read back through the real client and the status page.
    assert twin.metrics.metric_get(PROJECT, "backend_503s")["filter"] == flt
    assert "backend_503s" in twin.status()["monitoring"]["summary"]["logMetrics"]

    with pytest.raises(gexc.DeadlineExceeded):
        twin.alerts.create_alert_policy(name=PARENT, alert_policy=policy("Backend 503s"), retry=None,
                                        timeout=TIMEOUT)
    assert [p.display_name for p in twin.alerts.list_alert_policies(name=PARENT, timeout=TIMEOUT)] == ["Backend 503s"]

    # Without `applied`, the same error refuses the call before anything happens.
    resp = twin.api.post(f"/v1/{PARENT}/dashboards", json={"displayName": "Netra staging", "gridLayout": {}})
    assert resp.status_code == 503, resp.text
    assert twin.status()["monitoring"]["summary"]["dashboards"] == []


def test_an_applied_fault_on_a_cloud_run_update_starts_its_operation(twin: Twin) -> None:
    """The issue's first reproduction, on the write itself: the update is answered 503, yet its
    rollout runs and the traffic moves."""
    twin.reset_with("update-lost", '''
[[faults]]
method = "run.projects.locations.services.patch"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
applied = true
times = 1
''', deploy_seconds=0.2)
    service = twin.run.get_service(name=BACKEND, timeout=TIMEOUT)
    before = [(t.revision, t.percent) for t in service.traffic]
    service.traffic = [run_v2.TrafficTarget(type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
                                            revision="netra-backend-staging-00748-q2d", percent=100)]
    with pytest.raises(gexc.ServiceUnavailable):
        twin.run.update_service(service=service, retry=None, timeout=TIMEOUT)

    def moved() -> bool:
        now = twin.run.get_service(name=BACKEND, timeout=TIMEOUT)
        return [(t.revision, t.percent) for t in now.traffic_statuses] == [("netra-backend-staging-00748-q2d", 100)]

    assert before == [("netra-backend-staging-00750-69k", 100)]
    twin.wait_until("the lost update's rollout", moved)


# ---- operations:wait -------------------------------------------------------------------------------


def test_a_server_side_wait_does_not_block_other_requests(twin: Twin) -> None:
    twin.reset_with("slow-delete", "", delete_seconds=DELAY)
    resp = twin.api.delete(f"/v2/{IDLE_REVISION}")
    assert resp.status_code == 200, resp.text
    op = resp.json()
    assert not op.get("done"), op
    waits = "run.projects.locations.operations.wait"
    order, results = in_order({
        "wait": lambda: twin.api.post(f"/v2/{op['name']}:wait", json={"timeout": "25s"}),
        "other": lambda: twin.run.get_service(name=BACKEND, retry=None, timeout=TIMEOUT),
    }, first_done=lambda: twin.status()["requests"]["by_method"].get(waits, 0) == 1, second="other")
    assert order == ["other", "wait"], results
    assert results["wait"].status_code == 200 and results["wait"].json()["done"] is True, results["wait"].text
    assert results["other"].name == BACKEND


def test_wait_returns_the_operation_once_it_is_done(twin: Twin) -> None:
    # "Waits until the specified long-running operation is done or reaches at most a specified
    # timeout, returning the latest state" (run.v2.json operations.wait).
    twin.reset_with("slow-delete-done", "", delete_seconds=1.0)
    op = twin.api.delete(f"/v2/{IDLE_REVISION}").json()
    assert not op.get("done"), op
    resp = twin.api.post(f"/v2/{op['name']}:wait", json={"timeout": "25s"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["done"] is True and resp.json()["name"] == op["name"]


def test_wait_returns_the_operation_not_done_at_its_timeout(twin: Twin) -> None:
    twin.reset_with("slow-delete-timeout", "", delete_seconds=DELAY * 4)
    op = twin.api.delete(f"/v2/{IDLE_REVISION}").json()
    resp = twin.api.post(f"/v2/{op['name']}:wait", json={"timeout": "0.5s"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["done"] is False and resp.json()["name"] == op["name"]  # the latest state, not an error


def test_wait_on_an_operation_already_done_returns_at_once(twin: Twin) -> None:
    # "If the operation is already done, the latest state is immediately returned": asked to wait
    # the twin's longest (60 s), it answers a client that gives up far earlier (TIMEOUT / 6).
    twin.reset_with("slow-delete-already", "", delete_seconds=0.0)
    op = twin.api.delete(f"/v2/{IDLE_REVISION}").json()
    first = twin.api.post(f"/v2/{op['name']}:wait", json={"timeout": "25s"}).json()
    assert first["done"] is True
    again = twin.api.post(f"/v2/{op['name']}:wait", json={"timeout": "60s"}, timeout=TIMEOUT / 6)
    assert again.status_code == 200 and again.json()["done"] is True


def test_wait_refuses_a_timeout_that_is_not_a_duration(twin: Twin) -> None:
    twin.reset_with("slow-delete-bad", "", delete_seconds=DELAY)
    op = twin.api.delete(f"/v2/{IDLE_REVISION}").json()
    resp = twin.api.post(f"/v2/{op['name']}:wait", json={"timeout": "soon"})
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT", resp.text


# ---- the twin's own commands -----------------------------------------------------------------------


def twin_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin", "--home", str(home), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stale_server_file(home: Path, control_port: int) -> None:
    """What a twin killed without cleaning up leaves: a server file naming its (gone) pid and ports."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "server.json").write_text(json.dumps({"pid": dead_pid(), "control": f"127.0.0.1:{control_port}",
                                                  "data": "127.0.0.1:1", "grpc": "127.0.0.1:2", "ca": ""}))


def world_scenario(home: Path) -> str | None:
    path = home / "world.json"
    return json.loads(path.read_text())["scenario"] if path.exists() else None


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/_twin/health", timeout=2)
        return True
    except httpx.TransportError:
        return False


def test_stop_returns_once_the_twin_is_gone_so_a_reset_right_after_reaches_no_dying_twin(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    with running_twin(first, "healthy") as proc:
        # The second checkout's server file is stale and names the first twin's address.
        stale_server_file(second, proc.control_port)
        stopped = twin_cli(first, "stop")
        reset = twin_cli(second, "reset", "--scenario", "incident-1278")
        assert stopped.returncode == 0 and "stopped pid" in stopped.stdout, stopped.stdout + stopped.stderr
        assert not answers(proc.control_port)            # stop returned after the server exited
        assert not (first / "server.json").exists()
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "the twin is not running" in reset.stdout, reset.stdout
    assert world_scenario(second) == "incident-1278"    # the second home's own world was reset
    assert world_scenario(first) == "healthy"           # and not the first twin's


def test_stop_with_a_stale_server_file_says_so_and_clears_it(tmp_path: Path, twin_server: Twin) -> None:
    home = tmp_path / "stale"
    stale_server_file(home, twin_server.proc.control_port)  # another home's twin answers there
    pid = json.loads((home / "server.json").read_text())["pid"]
    out = twin_cli(home, "stop")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"twin: not running (the recorded server pid {pid} is gone); "
                                  "removed the stale server file")
    assert "Traceback" not in out.stderr
    assert not (home / "server.json").exists()
    assert answers(twin_server.proc.control_port)        # the other home's twin was left alone
    assert twin_cli(home, "stop").stdout.strip() == "twin: not running"


@pytest.mark.parametrize("command", [["reset", "--scenario", "incident-1278"], ["status"]])
def test_reset_and_status_refuse_a_twin_of_another_home(tmp_path: Path, twin: Twin, command: list[str]) -> None:
    home = tmp_path / "elsewhere"
    stale_server_file(home, twin.proc.control_port)
    writes_before = twin.status()["requests"]
    out = twin_cli(home, *command)
    assert out.returncode == 1, out.stdout + out.stderr
    message = out.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert f"serves the home {twin.proc.home.resolve()}" in message, message
    assert f"not {home.resolve()}" in message and "Nothing was changed" in message, message
    assert f"python -m twin --home {home} stop" in message, message
    assert out.stdout == ""
    status = twin.status()
    assert status["scenario"] == "healthy"               # the other twin's world is untouched
    assert status["requests"] == writes_before
    assert world_scenario(home) is None                  # and this home got no world either


def test_an_unknown_scenario_is_one_paragraph_and_exit_4(tmp_path: Path, twin: Twin) -> None:
    shipped = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    offline = twin_cli(tmp_path / "fresh", "reset", "--scenario", "nope")
    online = twin_cli(twin.proc.home, "reset", "--scenario", "nope")
    cport, dport, gport = free_ports(3)
    served = twin_cli(tmp_path / "served", "serve", "--scenario", "nope", "--control", f"127.0.0.1:{cport}",
                      "--data", f"127.0.0.1:{dport}", "--grpc", f"127.0.0.1:{gport}")
    for out in (offline, online, served):
        message = out.stderr.strip()
        assert out.returncode == 4, out.stdout + out.stderr
        assert "\n" not in message and "Traceback" not in message, message
        assert "No twin scenario named 'nope'" in message, message
        assert ", ".join(shipped) in message, message
        assert "port" not in message, message
    assert "Nothing was changed" in offline.stderr and "The twin was not started" in served.stderr
    assert world_scenario(tmp_path / "fresh") is None
    assert twin.status()["scenario"] == "healthy"
    assert not (tmp_path / "served" / "server.json").exists() and not answers(cport)
