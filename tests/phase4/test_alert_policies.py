"""Runbook, Phase 4 success metric: "Alert policies configured" (as defined, enabled, notifying a channel)."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase4 as c

pytestmark = pytest.mark.phase4


@allure.story(c.TITLES[c.ALERT_POLICIES])
@allure.severity(allure.severity_level.CRITICAL)
def test_alert_policies_configured(phase4, observer, gate):
    judge(c.alert_policies(phase4, observer.definitions(), gate.target, pending=gate.pending(4)))
