"""The run's final verdict: the Success Confirmation checklist, the decision rules, verdict.json."""

from __future__ import annotations

import json

import pytest

from goldenpath import final
from goldenpath.criteria import confirmation as c
from goldenpath.final import Final, Item
from goldenpath.verdict import Status, Verdict

KEYS = list(c.ITEMS)


# ---- builders ------------------------------------------------------------------------------

def verdict(item: str, status: Status = Status.PASS, value: str | None = "ok", subject: str = "svc",
            reason: str | None = None) -> Verdict:
    return Verdict(item, subject, status, reason or f"{subject}: {status.value}", {}, value=value or "")


def all_confirmed(**overrides: list[Verdict]) -> dict[str, list[Verdict]]:
    """Every item checked and passing, unless overridden (``overrides`` by item key)."""
    out = {k: [verdict(k)] for k in KEYS}
    out.update(overrides)
    return out


def items(**status: str) -> list[Item]:
    """The five items, passing unless given another status by key."""
    return [Item(k, t, status.get(k, "pass"), "v", f"{k} reason") for k, t in c.ITEMS.items()]


def result(name: str, outcome: str = "passed", message: str = "") -> final.TestResult:
    return final.TestResult(f"tests/phase1/test_x.py::{name}", outcome, message)


PASSING = [result("test_a"), result("test_b")]


# ---- checklist -----------------------------------------------------------------------------

def test_checklist_has_the_runbooks_items_in_its_order_whatever_the_recording_order() -> None:
    confirmed = {k: [verdict(k)] for k in reversed(KEYS)}
    got = final.checklist(confirmed)
    assert [i.item for i in got] == KEYS
    assert [i.title for i in got] == list(c.ITEMS.values())


def test_missing_items_are_not_checked() -> None:
    got = final.checklist({c.ZERO_503: [verdict(c.ZERO_503)]})
    by_key = {i.item: i for i in got}
    assert by_key[c.ZERO_503].status == "pass"
    for k in KEYS:
        if k != c.ZERO_503:
            assert by_key[k].status == "not checked"
            assert by_key[k].value == ""
            assert "-m confirmation" in by_key[k].reason


def test_an_empty_list_is_not_checked_either() -> None:
    got = final.checklist({c.HEALTH: []})
    assert got[0].status == "not checked"


def test_one_verdict_gives_its_status_value_and_reason() -> None:
    v = verdict(c.DATABASE, Status.FAIL, value="82 % of max_connections", reason="db: 82 % used")
    item = final.checklist({c.DATABASE: [v]})[3]
    assert item == Item(c.DATABASE, "Database utilization < 75%", "fail", "82 % of max_connections", "db: 82 % used")


def test_one_verdict_without_a_value_shows_none() -> None:
    item = final.checklist({c.WEBSOCKET: [verdict(c.WEBSOCKET, value=None)]})[1]
    assert item.value == ""
    assert item.status == "pass"


def test_several_verdicts_are_as_good_as_the_worst_with_values_joined() -> None:
    parts = [verdict(c.ZERO_503, Status.PASS, "503-free for 10 min of 10 min (20+ requests)", "backend"),
             verdict(c.ZERO_503, Status.INCONCLUSIVE, "503-free for 6 min of 10 min (20+ requests)", "auth",
                     reason="auth: not yet clean")]
    item = final.checklist({c.ZERO_503: parts})[2]
    assert item.status == "inconclusive"
    assert item.value == ("503-free for 10 min of 10 min (20+ requests); "
                          "503-free for 6 min of 10 min (20+ requests)")
    assert "auth: not yet clean" in item.reason
    assert "backend" not in item.reason  # only the worst reasons


def test_several_verdicts_one_failing_fail() -> None:
    parts = [verdict(c.HEALTH, Status.INCONCLUSIVE, "a"), verdict(c.HEALTH, Status.FAIL, "b", reason="x: 503"),
             verdict(c.HEALTH, Status.PASS, "c")]
    item = final.checklist({c.HEALTH: parts})[0]
    assert item.status == "fail"
    assert item.value == "a; b; c"
    assert "x: 503" in item.reason


def test_several_verdicts_without_values_show_their_statuses() -> None:
    parts = [verdict(c.HEALTH, Status.PASS, None), verdict(c.HEALTH, Status.PASS, None)]
    item = final.checklist({c.HEALTH: parts})[0]
    assert item.status == "pass"
    assert item.value == "pass; pass"


# ---- decide: precedence --------------------------------------------------------------------

def test_escalation_beats_failures_and_everything_else() -> None:
    tests = [result("test_a", "failed", "boom"), result("test_b", "error", "broke")]
    got = final.decide(items(health_under_2s="inconclusive"), tests,
                       ["rollback did not restore the service", "second"])
    assert got == ("ESCALATE", "rollback did not restore the service")


