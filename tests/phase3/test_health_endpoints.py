"""Runbook, Phase 3 success metric: "All health endpoints operational" (each endpoint on its own)."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase3 as c

pytestmark = pytest.mark.phase3


@allure.story(c.TITLES[c.HEALTH_ENDPOINTS])
@allure.severity(allure.severity_level.CRITICAL)
def test_health_endpoint_operational(phase3, health_endpoint, gate):
    judge(c.health_endpoint(phase3.health[health_endpoint], gate.target.thresholds))
