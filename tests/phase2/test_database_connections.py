"""Runbook, Phase 2 success metric: "Database connections < 75% utilization"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase2 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.DB_CONNECTIONS])
def test_database_connections_below_75_percent(verdict: Verdict) -> None:
    judge(verdict)
