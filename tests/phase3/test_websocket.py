"""Runbook, Phase 3 success metric: "WebSocket connections successful"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase3 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.WEBSOCKET])
def test_websocket_connections(verdict: Verdict) -> None:
    judge(verdict)
