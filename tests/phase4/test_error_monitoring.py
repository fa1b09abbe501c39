"""Runbook, Phase 4 success metric: "Error monitoring active" (the log-based metrics exist as defined)."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase4 as c

pytestmark = pytest.mark.phase4


@allure.story(c.TITLES[c.ERROR_MONITORING])
@allure.severity(allure.severity_level.CRITICAL)
def test_error_monitoring_active(phase4, observer):
    judge(c.error_monitoring(phase4, observer.definitions()))