def test_failures_beat_errors_and_inconclusives() -> None:
    tests = [result("test_err", "error", "broke"), result("test_unsure", "inconclusive", "unsure"),
             result("test_bad", "failed", "two revisions serve traffic")]
    verdict_, reason = final.decide(items(websocket="inconclusive", golden_path="not checked"), tests, [])
    assert verdict_ == "FAIL"
    assert reason == "1 criterion failed (test_bad): two revisions serve traffic"


def test_fail_reason_names_three_tests_then_an_ellipsis_and_the_first_message() -> None:
    tests = [result(f"test_{n}", "failed", f"message {n}\nsecond line") for n in ("a", "b", "c", "d")]
    verdict_, reason = final.decide(items(), tests, [])
    assert verdict_ == "FAIL"
    assert reason == "4 criteria failed (test_a, test_b, test_c …): message a"
    assert "second line" not in reason and "test_d" not in reason


def test_fail_reason_with_three_failures_has_no_ellipsis() -> None:
    tests = [result(f"test_{n}", "failed", "m") for n in "abc"] + [result("test_ok")]
    _, reason = final.decide(items(), tests, [])
    assert reason == "3 criteria failed (test_a, test_b, test_c): m"


def test_fail_reason_keeps_parametrized_ids_and_cuts_long_messages() -> None:
    tests = [final.TestResult("tests/c/test_s.py::test_zero_503[netra-backend-staging]", "failed", "x" * 500)]
    _, reason = final.decide(items(), tests, [])
    assert reason.startswith("1 criterion failed (test_zero_503[netra-backend-staging]): ")
    assert reason.endswith(": " + "x" * 300)


def test_errors_are_inconclusive_saying_the_check_broke() -> None:
    tests = PASSING + [result("test_e", "error", "ConfigError: no database\ntraceback")]
    verdict_, reason = final.decide(items(), tests, [])
    assert verdict_ == "INCONCLUSIVE"
    assert reason == ("1 check(s) could not be made (the check broke, not the infrastructure): "
                      "ConfigError: no database")


def test_errors_beat_inconclusive_items_and_tests() -> None:
    tests = [result("test_e", "error", "broke"), result("test_i", "inconclusive", "unsure")]
    _, reason = final.decide(items(database_under_75="inconclusive"), tests, [])
    assert "the check broke" in reason


def test_an_inconclusive_item_is_inconclusive_with_its_title() -> None:
    its = items(zero_503_window="inconclusive")
    verdict_, reason = final.decide(its, PASSING + [result("test_i", "inconclusive", "other")], [])
    assert verdict_ == "INCONCLUSIVE"
    assert reason == "Zero HTTP 503 errors for 10 minutes: zero_503_window reason"


def test_an_inconclusive_test_is_inconclusive_with_its_first_line() -> None:
    tests = PASSING + [result("test_i", "inconclusive", "INCONCLUSIVE: svc: too little traffic\nmore")]
    verdict_, reason = final.decide(items(), tests, [])
    assert verdict_ == "INCONCLUSIVE"
    assert reason == "INCONCLUSIVE: svc: too little traffic"


def test_inconclusive_tests_beat_unchecked_items() -> None:
    tests = PASSING + [result("test_i", "inconclusive", "unsure")]
    assert final.decide(items(websocket="not checked"), tests, []) == ("INCONCLUSIVE", "unsure")


def test_unchecked_items_with_everything_else_passing_are_inconclusive_naming_them() -> None:
    verdict_, reason = final.decide(items(websocket="not checked", golden_path="not checked"), PASSING, [])
    assert verdict_ == "INCONCLUSIVE"
    assert f"({c.ITEMS[c.WEBSOCKET]}, {c.ITEMS[c.GOLDEN_PATH]})" in reason
    assert c.ITEMS[c.HEALTH] not in reason
    assert "-m confirmation" in reason
    assert reason.startswith("every criterion that ran passed")


def test_a_phase_only_run_is_inconclusive() -> None:
    # e.g. `-m phase1`: no Success Confirmation item was checked
    got = final.checklist({})
    verdict_, reason = final.decide(got, PASSING, [])
    assert verdict_ == "INCONCLUSIVE"
    assert all(title in reason for title in c.ITEMS.values())


def test_no_tests_is_inconclusive() -> None:
    assert final.decide(items(), [], []) == ("INCONCLUSIVE", "no criterion ran")


def test_everything_passing_passes() -> None:
    verdict_, reason = final.decide(items(), PASSING, [])
    assert verdict_ == "PASS"
    assert reason == "all 2 criteria pass and the Success Confirmation holds"


def test_build_runs_checklist_and_decide() -> None:
    got = final.build(all_confirmed(), PASSING, [], {"run": "r1"})
    assert got.verdict == "PASS"
    assert [i.status for i in got.checklist] == ["pass"] * 5
    assert got.tests == PASSING and got.escalations == [] and got.extra == {"run": "r1"}


def test_a_failed_item_is_never_a_pass() -> None:
    verdict_, _ = final.decide(items(database_under_75="fail"), PASSING, [])
    assert verdict_ == "FAIL"


