"""Runbook, Phase 1 success metric: "Health endpoint responding < 2 seconds"."""

import allure
import pytest

from goldenpath.report import charts
from fixtures.judge import judge
from goldenpath.criteria import phase1 as c

pytestmark = pytest.mark.phase1


@allure.story(c.TITLES[c.HEALTH_FAST])
@allure.severity(allure.severity_level.CRITICAL)
def test_health_endpoint_fast(phase1, served_service, gate):
    obs = phase1[served_service]
    allure.attach(charts.burst_histogram(obs.burst, gate.target.thresholds.health_seconds),
                  name=f"latency: {served_service}", attachment_type=allure.attachment_type.SVG)
    judge(c.health_fast(obs.service, obs.burst, gate.target.thresholds))
