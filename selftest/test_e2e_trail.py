"""The debug trail through the real gate: --log-cli-level=DEBUG shows every API call, probe and
decision live, and no secret (the rehearsal password, a planted environment value) gets through."""

from __future__ import annotations

import re

from selftest.conftest import REHEARSAL_PASSWORD, SCENARIOS, Sandbox

ALL_PHASES = "phase1 or phase2 or phase3"
PLANTED = "planted-env-value-5c1d9e"


def test_debug_trail_shows_calls_probes_and_decisions_and_no_secret(incident: Sandbox) -> None:
    # The auth service's revision carries a plain env value nobody should ever read in a log: the
    # Phase 3 rollout copies its template (env included) into the change's payload, which the trail logs.
    text = (SCENARIOS / "incident-1278.toml").read_text()
    planted = text.replace('name = "auth-service-staging-00311-k8x"\nenv = { DEMO_MODE = "1" }',
                           f'name = "auth-service-staging-00311-k8x"\nenv = {{ DEMO_MODE = "1", '
                           f'STRIPE_KEY = "{PLANTED}" }}', 1)
    assert planted != text
    scenario = incident.root / "scenario-incident-planted-env.toml"
    scenario.write_text(planted)
    incident.reset(str(scenario))

    run = incident.gate("-m", ALL_PHASES, "--remediate", "--yes", "--log-cli-level=DEBUG")
    assert run.returncode == 0, run.output[-4000:]
    out = run.output
    # every API call, with its outcome and timing (reads at DEBUG, writes at INFO)
    assert re.search(r"DEBUG +goldenpath\.gcp\.run:\S+ run services\.get \S+: ok in \d+\.\d{3} s", out), out[-3000:]
    assert re.search(r"INFO +goldenpath\.gcp\.run:\S+ run services\.patch \S+: ok in \d+\.\d{3} s", out)
    assert re.search(r"goldenpath\.gcp\.run:\S+ run operation started: ", out)
    # probes, one record each
    assert re.search(r"goldenpath\.probes:\S+ http burst GET ×\d+ https://\S+: .* in \d+\.\d{3} s", out)
    assert re.search(r"goldenpath\.probes:\S+ tls handshake \S+ via \S+: verified in", out)
    assert re.search(r"goldenpath\.probes:\S+ golden path \S+ → \S+: ok in", out)
    # decisions and phase gathering
    assert re.search(r"goldenpath\.remediation:\S+ phase 1 plan \(apply\): ", out)
    assert re.search(r"goldenpath\.remediation:\S+ applied .* in \d+\.\d{3} s", out)
    assert re.search(r"goldenpath\.remediation:\S+ phase 3 remediation \(apply\) ended in", out)
    assert re.search(r"goldenpath\.observe:\S+ phase 2: observations gathered in", out)
    # the heavy clients are imported while an operation is waited on (the Compute client in its worker
    # process, from the start), and no timed probe (the burst, health checks, WebSocket pings, the
    # Golden Path) runs while a background import does
    assert re.search(r"goldenpath\.warmup:\S+ importing google\.cloud\.monitoring_v3 in the background while "
                     r"\S+ operation \S+ is waited on", out), [ln for ln in out.splitlines() if "warmup" in ln]
    assert re.search(r"goldenpath\.gcp\.compute:\S+ compute: worker process \d+ started", out)
    importing = None
    for line in out.splitlines():
        if (started := re.search(r"goldenpath\.warmup:\S+ importing (\S+) in the background", line)):
            importing = started.group(1)
        elif re.search(r"goldenpath\.warmup:\S+ background import of \S+ ended", line):
            importing = None
        elif importing and re.search(r"goldenpath\.probes:\S+ (http|websocket|golden path) ", line):
            raise AssertionError(f"a timed probe ran while {importing} was imported in the background: {line}")
    # the planted value passed through a logged payload: its name is there, its value is not
    assert re.search(r"goldenpath\.remediation:\S+ apply .*: payload .*\['STRIPE_KEY', '<redacted>'\]", out), \
        [ln for ln in out.splitlines() if ': payload' in ln][:6]
    assert PLANTED not in out
    assert REHEARSAL_PASSWORD not in out
    assert "Bearer ey" not in out
