"""Runbook, Phase 1 success metric: "No revision-related resource contention"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase1 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.NO_CONTENTION])
def test_no_revision_contention(verdict: Verdict) -> None:
    judge(verdict)
