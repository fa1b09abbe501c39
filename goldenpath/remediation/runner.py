"""The remediation engine, the same for every phase.

plan → (plan mode stops here) → apply the immediate changes that have consent → verify with the
phase's own criteria → on failure roll back in reverse order and verify the rollback → only then
the changes that must wait for a verified phase (deletions), each with consent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from goldenpath.errors import GoldenpathError, NotYetUsable
from goldenpath.remediation.change import Change
from goldenpath.remediation.journal import Journal
from goldenpath.remediation.preflight import refusal
from goldenpath.verdict import Status, Verdict

Mode = Literal["off", "plan", "apply"]


class Executor(Protocol):
    def apply(self, change: Change) -> dict[str, Any]: ...
    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]: ...
    def restored(self, change: Change) -> tuple[bool, str]: ...


class PhaseRemedy(Protocol):
    """What a phase provides to the engine."""

    phase: int
    title: str

    def plan(self) -> list[Change]: ...
    def manual(self) -> list[str]: ...
    def preflight(self) -> list[str]: ...
    def executor(self, step: str) -> Executor: ...
    def verify(self, changes: list[Change], final: bool) -> list[Verdict]: ...
    def escalation(self, failed: list[Verdict], restored: bool) -> str: ...
    def invalidate(self) -> None: ...


@dataclass
class Outcome:
    phase: int
    mode: Mode
    plan: list[Change]
    applied: list[Change] = field(default_factory=list)
    skipped: list[tuple[Change, str]] = field(default_factory=list)
    rolled_back: list[Change] = field(default_factory=list)
    kept: list[Change] = field(default_factory=list)  # applied, failed to verify, and one-way
    # refused only because something it needs is not usable yet (a new log-based metric): not applied,
    # not a failure, nothing rolled back for it; a later run applies it
    pending: list[tuple[Change, str]] = field(default_factory=list)
    verification: list[Verdict] = field(default_factory=list)
    rollback_verified: bool | None = None
    escalations: list[str] = field(default_factory=list)
    error: str | None = None
    refused: str | None = None
    manual: list[str] = field(default_factory=list)  # what no step may change: for the operator

    def lines(self) -> list[str]:
        if self.mode == "plan":
            head = f"phase {self.phase}: plan only, nothing changed ({len(self.plan)} change(s) planned)"
        elif not self.plan and self.manual:
            head = f"phase {self.phase}: nothing the gate may change; manual action needed"
        elif not self.plan:
            head = f"phase {self.phase}: nothing to change"
        else:
            head = (f"phase {self.phase}: {len(self.applied)} applied, {len(self.skipped)} skipped, "
                    f"{len(self.rolled_back)} rolled back" + (f", {len(self.pending)} pending" if self.pending else ""))
        out = [head]
        if self.refused:
            out.append(f"  refused: {self.refused}")
        out += [f"  applied: {c.summary}" for c in self.applied]
        out += [f"  skipped: {c.summary} — {why}" for c, why in self.skipped]
        out += [f"  pending: {c.summary} — {why}" for c, why in self.pending]
        out += [f"  rolled back: {c.summary}" for c in self.rolled_back]
        out += [f"  kept (cannot be undone): {c.summary}" for c in self.kept]
        if self.rollback_verified is not None:
            out.append(f"  rollback verified: {'yes' if self.rollback_verified else 'NO'}")
        if self.error:
            out.append(f"  error: {self.error}")
        out += [f"  MANUAL: {m}" for m in self.manual]
        out += [f"  ESCALATE: {e}" for e in self.escalations]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "mode": self.mode,
            "plan": [c.to_json() for c in self.plan],
            "applied": [c.summary for c in self.applied],
            "skipped": [{"change": c.summary, "why": why} for c, why in self.skipped],
            "rolled_back": [c.summary for c in self.rolled_back],
            "pending": [{"change": c.summary, "why": why} for c, why in self.pending],
            "kept": [c.summary for c in self.kept],
            "rollback_verified": self.rollback_verified,
            "verification": [v.line() for v in self.verification],
            "escalations": self.escalations,
            "error": self.error,
            "refused": self.refused,
            "manual": self.manual,
        }


def consent_reason(change: Change) -> str:
    kind = "irreversible" if not change.reversible else "restart-causing"
    return f"{kind}: pass --yes to allow it"


class Runner:
    def __init__(self, remedy: PhaseRemedy, journal: Journal, *, consent: bool, rollback: bool) -> None:
        self.remedy = remedy
        self.journal = journal
        self.consent = consent
        self.rollback_enabled = rollback
        self._results: dict[int, dict[str, Any]] = {}

    def run(self, mode: Mode, earlier: list[Verdict] | None = None) -> Outcome:
        """Run the phase; ``earlier`` are the verdicts of the phases before it ("DO NOT SKIP STEPS")."""
        plan = self.remedy.plan()
        out = Outcome(self.remedy.phase, mode, plan, manual=self.remedy.manual())
        # Inconclusive is not a pass: an earlier phase that cannot be shown to hold blocks too.
        failing = [v for v in earlier or [] if v.status is not Status.PASS]
        if failing and plan and mode != "off":
            out.refused = (f"phase {self.remedy.phase} remediation does not run while an earlier phase fails or "
                           "is inconclusive "
                           f"(runbook: DO NOT SKIP STEPS): {'; '.join(v.reason for v in failing[:3])}. Fix that "
                           "phase first (e.g. pytest -m phase1 --remediate).")
            if mode == "apply":
                return out
        # Preflight: never change what cannot be verified (credentials, target keys, endpoints).
        if mode != "off" and plan and not out.refused and (problems := self.remedy.preflight()):
            out.refused = refusal(self.remedy.phase, problems)
            return out
        if mode != "apply" or not plan:
            return out
        immediate = [c for c in plan if not c.after_verification]
        deferred = [c for c in plan if c.after_verification]

        for change in immediate:
            if change.needs_consent and not self.consent:
                out.skipped.append((change, consent_reason(change)))
                continue
            if not self._apply(change, out):
                if out.applied and not self._roll_back(out):
                    out.escalations.append("a step failed and the rollback of the steps before it did not "
                                           "restore the state: see the journal and restore by hand.")
                return out

        # Deferred changes (deletions) wait for a phase that verifies; verify even when nothing was
        # applied, so a deletion never rests on a stale or failing observation.
        if out.applied or deferred:
            self.remedy.invalidate()
            out.verification = self._verify(out.applied or deferred, final=False)
            failed = [v for v in out.verification if v.status is Status.FAIL]
            if failed and out.applied:
                restored = self._roll_back(out) if self.rollback_enabled else False
                if not self.rollback_enabled:
                    out.escalations.append("verification failed and --no-rollback was given: the changes stay "
                                           "in place; decide by hand (see the journal for the state before).")
                out.escalations.insert(0, self.remedy.escalation(failed, restored))
                return out
            inconclusive = [v for v in out.verification if v.status is Status.INCONCLUSIVE]
            for change in deferred:
                if failed:
                    out.skipped.append((change, "the phase's criteria still fail: "
                                                + "; ".join(v.reason for v in failed[:2])))
                elif inconclusive:
                    out.skipped.append((change, "verification was inconclusive: "
                                                + "; ".join(v.reason for v in inconclusive[:2])))
                elif change.needs_consent and not self.consent:
                    out.skipped.append((change, consent_reason(change)))
                elif not self._apply(change, out):
                    break
            if any(c.after_verification for c in out.applied):
                self.remedy.invalidate()
                out.verification = self._verify(out.applied, final=True)
                failed = [v for v in out.verification if v.status is Status.FAIL]
                if failed:
                    out.escalations.append(self.remedy.escalation(failed, False))
        return out

    def _verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        """The phase's verdicts; a verification that cannot be made counts as failed, so it ends in a
        rollback rather than in a change left standing unverified."""
        try:
            return self.remedy.verify(changes, final)
        except Exception as exc:
            return [Verdict("verification", c.subject, Status.FAIL, f"{c.subject}: could not verify: {exc}")
                    for c in changes[:1]]

    def _apply(self, change: Change, out: Outcome) -> bool:
        """Apply one change, journaled; False when the run must stop (it failed)."""
        executor = self.remedy.executor(change.step)
        self.journal.write("apply.before", change, before=change.before, planned=change.after,
                           payload=change.payload)
        try:
            result = executor.apply(change)
        except NotYetUsable as exc:
            # Refused, so not applied (and nothing to roll back); the run goes on with the rest.
            self.journal.write("apply.pending", change, error=str(exc), attempts=exc.attempts)
            out.pending.append((change, str(exc)))
            return True
        except GoldenpathError as exc:
            self.journal.write("apply.failed", change, error=str(exc))
            out.error = f"{change.summary}: {exc}"
            return False
        except Exception as exc:  # an unexpected failure must still end in a journal line and a rollback
            self.journal.write("apply.failed", change, error=f"{type(exc).__name__}: {exc}")
            out.error = f"{change.summary}: {type(exc).__name__}: {exc}"
            return False
        self.journal.write("apply.after", change, after=result)
        self._results[id(change)] = result
        out.applied.append(change)
        return True

    def _roll_back(self, out: Outcome) -> bool:
        """Undo what was applied, newest first; then check that each undo holds. True if all did."""
        reversible = [c for c in reversed(out.applied) if c.reversible]
        out.kept = [c for c in out.applied if not c.reversible]
        for change in out.kept:
            self.journal.write("rollback.impossible", change, detail=change.why)
        if not reversible:
            return False
        for change in reversible:
            executor = self.remedy.executor(change.step)
            self.journal.write("rollback.before", change, restore=change.before)
            try:
                result = executor.rollback(change, self._results.get(id(change), {}))
            except Exception as exc:
                self.journal.write("rollback.failed", change, error=f"{exc}")
                out.escalations.append(f"rollback of '{change.summary}' failed: {exc}")
                continue
            self.journal.write("rollback.after", change, after=result)
            out.rolled_back.append(change)
        self.remedy.invalidate()
        ok = True
        for change in out.rolled_back:
            try:
                restored, detail = self.remedy.executor(change.step).restored(change)
            except Exception as exc:
                restored, detail = False, f"could not check: {exc}"
            self.journal.write("rollback.verified" if restored else "rollback.unverified", change, detail=detail)
            if not restored:
                ok = False
                out.escalations.append(f"rollback of '{change.summary}' did not restore the state before: {detail}")
        out.rollback_verified = ok and len(out.rolled_back) == len(reversible)
        return out.rollback_verified
