"""targets.toml: strict validation with messages that name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldenpath.config import APIS, GRPC_APIS, Target, Thresholds, load, parse_address
from goldenpath.errors import ConfigError

REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets.toml"

MINIMAL = """
[targets.x]
project = "p-1"
region = "europe-west1"
services = [{ name = "svc", health_url = "https://svc.example.com/health" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


def error(tmp_path: Path, text: str, name: str = "x") -> str:
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path, text), name)
    return str(exc.value)


# ---- valid -----------------------------------------------------------------------------------

def test_valid_target_loads_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    t = load(path, "x")
    assert (t.name, t.project, t.region) == ("x", "p-1", "europe-west1")
    assert t.source == str(path.resolve())
    assert [s.name for s in t.services] == ["svc"]
    assert t.service("svc").health_url == "https://svc.example.com/health"
    assert t.credentials == "adc" and not t.remediation_allowed and not t.is_twin
    assert t.thresholds == Thresholds() and t.thresholds.health_seconds == 2.0
    assert t.endpoint("run") == ""  # the client library's default: Google


def test_thresholds_can_be_overridden(tmp_path: Path) -> None:
    t = load(write(tmp_path, MINIMAL + "[targets.x.thresholds]\nmin_requests = 5\n"), "x")
    assert t.thresholds.min_requests == 5 and t.thresholds.burst_size == 20


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    t = load(write(tmp_path, MINIMAL.replace('region =', 'ca_bundle = "certs/ca.pem"\nregion =')), "x")
    assert t.ca_path == tmp_path.resolve() / "certs" / "ca.pem"


# ---- errors ----------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", "x")


def test_unknown_target_names_the_defined_ones_and_the_option(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL + MINIMAL.replace("targets.x", "targets.a"), name="zz")
    assert "Unknown target 'zz'" in msg
    assert "defines a, x" in msg
    assert "--target" in msg


def test_invalid_toml(tmp_path: Path) -> None:
    msg = error(tmp_path, "[targets.x\nproject = ")
    assert "not valid TOML" in msg and "targets.toml" in msg


def test_no_targets_tables(tmp_path: Path) -> None:
    assert "no [targets.NAME] tables" in error(tmp_path, 'title = "nothing"\n')


def test_unknown_key(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL + 'projcet = "typo"\n')
    assert "targets.x.projcet: unknown key" in msg


def test_unknown_key_in_a_nested_table(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL + "[targets.x.thresholds]\nhealth_secs = 3\n")
    assert "targets.x.thresholds.health_secs: unknown key" in msg


def test_missing_project_is_named(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL.replace('project = "p-1"\n', ""))
    assert "targets.x.project" in msg
    assert "Field required" in msg


def test_no_services(tmp_path: Path) -> None:
    msg = error(tmp_path, '[targets.x]\nproject = "p"\nregion = "r"\nservices = []\n')
    assert "targets.x.services" in msg


def test_health_url_must_be_http(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL.replace("https://svc.example.com/health", "ftp://svc/health"))
    assert "health_url must be an http(s) URL" in msg


def test_anonymous_credentials_with_a_google_endpoint_are_refused(tmp_path: Path) -> None:
    endpoints = "\n".join(f'{api} = "http://127.0.0.1:1"' for api in APIS if api != "logging")
    text = (MINIMAL.replace('region =', 'credentials = "anonymous"\nregion =')
            + f'[targets.x.endpoints]\n{endpoints}\nlogging = "https://logging.googleapis.com"\n')
    msg = error(tmp_path, text)
    assert 'credentials = "anonymous" needs every API endpoint on loopback' in msg
    assert "logging goes to logging.googleapis.com" in msg


def test_anonymous_credentials_without_endpoints_or_twin_are_refused(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL.replace('region =', 'credentials = "anonymous"\nregion ='))
    assert "needs every API endpoint on loopback" in msg


def test_anonymous_credentials_all_on_loopback_load(tmp_path: Path) -> None:
    endpoints = "\n".join(f'{api} = "http://localhost:9"' for api in APIS)
    text = MINIMAL.replace('region =', 'credentials = "anonymous"\nregion =') + f"[targets.x.endpoints]\n{endpoints}\n"
    assert load(write(tmp_path, text), "x").endpoint("sqladmin") == "http://localhost:9"


def test_unknown_api_endpoint(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL + '[targets.x.endpoints]\nstorage = "http://127.0.0.1:1"\n')
    assert "unknown API storage" in msg


@pytest.mark.parametrize("entry, fragment", [
    ('"no-port" = "127.0.0.1"', "resolve key 'no-port' must be HOST:PORT"),
    ('"h.example.com:https" = "127.0.0.1"', "must be HOST:PORT"),
    ('"h.example.com:443" = "not-an-ip"', "resolve address 'not-an-ip' must be an IP address"),
    ('"h.example.com:443" = "127.0.0.1:port"', "port must be a number"),
])
def test_bad_resolve_entries(tmp_path: Path, entry: str, fragment: str) -> None:
    msg = error(tmp_path, MINIMAL + f"[targets.x.resolve]\n{entry}\n")
    assert "targets.x.resolve" in msg
    assert fragment in msg


