"""Preflight through the real gate and twin: a phase whose verification cannot be evaluated is
refused before its first change, and nothing is changed."""

from __future__ import annotations

import json

from goldenpath.twinctl import free_ports
from selftest.conftest import ACCOUNT_VARIABLES, Sandbox

BACKEND, AUTH = "netra-backend-staging", "auth-service-staging"
OLD, NEW = "netra-backend-staging-00749-6tr", "netra-backend-staging-00750-69k"
ALL_PHASES = "phase1 or phase2 or phase3"


def template_env(box: Sandbox, service: str) -> dict[str, str]:
    svc = next(s for s in box.status()["run"]["services"] if s["name"].endswith("/" + service))
    return {e["name"]: e.get("value", "") for e in svc["template"]["containers"][0].get("env", [])}


def refusals(output: str, phase: int) -> list[str]:
    return [line.strip() for line in output.splitlines()
            if line.startswith(f"  refused: phase {phase} remediation refused before any change")]


def test_phase3_without_the_account_variables_is_refused_up_front(incident: Sandbox) -> None:
    # A target that names the variables of its test account (as a real one must), none of them set.
    before_revisions = incident.revisions()
    before_env = {s: template_env(incident, s) for s in (BACKEND, AUTH)}
    run = incident.gate("-m", ALL_PHASES, "--remediate", "--yes", targets=incident.targets_naming_account(),
                        unset=tuple(ACCOUNT_VARIABLES))
    assert run.returncode == 1, run.output
    (refused,) = refusals(run.output, 3)
    assert ("the environment variable(s) GP_REHEARSAL_USER and GP_REHEARSAL_PASSWORD "
            "(golden_path.user_env / password_env) are not set") in refused
    assert "leave user_env/password_env out of this twin target" in refused and "Nothing was changed." in refused
    assert "phase 3: 0 applied, 0 skipped, 0 rolled back" in run.output
    # Phases 1 and 2 still remediate (their verification needs no account).
    assert incident.serving() == {NEW: 100} and OLD not in incident.revisions()
    journal = incident.journal()
    assert {r["phase"] for r in journal} == {1, 2}
    assert {r["step"] for r in journal if r["event"] == "apply.after"} >= {"route-traffic", "set-database-flags"}
    # Phase 3 made no journal line, no revision, no template change.
    assert incident.revisions() == before_revisions - {OLD}
    assert {s: template_env(incident, s) for s in (BACKEND, AUTH)} == before_env
    assert "ESCALATE" not in run.output
    # The verdict is honest: the phase's criteria still fail (it was not fixed), never a PASS.
    verdict = json.loads((incident.reports / "verdict.json").read_text())
    assert verdict["verdict"] == "FAIL", verdict["reason"]
    assert "DEMO_MODE is '1'" in json.dumps(verdict["criteria"])
    (phase3,) = [o for o in verdict["remediation"] if o["phase"] == 3]
    assert phase3["refused"] == refused.removeprefix("refused: ") and phase3["applied"] == []


def test_plan_mode_shows_the_preflight_refusal(incident: Sandbox) -> None:
    incident.gate("-m", "phase1 or phase2", "--remediate", "--yes")  # so phases 1-2 pass and 3 is planned
    writes = incident.writes()
    journal = incident.journal()
    run = incident.gate("-m", "phase3", "--remediate=plan", targets=incident.targets_naming_account(),
                        unset=tuple(ACCOUNT_VARIABLES))
    note = "NOTE: --remediate would be refused now: phase 3 remediation refused before any change"
    (refused,) = [line for line in run.output.splitlines() if line.startswith(note)]
    assert "GP_REHEARSAL_USER and GP_REHEARSAL_PASSWORD" in refused
    assert f"[phase 3] {BACKEND}: roll out" in run.output and f"[phase 3] {AUTH}: roll out" in run.output
    assert incident.writes() == writes and incident.journal() == journal
    # With the account (the twin's own: the sim target names no variables) the preflight passes, and
    # the plan says nothing of a refusal.
    ok = incident.gate("-m", "phase3", "--remediate=plan")
    assert f"[phase 3] {BACKEND}: roll out" in ok.output and note not in ok.output, ok.output
    verdict = json.loads((incident.reports / "verdict.json").read_text())
    assert [o["refused"] for o in verdict["remediation"]] == [None]


def test_a_health_url_whose_host_does_not_answer_refuses_phase1(incident: Sandbox) -> None:
    # The backend's health host resolves to a loopback port nothing listens on.
    (closed,) = free_ports(1)
    key = '"api.staging.netrasystems.ai:443" = '
    text = incident.targets.read_text().replace(f'{key}"{incident.data}"', f'{key}"127.0.0.1:{closed}"')
    assert f"127.0.0.1:{closed}" in text
    targets = incident.write_targets("targets-closed-health.toml", text)
    before = incident.status()["run"]["services"]
    run = incident.gate("-m", "phase1", "--remediate", "--yes", targets=targets)
    assert run.returncode == 1, run.output
    (refused,) = refusals(run.output, 1)
    assert (f"api.staging.netrasystems.ai:443 (connecting to 127.0.0.1:{closed} as the target's resolve map says), "
            f"used by {BACKEND}'s health_url, does not answer a TCP connect (Connection refused)") in refused
    assert incident.writes() == 0 and incident.journal() == []
    assert incident.status()["run"]["services"] == before and incident.serving() == {OLD: 50, NEW: 50}
