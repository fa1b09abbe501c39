"""Runbook, Phase 4 success metric: "Capacity thresholds established" (every alert threshold watched,
autoscaling as the runbook's rules say)."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase4 as c

pytestmark = pytest.mark.phase4


@allure.story(c.TITLES[c.CAPACITY])
@allure.severity(allure.severity_level.NORMAL)
def test_capacity_thresholds_established(phase4, observer, gate):
    judge(c.capacity(phase4, observer.definitions(), gate.target, pending=gate.pending(4)))
