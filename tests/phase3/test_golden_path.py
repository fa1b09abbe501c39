"""Runbook, Phase 3 success metric: "Golden Path validation passes end-to-end" (login → AI response)."""

import allure
import pytest

from goldenpath.report import charts
from fixtures.judge import judge
from goldenpath.criteria import phase3 as c
from goldenpath.errors import ConfigError

pytestmark = pytest.mark.phase3


@allure.story(c.TITLES[c.GOLDEN_PATH])
@allure.severity(allure.severity_level.BLOCKER)
def test_golden_path_end_to_end(phase3, gate):
    if phase3.golden_path is None:
        raise ConfigError(f"The Golden Path could not be walked: {phase3.golden_path_problem}.")
    deadline = gate.target.golden_path.deadline_seconds if gate.target.golden_path else None
    allure.attach(charts.golden_path_legs(phase3.golden_path, deadline), name="the Golden Path, leg by leg",
                  attachment_type=allure.attachment_type.SVG)
    judge(c.golden_path(phase3.golden_path))
