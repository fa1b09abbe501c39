"""Runbook, "Success Confirmation": the five items that say the incident is over.

Four are phase criteria already: their verdict functions run again on the same observations (the
session's, measured once). The 503 window is the Success Confirmation's own. These tests run last.
"""

from dataclasses import replace

import allure
import pytest

from fixtures.confirmation import confirm
from fixtures.judge import require
from goldenpath.criteria import confirmation as c
from goldenpath.criteria import phase2 as p2
from goldenpath.criteria import phase3 as p3
from goldenpath.verdict import Verdict

pytestmark = pytest.mark.confirmation


def valued(verdict: Verdict, value: str) -> Verdict:
    """The verdict with the measured value the checklist shows."""
    return replace(verdict, evidence={**verdict.evidence, "value": value})


@allure.story(c.ITEMS[c.HEALTH])
@allure.severity(allure.severity_level.BLOCKER)
def test_all_health_endpoints_under_2_seconds(phase3, gate):
    checks = list(phase3.health.values())
    verdict = c.all_of(c.HEALTH, "health endpoints", [p3.health_endpoint(h, gate.target.thresholds) for h in checks])
    slowest = max((h.seconds for h in checks), default=0.0)
    confirm(c.HEALTH, valued(verdict, f"{verdict.evidence.get('value', '0/0')} answered 200 within "
                                      f"{gate.target.thresholds.health_seconds:g} s, slowest {slowest:.2f} s"))


@allure.story(c.ITEMS[c.WEBSOCKET])
@allure.severity(allure.severity_level.BLOCKER)
def test_websocket_connections_successful(phase3, gate):
    ws = require(gate.target.websocket, "websocket", gate.target.name)
    ok = sum(r.ok for r in phase3.websocket)
    confirm(c.WEBSOCKET, valued(p3.websocket(ws.url, phase3.websocket), f"{ok}/{len(phase3.websocket)} connected"))


@allure.story(c.ITEMS[c.ZERO_503])
@allure.severity(allure.severity_level.BLOCKER)
def test_zero_503_errors_for_10_minutes(clean_window, served_service, gate):
    confirm(c.ZERO_503, c.zero_503(clean_window[served_service], gate.target.thresholds.min_requests))


@allure.story(c.ITEMS[c.DATABASE])
@allure.severity(allure.severity_level.BLOCKER)
def test_database_utilization_under_75_percent(phase2, gate):
    require(gate.target.database, "database", gate.target.name)
    verdict = p2.db_connections(phase2.instance, phase2.backends, gate.target.thresholds, phase2.backends_since)
    confirm(c.DATABASE, valued(verdict, verdict.reason.split(": ", 1)[-1].split(" (")[0].split(";")[0]))


@allure.story(c.ITEMS[c.GOLDEN_PATH])
@allure.severity(allure.severity_level.BLOCKER)
def test_golden_path_end_to_end(phase3):
    walk = phase3.golden_path
    total = ("not walked" if walk is None else f"breaks at {walk.failed_leg}" if not walk.ok
             else f"login → AI response in {max(walk.legs.values()):.2f} s")
    confirm(c.GOLDEN_PATH, valued(p3.golden_path(walk, phase3.golden_path_problem), total))
