"""Runbook, Phase 3 success metric: "All health endpoints operational" (each endpoint on its own)."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase3 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.HEALTH_ENDPOINTS])
def test_health_endpoint_operational(verdict: Verdict) -> None:
    judge(verdict)
