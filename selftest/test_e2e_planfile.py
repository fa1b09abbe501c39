"""reports/plan.json and `--remediate --plan FILE`: the reviewed plan, applied exactly, through the
real gate and twin. The world is changed behind the plan's back through the Run API itself."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx

from goldenpath.remediation import planfile
from selftest.conftest import Sandbox

BACKEND = "netra-backend-staging"
OLD, NEW = "netra-backend-staging-00749-6tr", "netra-backend-staging-00750-69k"
SERVICE = f"/v2/projects/netra-staging/locations/us-central1/services/{BACKEND}"


def make_plan(box: Sandbox, *args: str) -> tuple[Path, dict[str, Any]]:
    """--remediate=plan, and the plan.json it wrote copied out of the reports folder (as a reviewer keeps it)."""
    run = box.gate("--remediate=plan", "-rA", *args)
    assert "nothing was changed" in run.output, run.output
    doc = json.loads((box.reports / "plan.json").read_text())
    kept = box.root / "reviewed-plan.json"
    kept.write_text(json.dumps(doc))
    return kept, doc


def redigest(doc: dict[str, Any]) -> dict[str, Any]:
    """The file as someone who edits it and recomputes its digest would write it."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return {**body, "digest": "sha256:" + planfile.sha256(body)}


