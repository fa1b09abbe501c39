"""Runbook, Phase 2 success metric: "SSL certificates valid for all domains" (each domain on its own)."""

import allure
import pytest

from fixtures.judge import judge, require
from goldenpath.criteria import phase2 as c

pytestmark = pytest.mark.phase2


@allure.story(c.TITLES[c.CERTIFICATE_VALID])
@allure.severity(allure.severity_level.CRITICAL)
def test_ssl_certificate_valid(phase2, domain, gate):
    require(gate.target.certificate, "certificate", gate.target.name)
    judge(c.certificate_valid(domain, phase2.certificate, phase2.tls[domain], gate.target.thresholds.certificate_min_days))
