"""Runbook, Phase 1 success metric: "HTTP 503 errors eliminated"."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase1 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.NO_503])
def test_http_503_eliminated(verdict: Verdict) -> None:
    judge(verdict)
