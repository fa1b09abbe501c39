"""Each phase's remedy by number, for code that acts on a journal record (``--recover``)."""

from __future__ import annotations

from goldenpath.config import Target
from goldenpath.observe import Observer
from goldenpath.remediation.phase1 import Phase1Remedy
from goldenpath.remediation.phase2 import Phase2Remedy
from goldenpath.remediation.phase3 import Phase3Remedy
from goldenpath.remediation.phase4 import Phase4Remedy
from goldenpath.remediation.runner import PhaseRemedy

REMEDIES = {1: Phase1Remedy, 2: Phase2Remedy, 3: Phase3Remedy, 4: Phase4Remedy}


def remedy_for(phase: int, target: Target, observer: Observer) -> PhaseRemedy:
    remedy: PhaseRemedy = REMEDIES[phase](target, observer)
    return remedy