def test_twin_must_listen_on_loopback(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL + '[targets.x.twin]\ncontrol = "10.0.0.1:18780"\n')
    assert "targets.x.twin.control" in msg and "loopback only" in msg


# ---- derived ---------------------------------------------------------------------------------

def _target(**extra: object) -> Target:
    return Target.model_validate({"project": "p", "region": "r", "services": [{"name": "s"}], **extra})


def test_endpoint_falls_back_to_the_twins_control_address() -> None:
    t = _target(credentials="anonymous", twin={"control": "127.0.0.1:19999"},
                endpoints={"logging": "http://127.0.0.1:5"})
    assert t.is_twin
    assert t.endpoint("run") == "http://127.0.0.1:19999"
    assert t.endpoint("logging") == "http://127.0.0.1:5"  # an explicit endpoint wins


def test_endpoint_default_twin_control() -> None:
    assert _target(twin={}).endpoint("compute") == "http://127.0.0.1:18780"


def test_unknown_service_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        _target().service("nope")


@pytest.mark.parametrize("addr, parsed", [
    ("127.0.0.1", ("127.0.0.1", None)),
    ("127.0.0.1:18743", ("127.0.0.1", 18743)),
    ("::1", ("::1", None)),
    ("[::1]", ("::1", None)),
    ("[::1]:443", ("::1", 443)),
])
def test_parse_address(addr: str, parsed: tuple[str, int | None]) -> None:
    assert parse_address(addr) == parsed


@pytest.mark.parametrize("addr", ["example.com", "example.com:443", "127.0.0.1:", "127.0.0.1:x"])
def test_parse_address_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        parse_address(addr)


# ---- the repository's own file ---------------------------------------------------------------

def test_repository_sim_target_is_the_twin() -> None:
    t = load(REPO_TARGETS, "sim")
    assert t.is_twin and t.credentials == "anonymous" and t.remediation_allowed
    assert t.project == "netra-staging" and t.region == "us-central1"
    assert t.twin is not None
    # REST APIs on the control plane; the gRPC-only ones on the twin's gRPC port
    assert all(t.endpoint(api) == f"http://{t.twin.grpc if api in GRPC_APIS else t.twin.control}" for api in APIS)
    assert parse_address(t.resolve["api.staging.netrasystems.ai:443"]) == ("127.0.0.1", 18743)


def test_repository_staging_target_names() -> None:
    t = load(REPO_TARGETS, "staging")
    assert t.name == "staging"
    assert t.project == "netra-staging"
    assert t.region == "us-central1"
    assert [s.name for s in t.services] == ["netra-backend-staging", "auth-service-staging"]
    assert t.service("netra-backend-staging").health_url == "https://api.staging.netrasystems.ai/health"
    assert t.credentials == "adc" and not t.is_twin
    assert not t.remediation_allowed  # read-only unless the team agrees
    assert t.connector is not None and t.database is not None and t.certificate is not None
    assert (t.connector.name, t.database.instance, t.certificate.name) == (
        "staging-connector", "netra-staging-db", "staging-ssl-cert")
    # the runbook's --max-instances=20 is not valid: the target asks for the API's maximum
    assert (t.connector.min_instances, t.connector.max_instances) == (4, 10)
    assert t.database.max_connections == 200


@pytest.mark.parametrize(("table", "message"), [
    ('{ name = "c", max_instances = 20 }', "less than or equal to 10"),
    ('{ name = "c", min_instances = 5, max_instances = 4 }', "min_instances must be below max_instances"),
])
def test_connector_limits_of_the_real_api_are_config_errors(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(f'[targets.x]\nproject = "p"\nregion = "r"\nservices = [{{ name = "a" }}]\nconnector = {table}\n')
    with pytest.raises(ConfigError, match=message):
        load(path, "x")


@pytest.mark.parametrize("addr", ["127.0.0.1:99999", "127.0.0.1:0"])
def test_resolve_port_out_of_range_is_refused(addr: str) -> None:
    with pytest.raises(ValueError, match="1 to 65535"):
        parse_address(addr)


def test_metric_propagation_seconds_defaults_to_googles_ten_minutes_and_is_validated(tmp_path: Path) -> None:
    assert Thresholds().metric_propagation_seconds == 600
    t = load(write(tmp_path, MINIMAL + "[targets.x.thresholds]\nmetric_propagation_seconds = 30\n"), "x")
    assert t.thresholds.metric_propagation_seconds == 30
    msg = error(tmp_path, MINIMAL + "[targets.x.thresholds]\nmetric_propagation_seconds = -1\n")
    assert "targets.x.thresholds.metric_propagation_seconds" in msg
