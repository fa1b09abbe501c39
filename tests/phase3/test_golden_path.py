"""Runbook, Phase 3 success metric: "Golden Path validation passes end-to-end" (login → AI response)."""

import allure

from goldenpath.report import charts
from fixtures.criteria import criterion
from goldenpath.gate import Gate
from fixtures.judge import judge
from goldenpath.criteria import phase3 as c
from goldenpath.errors import ConfigError
from goldenpath.observations import Phase3Observation
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.GOLDEN_PATH])
def test_golden_path_end_to_end(verdict: Verdict, phase3: Phase3Observation, gate: Gate) -> None:
    if phase3.golden_path is None:
        # Not walked is a check that could not be made (configuration), not a broken Golden Path.
        raise ConfigError(f"The Golden Path could not be walked: {phase3.golden_path_problem}.")
    deadline = gate.target.golden_path.deadline_seconds if gate.target.golden_path else None
    allure.attach(charts.golden_path_legs(phase3.golden_path, deadline), name="the Golden Path, leg by leg",
                  attachment_type=allure.attachment_type.SVG)
    judge(verdict)
