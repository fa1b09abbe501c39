"""Runbook, Phase 2 success metric: "No VPC connectivity errors in logs"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase2 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.NO_CONNECTOR_ERRORS])
def test_no_vpc_connectivity_errors(verdict: Verdict) -> None:
    judge(verdict)