def move_traffic(box: Sandbox, split: dict[str, int]) -> None:
    """Someone else's `gcloud run services update-traffic`, then wait for Cloud Run to settle."""
    url = f"http://{box.control}{SERVICE}"
    service = httpx.get(url, timeout=10).json()
    body = copy.deepcopy(service)
    body["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": r, "percent": p}
                       for r, p in split.items()]
    resp = httpx.patch(url, json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not httpx.get(url, timeout=10).json().get("reconciling") and box.serving() == split:
            return
        time.sleep(0.2)
    raise AssertionError(f"the twin did not settle on {split}: {box.serving()}")


def test_plan_file_holds_each_step_and_applying_it_lands_exactly_it(incident: Sandbox) -> None:
    path, doc = make_plan(incident, "-m", "phase1")
    assert doc["schema"] == "goldenpath.plan/1" and doc["target"]["name"] == "sim"
    assert doc["digest"] == redigest(doc)["digest"]
    route, delete = doc["steps"]
    assert (route["phase"], route["step"], route["method"]) == (1, "route-traffic", "run.projects.locations.services.patch")
    assert route["resource"].endswith("/services/" + BACKEND) and route["fields"] == ["traffic"]
    assert set(route["fingerprint"]) == {"etag"} and route["updated"]
    assert route["after"]["traffic"] == [{"revision": NEW, "percent": 100}]
    assert route["consent"]["needs_yes"] is False
    assert delete["step"] == "delete-revision" and delete["resource"].endswith("/revisions/" + OLD)
    assert set(delete["fingerprint"]) == {"sha256"} and delete["consent"]["needs_yes"] is True
    assert incident.writes() == 0

    run = incident.gate("-m", "phase1", "--remediate", "--plan", str(path), "-rA")
    assert run.returncode == 0, run.output
    assert incident.serving() == {NEW: 100}
    assert OLD in incident.revisions()  # in the plan, but irreversible: --yes is still needed
    assert "irreversible: pass --yes to allow it" in run.output
    mutations = [r for r in incident.journal() if r["event"].startswith("apply.")]
    assert mutations and all(r["plan"] == doc["digest"] for r in mutations)
    assert [r["step"] for r in mutations if r["event"] == "apply.before"] == ["route-traffic"]


def test_a_plan_covers_the_phases_it_can_and_says_why_not_the_others(incident: Sandbox) -> None:
    _, doc = make_plan(incident, "-m", "phase1 or phase2")
    assert doc["phases"] == [1]
    [later] = doc["not_planned"]
    assert later["phase"] == 2 and "DO NOT SKIP STEPS" in later["why"]
    assert {s["phase"] for s in doc["steps"]} == {1}


def test_a_world_changed_behind_the_plan_is_refused_as_stale(incident: Sandbox) -> None:
    path, doc = make_plan(incident, "-m", "phase1")
    move_traffic(incident, {OLD: 70, NEW: 30})
    writes = incident.writes()
    run = incident.gate("-m", "phase1", "--remediate", "--yes", "--plan", str(path), "-rA")
    assert f"stale plan: {BACKEND} changed at " in run.output, run.output
    assert f"since the plan was made at {doc['made_at']}; plan again" in run.output
    assert "Nothing was changed." in run.output and "Traceback" not in run.output
    assert incident.writes() == writes and incident.serving() == {OLD: 70, NEW: 30}
    assert OLD in incident.revisions()
    assert [r for r in incident.journal() if r["event"].startswith("apply.")] == []


def test_a_mutation_the_plan_does_not_hold_is_refused(incident: Sandbox) -> None:
    path, doc = make_plan(incident, "-m", "phase1")
    # The reviewer struck the route from the plan (and wrote a fresh digest): only the deletion is approved.
    edited = redigest({**doc, "steps": [s for s in doc["steps"] if s["step"] != "route-traffic"]})
    path.write_text(json.dumps(edited))
    run = incident.gate("-m", "phase1", "--remediate", "--yes", "--plan", str(path), "-rA")
    assert f"is not in the plan {path} (digest {edited['digest'][7:19]}): plan again" in run.output, run.output
    assert incident.writes() == 0 and incident.serving() == {OLD: 50, NEW: 50}
    assert [r for r in incident.journal() if r["event"].startswith("apply.")] == []


def test_a_tampered_or_foreign_or_misused_plan_is_a_usage_error(incident: Sandbox) -> None:
    path, doc = make_plan(incident, "-m", "phase1")
    tampered = copy.deepcopy(doc)
    tampered["steps"][0]["after"]["traffic"] = [{"revision": OLD, "percent": 100}]
    path.write_text(json.dumps(tampered))
    run = incident.gate("-m", "phase1", "--remediate", "--plan", str(path))
    assert run.returncode == 4, run.output
    assert "its digest does not match its content" in run.output and "--remediate=plan --target sim" in run.output

    path.write_text(json.dumps(redigest({**doc, "target": {**doc["target"], "name": "staging"}})))
    run = incident.gate("-m", "phase1", "--remediate", "--plan", str(path))
    assert run.returncode == 4 and "is a plan for target 'staging'" in run.output, run.output

    path.write_text("{not json")
    run = incident.gate("-m", "phase1", "--remediate", "--plan", str(path))
    assert run.returncode == 4 and "cannot be read as JSON" in run.output, run.output

    path.write_text(json.dumps(doc))
    run = incident.gate("-m", "phase1", "--plan", str(path))
    assert run.returncode == 4 and "needs --remediate (apply)" in run.output, run.output
    assert "Traceback" not in run.output
    assert incident.writes() == 0 and incident.serving() == {OLD: 50, NEW: 50}


def test_phase2_steps_carry_their_update_mask_flag_list_and_settings_version(incident: Sandbox) -> None:
    fixed = incident.gate("-m", "phase1", "--remediate", "--yes")
    assert fixed.returncode == 0, fixed.output
    _, doc = make_plan(incident, "-m", "phase1 or phase2")
    assert doc["phases"] == [1, 2] and doc["not_planned"] == []
    steps = {s["step"]: s for s in doc["steps"]}
    assert set(steps) == {"scale-connector", "set-database-flags"}
    scale, flags = steps["scale-connector"], steps["set-database-flags"]
    assert scale["method"] == "vpcaccess.projects.locations.connectors.patch"
    assert scale["fields"] == ["machineType", "maxInstances", "minInstances"]
    assert set(scale["fingerprint"]) == {"sha256"} and scale["consent"]["needs_yes"] is True
    assert flags["method"] == "sql.instances.patch" and flags["fields"] == ["databaseFlags.max_connections"]
    assert isinstance(flags["fingerprint"]["settingsVersion"], int)
    assert flags["consent"]["risk"] == "reversible, causes a restart, needs --yes"
