"""Runbook, Phase 2 success metric: "No VPC connectivity errors in logs"."""

import allure
import pytest

from fixtures.judge import judge, require
from goldenpath.criteria import phase2 as c

pytestmark = pytest.mark.phase2


@allure.story(c.TITLES[c.NO_CONNECTOR_ERRORS])
@allure.severity(allure.severity_level.CRITICAL)
def test_no_vpc_connectivity_errors(phase2, gate):
    require(gate.target.connector, "connector", gate.target.name)
    judge(c.no_connector_errors(phase2.connector_log, phase2.connector_metrics, phase2.connector,
                                gate.target.thresholds))
