"""Runbook, Phase 3 success metric: "WebSocket connections successful"."""

import allure
import pytest

from fixtures.judge import judge, require
from goldenpath.criteria import phase3 as c

pytestmark = pytest.mark.phase3


@allure.story(c.TITLES[c.WEBSOCKET])
@allure.severity(allure.severity_level.BLOCKER)
def test_websocket_connections(phase3, gate):
    ws = require(gate.target.websocket, "websocket", gate.target.name)
    judge(c.websocket(ws.url, phase3.websocket))
