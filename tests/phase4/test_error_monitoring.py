"""Runbook, Phase 4 success metric: "Error monitoring active" (the log-based metrics exist as defined)."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase4 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.ERROR_MONITORING])
def test_error_monitoring_active(verdict: Verdict) -> None:
    judge(verdict)
