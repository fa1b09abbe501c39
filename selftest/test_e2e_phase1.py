"""The five user steps of Phase 1, and its safety rules, driven through the real gate and twin."""

from __future__ import annotations

import httpx

from selftest.conftest import SCENARIOS, Sandbox

BACKEND = "netra-backend-staging"
OLD, NEW = "netra-backend-staging-00749-6tr", "netra-backend-staging-00750-69k"


def test_incident_fails_in_operator_language(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase1")
    assert run.returncode == 1, run.output
    assert "THE EMBEDDED TWIN" in run.output
    assert (f"{BACKEND}: 2 revisions serve traffic: {OLD} 50 %, {NEW} 50 %; "
            "expected one revision at 100 %") in run.output
    assert "answered 503" in run.output and "the request log shows" in run.output
    assert "expected every answer under 2 s" in run.output
    assert "4 failed, 2 passed" in run.output
    assert incident.writes() == 0  # read-only by default
    assert "Traceback" not in run.output


def test_plan_shows_every_change_and_makes_none(incident: Sandbox) -> None:
    before = incident.status()["run"]
    run = incident.gate("-m", "phase1", "--remediate=plan")
    assert "nothing was changed" in run.output
    assert f"gcloud run services update-traffic {BACKEND} --to-revisions={NEW}=100" in run.output
    assert f"gcloud run revisions delete {OLD}" in run.output
    assert "risk:   reversible" in run.output and "IRREVERSIBLE, needs --yes" in run.output
    assert '-      "percent": 50,' in run.output and '+      "percent": 100,' in run.output
    assert incident.writes() == 0
    assert incident.status()["run"]["services"] == before["services"]
    assert incident.journal() == []
    assert (incident.reports / "phase1-plan.txt").read_text().count("[phase 1]") == 2


def test_remediate_without_yes_applies_only_reversible_steps(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase1", "--remediate")
    assert incident.serving() == {NEW: 100}
    assert OLD in incident.revisions()  # the irreversible deletion was not made
    assert f"skipped: {BACKEND}: delete superseded revision {OLD}" in run.output
    assert "irreversible: pass --yes to allow it" in run.output
    # At 0 % and untagged, the old revision's minimum instance is not started (Cloud Run starts them
    # only for addressable revisions): the phase passes, and the deletion waits for --yes.
    assert run.returncode == 0 and "6 passed" in run.output, run.output
    events = [(r["event"], r["step"]) for r in incident.journal() if r["event"] not in ("apply.operation", "rollback.operation")]
    assert events == [("apply.before", "route-traffic"), ("apply.after", "route-traffic")]


def test_remediate_yes_fixes_then_gate_passes_and_stays_idempotent(incident: Sandbox) -> None:
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert run.returncode == 0, run.output
    assert "6 passed" in run.output
    assert incident.serving() == {NEW: 100}
    assert OLD not in incident.revisions()
    journal = incident.journal()
    deleted = [r for r in journal if r["step"] == "delete-revision" and r["event"] == "apply.before"]
    assert deleted and deleted[0]["payload"]["spec"]["name"].endswith(OLD)  # the full spec is kept
    assert [r["event"] for r in journal if r["event"] not in ("apply.operation", "rollback.operation")] == ["apply.before", "apply.after"] * 2
    assert sum(r["event"] == "apply.operation" for r in journal) == 2  # each operation named as it started
    assert all(r["identity"] == "anonymous (twin)" and r["target"] == "sim" for r in journal)

    writes = incident.writes()
    again = incident.gate("-m", "phase1")
    assert again.returncode == 0 and "6 passed" in again.output
    fix_again = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert fix_again.returncode == 0 and "phase 1: nothing to change" in fix_again.output
    assert incident.writes() == writes  # idempotent: a compliant target gets no write at all

    reset = incident.twin("reset")
    assert reset.returncode == 0 and "incident-1278" in reset.stdout
    assert incident.serving() == {OLD: 50, NEW: 50} and OLD in incident.revisions()


def test_broken_newest_revision_is_rolled_back_and_escalated(incident: Sandbox) -> None:
    incident.reset("broken-latest")
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert run.returncode == 1
    assert "rollback verified: yes" in run.output
    assert "ESCALATE: service unavailable after Phase 1" in run.output
    assert "20 of 20 concurrent requests" in run.output
    assert incident.serving() == {OLD: 50, NEW: 50}  # the original split is back
    assert OLD in incident.revisions()  # nothing irreversible happened on a failing phase
    events = [r["event"] for r in incident.journal() if r["event"] not in ("apply.operation", "rollback.operation")]
    assert events == ["apply.before", "apply.after", "rollback.before", "rollback.after", "rollback.verified"]


def test_no_rollback_leaves_the_change_and_escalates(incident: Sandbox) -> None:
    incident.reset("broken-latest")
    run = incident.gate("-m", "phase1", "--remediate", "--yes", "--no-rollback")
    assert "--no-rollback was given" in run.output
    assert incident.serving() == {NEW: 100}


def test_inconclusive_is_not_a_pass(sandbox: Sandbox, incident: Sandbox) -> None:
    # An external scenario file, given by path: healthy, but with no request history, and a target
    # that wants more requests in the log than one burst sends.
    quiet = sandbox.root / "quiet.toml"
    quiet.write_text((SCENARIOS / "healthy.toml").read_text()
                     .replace('name = "healthy"', 'name = "quiet"').replace("minutes = 30", "minutes = 0"))
    incident.reset(str(quiet))
    assert incident.status()["scenario"] == "quiet"
    targets = sandbox.write_targets("quiet-targets.toml", sandbox.targets.read_text().replace(
        "[targets.sim]\n", "[targets.sim]\nthresholds = { burst_size = 5, min_requests = 50 }\n", 1))
    run = sandbox.gate("-m", "phase1", targets=targets)
    assert run.returncode == 0, run.output
    assert "1 inconclusive" in run.output and "INCONCLUSIVE" in run.output
    assert "the request log holds only 5 requests" in run.output
    assert "at least 50 needed" in run.output


CANARY = "netra-backend-staging-00749-6tr"  # tagged "canary" at 0 % in tagged-idle-revision


def traffic(box: Sandbox, service: str = BACKEND) -> list[dict[str, object]]:
    svc = next(s for s in box.status()["run"]["services"] if s["name"].endswith("/" + service))
    return svc["traffic"]


def test_an_idle_tagged_revision_holding_min_instances_fails_and_is_left_to_the_operator(incident: Sandbox) -> None:
    incident.reset("tagged-idle-revision")
    before = incident.status()["run"]["services"]
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert run.returncode == 1, run.output
    assert f"{CANARY} (min instances 1 (tagged))" in run.output  # the criterion names it
    # No step may fix it: the plan says so and names the manual action, and nothing is written.
    assert "phase 1: nothing the gate may change; manual action needed" in run.output
    assert f"MANUAL: {BACKEND}: {CANARY} is tagged 'canary'" in run.output
    assert f"update-traffic {BACKEND} --remove-tags=canary" in run.output
    assert "Nothing to change" not in (incident.reports / "phase1-plan.txt").read_text()
    assert incident.writes() == 0 and incident.journal() == []
    assert incident.status()["run"]["services"] == before
    assert CANARY in incident.revisions()


def _with_tag(box: Sandbox, scenario: str) -> str:
    # The scenario, with its oldest backend revision tagged "legacy" at 0 % (untagged, it holds nothing).
    text = (SCENARIOS / f"{scenario}.toml").read_text()
    split = '  { revision = "netra-backend-staging-00750-69k", percent = 50 },\n]'
    assert split in text
    path = box.root / f"{scenario}-tagged.toml"
    path.write_text(text.replace(f'name = "{scenario}"', f'name = "{scenario}-tagged"').replace(
        split, split[:-1] + '  { revision = "netra-backend-staging-00748-q2d", percent = 0, tag = "legacy" },\n]'))
    return str(path)


def test_phase1_route_keeps_every_tag(incident: Sandbox) -> None:
    incident.reset(_with_tag(incident, "incident-1278"))
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert run.returncode == 0, run.output
    assert incident.serving() == {NEW: 100, "netra-backend-staging-00748-q2d": 0}
    assert [t.get("tag") for t in traffic(incident)] == [None, "legacy"]
    assert OLD not in incident.revisions() and "netra-backend-staging-00748-q2d" in incident.revisions()


def test_phase1_rollback_restores_the_traffic_exactly_tags_included(incident: Sandbox) -> None:
    # broken-latest, with the old revision's 50 % share tagged "blue": while the broken newest
    # revision serves 100 %, the old one stays tagged at 0 %; the rollback puts back the share and its tag.
    text = (SCENARIOS / "broken-latest.toml").read_text()
    share = '{ revision = "netra-backend-staging-00749-6tr", percent = 50 }'
    assert share in text
    path = incident.root / "broken-latest-tagged.toml"
    path.write_text(text.replace('name = "broken-latest"', 'name = "broken-latest-tagged"')
                    .replace(share, share[:-2] + ', tag = "blue" }'))
    incident.reset(str(path))
    before = traffic(incident)
    assert [t.get("tag") for t in before] == ["blue", None]
    run = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert run.returncode == 1 and "rollback verified: yes" in run.output, run.output
    assert traffic(incident) == before
    (verified,) = [r for r in incident.journal() if r["event"] == "rollback.verified"]
    assert f"traffic targets as captured; tags: blue→{OLD}" in verified["detail"]
    assert OLD in incident.revisions()


ENTRIES_429 = '''
[[faults]]
method = "logging.entries.list"
code = 429
status = "RESOURCE_EXHAUSTED"
message = "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'logging.googleapis.com' for consumer 'project_number:000000000000'."
'''


def _healthy_with(sandbox: Sandbox, name: str, extra: str) -> str:
    path = sandbox.root / f"{name}.toml"
    path.write_text((SCENARIOS / "healthy.toml").read_text().replace('name = "healthy"', f'name = "{name}"')
                    + ENTRIES_429 + extra)
    return str(path)


def test_a_single_logging_429_is_retried_and_changes_nothing(sandbox: Sandbox, incident: Sandbox) -> None:
    def verdict(output: str) -> list[str]:
        return [line for line in output.splitlines() if " passed" in line or line.startswith("VERDICT")]

    incident.reset("healthy")
    plain = incident.gate("-m", "phase1")
    incident.reset(_healthy_with(sandbox, "one-logging-429", "times = 1\n"))
    run = incident.gate("-m", "phase1")
    assert run.returncode == plain.returncode == 0, run.output
    assert "6 passed" in run.output and "could not be made" not in run.output
    # The same outcome as without the refusal, to the counts and the verdict line (times aside).
    assert [line.split(" in ")[0] for line in verdict(run.output)] == \
        [line.split(" in ")[0] for line in verdict(plain.output)]
    st = incident.status()
    fault = next(f for f in st["faults"] if f["method"] == "logging.entries.list")
    assert fault["calls"] == st["requests"]["by_method"]["logging.entries.list"] > 1  # refused once, then read
    assert incident.writes() == 0


def test_an_exhausted_logging_read_quota_is_a_could_not_check(sandbox: Sandbox, incident: Sandbox) -> None:
    incident.reset(_healthy_with(sandbox, "logging-429", ""))  # every entries.list refused
    targets = sandbox.write_targets("short-api-targets.toml", sandbox.targets.read_text().replace(
        "[targets.sim]\n", "[targets.sim]\ntimeouts = { api_seconds = 2 }\n", 1))
    run = sandbox.gate("-m", "phase1", "-rA", targets=targets)
    # The paragraph is printed once, in the summary of failed sources (issue #15).
    assert run.output.count("answered 429 RESOURCE_EXHAUSTED (Logging read quota, 60 entries.list a minute per "
                            "project)") == 1, run.output
    assert "run again in a minute" in run.output
    assert "Traceback" not in run.output
    # Only "503 errors eliminated" reads the request log: it could not check; the others are judged.
    assert "VERDICT: INCONCLUSIVE — a source could not be read: logging entries.list: refused (429 " \
           "RESOURCE_EXHAUSTED)" in run.output, run.output
    assert "INCONCLUSIVE tests/phase1/test_no_503.py::test_http_503_eliminated[netra-backend-staging]" in run.output
    assert "could not check: logging entries.list" in run.output
    assert run.outcome("test_http_503_eliminated[netra-backend-staging]") is None  # neither passed nor failed
    assert run.outcome("test_single_active_revision[netra-backend-staging]") == "PASSED"
    assert run.outcome("test_health_endpoint_fast[netra-backend-staging]") == "PASSED"



def _busy(box: Sandbox, users: int = 40) -> str:
    # The incident with background users: `users` requests to the backend while each update runs,
    # answered by the old 50/50 split (its broken revision and its contention answer 503s).
    text = (SCENARIOS / "incident-1278.toml").read_text()
    assert "[rollout]" not in text
    path = box.root / "incident-1278-busy.toml"
    path.write_text(text.replace('name = "incident-1278"', 'name = "incident-1278-busy"')
                    + f"\n[rollout]\nuser_requests = {users}\n")
    return str(path)


def _logged_503s(box: Sandbox, service: str, since: str, until: str) -> int:
    # The twin's request log, read through its Logging API as the gate reads it (every page).
    body: dict[str, object] = {
        "resourceNames": ["projects/netra-staging"], "pageSize": 1000,
        "filter": (f'resource.type="cloud_run_revision" AND resource.labels.service_name="{service}" '
                   f'AND timestamp>="{since}" AND timestamp<"{until}"')}
    count = 0
    while True:
        resp = httpx.post(f"http://{box.control}/v2/entries:list", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        count += sum(e.get("httpRequest", {}).get("status") == 503 for e in page.get("entries", []))
        if not page.get("nextPageToken"):
            return count
        body["pageToken"] = page["nextPageToken"]


def test_users_503s_during_the_gates_own_traffic_change_do_not_fail_its_verification(incident: Sandbox) -> None:
    # Users keep calling the backend while the gate's route-traffic operation runs: until it completes
    # Cloud Run still serves the old split, so some of them get 503s stamped after the service's
    # updateTime. Phase 1 verifies what is true once the change is done: those 503s are history.
    incident.reset(_busy(incident))
    run = incident.gate("-m", "phase1", "--remediate", "--yes", "-rA")
    journal = incident.journal()
    route = [r["time"] for r in journal if r["step"] == "route-traffic" and r["event"] in ("apply.before", "apply.after")]
    assert len(route) == 2, journal
    # The scenario did its part: users got 503s while the gate's traffic change ran.
    assert _logged_503s(incident, BACKEND, route[0], route[1]) > 0
    assert run.returncode == 0, run.output
    assert "rollback" not in " ".join(r["event"] for r in journal), journal
    assert "ESCALATE" not in run.output
    assert incident.serving() == {NEW: 100}
    assert OLD not in incident.revisions()
