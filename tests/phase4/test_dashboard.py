"""Runbook, Phase 4 success metric: "Dashboard monitoring operational" (the capacity dashboard, its widgets)."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase4 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.DASHBOARD])
def test_dashboard_operational(verdict: Verdict) -> None:
    judge(verdict)
