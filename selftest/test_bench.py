"""What the benchmarks stand on: the twin's account of the time it imposes and of the requests it
served (``status`` ``imposed`` and ``requests.timeline``) and the phases' times in verdict.json
(compute_v1 staying out of the gate's process: test_e2e_compute_worker.py). Behaviour only: no test
here asserts how long anything took."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest

from selftest.conftest import ROOT, SCENARIOS, Sandbox

def test_status_names_the_waits_a_remediation_imposed_and_times_every_request(incident: Sandbox) -> None:
    run = incident.gate("--remediate", "--yes", "-m", "phase1 or phase2", "-rA")
    assert run.returncode == 0, run.output
    status = incident.status()
    timing = tomllib.loads((SCENARIOS / "incident-1278.toml").read_text())
    deploy, restart = timing["timing"]["deploy_seconds"], timing["sql"]["restart_seconds"]
    delete = timing["timing"]["delete_seconds"]
    imposed = status["imposed"]
    events = imposed["events"]
    waited = {(e["kind"], e["api"], e["resource"]) for e in events}
    # Phase 1 moved the backend's traffic (a Cloud Run operation), Phase 2 updated the connector
    # (a VPC Access operation) and raised max_connections (a Cloud SQL restart, then a period until
    # num_backends shows it).
    assert {("operations", "run", "netra-backend-staging"), ("operations", "vpcaccess", "staging-connector"),
            ("restarts", "sqladmin", "netra-staging-db"), ("metric_periods", "monitoring", "netra-staging-db"),
            ("metric_periods", "monitoring", "staging-connector")} <= waited, events
    for e in events:
        if e["kind"] == "operations":
            assert e["done"], f"the gate went on before {e} was done"
            # the scenario's durations, twin facts: a traffic move and a connector update take
            # deploy_seconds, the idle revision's deletion delete_seconds
            assert e["seconds"] == (delete if e["method"] == "delete_revision" else deploy), e
        if e["kind"] == "restarts":
            assert e["seconds"] == restart, e
    for kind, seconds in imposed["seconds"].items():
        assert seconds == pytest.approx(sum(e["seconds"] for e in events if e["kind"] == kind)), kind
    # The phases' fixtures are in verdict.json, each around the waits its remediation made.
    phases = json.loads((incident.reports / "verdict.json").read_text())["phases"]
    assert set(phases) == {"1", "2"}
    for e in events:
        if e["kind"] in ("operations", "restarts"):
            owner = "1" if e["api"] == "run" else "2"
            assert phases[owner]["start"] <= e["start"] <= phases[owner]["end"], (e, phases)
    # The timeline holds every request the counters count.
    req = status["requests"]
    assert len(req["timeline"]) + req["timeline_dropped"] == req["reads"] + req["writes"]
    assert sum(w for _, _, w in req["timeline"]) == req["writes"] > 0
    by_method: dict[str, int] = {}
    for _, method, _ in req["timeline"]:
        by_method[method] = by_method.get(method, 0) + 1
    assert by_method == req["by_method"]


def test_time_to_green_bench_runs_end_to_end() -> None:
    # The bench's own run (about a minute): its numbers are not asserted, its working is.
    proc = subprocess.run([sys.executable, "bench/time_to_green.py", "--runs", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert [kv.split("=")[0] for kv in last.split()] == ["wall_s", "imposed_s", "overhead_s", "requests"], last
    assert "run 1: exit 0" in proc.stdout, proc.stdout
