"""Bad input, end to end: every bad key of targets.toml and every bad option is one paragraph that
names the key and the fix, exit 4 (pytest's usage error), no traceback, and nothing asked of the twin.

Each case runs the real gate (a pytest subprocess) against a copy of the sandbox's `sim` target with
one thing broken, while the sandbox twin runs: its request counters must not move and the case's
reports folder must stay empty (no journal line). The list of targets.toml keys comes from the
pydantic models, so a new key without a bad-value case fails test_every_key_has_a_case.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Callable, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from goldenpath.config import Target, scenarios
from selftest.conftest import Sandbox, _ensure_twin

# ---- a small TOML writer (the venv has none): the sim target with one value changed ---------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(targets: dict[str, Any]) -> str:
    out = []
    for name, body in targets.items():
        if not isinstance(body, dict):
            out.append(f"[targets]\n{json.dumps(name)} = {_toml_value(body)}\n")
            continue
        out.append(f"[targets.{name}]")
        out += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in body.items()]
        out.append("")
    return "\n".join(out) + "\n"


def put(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` (list indexes as numbers), creating tables on the way."""
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is MISSING:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


# ---- the cases -----------------------------------------------------------------------------------

MISSING = object()


@dataclass
class Case:
    id: str
    keys: tuple[str, ...] = ()             # the model keys (services.name, not services.0.name) it covers
    values: dict[str, Any] = field(default_factory=dict)  # dotted path -> bad value (ROOT: the file)
    expect: tuple[str, ...] = ()           # fragments the paragraph must hold (the key and the fix)
    args: tuple[str, ...] = ()             # extra gate options
    text: str | Callable[[Path], str] | None = None  # the whole targets file instead of the sim copy
    target: str = "sim"
    prepare: Callable[[Path], dict[str, Any]] | None = None  # builds values from the case's folder


def bad(key: str, value: Any, *expect: str, at: str | None = None, id: str | None = None) -> Case:
    """One bad value for one key; ``at``: its path in the file when it differs (services.0.name)."""
    return Case(id or f"{key}={value!r}"[:60], (key,), {at or key: value}, (f"targets.sim.{at or key}", *expect))


