"""Runbook, Phase 4 success metric: "Alert policies configured" (as defined, enabled, notifying a channel)."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase4 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.ALERT_POLICIES])
def test_alert_policies_configured(verdict: Verdict) -> None:
    judge(verdict)
