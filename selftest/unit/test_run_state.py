"""The run's state as the controller builds it from test reports (goldenpath.run), and a verdict's
JSON round trip (how it travels from an xdist worker)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from datetime import datetime, timezone

from goldenpath import final
from goldenpath.criteria.confirmation import HEALTH, ZERO_503
from goldenpath.run import RunState
from goldenpath.verdict import Status, Verdict


def v(subject: str, status: Status = Status.PASS, **evidence: object) -> Verdict:
    return Verdict("zero_503_window", subject, status, f"{subject}: {status.value}", dict(evidence))


def test_a_verdict_round_trips_through_json_with_every_field() -> None:
    verdict = v("netra-backend-staging", Status.INCONCLUSIVE, value="503-free for 3 min", clean_seconds=180.5,
                seen=[1, 2], nested={"a": None})
    data = verdict.to_json()
    assert json.loads(json.dumps(data)) == data   # plain JSON: what xdist can send
    assert set(data) == {f.name for f in fields(Verdict)}
    back = Verdict.from_json(data)
    assert back == verdict and back.evidence == verdict.evidence and back.status is Status.INCONCLUSIVE


def test_evidence_json_cannot_hold_travels_as_text_as_in_verdict_json() -> None:
    when = datetime(2025, 1, 1, tzinfo=timezone.utc)
    back = Verdict.from_json(v("x", when=when, nan=math.nan).to_json())
    assert back.evidence["when"] == str(when) and math.isnan(back.evidence["nan"])


def test_fields_a_verdict_gains_are_carried_without_a_list_of_names() -> None:
    @dataclass(frozen=True)
    class Richer(Verdict):
        unit: str = ""          # a field a later Verdict might gain

    rich = Richer("c", "s", Status.FAIL, "s: bad", {}, value="88 of 100", escalation=True, unit="connections")
    assert Richer.from_json(rich.to_json()) == rich
    # an older reader drops what it has no field for, and keeps the rest
    assert Verdict.from_json(rich.to_json()) == Verdict("c", "s", Status.FAIL, "s: bad", value="88 of 100",
                                                        escalation=True)


def test_reports_arriving_out_of_order_give_the_order_of_a_plain_run() -> None:
    state = RunState()
    # as two workers might send them: the later test first
    state.result(3, final.TestResult("t::b", "passed", ""))
    state.confirmed(3, [[ZERO_503, v("auth").to_json()]])
    state.judged(3, [v("auth").to_json()])
    state.result(1, final.TestResult("t::a", "failed", "no"))
    state.confirmed(1, [[ZERO_503, v("backend", Status.FAIL).to_json()], [HEALTH, v("h").to_json()]])
    state.judged(1, [v("backend", Status.FAIL).to_json(), v("backend2").to_json()])
    assert [t.test for t in state.tests] == ["t::a", "t::b"]
    assert [x.subject for x in state.verdicts] == ["backend", "backend2", "auth"]
    assert {k: [x.subject for x in vs] for k, vs in state.confirmation.items()} == {
        ZERO_503: ["backend", "auth"], HEALTH: ["h"]}
    assert state.confirmation[ZERO_503][0].status is Status.FAIL


def test_a_teardown_error_replaces_the_tests_pass() -> None:
    state = RunState()
    state.result(0, final.TestResult("t::a", "passed", ""))
    state.result(0, final.TestResult("t::a", "error", "teardown broke"))
    assert state.tests == [final.TestResult("t::a", "error", "teardown broke")]


def test_no_reports_no_confirmation() -> None:
    assert RunState().confirmation == {} and RunState().verdicts == [] and RunState().tests == []
