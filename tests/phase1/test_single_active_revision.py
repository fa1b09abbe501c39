"""Runbook, Phase 1 success metric: "Single active Cloud Run revision"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase1 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.SINGLE_ACTIVE_REVISION])
def test_single_active_revision(verdict: Verdict) -> None:
    judge(verdict)
