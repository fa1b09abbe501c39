"""Runbook, Phase 1 success metric: "Single active Cloud Run revision"."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase1 as c

pytestmark = pytest.mark.phase1


@allure.story(c.TITLES[c.SINGLE_ACTIVE_REVISION])
@allure.severity(allure.severity_level.BLOCKER)
def test_single_active_revision(phase1, service):
    judge(c.single_active_revision(phase1[service].service))
