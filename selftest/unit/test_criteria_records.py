"""Each criterion is declared once: every test, checklist item and remediation step derives from a record."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from goldenpath.criteria import record_of
from goldenpath import final
from goldenpath.config import Target
from goldenpath.criteria import Criterion
from goldenpath.criteria import confirmation, phase1, phase2, phase3, phase4
from goldenpath.observe import Observer
from goldenpath.remediation import phase2 as remedy2
from goldenpath.remediation.phases import REMEDIES

ROOT = Path(__file__).resolve().parents[2]
PHASES = {1: phase1.RECORDS, 2: phase2.RECORDS, 3: phase3.RECORDS, 4: phase4.RECORDS}
ALL: list[Criterion] = [r for records in PHASES.values() for r in records] + list(confirmation.RECORDS)


def _test_functions() -> list[tuple[str, object]]:
    out = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        out += [(f"{path.relative_to(ROOT)}::{name}", fn) for name, fn in vars(module).items()
                if name.startswith("test") and callable(fn)]
    return out


def test_every_test_function_is_tied_to_a_record_and_every_record_to_one_test() -> None:
    tests = _test_functions()
    assert tests, "no test found under tests/"
    untied = [name for name, fn in tests if record_of(fn) is None]
    assert not untied, f"declare these with @criterion(RECORD) (fixtures/criteria.py): {untied}"
    tied = [record_of(fn) for _, fn in tests]
    keys = [r.key for r in tied if r is not None]
    assert sorted(keys) == sorted(r.key for r in ALL), "each record has exactly one test, and each test one record"


@pytest.mark.parametrize("record", ALL, ids=lambda r: r.key)
def test_a_record_is_complete(record: Criterion) -> None:
    assert record.title and record.id
    assert record.severity in ("blocker", "critical", "normal")
    assert record.observation in Observer.SOURCES, f"{record.key} judges an unknown observation"
    assert callable(getattr(Observer, record.observation))
    assert record.marker == (f"phase{record.phase}" if record.phase else "confirmation")


def test_record_keys_are_unique_and_ids_unique_within_a_phase() -> None:
    assert len({r.key for r in ALL}) == len(ALL)


def test_the_checklist_is_the_success_confirmation_records_in_order() -> None:
    items = final.checklist({})
    assert [(i.item, i.title) for i in items] == [(r.id, r.title) for r in confirmation.RECORDS]
    assert [r.id for r in confirmation.RECORDS] == list(confirmation.ITEMS)


@pytest.mark.parametrize("phase", sorted(REMEDIES))
def test_every_step_a_remedy_executes_is_named_by_a_record_of_its_phase_and_back(phase: int) -> None:
    # A remedy's executors are the step kinds its planners may emit (the runner has no other way to
    # apply a change). Built with a stand-in observer: only attribute reads happen in __init__.
    target = Target.model_validate({"project": "p", "region": "us-central1", "services": [{"name": "x"}]})
    observer = SimpleNamespace(logging=None, monitoring=None, dashboards=None, run=None, session=None)
    remedy: Any = REMEDIES[phase](target, observer)  # type: ignore[arg-type]  # a stand-in observer
    executed = {step for step in remedy._executors}
    named = {step for r in PHASES[phase] for step in r.steps}
    assert executed == named, (f"phase {phase}: steps without a record {sorted(executed - named)}, "
                               f"records naming no step {sorted(named - executed)}")
    assert remedy.records == PHASES[phase]


def test_phase2_planners_are_listed_once_by_step_and_each_fixes_a_record() -> None:
    named = {step for r in phase2.RECORDS for step in r.steps}
    assert set(remedy2.PLANNERS) == named


def test_a_criterion_without_a_step_names_its_manual_action() -> None:
    for r in ALL:
        if r.phase and not r.steps:
            assert r.manual, f"{r.key} fails with no step to fix it: say what to do by hand (Criterion.manual)"


def test_a_criterion_with_nothing_configured_says_so_in_one_line() -> None:
    target = Target.model_validate({"project": "p", "region": "us-central1", "services": [{"name": "x"}]})
    record = phase1.BY_ID[phase1.NO_503]
    assert record.subjects(target) == []
    line = record.nothing_configured()
    assert line.startswith("HTTP 503 errors eliminated: nothing configured to check (no service has a health_url")
    assert "\n" not in line
