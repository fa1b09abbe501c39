"""Runbook, Phase 4 success metric: "Dashboard monitoring operational" (the capacity dashboard, its widgets)."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase4 as c

pytestmark = pytest.mark.phase4


@allure.story(c.TITLES[c.DASHBOARD])
@allure.severity(allure.severity_level.NORMAL)
def test_dashboard_operational(phase4, observer):
    judge(c.dashboard(phase4, observer.definitions()))
