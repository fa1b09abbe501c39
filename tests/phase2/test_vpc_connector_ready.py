"""Runbook, Phase 2 success metric: "VPC connector status: READY"."""

import allure
import pytest

from fixtures.judge import judge, require
from goldenpath.criteria import phase2 as c

pytestmark = pytest.mark.phase2


@allure.story(c.TITLES[c.CONNECTOR_READY])
@allure.severity(allure.severity_level.BLOCKER)
def test_vpc_connector_ready(phase2, gate):
    expected = require(gate.target.connector, "connector", gate.target.name)
    judge(c.connector_ready(phase2.connector, expected))
