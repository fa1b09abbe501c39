"""Runbook, Phase 2 success metric: "SSL certificates valid for all domains" (each domain on its own)."""

from fixtures.criteria import criterion
from fixtures.judge import judge
from goldenpath.criteria import phase2 as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.CERTIFICATE_VALID])
def test_ssl_certificate_valid(verdict: Verdict) -> None:
    judge(verdict)
