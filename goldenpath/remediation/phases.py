"""Each phase's remedy by number (for code that acts on a journal record, ``--recover``), and the
runbook's phase order: DO NOT SKIP STEPS.

A phase is remediated only when the phases before it pass, judged as they are now (after their own
remediation when they ran first in this session): ``-m phase2`` never fixes phase 1, and refuses to
fix phase 2 while phase 1 fails (the runner refuses when an earlier verdict is not a pass).
"""

from __future__ import annotations

from typing import Callable

from goldenpath.config import Target
from goldenpath.criteria import phase1 as phase1_criteria
from goldenpath.criteria import phase2 as phase2_criteria
from goldenpath.criteria import phase3 as phase3_criteria
from goldenpath.observe import Observer
from goldenpath.remediation.phase1 import Phase1Remedy
from goldenpath.remediation.phase2 import Phase2Remedy
from goldenpath.remediation.phase3 import Phase3Remedy
from goldenpath.remediation.phase4 import Phase4Remedy
from goldenpath.remediation.runner import Outcome, PhaseRemedy
from goldenpath.verdict import Verdict

REMEDIES: dict[int, Callable[[Target, Observer], PhaseRemedy]] = {
    1: Phase1Remedy, 2: Phase2Remedy, 3: Phase3Remedy, 4: Phase4Remedy}


def remedy_for(phase: int, target: Target, observer: Observer) -> PhaseRemedy:
    return REMEDIES[phase](target, observer)


# How each phase is judged on the observer's current observations, for the phases after it.
JUDGES: dict[int, Callable[[Observer, Target], list[Verdict]]] = {
    1: lambda observer, target: phase1_criteria.evaluate(observer.phase1(), target.thresholds),
    2: lambda observer, target: phase2_criteria.evaluate(observer.phase2(), target),
    3: lambda observer, target: phase3_criteria.evaluate(observer.phase3(), target),
}


def earlier(phase: int) -> list[int]:
    """The phases that must pass before ``phase`` is remediated: every one before it, in order."""
    return [n for n in sorted(REMEDIES) if n < phase]


def earlier_verdicts(phase: int, target: Target, observer: Observer) -> list[Verdict]:
    """The verdicts of the phases before ``phase``, judged now (nothing is read for phase 1)."""
    return [v for n in earlier(phase) for v in JUDGES[n](observer, target)]


def note(outcome: Outcome) -> str:
    """What a phase's remediation ended in when it did not simply apply, in a few words for the
    phase's failures ("Phase 2 remediation was rolled back"); "" when there is nothing to add. The
    report's categories tell remediation failures apart from infrastructure failing a criterion by it."""
    def short(text: str) -> str:
        return text[:160] + "…" if len(text) > 160 else text
    if outcome.escalations:
        return f"ESCALATE: {short(outcome.escalations[0])}"
    if outcome.rolled_back:
        return f"Phase {outcome.phase} remediation was rolled back"
    if outcome.error:
        return f"Phase {outcome.phase} remediation failed: {outcome.error}"
    if outcome.refused and outcome.mode == "apply":
        return f"Phase {outcome.phase} remediation was refused: {short(outcome.refused)}"
    if outcome.manual:
        return f"Phase {outcome.phase} needs manual action: {short(outcome.manual[0])}"
    return ""


def phase_note(outcomes: list[Outcome], phase: int) -> str:
    """The note of the last remediation of ``phase`` in this run that has one ("" when none)."""
    notes = [n for o in outcomes if o.phase == phase for n in [note(o)] if n]
    return notes[-1] if notes else ""
