"""The fault spec's rules and which calls a fault hits (twin.scenario.FaultSpec, Store.check_fault)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from twin import scenario as scenarios
from twin.scenario import FaultSpec
from twin.store import Store
from twin.world import World

ROOT = Path(__file__).resolve().parents[2]
METHOD = "run.projects.locations.services.patch"
ERROR = {"code": 503, "status": "UNAVAILABLE", "message": "The service is currently unavailable."}


def store_with(**fault: Any) -> Store:
    store = Store(Path("/nonexistent"))
    store.state = {}
    store.seed_faults([FaultSpec(method=METHOD, **fault)])
    return store


@pytest.mark.parametrize("fields, problem", [
    ({}, "needs an error"),
    ({"delay_seconds": 0}, "needs an error"),
    ({"code": 503, "status": "UNAVAILABLE"}, "message missing"),
    ({"message": "x", "delay_seconds": 1}, "code, status missing"),
    ({"delay_seconds": -1}, "greater than or equal to 0"),
    ({**ERROR, "code": 500}, "HTTP 503, not 500"),
], ids=["nothing", "zero-delay", "no-message", "message-only", "negative-delay", "code-not-the-status"])
def test_a_fault_needs_a_whole_error_or_a_delay(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        FaultSpec(method=METHOD, **fields)


def test_a_scenario_fault_with_neither_error_nor_delay_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text((ROOT / "twin" / "scenarios" / "healthy.toml").read_text()
                    + f'\n[[faults]]\nmethod = "{METHOD}"\napplied = true\n')
    with pytest.raises(scenarios.ScenarioError, match="faults.0: Value error, a fault needs an error"):
        World(tmp_path / "home").reset(str(path))


def test_a_delay_alone_is_a_valid_fault() -> None:
    fault = FaultSpec(method=METHOD, delay_seconds=2.5)
    assert fault.code is None and not fault.has_error


def test_which_calls_are_hit_and_what_they_get() -> None:
    store = store_with(**ERROR, after_calls=1, times=2, delay_seconds=3, applied=True)
    got = [store.check_fault(METHOD) for _ in range(4)]
    assert [g is not None for g in got] == [False, True, True, False]
    hit = got[1]
    assert hit is not None
    assert hit.refusal is None                      # applied: carried out first...
    assert hit.error_after is not None and hit.error_after.code == 503  # ...then answered the error
    assert hit.delay == 3
    fault = store.state["faults"][METHOD]
    assert (fault["calls"], fault["hits"]) == (4, 2)


def test_an_unapplied_error_refuses_and_a_delay_alone_refuses_nothing() -> None:
    refused = store_with(**ERROR).check_fault(METHOD)
    assert refused is not None and refused.refusal is not None and refused.error_after is None
    slow = store_with(delay_seconds=1.5).check_fault(METHOD)
    assert slow is not None and slow.refusal is None and slow.error_after is None and slow.delay == 1.5


def test_dry_runs_are_neither_counted_nor_hit_unless_the_fault_says_so() -> None:
    store = store_with(**ERROR, times=1)
    assert store.check_fault(METHOD, dry_run=True) is None
    assert store.state["faults"][METHOD]["calls"] == 0
    assert store.check_fault(METHOD) is not None    # the first real call is still the one hit
    dry = store_with(**ERROR, times=1, dry_runs=True)
    assert dry.check_fault(METHOD, dry_run=True) is not None
    assert dry.check_fault(METHOD) is None          # the dry run used up the one hit
