"""Runbook, "Environment Configuration Fixes": the serving revision carries the required environment."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase3 as c

pytestmark = pytest.mark.phase3


@allure.story(c.TITLES[c.CONFIGURATION])
@allure.severity(allure.severity_level.CRITICAL)
def test_critical_configuration_present(phase3, service, gate):
    judge(c.configuration(phase3.services[service], phase3.serving[service],
                          gate.target.service(service).required_env))