@pytest.mark.parametrize("outcome", ["failed", "error", "inconclusive"])
def test_an_empty_message_does_not_break_the_verdict(outcome: str) -> None:
    verdict_, _ = final.decide(items(), PASSING + [result("test_x", outcome, "")], [])
    assert verdict_ == ("FAIL" if outcome == "failed" else "INCONCLUSIVE")


def test_an_inconclusive_item_from_several_verdicts_names_its_title_once() -> None:
    parts = [verdict(c.ZERO_503, Status.PASS, subject="backend"),
             verdict(c.ZERO_503, Status.INCONCLUSIVE, subject="auth", reason="auth: not yet clean")]
    its = final.checklist(all_confirmed(zero_503_window=parts))
    verdict_, reason = final.decide(its, PASSING, [])
    assert verdict_ == "INCONCLUSIVE"
    assert reason.count(c.ITEMS[c.ZERO_503]) == 1


# ---- Final.to_json, Final.lines ------------------------------------------------------------

def _final() -> Final:
    confirmed = all_confirmed(websocket=[verdict(c.WEBSOCKET, Status.FAIL, "0/3 connected", "wss",
                                                 "wss: upgrade refused: HTTP 403")],
                              zero_503_window=[verdict(c.ZERO_503, Status.INCONCLUSIVE, None)])
    del confirmed[c.GOLDEN_PATH]
    tests = [result("test_a"), result("test_b"), result("test_ws", "failed", "wss: upgrade refused"),
             result("test_e", "error", "broke"), result("test_s", "skipped", "")]
    extra = {"target": {"name": "sim", "twin": True}, "run": "20250101-120000", "mutations": 2}
    return final.build(confirmed, tests, ["connections above 90 %"], extra)


def test_to_json_has_schema_verdict_reason_and_extra() -> None:
    f = _final()
    doc = f.to_json()
    assert doc["schema"] == "goldenpath.verdict/1"
    assert doc["verdict"] == "ESCALATE" and doc["reason"] == "connections above 90 %"
    assert doc["target"] == {"name": "sim", "twin": True}
    assert doc["run"] == "20250101-120000" and doc["mutations"] == 2
    assert doc["escalations"] == ["connections above 90 %"]


def test_to_json_checklist_entries() -> None:
    doc = _final().to_json()
    assert [e["item"] for e in doc["checklist"]] == KEYS
    assert all(set(e) == {"item", "title", "status", "value", "reason"} for e in doc["checklist"])
    ws = doc["checklist"][1]
    assert ws == {"item": c.WEBSOCKET, "title": "WebSocket connections successful", "status": "fail",
                  "value": "0/3 connected", "reason": "wss: upgrade refused: HTTP 403"}
    assert [e["status"] for e in doc["checklist"]] == ["pass", "fail", "inconclusive", "pass", "not checked"]


def test_to_json_counts_outcomes_and_lists_criteria() -> None:
    doc = _final().to_json()
    assert doc["counts"] == {"passed": 2, "failed": 1, "error": 1, "skipped": 1}
    assert doc["criteria"][2] == {"test": "tests/phase1/test_x.py::test_ws", "outcome": "failed",
                                  "message": "wss: upgrade refused", "title": "", "criterion": "",
                                  "could_not_check": []}
    assert len(doc["criteria"]) == 5
    assert doc["sources"] == []


def test_to_json_is_json_serialisable() -> None:
    doc = _final().to_json()
    assert json.loads(json.dumps(doc)) == doc


def test_to_json_with_no_tests_has_empty_counts() -> None:
    doc = final.build({}, [], [], {}).to_json()
    assert doc["counts"] == {} and doc["criteria"] == [] and doc["escalations"] == []
    assert doc["verdict"] == "INCONCLUSIVE"


def test_lines_are_the_checklist_with_marks_then_the_verdict() -> None:
    lines = _final().lines()
    assert lines == [
        "✅ All health endpoints responding < 2 seconds — ok",
        "❌ WebSocket connections successful — 0/3 connected",
        "❔ Zero HTTP 503 errors for 10 minutes",
        "✅ Database utilization < 75% — ok",
        "➖ Golden Path validation passes end-to-end",
        "VERDICT: ESCALATE — connections above 90 %",
    ]


def test_lines_end_with_the_pass_verdict() -> None:
    f = final.build(all_confirmed(), PASSING, [], {})
    assert f.lines()[-1] == "VERDICT: PASS — all 2 criteria pass and the Success Confirmation holds"
    assert all(line.startswith("✅ ") for line in f.lines()[:-1])


def test_the_verdict_line_names_runbook_items_and_subjects_not_test_functions() -> None:
    failed = final.TestResult("tests/phase1/test_single_active_revision.py::test_single_active_revision"
                              "[netra-backend-staging]", "failed", "two revisions serve traffic",
                              "Single active Cloud Run revision: netra-backend-staging")
    _, reason = final.decide(items(), [failed], [])
    assert reason == ("1 criterion failed (Single active Cloud Run revision: netra-backend-staging): "
                      "two revisions serve traffic")
