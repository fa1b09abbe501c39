"""Runbook, "Environment Configuration Fixes": the serving revision carries the required environment."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase3 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.CONFIGURATION])
def test_critical_configuration_present(verdict: Verdict) -> None:
    judge(verdict)
