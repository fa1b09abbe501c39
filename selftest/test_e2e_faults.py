"""Faults and crashes, injected into the real twin and the real gate: the verdict, the journal and
the world must agree afterwards (issue #11).

Faults are the twin's ``[[faults]]`` (a scenario copy, see ``Sandbox.with_faults``); crashes are a
real SIGKILL of the gate at a journal record (``GOLDENPATH_FAILPOINT``, goldenpath/failpoint.py).
Each test then reads the twin's state and the journal and checks they say the same thing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from selftest.conftest import Run, Sandbox, _ensure_twin

BACKEND = "netra-backend-staging"
OPS_GET_503 = """
[[faults]]
method = "run.projects.locations.operations.get"
code = 503
status = "UNAVAILABLE"
message = "The service is currently unavailable."
"""


def events(box: Sandbox, **match: Any) -> list[str]:
    return [r["event"] for r in box.journal() if all(r.get(k) == v for k, v in match.items())]


def verdict(box: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((box.reports / "verdict.json").read_text())
    return data


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    _ensure_twin(sandbox)
    sandbox.fresh_journal()
    return sandbox


def start(box: Sandbox, scenario: str, faults: str = "", **timing: float) -> None:
    box.reset(str(box.with_faults(scenario, faults, **timing)), propagation=None)


def kill_at(box: Sandbox, point: str, *args: str) -> Run:
    run = box.gate(*args, env={"GOLDENPATH_FAILPOINT": point})
    assert run.returncode == -9, run.output  # SIGKILL: no verdict, no cleanup, as a real crash
    return run


# ---- a change lands while its call fails -------------------------------------------------------

def test_a_route_whose_operation_cannot_be_read_is_read_back_and_counted_as_applied(box: Sandbox) -> None:
    start(box, "incident-1278", OPS_GET_503)
    run = box.gate("-m", "phase1", "--remediate", "--yes")
    assert box.serving() == {"netra-backend-staging-00750-69k": 100}
    assert run.returncode == 0, run.output
    assert "1 applied" in run.output or "2 applied" in run.output
    assert "but the change landed" in run.output
    recs = [r for r in box.journal() if r.get("step") == "route-traffic"]
    assert [r["event"] for r in recs] == ["apply.before", "apply.operation", "apply.failed", "apply.reconciled",
                                          "apply.after"]
    assert recs[3]["found"] == "landed" and recs[3]["operation"]
    assert "rollback.before" not in events(box)
    assert verdict(box)["tests"] and all(t["outcome"] == "passed" for t in verdict(box)["tests"])


# ---- an interrupted rollback is found and recovered --------------------------------------------

def test_a_rollback_killed_midway_is_refused_reported_and_recovered(box: Sandbox) -> None:
    start(box, "broken-latest")
    before = box.serving()
    assert len(before) == 2
    kill_at(box, "rollback.before", "-m", "phase1", "--remediate", "--yes")
    broken = box.serving()
    assert list(broken.values()) == [100]  # the world as the crash left it: all on the broken revision

    again = box.gate("-m", "phase1", "--remediate", "--yes")
    assert "an interrupted remediation (run " in again.output and "--recover" in again.output
    assert "step route-traffic" in again.output
    assert box.serving() == broken  # refused: nothing changed
    assert verdict(box)["verdict"] == "ESCALATE"

    read_only = box.gate("-m", "phase1")
    assert verdict(read_only_box := box)["verdict"] == "ESCALATE", read_only.output
    assert "an interrupted remediation" in verdict(read_only_box)["reason"] + " ".join(verdict(read_only_box)["escalations"])

    recovered = box.gate("-m", "phase1", "--recover", "--yes")
    assert "recover resolved" in recovered.output, recovered.output
    assert box.serving() == before
    assert "recover.resolved" in events(box)
    assert "an interrupted remediation" not in " ".join(verdict(box)["escalations"])

    after = box.gate("-m", "phase1", "--remediate=plan")
    assert "an interrupted remediation" not in after.output
