"""The remediation engine against a fake phase: order, consent, verification, rollback, journal."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from goldenpath.errors import CheckError, NotYetUsable
from goldenpath.remediation.change import Change, Found
from goldenpath.remediation.journal import Journal
from goldenpath.remediation.runner import Outcome, Runner
from goldenpath.verdict import Status, Verdict


# ---- builders and fakes ----------------------------------------------------------------------

def route(subject: str) -> Change:
    return Change(phase=1, step="route", subject=subject, resource=f"services/{subject}",
                  summary=f"route {subject}", before={"traffic": "old"}, after={"traffic": "new"},
                  reversible=True, payload={"service": subject})


def delete(subject: str) -> Change:
    return Change(phase=1, step="delete", subject=subject, resource=f"services/{subject}/revisions/old",
                  summary=f"delete old revision of {subject}", before={"state": "exists"},
                  after={"state": "deleted"}, reversible=False, after_verification=True,
                  payload={"service": subject, "revision": "old", "spec": {"image": "x"}})


def chained(*changes: Change) -> list[Change]:
    """Changes that touch one thing (one project-wide resource): the runner applies them one after
    another, in plan order, and undoes them newest first (the ordering tests below)."""
    return [replace(c, touches="projects/p") for c in changes]


def verdict(status: Status, subject: str = "svc-a", reason: str = "") -> Verdict:
    return Verdict("single_active_revision", subject, status, reason or f"{subject}: {status.value}")


PASS, FAIL, INCONCLUSIVE = (verdict(Status.PASS),), (verdict(Status.FAIL, reason="svc-a: still 50/50"),), \
    (verdict(Status.INCONCLUSIVE, reason="svc-a: too little traffic"),)


@dataclass
class FakeExecutor:
    step: str
    calls: list[tuple[str, str]]
    fail_on: set[str] = field(default_factory=set)      # summaries whose apply raises
    restores: bool = True
    rollback_raises: bool = False
    # What the fake world shows when a failed call is read back, by summary: "landed" (the call
    # failed but its change went through), "unknown"; otherwise the truth (a failed call did not land).
    read_back: dict[str, str] = field(default_factory=dict)
    error: type[Exception] = RuntimeError
    fail_times: int = 0                                  # then fail only this many times (0: always)
    landed: set[str] = field(default_factory=set)

    def apply(self, change: Change) -> dict[str, Any]:
        self.calls.append(("apply", change.summary))
        if change.summary in self.fail_on:
            failures = sum(1 for kind, s in self.calls if kind == "apply" and s == change.summary)
            if not self.fail_times or failures <= self.fail_times:
                raise self.error("boom")
        self.landed.add(change.summary)
        return {"applied": change.summary, "etag": "after"}

    def reconcile(self, change: Change) -> Found:
        self.calls.append(("reconcile", change.summary))
        state = self.read_back.get(change.summary) or ("landed" if change.summary in self.landed else "not landed")
        return Found(state, f"read back: {state}", {"applied": change.summary, "etag": "after"} if state == "landed" else {})

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("rollback", change.summary))
        assert applied == {"applied": change.summary, "etag": "after"}  # the apply's own result
        if self.rollback_raises:
            raise RuntimeError("rollback refused")
        return {"restored": change.summary}

    def restored(self, change: Change) -> tuple[bool, str]:
        self.calls.append(("restored", change.summary))
        return self.restores, "serves old 50 %, new 50 %" if self.restores else "still serves new 100 %"


class FakeRemedy:
    phase = 1
    title = "Phase 1: fake"

    def __init__(self, changes: list[Change], verifications: list[tuple[Verdict, ...]] | None = None,
                 **executor_options: Any) -> None:
        self.changes = changes
        self.verifications = list(verifications or [])
        self.calls: list[tuple[str, str]] = []
        self.executors = {step: FakeExecutor(step, self.calls, **executor_options) for step in ("route", "delete")}
        self.verified: list[tuple[list[str], bool]] = []
        self.invalidated = 0
        self.escalated: list[tuple[list[Verdict], bool]] = []

    def plan(self) -> list[Change]:
        return list(self.changes)

    def manual(self) -> list[str]:
        return []

    def preflight(self) -> list[str]:
        return []  # verifiable (selftest/unit/test_preflight.py covers a refusal)

    def executor(self, step: str) -> FakeExecutor:
        return self.executors[step]

    def verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        self.verified.append(([c.summary for c in changes], final))
        return list(self.verifications.pop(0) if self.verifications else PASS)

    def escalation(self, failed: list[Verdict], restored: bool) -> str:
        self.escalated.append((failed, restored))
        return f"ESCALATE phase 1 (restored={restored}): " + "; ".join(v.reason for v in failed)

    def invalidate(self) -> None:
        self.invalidated += 1

    def watch_operations(self, callback: Any) -> None:
        self.watching = callback

    @property
    def applied(self) -> list[str]:
        return [s for kind, s in self.calls if kind == "apply"]

    @property
    def rolled_back(self) -> list[str]:
        return [s for kind, s in self.calls if kind == "rollback"]


def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "reports" / "journal.jsonl", target="sim", identity="tester", run_id="run-1")


def records(j: Journal) -> list[dict[str, Any]]:
    return [json.loads(line) for line in j.path.read_text().splitlines()]


def events(j: Journal) -> list[tuple[str, str]]:
    return [(r["event"], r["summary"]) for r in records(j) if "summary" in r]


def run(remedy: FakeRemedy, j: Journal, mode: str = "apply", *, consent: bool = True,
        rollback: bool = True) -> Outcome:
    return Runner(remedy, j, consent=consent, rollback=rollback).run(mode)  # type: ignore[arg-type]


# ---- plan mode -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["plan", "off"])
def test_plan_mode_changes_nothing(tmp_path: Path, mode: str) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")])
    j = journal(tmp_path)
    out = run(remedy, j, mode)
    assert out.plan == remedy.changes
    assert out.applied == [] and out.skipped == [] and out.rolled_back == []
    assert remedy.calls == [] and remedy.verified == []
    assert not j.path.exists()
    if mode == "plan":
        assert out.lines()[0] == "phase 1: plan only, nothing changed (2 change(s) planned)"


def test_empty_plan_applies_and_verifies_nothing(tmp_path: Path) -> None:
    remedy = FakeRemedy([])
    j = journal(tmp_path)
    out = run(remedy, j)
    assert remedy.calls == [] and remedy.verified == []
    assert out.lines() == ["phase 1: nothing to change"]
    assert not j.path.exists()


# ---- apply -----------------------------------------------------------------------------------

def test_apply_all_passing_with_consent_applies_immediate_then_deferred(tmp_path: Path) -> None:
    changes = [route("svc-a"), delete("svc-a"), route("svc-b")]
    remedy = FakeRemedy(changes, [PASS, PASS])
    j = journal(tmp_path)
    out = run(remedy, j, consent=True)
    # The two routes touch different services: they run at once, in either order; the deletion after.
    assert sorted(remedy.applied[:2]) == ["route svc-a", "route svc-b"]
    assert remedy.applied[2:] == ["delete old revision of svc-a"]
    # The outcome lists them in plan order, whichever finished first.
    assert [c.summary for c in out.applied] == ["route svc-a", "route svc-b", "delete old revision of svc-a"]
    assert out.skipped == [] and out.rolled_back == [] and out.escalations == []
    assert out.rollback_verified is None and out.error is None
    # verified once before the deletion, once after it (final)
    assert remedy.verified == [(["route svc-a", "route svc-b"], False),
                               (["route svc-a", "route svc-b", "delete old revision of svc-a"], True)]
    assert out.lines()[0] == "phase 1: 3 applied, 0 skipped, 0 rolled back"


def test_without_consent_the_irreversible_deletion_is_skipped(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")], [PASS])
    out = run(remedy, journal(tmp_path), consent=False)
    assert remedy.applied == ["route svc-a"]
    assert [c.summary for c in out.applied] == ["route svc-a"]
    [(skipped, why)] = out.skipped
    assert skipped.summary == "delete old revision of svc-a"
    assert "--yes" in why and "irreversible" in why
    assert remedy.verified == [(["route svc-a"], False)]  # no final verification: nothing deferred ran


def test_deferred_only_plan_is_still_verified_before_deleting(tmp_path: Path) -> None:
    remedy = FakeRemedy([delete("svc-a")], [FAIL])
    out = run(remedy, journal(tmp_path), consent=True)
    assert remedy.applied == []
    assert remedy.verified == [(["delete old revision of svc-a"], False)]
    [(_, why)] = out.skipped
    assert "still fail" in why and "still 50/50" in why
    assert out.rolled_back == []  # nothing was applied, so nothing to roll back


def test_verification_failure_rolls_back_in_reverse_order(tmp_path: Path) -> None:
    remedy = FakeRemedy(chained(route("svc-a"), route("svc-b"), delete("svc-a")), [FAIL])
    j = journal(tmp_path)
    out = run(remedy, j)
    assert remedy.applied == ["route svc-a", "route svc-b"]  # the deletion never ran
    assert remedy.rolled_back == ["route svc-b", "route svc-a"]
    assert [c.summary for c in out.rolled_back] == ["route svc-b", "route svc-a"]
    assert out.rollback_verified is True
    assert out.escalations and out.escalations[0].startswith("ESCALATE phase 1 (restored=True)")
    assert "still 50/50" in out.escalations[0]
    assert remedy.escalated[0][1] is True
    assert events(j)[4:] == [
        ("rollback.before", "route svc-b"), ("rollback.after", "route svc-b"),
        ("rollback.before", "route svc-a"), ("rollback.after", "route svc-a"),
        ("rollback.verified", "route svc-b"), ("rollback.verified", "route svc-a"),
    ]
    assert "  rollback verified: yes" in out.lines()


def test_rollback_that_does_not_restore_is_reported(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")], [FAIL], restores=False)
    j = journal(tmp_path)
    out = run(remedy, j)
    assert remedy.rolled_back == ["route svc-a"]
    assert out.rollback_verified is False
    assert any("did not restore" in e and "still serves new 100 %" in e for e in out.escalations)
    assert out.escalations[0].startswith("ESCALATE phase 1 (restored=False)")
    assert "rollback.unverified" in [e for e, _ in events(j)]
    assert "  rollback verified: NO" in out.lines()


def test_rollback_that_raises_is_not_verified(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")], [FAIL], rollback_raises=True)
    j = journal(tmp_path)
    out = run(remedy, j)
    assert out.rolled_back == []
    assert out.rollback_verified is False
    assert any("rollback of 'route svc-a' failed: RuntimeError: rollback refused; read back: read back: landed" in e
               for e in out.escalations)
    assert "rollback.failed" in [e for e, _ in events(j)]


def test_rollback_disabled_leaves_changes_and_escalates(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")], [FAIL])
    out = run(remedy, journal(tmp_path), rollback=False)
    assert remedy.applied == ["route svc-a"]
    assert remedy.rolled_back == []
    assert out.rolled_back == []
    assert any("--no-rollback" in e for e in out.escalations)
    assert out.escalations[0].startswith("ESCALATE phase 1 (restored=False)")
    assert [c.summary for c, _ in out.skipped] == []  # the deletion is not even considered


def test_inconclusive_verification_skips_the_deletion(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")], [INCONCLUSIVE])
    out = run(remedy, journal(tmp_path), consent=True)
    assert remedy.applied == ["route svc-a"]
    assert remedy.rolled_back == []
    [(skipped, why)] = out.skipped
    assert skipped.step == "delete"
    assert "inconclusive" in why and "too little traffic" in why
    assert out.escalations == []


def test_final_verification_failure_after_deletion_escalates(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")], [PASS, FAIL])
    out = run(remedy, journal(tmp_path), consent=True)
    assert remedy.applied == ["route svc-a", "delete old revision of svc-a"]
    assert remedy.rolled_back == []
    assert out.escalations and out.escalations[0].startswith("ESCALATE phase 1 (restored=False)")


@pytest.mark.parametrize("error", [RuntimeError("boom"), CheckError("etag moved")])
def test_failing_apply_is_journaled_and_earlier_changes_rolled_back(tmp_path: Path, error: Exception) -> None:
    remedy = FakeRemedy(chained(route("svc-a"), route("svc-b"), route("svc-c")))

    def explode(change: Change) -> dict[str, Any]:
        remedy.calls.append(("apply", change.summary))
        if change.subject == "svc-b":
            raise error
        return {"applied": change.summary, "etag": "after"}

    remedy.executors["route"].apply = explode  # type: ignore[method-assign]
    j = journal(tmp_path)
    out = run(remedy, j)
    assert remedy.applied == ["route svc-a", "route svc-b"]  # svc-c is never tried
    assert [c.summary for c in out.applied] == ["route svc-a"]
    assert remedy.rolled_back == ["route svc-a"]
    assert out.rollback_verified is True
    assert out.error is not None and out.error.startswith("route svc-b: ") and str(error) in out.error
    assert remedy.verified == []  # no verification after a failed step
    evs = events(j)
    assert ("apply.failed", "route svc-b") in evs
    failed = next(r for r in records(j) if r["event"] == "apply.failed")
    assert str(error) in failed["error"]
    assert ("rollback.before", "route svc-a") in evs


def test_first_apply_failing_has_nothing_to_roll_back(tmp_path: Path) -> None:
    remedy = FakeRemedy(chained(route("svc-a"), route("svc-b")), fail_on={"route svc-a"})
    out = run(remedy, journal(tmp_path))
    assert out.applied == [] and remedy.rolled_back == []
    assert out.rollback_verified is None
    assert out.escalations == []
    assert out.error == "route svc-a: RuntimeError: boom (read back: not applied; read back: not landed)"
    assert remedy.calls[:2] == [("apply", "route svc-a"), ("reconcile", "route svc-a")]


# ---- the journal -----------------------------------------------------------------------------

def test_journal_records_intent_before_and_result_after_each_change(tmp_path: Path) -> None:
    remedy = FakeRemedy(chained(route("svc-a"), route("svc-b"), delete("svc-a")), [PASS, PASS])
    j = journal(tmp_path)
    run(remedy, j, consent=True)
    recs = records(j)
    assert [(r["event"], r.get("summary")) for r in recs] == [
        ("apply.before", "route svc-a"), ("apply.after", "route svc-a"),
        ("apply.before", "route svc-b"), ("apply.after", "route svc-b"),
        ("apply.before", "delete old revision of svc-a"), ("apply.after", "delete old revision of svc-a"),
        ("phase.end", None),
    ]
    assert recs == j.records
    first_before, first_after = recs[0], recs[1]
    assert first_before["before"] == {"traffic": "old"} and first_before["planned"] == {"traffic": "new"}
    assert first_before["payload"] == {"service": "svc-a"}
    assert first_after["after"] == {"applied": "route svc-a", "etag": "after"}
    assert all(r["run"] == "run-1" and r["target"] == "sim" and r["identity"] == "tester" for r in recs)
    assert all(r["phase"] == 1 for r in recs)
    assert all(r["journal"] == 2 and r["pid"] > 0 and r["host"] for r in recs)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert first_before["spec"]["reversible"] is True and "payload" not in first_before["spec"]
    deletion = recs[4]
    assert deletion["payload"]["spec"] == {"image": "x"}  # what a deleted revision looked like


def test_outcome_to_json_is_serialisable(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")], [PASS])
    out = run(remedy, journal(tmp_path), consent=False)
    data = json.loads(json.dumps(out.to_json()))
    assert data["applied"] == ["route svc-a"]
    assert data["skipped"][0]["change"] == "delete old revision of svc-a"
    assert data["verification"] == [PASS[0].line()]


# ---- DO NOT SKIP STEPS: a later phase waits for the earlier ones ------------------------------

def test_apply_is_refused_while_an_earlier_phase_fails(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")])
    j = journal(tmp_path)
    out = Runner(remedy, j, consent=True, rollback=True).run("apply", earlier=list(FAIL))
    assert out.refused and "DO NOT SKIP STEPS" in out.refused and "still 50/50" in out.refused
    assert remedy.calls == [] and not j.path.exists()
    assert any("refused" in line for line in out.lines())


def test_plan_still_shows_the_changes_but_says_apply_would_be_refused(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")])
    out = Runner(remedy, journal(tmp_path), consent=True, rollback=True).run("plan", earlier=list(FAIL))
    assert out.plan and out.refused and remedy.calls == []


def test_passing_earlier_phases_do_not_block(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")])
    out = Runner(remedy, journal(tmp_path), consent=True, rollback=True).run("apply", earlier=list(PASS))
    assert out.refused is None and remedy.applied == ["route svc-a"]


def test_an_inconclusive_earlier_phase_blocks_too(tmp_path: Path) -> None:
    # inconclusive is never a pass: a restart-causing later fix must not rest on it
    remedy = FakeRemedy([route("svc-a")])
    out = Runner(remedy, journal(tmp_path), consent=True, rollback=True).run(
        "apply", earlier=list(PASS + INCONCLUSIVE))
    assert out.refused and "too little traffic" in out.refused and remedy.calls == []


def test_a_verification_that_cannot_be_made_counts_as_failed_and_rolls_back(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")])

    def broken_verify(changes: list[Change], final: bool) -> list[Verdict]:
        raise CheckError("Cannot reach the logging API")

    remedy.verify = broken_verify  # type: ignore[method-assign]
    out = Runner(remedy, journal(tmp_path), consent=True, rollback=True).run("apply")
    assert remedy.rolled_back == ["route svc-a"]
    assert any("could not verify: Cannot reach the logging API" in e for e in out.escalations)


# ---- a change the target is not ready for yet ------------------------------------------------------

class NotReadyExecutor(FakeExecutor):
    def apply(self, change: Change) -> dict[str, Any]:
        self.calls.append(("apply", change.summary))
        if change.summary == "route svc-b":
            raise NotYetUsable("metric not yet usable, run again in 9 minutes", attempts=3)
        return {"applied": change.summary, "etag": "after"}


def test_a_change_not_yet_usable_is_pending_journaled_and_the_rest_goes_on_without_rollback(tmp_path: Path) -> None:
    remedy = FakeRemedy(chained(route("svc-a"), route("svc-b"), route("svc-c")))
    remedy.executors["route"] = NotReadyExecutor("route", remedy.calls)
    j = journal(tmp_path)
    out = run(remedy, j)
    assert [c.summary for c in out.applied] == ["route svc-a", "route svc-c"]
    assert [(c.summary, why) for c, why in out.pending] == [("route svc-b", "metric not yet usable, run again in 9 minutes")]
    assert out.rolled_back == [] and out.error is None and remedy.rolled_back == []
    assert events(j) == [("apply.before", "route svc-a"), ("apply.after", "route svc-a"),
                         ("apply.before", "route svc-b"), ("apply.pending", "route svc-b"),
                         ("apply.before", "route svc-c"), ("apply.after", "route svc-c")]
    assert records(j)[3]["attempts"] == 3
    assert out.lines()[0] == "phase 1: 2 applied, 0 skipped, 0 rolled back, 1 pending"
    assert "  pending: route svc-b — metric not yet usable, run again in 9 minutes" in out.lines()
    assert out.to_json()["pending"] == [{"change": "route svc-b", "why": "metric not yet usable, run again in 9 minutes"}]


# ---- reconcile after a failed call -------------------------------------------------------------

@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    from goldenpath.remediation import runner

    monkeypatch.setattr(runner, "_backoff", lambda: itertools.repeat(0.0))


def test_a_failed_call_whose_change_landed_counts_as_applied_and_is_verified(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), delete("svc-a")], [PASS, PASS], fail_on={"route svc-a"},
                        read_back={"route svc-a": "landed"})
    j = journal(tmp_path)
    out = run(remedy, j)
    assert [c.summary for c in out.applied] == ["route svc-a", "delete old revision of svc-a"]
    assert out.error is None and out.escalations == []
    assert remedy.verified[0] == (["route svc-a"], False)
    assert any("the change landed" in n for n in out.notes)
    assert events(j)[:4] == [("apply.before", "route svc-a"), ("apply.failed", "route svc-a"),
                             ("apply.reconciled", "route svc-a"), ("apply.after", "route svc-a")]
    reconciled = records(j)[2]
    assert reconciled["found"] == "landed"


def test_a_landed_change_is_rolled_back_when_the_phase_fails(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")], [FAIL], fail_on={"route svc-a"}, read_back={"route svc-a": "landed"})
    out = run(remedy, journal(tmp_path))
    assert [c.summary for c in out.rolled_back] == ["route svc-a"]
    assert out.rollback_verified is True


def test_a_transient_failure_that_did_not_land_is_retried_after_the_read_back(tmp_path: Path, no_backoff: None) -> None:
    remedy = FakeRemedy([route("svc-a")], [PASS], fail_on={"route svc-a"}, error=ConnectionError, fail_times=1)
    j = journal(tmp_path)
    out = run(remedy, j)
    assert [c.summary for c in out.applied] == ["route svc-a"]
    assert remedy.calls[:3] == [("apply", "route svc-a"), ("reconcile", "route svc-a"), ("apply", "route svc-a")]
    assert [e for e, _ in events(j)][:5] == ["apply.before", "apply.failed", "apply.reconciled", "apply.retry",
                                             "apply.after"]


def test_a_refusal_is_not_retried(tmp_path: Path, no_backoff: None) -> None:
    remedy = FakeRemedy([route("svc-a")], fail_on={"route svc-a"}, error=CheckError, fail_times=1)
    out = run(remedy, journal(tmp_path))
    assert out.applied == [] and remedy.applied == ["route svc-a"]  # one attempt: a 4xx-like refusal stands


def test_transient_failures_are_retried_at_most_twice(tmp_path: Path, no_backoff: None) -> None:
    remedy = FakeRemedy([route("svc-a")], fail_on={"route svc-a"}, error=TimeoutError)
    out = run(remedy, journal(tmp_path))
    assert remedy.applied == ["route svc-a"] * 3 and out.applied == []
    assert "not applied" in (out.error or "")


def test_an_unknown_state_stops_the_phase_rolls_back_the_rest_and_escalates(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), route("svc-b")], fail_on={"route svc-b"}, read_back={"route svc-b": "unknown"})
    j = journal(tmp_path)
    out = run(remedy, j)
    assert [c.summary for c in out.unknown] == ["route svc-b"]
    assert remedy.rolled_back == ["route svc-a"]
    assert any("the state of 'route svc-b' is unknown" in e and "--recover" in e for e in out.escalations)
    assert remedy.verified == []


def test_a_failed_rollback_whose_restore_landed_counts_as_rolled_back(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")], [FAIL], rollback_raises=True, read_back={"route svc-a": "not landed"})
    j = journal(tmp_path)
    out = run(remedy, j)
    assert [c.summary for c in out.rolled_back] == ["route svc-a"]
    assert ("rollback.reconciled", "route svc-a") in events(j)


def test_every_attempt_makes_the_observations_stale(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")], fail_on={"route svc-a"})
    run(remedy, journal(tmp_path))
    assert remedy.invalidated >= 1  # a failed step: the tests must judge a fresh read


def test_the_guard_refuses_before_any_mutation(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a")])
    j = journal(tmp_path)
    out = Runner(remedy, j, consent=True, rollback=True, guard=lambda: "held by run X").run("apply")
    assert out.refused == "held by run X" and remedy.applied == [] and not j.path.exists()


class Unavailable(Exception):
    code = 503  # as api_core's ServiceUnavailable carries it


def test_a_create_the_server_names_is_resent_only_after_an_answer_that_says_it_was_not_processed(
        tmp_path: Path, no_backoff: None) -> None:
    from dataclasses import replace

    create = replace(route("svc-a"), idempotent=False)
    timed_out = FakeRemedy([create], [PASS], fail_on={"route svc-a"}, error=TimeoutError, fail_times=1)
    out = run(timed_out, journal(tmp_path / "a"))
    assert timed_out.applied == ["route svc-a"] and out.applied == []  # a timeout may have made one: no resend
    refused = FakeRemedy([create], [PASS], fail_on={"route svc-a"}, error=Unavailable, fail_times=1)
    out = run(refused, journal(tmp_path / "b"))
    assert refused.applied == ["route svc-a"] * 2 and [c.summary for c in out.applied] == ["route svc-a"]


# ---- independent steps at once -------------------------------------------------------------------
# Concurrency is shown by behaviour, not time: the fake's applies meet at a barrier, which only
# steps under way at the same moment can pass (run one after another, the first one's wait breaks it).


class MeetingExecutor(FakeExecutor):
    """Every apply of ``meet`` waits at a barrier for the others before it returns (or fails)."""

    def __init__(self, step: str, calls: list[tuple[str, str]], meet: set[str], remedy: FakeRemedy,
                 **options: Any) -> None:
        super().__init__(step, calls, **options)
        self.meet, self.remedy = meet, remedy
        self.barrier = threading.Barrier(len(meet), timeout=10)

    def apply(self, change: Change) -> dict[str, Any]:
        if change.summary in self.meet:
            # An operation of this step, named while the other step's is under way too: the journal
            # must tie each to its own change.
            self.remedy.watching("run", f"operations/{change.subject}")
            self.barrier.wait()
        return super().apply(change)


def meeting(remedy: FakeRemedy, meet: set[str], **options: Any) -> MeetingExecutor:
    executor = MeetingExecutor("route", remedy.calls, meet, remedy, **options)
    remedy.executors["route"] = executor
    return executor


def test_changes_of_different_resources_run_at_once_each_journaled_on_its_own(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), route("svc-b")], [PASS])
    meeting(remedy, {"route svc-a", "route svc-b"})
    j = journal(tmp_path)
    out = run(remedy, j)
    assert sorted(c.summary for c in out.applied) == ["route svc-a", "route svc-b"] and out.error is None
    evs = events(j)
    afters = [i for i, (e, _) in enumerate(evs) if e == "apply.after"]
    befores = [i for i, (e, _) in enumerate(evs) if e == "apply.before"]
    assert len(befores) == len(afters) == 2 and max(befores) < min(afters), evs  # both under way at once
    ops = {r["summary"]: r["operation"] for r in records(j) if r["event"] == "apply.operation"}
    assert ops == {"route svc-a": "operations/svc-a", "route svc-b": "operations/svc-b"}
    assert [r["seq"] for r in records(j)] == list(range(1, len(records(j)) + 1))


def test_one_of_two_concurrent_changes_failing_rolls_back_the_other(tmp_path: Path) -> None:
    remedy = FakeRemedy([route("svc-a"), route("svc-b")], fail_on={"route svc-b"})
    meeting(remedy, {"route svc-a", "route svc-b"}, fail_on={"route svc-b"})
    j = journal(tmp_path)
    out = run(remedy, j)
    assert [c.summary for c in out.applied] == ["route svc-a"]
    assert remedy.rolled_back == ["route svc-a"] and out.rollback_verified is True
    assert out.error is not None and out.error.startswith("route svc-b: ")
    assert remedy.verified == []
    assert ("rollback.verified", "route svc-a") in events(j)


def test_a_change_waits_for_what_it_needs_and_for_earlier_changes_of_its_resource(tmp_path: Path) -> None:
    metric = Change(phase=4, step="route", subject="m", resource="metrics/m", summary="create m", before={},
                    after={"m": 1}, reversible=True)
    policy = replace(route("svc-a"), summary="policy reading m", resource="policies/p", needs=("metrics/m",))
    again = replace(route("svc-b"), summary="second change of svc-b")
    remedy = FakeRemedy([metric, policy, route("svc-b"), again], [FAIL])
    meeting(remedy, {"create m", "route svc-b"})  # the two with nothing before them meet
    j = journal(tmp_path)
    out = run(remedy, j)
    evs = events(j)
    done = {s: i for i, (e, s) in enumerate(evs) if e == "apply.after"}
    started = {s: i for i, (e, s) in enumerate(evs) if e == "apply.before"}
    assert started["policy reading m"] > done["create m"]
    assert started["second change of svc-b"] > done["route svc-b"]
    # Undone the other way round: what waited for a change is undone before it.
    undone = [s for e, s in evs if e == "rollback.after"]
    assert undone.index("policy reading m") < undone.index("create m")
    assert undone.index("second change of svc-b") < undone.index("route svc-b")
    assert out.rollback_verified is True and len(out.rolled_back) == 4



def test_a_change_that_needs_consent_runs_alone(tmp_path: Path) -> None:
    # A restart (or an irreversible change) never runs beside another step: were that one to fail,
    # the restart would be paid for nothing and paid again by its rollback.
    restart = replace(route("svc-b"), summary="restart svc-b", restarts=True)
    remedy = FakeRemedy([route("svc-a"), restart, route("svc-c")], [PASS])
    j = journal(tmp_path)
    run(remedy, j, consent=True)
    assert events(j) == [("apply.before", "route svc-a"), ("apply.after", "route svc-a"),
                         ("apply.before", "restart svc-b"), ("apply.after", "restart svc-b"),
                         ("apply.before", "route svc-c"), ("apply.after", "route svc-c")]
