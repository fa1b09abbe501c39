"""Runbook, "Success Confirmation": the five items that say the incident is over.

Four are phase criteria already: their verdict functions run again on the same observations (the
session's, measured once). The 503 window is the Success Confirmation's own. These tests run last.
Each item is a record in goldenpath/criteria/confirmation.py (its judge sets the checklist's value).
"""

from fixtures.confirmation import confirm
from fixtures.criteria import criterion
from goldenpath.criteria import confirmation as c
from goldenpath.verdict import Verdict


@criterion(c.BY_ID[c.HEALTH])
def test_all_health_endpoints_under_2_seconds(verdict: Verdict) -> None:
    confirm(c.HEALTH, verdict)


@criterion(c.BY_ID[c.WEBSOCKET])
def test_websocket_connections_successful(verdict: Verdict) -> None:
    confirm(c.WEBSOCKET, verdict)


@criterion(c.BY_ID[c.ZERO_503])
def test_zero_503_errors_for_10_minutes(verdict: Verdict) -> None:
    confirm(c.ZERO_503, verdict)


@criterion(c.BY_ID[c.DATABASE])
def test_database_utilization_under_75_percent(verdict: Verdict) -> None:
    confirm(c.DATABASE, verdict)


@criterion(c.BY_ID[c.GOLDEN_PATH])
def test_golden_path_end_to_end(verdict: Verdict) -> None:
    confirm(c.GOLDEN_PATH, verdict)
