"""The runbook's phases: their titles (Allure features) and marker names."""

from __future__ import annotations

TITLES = {
    1: "Phase 1: Immediate Stabilization",
    2: "Phase 2: Infrastructure Validation",
    3: "Phase 3: Service Recovery",
    4: "Phase 4: Monitoring Setup",
}
EPIC = "Issue #1278"
CONFIRMATION = "confirmation"  # the runbook's Success Confirmation: its own marker, judged last
CONFIRMATION_TITLE = "Success Confirmation"


def marker(phase: int) -> str:
    return f"phase{phase}"
