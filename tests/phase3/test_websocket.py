"""Runbook, Phase 3 success metric: "WebSocket connections successful"."""

import allure
import pytest

from fixtures.judge import judge
from goldenpath.criteria import phase3 as c

pytestmark = pytest.mark.phase3


@allure.story(c.TITLES[c.WEBSOCKET])
@allure.severity(allure.severity_level.BLOCKER)
def test_websocket_connections(phase3, gate):
    judge(c.websocket(gate.target.websocket.url, phase3.websocket))
