"""DO NOT SKIP STEPS (goldenpath.remediation.phases): which phases must pass before phase N is
remediated, judged on the current observations; and the note a phase's failures carry."""

from __future__ import annotations

from typing import Any

import pytest

from goldenpath.remediation import phases
from goldenpath.remediation.runner import Outcome
from goldenpath.verdict import Status, Verdict


def test_each_phase_waits_for_every_phase_before_it() -> None:
    assert phases.earlier(1) == []
    assert phases.earlier(2) == [1]
    assert phases.earlier(3) == [1, 2]
    assert phases.earlier(4) == [1, 2, 3]
    assert set(phases.JUDGES) == {1, 2, 3}  # phase 4 is last: nothing waits for it


def test_the_earlier_phases_are_judged_now_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    judged: list[int] = []

    def judge(n: int) -> Any:
        def run(observer: object, target: object) -> list[Verdict]:
            judged.append(n)
            return [Verdict(f"phase{n}", "s", Status.PASS, "ok")]
        return run

    monkeypatch.setattr(phases, "JUDGES", {n: judge(n) for n in (1, 2, 3)})
    assert phases.earlier_verdicts(1, object(), object()) == [] and judged == []  # type: ignore[arg-type]
    out = phases.earlier_verdicts(4, object(), object())  # type: ignore[arg-type]
    assert judged == [1, 2, 3] and [v.criterion for v in out] == ["phase1", "phase2", "phase3"]


def outcome(**kw: Any) -> Outcome:
    return Outcome(phase=kw.pop("phase", 2), mode=kw.pop("mode", "apply"), plan=[], **kw)


@pytest.mark.parametrize(("kw", "note"), [
    ({}, ""),
    ({"escalations": ["connections still above 90 %"]}, "ESCALATE: connections still above 90 %"),
    ({"rolled_back": ["x"]}, "Phase 2 remediation was rolled back"),
    ({"error": "boom"}, "Phase 2 remediation failed: boom"),
    ({"refused": "Phase 1 fails"}, "Phase 2 remediation was refused: Phase 1 fails"),
    ({"refused": "Phase 1 fails", "mode": "plan"}, ""),
    ({"manual": ["create the channel"]}, "Phase 2 needs manual action: create the channel"),
    ({"escalations": ["x" * 200]}, "ESCALATE: " + "x" * 160 + "…"),
])
def test_the_note_says_how_a_remediation_ended(kw: dict[str, Any], note: str) -> None:
    assert phases.note(outcome(**kw)) == note


def test_the_phase_note_is_the_last_one_of_that_phase() -> None:
    outcomes = [outcome(error="first"), outcome(phase=3, error="other phase"), outcome(rolled_back=["x"]), outcome()]
    assert phases.phase_note(outcomes, 2) == "Phase 2 remediation was rolled back"
    assert phases.phase_note(outcomes, 1) == ""
