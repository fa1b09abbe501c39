"""Runbook, Phase 1 success metric: "HTTP 503 errors eliminated"."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase1 as c

pytestmark = pytest.mark.phase1


@allure.story(c.TITLES[c.NO_503])
@allure.severity(allure.severity_level.BLOCKER)
def test_http_503_eliminated(phase1, served_service, gate):
    obs = phase1[served_service]
    judge(c.no_503(obs.service, obs.burst, obs.request_log, gate.target.thresholds))
