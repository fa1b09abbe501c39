"""Runbook, Phase 2 success metric: "VPC connector status: READY"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase2 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.CONNECTOR_READY])
def test_vpc_connector_ready(verdict: Verdict) -> None:
    judge(verdict)
