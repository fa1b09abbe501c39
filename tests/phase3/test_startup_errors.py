"""Runbook, Phase 3 success metric: "No service startup errors"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase3 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.NO_STARTUP_ERRORS])
def test_no_startup_errors(verdict: Verdict) -> None:
    judge(verdict)
