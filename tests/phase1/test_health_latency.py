"""Runbook, Phase 1 success metric: "Health endpoint responding < 2 seconds"."""

import allure

from goldenpath.report import charts
from fixtures.criteria import criterion
from goldenpath.gate import Gate
from fixtures.judge import judge
from goldenpath.criteria import phase1 as c
from goldenpath.observations import ServiceObservation
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.HEALTH_FAST])
def test_health_endpoint_fast(verdict: Verdict, phase1: dict[str, ServiceObservation], served_service: str,
                              gate: Gate) -> None:
    burst = phase1[served_service].burst
    if burst is not None:
        allure.attach(charts.burst_histogram(burst, gate.target.thresholds.health_seconds),
                      name=f"latency: {served_service}", attachment_type=allure.attachment_type.SVG)
    judge(verdict)
