"""Bad input and safety rules: a clear paragraph, no traceback, and nothing changed or even asked."""

from __future__ import annotations

import pytest

from goldenpath.twinctl import free_ports
from selftest.conftest import ROOT, Sandbox


def requests_total(box: Sandbox) -> int:
    req = box.status()["requests"]
    return req["reads"] + req["writes"]


def test_target_without_remediation_allowed_is_refused(incident: Sandbox) -> None:
    locked = incident.write_targets("locked.toml", incident.targets.read_text().replace(
        "remediation_allowed = true", "remediation_allowed = false"))
    before = requests_total(incident)
    run = incident.gate("-m", "phase1", "--remediate", targets=locked)
    assert run.returncode == 4
    assert "Target 'sim' does not allow remediation: nothing was changed" in run.output
    assert "remediation_allowed = true" in run.output
    assert requests_total(incident) == before
    # plan mode is a preview, so it is allowed on any target
    plan = incident.gate("-m", "phase1", "--remediate=plan", targets=locked)
    assert "nothing was changed" in plan.output and incident.writes() == 0


def test_remediation_refuses_xdist(incident: Sandbox) -> None:
    before = requests_total(incident)
    run = incident.gate("-m", "phase1", "--remediate", "-n", "2")
    assert run.returncode == 4
    assert "Remediation refuses to run under pytest-xdist" in run.output
    assert requests_total(incident) == before
    # nor a plan: each worker would plan (and write plan.json for) only its own share of the phases
    (incident.reports / "plan.json").unlink(missing_ok=True)
    run = incident.gate("-m", "phase1 or phase2", "--remediate=plan", "-n", "2")
    assert run.returncode == 4, run.output
    assert "--remediate=plan refuses to run under pytest-xdist" in run.output
    assert requests_total(incident) == before and not (incident.reports / "plan.json").exists()


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        ("[targets.sim\nproject = 1", "sim", "is not valid TOML"),
        (None, "prod", "Unknown target 'prod'"),
        ('[targets.sim]\nregion = "us-central1"\nservices = [{ name = "a" }]\n', "sim", "targets.sim.project: Field required"),
        ('[targets.sim]\nproject = "p"\nregion = "r"\nservices = [{ name = "a" }]\nthreshold = 3\n', "sim",
         "targets.sim.threshold: unknown key"),
    ],
    ids=["invalid-toml", "unknown-target", "missing-field", "misspelt-key"],
)
def test_bad_targets_file_is_a_clear_error_before_any_request(
        incident: Sandbox, text: str | None, target: str, expected: str) -> None:
    path = incident.targets if text is None else incident.write_targets("bad.toml", text)
    before = requests_total(incident)
    run = incident.gate("-m", "phase1", "--remediate", "--yes", target=target, targets=path)
    assert run.returncode == 4, run.output
    assert expected in run.output
    assert "Traceback" not in run.output
    assert requests_total(incident) == before


def test_missing_credentials_names_the_fix(incident: Sandbox, tmp_path) -> None:
    run = incident.gate("-m", "phase1", target="staging", targets=ROOT / "targets.toml",
                        env={"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json"),
                             "NO_GCE_CHECK": "True", "CLOUDSDK_CONFIG": str(tmp_path)})
    assert run.returncode == 4, run.output
    assert "REAL INFRASTRUCTURE" in run.output
    assert "Application Default Credentials, but none were found" in run.output
    assert "gcloud auth application-default login" in run.output
    assert "Traceback" not in run.output


def test_unreachable_endpoint_is_reported_as_could_not_check(sandbox: Sandbox) -> None:
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    endpoints = ", ".join(f'{api} = "{closed}"' for api in
                          ("run", "logging", "sqladmin", "vpcaccess", "compute", "monitoring", "dashboards"))
    path = sandbox.write_targets("down.toml", f"""
[targets.down]
project = "netra-staging"
region = "us-central1"
credentials = "anonymous"
endpoints = {{ {endpoints} }}
timeouts = {{ api_seconds = 1, probe_seconds = 1 }}
services = [{{ name = "netra-backend-staging" }}]
""")
    run = sandbox.gate("-m", "phase1", target="down", targets=path)
    # Every source is unreachable: every criterion could not check (never a pass), the VERDICT names
    # the source, and its paragraph (what is wrong, what to do) is printed once, at the end.
    assert "VERDICT: INCONCLUSIVE — a source could not be read: run services.get: unreachable" in run.output, run.output
    assert run.output.count(f"Cannot reach the run API at {closed} for services.get") == 1, run.output
    assert " passed" not in run.output.split("short test summary")[-1]
    assert "Traceback" not in run.output


def test_phase1_never_imports_compute(incident: Sandbox) -> None:
    # -s: the import log goes to stderr, which pytest would otherwise capture per test
    run = incident.gate("-m", "phase1", "-s", python_flags=("-X", "importtime"))
    assert "google.cloud.run_v2" in run.stderr  # the import log is there…
    assert "google.cloud.compute_v1" not in run.stderr  # …and the 2.4 s Compute client is not in it