SVC = "services.0"
CASES: list[Case] = [
    # Target's own keys
    bad("description", 5, "valid string"),
    bad("project", "projects/netra-staging", "project ID alone"),
    bad("region", "", "region name such as us-central1"),
    bad("services", [], "at least 1 item"),
    bad("credentials", "service-account", "'adc' or 'anonymous'"),
    bad("credentials", "oauth", "'adc' or 'anonymous'", id="credentials-oauth"),
    bad("endpoints", {"storage": "http://127.0.0.1:1"}, "unknown API storage", "known: run, logging"),
    bad("endpoints", {"run": "grpc://127.0.0.1:1"}, "http(s) URL", id="endpoints-not-http"),
    bad("endpoints", {"run": "http:///v2"}, "has no host", id="endpoints-no-host"),
    bad("endpoints", {"run": "http://run.example.com"}, "plain http is allowed on loopback only",
        id="endpoints-plain-http-off-loopback"),
    Case("endpoints-google-with-anonymous-credentials", (), {"endpoints": {"run": "https://run.googleapis.com"}},
         ("targets.sim", 'credentials = "anonymous" needs every API endpoint on loopback', "run goes to")),
    bad("resolve", {"api.staging.netrasystems.ai": "127.0.0.1"}, "must be HOST:PORT"),
    bad("resolve", {"https://api.staging.netrasystems.ai:443": "127.0.0.1"}, "must be HOST:PORT",
        id="resolve-key-with-scheme"),
    bad("resolve", {"api.staging.netrasystems.ai:443": "api.local"}, "must be an IP address", id="resolve-value-not-ip"),
    bad("resolve", {"api.staging.netrasystems.ai:443": "127.0.0.1:70000"}, "from 1 to 65535",
        id="resolve-value-port-range"),
    bad("ca_bundle", "no-such-ca.pem", "does not exist", "PEM file of the CA"),
    bad("remediation_allowed", "yes", "valid boolean"),
    bad("thresholds", 3, "valid dictionary"),
    bad("timeouts", "fast", "valid dictionary"),
    bad("twin", [], "valid dictionary"),
    bad("connector", "staging-connector", "valid dictionary"),
    bad("database", "netra-staging-db", "valid dictionary"),
    bad("certificate", "staging-ssl-cert", "valid dictionary"),
    bad("domains", "https://api.staging.netrasystems.ai", "without https://", at="domains.0"),
    bad("websocket", "wss://api-staging.netrasystems.ai/ws", "valid dictionary"),
    bad("golden_path", True, "valid dictionary"),
    bad("monitoring", "monitoring", "valid dictionary"),
    # Thresholds: out of range (and one wrong type)
    bad("thresholds.health_seconds", 0, "greater than 0"),
    bad("thresholds.burst_size", 201, "less than or equal to 200"),
    bad("thresholds.min_requests", 0, "greater than or equal to 1"),
    bad("thresholds.log_window_minutes", "60", "valid integer"),
    bad("thresholds.db_utilization", 1.5, "less than or equal to 1"),
    bad("thresholds.db_escalation", 0, "greater than 0"),
    bad("thresholds.metric_window_minutes", -1, "greater than or equal to 1"),
    bad("thresholds.min_points", 2.5, "valid integer"),
    bad("thresholds.metric_settle_seconds", -1, "greater than or equal to 0"),
    bad("thresholds.connector_log_minutes", 0, "greater than or equal to 1"),
    bad("thresholds.connector_load", 2, "less than or equal to 1"),
    bad("thresholds.certificate_min_days", -1, "greater than or equal to 0"),
    bad("thresholds.clean_window_minutes", 0, "greater than 0"),
    bad("thresholds.metric_propagation_seconds", 4000, "less than or equal to 3600"),
    # Timeouts
    bad("timeouts.api_seconds", 0, "greater than 0"),
    bad("timeouts.probe_seconds", "15", "valid number"),
    bad("timeouts.operation_seconds", math.inf, "finite number"),
    # Service
    bad("services.name", "Netra_Backend", "Cloud Run service names are lowercase", at=f"{SVC}.name"),
    bad("services.name", "a" * 50, "fewer than 50 characters", at=f"{SVC}.name", id="services.name-too-long"),
    bad("services.health_url", "https:///health", "has no host", "https://HOST/PATH", at=f"{SVC}.health_url"),
    bad("services.health_url", "api.staging.netrasystems.ai/health", "http(s) URL", at=f"{SVC}.health_url",
        id="services.health_url-no-scheme"),
    bad("services.health_endpoints", "ftp://api.staging.netrasystems.ai/health", "http(s) URL",
        at=f"{SVC}.health_endpoints.0"),
    bad("services.required_env", {"DEMO_MODE": 0}, "valid string", at=f"{SVC}.required_env.DEMO_MODE"),
    bad("services.required_env", {"": "0"}, "not an environment variable name", at=f"{SVC}.required_env",
        id="services.required_env-empty-name"),
    bad("services.autoscaling", "2-100", "valid dictionary", at=f"{SVC}.autoscaling"),
    # Autoscaling
    bad("services.autoscaling.min_instances", -1, "greater than or equal to 0", at=f"{SVC}.autoscaling.min_instances"),
    bad("services.autoscaling.max_instances", 0, "greater than or equal to 1", at=f"{SVC}.autoscaling.max_instances"),
    bad("services.autoscaling.concurrency", 1001, "less than or equal to 1000", at=f"{SVC}.autoscaling.concurrency"),
    Case("autoscaling-min-above-max", (), {f"{SVC}.autoscaling.min_instances": 50, f"{SVC}.autoscaling.max_instances": 10},
         (f"targets.sim.{SVC}.autoscaling", "min_instances must not exceed max_instances")),
    # Connector
    bad("connector.name", "Staging_Connector", "lowercase letters, digits and hyphens"),
    bad("connector.min_instances", 1, "greater than or equal to 2"),
    bad("connector.max_instances", 11, "less than or equal to 10"),
    bad("connector.machine_type", "n1-standard-1", "'f1-micro', 'e2-micro' or 'e2-standard-4'"),
    Case("connector-min-not-below-max", (), {"connector.min_instances": 9, "connector.max_instances": 9},
         ("targets.sim.connector", "min_instances must be below max_instances")),
    # Database
    bad("database.instance", "netra-staging:us-central1:netra-staging-db", "not the connection name"),
    bad("database.max_connections", 10, "greater than or equal to 14"),
    bad("database.metric_alignment_seconds", 0, "greater than or equal to 1"),
    # Certificate
    bad("certificate.name", "Staging SSL", "RFC 1035"),
    # WebSocket
    bad("websocket.url", "https://api-staging.netrasystems.ai/ws", "ws(s) URL"),
    bad("websocket.url", "wss:///ws", "has no host", id="websocket.url-no-host"),
    bad("websocket.batch", 0, "greater than or equal to 1"),
    bad("websocket.timeout_seconds", 0, "greater than 0"),
    # GoldenPath
    bad("golden_path.login_url", "ftp://auth.staging.netrasystems.ai/auth/login", "http(s) URL"),
    bad("golden_path.login_url", "https:///auth/login", "has no host", id="golden_path.login_url-no-host"),
    bad("golden_path.user_env", "", "environment variable name"),
    bad("golden_path.password_env", "MY PASSWORD", "environment variable name"),
    Case("golden_path-one-variable", (), {"golden_path.user_env": "GP_USER"},
         ("names only one of user_env and password_env", "or neither to use the twin's rehearsal account")),
    # A real target's account comes from the environment only: no twin, no variables named.
    Case("golden_path-real-target-without-variables", (), {"twin": MISSING, "credentials": "adc"},
         ("golden_path needs user_env and password_env", "environment variables", "never from this file")),
    bad("golden_path.message", "", "must not be empty"),
    bad("golden_path.final_event", " ", "must not be empty"),
    bad("golden_path.deadline_seconds", 0, "greater than 0"),
    # Monitoring
    bad("monitoring.definitions", "no-such-folder", "does not exist", "folder of the monitoring definitions"),
    bad("monitoring.notification_channels", ["projects/netra-staging/channels"], "give its ID or its full name"),
    # Twin
    bad("twin.home", "", "must not be empty"),
    bad("twin.control", "10.0.0.1:18780", "loopback only"),
    bad("twin.data", "127.0.0.1:99999", "from 1 to 65535"),
    bad("twin.grpc", "127.0.0.1:abc", "loopback only"),
    bad("twin.scenario", "nope", "no twin scenario named 'nope'", "incident-1278", "broken-latest"),
    bad("twin.scenario", "missing-scenario.toml", "does not exist", "incident-1278", id="twin.scenario-missing-file"),
    Case("twin-ports-not-distinct", (), {"twin.grpc": "COPY:twin.control"},
         ("targets.sim.twin", "three different addresses")),
    # The ones the issue names
    Case("duplicate-service-names", (), {"services.1.name": "netra-backend-staging"},
         ("targets.sim.services", "netra-backend-staging is listed more than once", "one [[targets.sim.services]]")),
    Case("ca_bundle-not-pem", (), prepare=lambda d: {"ca_bundle": _write(d / "ca.pem", "not a certificate\n")},
         expect=("targets.sim.ca_bundle", "no PEM certificate", "PEM file of the CA")),
    Case("ca_bundle-broken-pem", (),
         prepare=lambda d: {"ca_bundle": _write(d / "ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                               "-----END CERTIFICATE-----\n")},
         expect=("targets.sim.ca_bundle", "not a valid PEM CA bundle")),
    Case("ca_bundle-is-a-folder", (), prepare=lambda d: {"ca_bundle": str(d)},
         expect=("targets.sim.ca_bundle", "is not a file")),
    # Unknown keys, one per table
    *[Case(f"unknown-key-{where or 'target'}", (), {f"{where + '.' if where else ''}colour": "blue"},
           (f"targets.sim.{where + '.' if where else ''}colour: unknown key",))
      for where in ("", "thresholds", "timeouts", SVC, f"{SVC}.autoscaling", "connector", "database", "certificate",
                    "websocket", "golden_path", "monitoring", "twin")],
    bad("name", "prod", "the gate sets it", id="reserved-key-name"),
    # The file itself
    Case("broken-toml", text="[targets.sim\nproject = 1\n", expect=("is not valid TOML", "Fix the syntax")),
    Case("unknown-target", target="prod", expect=("Unknown target 'prod'", "--target", "[targets.prod]")),
    Case("missing-file", text=lambda d: "MISSING", expect=("does not exist", "--targets-file")),
    Case("no-targets-table", text='[target.sim]\nproject = "netra-staging"\n', expect=("no [targets.NAME] tables",)),
    Case("target-not-a-table", text='[targets]\nsim = 3\n', expect=("targets.sim must be a table", "[targets.sim]")),
    # Options
    Case("soak-zero", args=("--soak=0",), expect=("--soak 0", "above 0")),
    Case("soak-negative", args=("--soak=-5",), expect=("--soak -5", "above 0")),
    Case("soak-nan", args=("--soak=nan",), expect=("--soak nan", "above 0")),
    Case("reports-dir-is-a-file", prepare=lambda d: {"ARG": ("--reports-dir", _write(d / "reports", "x"))},
         expect=("is a file, not a folder", "Pass --reports-dir a folder")),
    Case("reports-dir-under-a-file", prepare=lambda d: {"ARG": ("--reports-dir", _write(d / "f", "x") + "/reports")},
         expect=("cannot be created", "is a file, not a folder", "Pass --reports-dir a folder")),
    Case("reports-dir-not-writable", prepare=lambda d: {"ARG": ("--reports-dir", _readonly(d / "ro") + "/reports")},
         expect=("is not writable", "Pass --reports-dir a folder")),
]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _readonly(path: Path) -> str:
    path.mkdir()
    path.chmod(0o555)
    return str(path)


# ---- the keys of targets.toml, from the models ---------------------------------------------------

def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (X, X | None, list[X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, UnionType, list):
        return [m for a in get_args(annotation) if a is not NoneType for m in _models(a)]
    return []


def model_keys(model: type[BaseModel] = Target, prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if model is Target and name in ("name", "source"):
            continue  # set by load(), refused in a file (reserved-key-name)
        keys.append(prefix + name)
        for sub in _models(info.annotation):
            keys += model_keys(sub, f"{prefix}{name}.")
    return keys


def test_every_key_has_a_case() -> None:
    covered = {k for c in CASES for k in c.keys}
    missing = [k for k in model_keys() if k not in covered]
    assert not missing, f"targets.toml keys without a bad-input case in {__file__}: {', '.join(missing)}"
    assert len(CASES) >= 50


def test_the_shipped_scenarios_are_listed() -> None:
    assert {"incident-1278", "broken-latest", "healthy"} <= set(scenarios())


# ---- running them --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twin(sandbox: Sandbox) -> Sandbox:
    """The sandbox twin, running: each case checks that its request counters do not move."""
    _ensure_twin(sandbox)
    return sandbox


def requests_total(box: Sandbox) -> tuple[int, int]:
    req = box.status()["requests"]
    return req["reads"], req["writes"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_paragraph_and_asks_nothing(twin: Sandbox, case: Case, tmp_path: Path) -> None:
    if case.id == "reports-dir-not-writable" and os.geteuid() == 0:
        pytest.skip("root may write anywhere: the folder-is-a-file cases cover an unwritable --reports-dir")
    values = dict(case.values) | (case.prepare(tmp_path) if case.prepare else {})
    args = list(case.args) + list(values.pop("ARG", ()))
    if case.text is not None:
        text = case.text(tmp_path) if callable(case.text) else case.text
        path = tmp_path / ("missing.toml" if text == "MISSING" else "targets.toml")
        if text != "MISSING":
            path.write_text(text)
    else:
        data = tomllib.loads(twin.targets.read_text())["targets"]
        sim = copy.deepcopy(data["sim"])
        for dotted, value in values.items():
            if isinstance(value, str) and value.startswith("COPY:"):
                value = eval_path(sim, value.removeprefix("COPY:"))
            put(sim, dotted, value)
        path = tmp_path / "targets.toml"
        path.write_text(to_toml({"sim": sim}))
    reports = tmp_path / "case-reports"
    before = requests_total(twin)
    run = twin.gate("-m", "phase1", "--remediate", "--yes", "--reports-dir", str(reports), *args,
                    target=case.target, targets=path)
    out = run.output.strip()
    assert run.returncode == 4, run.output
    assert "Traceback" not in out, out
    assert "\n" not in out, f"not one paragraph:\n{out}"
    assert out.startswith("ERROR: "), out
    for fragment in case.expect:
        assert fragment in out, f"{fragment!r} missing from: {out}"
    assert requests_total(twin) == before, "a request reached the twin"
    assert not (reports.exists() and any(reports.iterdir())), "the run wrote to its reports folder"


def eval_path(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node
