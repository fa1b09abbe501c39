"""Runbook, Phase 1 success metric: "No revision-related resource contention"."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase1 as c

pytestmark = pytest.mark.phase1


@allure.story(c.TITLES[c.NO_CONTENTION])
@allure.severity(allure.severity_level.CRITICAL)
def test_no_revision_contention(phase1, service):
    obs = phase1[service]
    judge(c.no_contention(obs.service, obs.revisions))
