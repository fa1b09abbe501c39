"""Runbook, Phase 3 success metric: "No service startup errors"."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase3 as c

pytestmark = pytest.mark.phase3


@allure.story(c.TITLES[c.NO_STARTUP_ERRORS])
@allure.severity(allure.severity_level.CRITICAL)
def test_no_startup_errors(phase3, service):
    judge(c.no_startup_errors(phase3.services[service], phase3.serving[service], phase3.startup[service]))
