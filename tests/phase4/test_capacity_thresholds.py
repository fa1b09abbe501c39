"""Runbook, Phase 4 success metric: "Capacity thresholds established" (every alert threshold watched,
autoscaling as the runbook's rules say)."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase4 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.CAPACITY])
def test_capacity_thresholds_established(verdict: Verdict) -> None:
    judge(verdict)
