"""The remediation engine, the same for every phase.

lock (apply mode: one remediation per target, none while an earlier run's change is unsettled) →
plan → DO NOT SKIP STEPS → preflight (every criterion the verification needs can be evaluated) →
(plan mode stops here) → apply the immediate changes that have consent, each journaled and, when
its call fails, read back (landed / not landed / unknown) → verify with the phase's own criteria →
on failure roll back in reverse order and verify the rollback → only then the changes that must
wait for a verified phase (deletions), each with consent.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Protocol

from goldenpath.errors import GoldenpathError, NotYetUsable, transient, unprocessed
from goldenpath.remediation import preflight, schedule
from goldenpath.remediation.change import LANDED, NOT_LANDED, UNKNOWN, Change, Found
from goldenpath.remediation.journal import Journal, change_fields
from goldenpath.trail import logger
from goldenpath.verdict import Status, Verdict

if TYPE_CHECKING:
    from goldenpath.remediation.planfile import PlanFile

LOG = logger("remediation")

Mode = Literal["off", "plan", "apply"]
# A write that failed transiently and, read back, did not land is tried again this many times.
WRITE_RETRIES = 2


class Executor(Protocol):
    def apply(self, change: Change) -> dict[str, Any]: ...
    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]: ...
    def restored(self, change: Change) -> tuple[bool, str]: ...
    def reconcile(self, change: Change) -> Found:
        """Re-read the resource: is the change in its after-state, its before-state, or neither?"""
        ...


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
    def watch_operations(self, callback: Callable[[str, str], None] | None) -> None: ...


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
    unknown: list[Change] = field(default_factory=list)  # failed, and read back neither before nor after
    notes: list[str] = field(default_factory=list)  # what reconciliation found (a failed call that landed)

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
        out += [f"  UNKNOWN STATE: {c.summary}" for c in self.unknown]
        out += [f"  note: {n}" for n in self.notes]
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
            "unknown": [c.summary for c in self.unknown],
            "notes": self.notes,
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
    def __init__(self, remedy: PhaseRemedy, journal: Journal, *, consent: bool, rollback: bool,
                 guard: Callable[[], str | None] | None = None, plan: PlanFile | None = None) -> None:
        self.remedy = remedy
        # --plan FILE: only the reviewed plan's steps, each from the state it was planned from.
        self.plan_file = plan
        # Called once before the first mutation: the one-remediation-at-a-time lock and the refusal
        # to change a target that an interrupted run may have left half-changed. A paragraph refuses.
        self.guard = guard
        self.journal = journal
        self.consent = consent
        self.rollback_enabled = rollback
        self._results: dict[int, dict[str, Any]] = {}

    def run(self, mode: Mode, earlier: list[Verdict] | None = None) -> Outcome:
        """Run the phase; ``earlier`` are the verdicts of the phases before it ("DO NOT SKIP STEPS").

        A phase that changed something ends with a ``phase.end`` record, written only when it got
        to its end: a run stopped before (killed, interrupted) leaves its applied changes open for
        the next run to find (:mod:`goldenpath.remediation.interrupted`)."""
        mark, t0 = len(self.journal.records), time.perf_counter()
        out = self._run(mode, earlier)
        LOG.info("phase %d remediation (%s) ended in %.3f s: %s", self.remedy.phase, mode, time.perf_counter() - t0,
                 "; ".join(out.lines()))
        if len(self.journal.records) > mark:
            self.journal.write("phase.end", phase=self.remedy.phase, applied=len(out.applied),
                               rolled_back=len(out.rolled_back), unknown=len(out.unknown),
                               escalations=len(out.escalations))
        return out

    def _run(self, mode: Mode, earlier: list[Verdict] | None) -> Outcome:
        plan = self.remedy.plan()
        out = Outcome(self.remedy.phase, mode, plan, manual=self.remedy.manual())
        LOG.info("phase %d plan (%s): %s", self.remedy.phase, mode, "; ".join(c.summary for c in plan) or "nothing to change")
        if mode == "apply":
            # One remediation at a time, from its first look on: a plan made while another run
            # changes the target would be stale before it is applied.
            held = self.guard() if self.guard else None
            if held:
                LOG.warning("phase %d: refused by the lock/guard: %s", self.remedy.phase, held)
                out.refused = held
                return out
        # Inconclusive is not a pass: an earlier phase that cannot be shown to hold blocks too.
        failing = [v for v in earlier or [] if v.status is not Status.PASS]
        if failing and plan and mode != "off":
            out.refused = (f"phase {self.remedy.phase} remediation does not run while an earlier phase fails or "
                           "is inconclusive "
                           f"(runbook: DO NOT SKIP STEPS): {'; '.join(v.reason for v in failing[:3])}. Fix that "
                           "phase first (e.g. pytest -m phase1 --remediate).")
            LOG.warning("phase %d: %s", self.remedy.phase, out.refused)
            if mode == "apply":
                return out
        # Preflight: never change what cannot be verified (credentials, target keys, endpoints).
        if mode != "off" and plan and not out.refused and (problems := self.remedy.preflight()):
            out.refused = preflight.refusal(self.remedy.phase, problems)
            LOG.warning("phase %d: preflight refused: %s", self.remedy.phase, out.refused)
            return out
        if mode != "apply" or not plan:
            return out
        if self.plan_file is not None:
            # Every step it would apply (consent given), held against the reviewed plan before the
            # first of them: a refusal changes nothing.
            read_at = datetime.now(timezone.utc).isoformat()
            refused = self.plan_file.refusal([c for c in plan if self.consent or not c.needs_consent], read_at)
            if refused:
                LOG.warning("phase %d: refused by --plan: %s", self.remedy.phase, refused)
                out.refused = refused
                return out
        immediate = [c for c in plan if not c.after_verification]
        deferred = [c for c in plan if c.after_verification]

        runnable = []
        for change in immediate:
            if change.needs_consent and not self.consent:
                LOG.info("skip %s: %s", change.summary, consent_reason(change))
                out.skipped.append((change, consent_reason(change)))
                continue
            runnable.append(change)
        # Independent steps at once (goldenpath.remediation.schedule); once one fails, none starts
        # and the ones under way finish, so everything applied is known before it is rolled back.
        if not _each(runnable, lambda c: self._apply(c, out), out):
            if out.applied and not self._roll_back(out):
                if any(c.reversible for c in out.applied):
                    out.escalations.append("a step failed and the rollback of the steps applied with or before "
                                           "it did not restore the state: see the journal and restore by hand.")
                else:
                    out.escalations.append(
                        "a step failed after steps that cannot be undone; they stay in place: "
                        + "; ".join(c.summary for c in out.kept) + ".")
            return out

        # Deferred changes (deletions) wait for a phase that verifies; verify even when nothing was
        # applied, so a deletion never rests on a stale or failing observation.
        if out.applied or deferred:
            self.remedy.invalidate()
            out.verification = self._verify(out.applied or deferred, final=False)
            failed = [v for v in out.verification if v.status is Status.FAIL]
            LOG.info("phase %d verification: %s", self.remedy.phase, "; ".join(v.line() for v in out.verification))
            if failed and out.applied:
                restored = self._roll_back(out) if self.rollback_enabled else False
                if not self.rollback_enabled:
                    out.escalations.append("verification failed and --no-rollback was given: the changes stay "
                                           "in place; decide by hand (see the journal for the state before).")
                out.escalations.insert(0, self.remedy.escalation(failed, restored))
                return out
            inconclusive = [v for v in out.verification if v.status is Status.INCONCLUSIVE]
            runnable = []
            for change in deferred:
                if failed:
                    out.skipped.append((change, "the phase's criteria still fail: "
                                                + "; ".join(v.reason for v in failed[:2])))
                elif inconclusive:
                    out.skipped.append((change, "verification was inconclusive: "
                                                + "; ".join(v.reason for v in inconclusive[:2])))
                elif change.needs_consent and not self.consent:
                    out.skipped.append((change, consent_reason(change)))
                else:
                    runnable.append(change)
            _each(runnable, lambda c: self._apply(c, out), out)  # a failure: none further starts
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
            verdicts = self.remedy.verify(changes, final)
        except Exception as exc:
            return [Verdict("verification", c.subject, Status.FAIL, f"{c.subject}: could not verify: {exc}")
                    for c in changes[:1]]
        # A criterion that could not check (a source it needs failed) is not shown to hold: failed here.
        return [replace(v, status=Status.FAIL, reason=f"{v.subject or v.criterion}: could not verify: {v.reason}")
                if v.unchecked else v for v in verdicts]

    def _apply(self, change: Change, out: Outcome) -> bool:
        """Apply one change, journaled; False when the run must stop (it failed, or its outcome is unknown).

        A failed call is never taken at its word: the resource is read back (:meth:`_reconcile`).
        A change that landed counts as applied (verified, and rolled back if the phase fails); one
        that did not land after a transient error is tried again, at most ``WRITE_RETRIES`` times,
        and only after that read (so it is never applied twice), and a change that is not
        idempotent (a create the server names) only after an answer that says it was not processed
        (429, 503); one whose state is unknown stops the phase and escalates."""
        executor = self.remedy.executor(change.step)
        self.journal.write("apply.before", change, spec=change_fields(change), before=change.before,
                           planned=change.after, payload=change.payload)
        backoff = _backoff()
        for attempt in range(1, WRITE_RETRIES + 2):
            operations: list[str] = []
            self._watch(change, operations)
            LOG.info("apply %s (attempt %d) on %s", change.summary, attempt, change.resource)
            LOG.debug("apply %s: payload %s", change.summary, change.payload, extra={"keep_env": self.journal.keep_env})
            t0 = time.perf_counter()
            try:
                result = executor.apply(change)
            except NotYetUsable as exc:
                # Refused, so not applied (and nothing to roll back); the run goes on with the rest.
                LOG.info("pending %s: %s", change.summary, exc)
                self.journal.write("apply.pending", change, error=str(exc), attempts=exc.attempts)
                out.pending.append((change, str(exc)))
                return True
            except Exception as exc:  # any failure, expected or not, ends in a journal line and a re-read
                error = _describe(exc)
                LOG.warning("apply %s failed after %.3f s: %s", change.summary, time.perf_counter() - t0, error)
                self.journal.write("apply.failed", change, error=error, attempt=attempt,
                                   operation=operations[-1] if operations else "")
                found = self._reconcile(change, "apply.reconciled", operations)
                if found.state == LANDED:
                    self.journal.write("apply.after", change, after=found.result, reconciled=True)
                    self._results[id(change)] = found.result
                    out.applied.append(change)
                    out.notes.append(f"{change.summary}: the call failed ({error}) but the change landed "
                                     f"(read back: {found.detail}); counted as applied")
                    return True
                retry = transient(exc) if change.idempotent else unprocessed(exc)
                if found.state == NOT_LANDED and retry and attempt <= WRITE_RETRIES:
                    delay = next(backoff)
                    LOG.info("retry %s in %.1f s: it did not land and the error was transient", change.summary, delay)
                    self.journal.write("apply.retry", change, attempt=attempt + 1, after_seconds=delay)
                    time.sleep(delay)
                    continue
                if found.state == UNKNOWN:
                    out.unknown.append(change)
                    out.error = f"{change.summary}: {error}"
                    out.escalations.append(
                        f"the state of '{change.summary}' is unknown after its call failed ({error}): {found.detail}. "
                        f"Look at {change.resource}{' and operation ' + operations[-1] if operations else ''} "
                        "before anything else; the journal's apply.before record holds the state before. Then "
                        "`--recover` restores or settles it.")
                else:
                    out.error = f"{change.summary}: {error} (read back: not applied; {found.detail})"
                return False
            finally:
                self._watch(change, None)
                self.remedy.invalidate()  # whatever happened, what was seen before is stale
            LOG.info("applied %s in %.3f s", change.summary, time.perf_counter() - t0)
            self.journal.write("apply.after", change, after=result)
            self._results[id(change)] = result
            out.applied.append(change)
            return True
        return False  # unreachable: the last attempt returns

    def _watch(self, change: Change, operations: list[str] | None, event: str = "apply.operation") -> None:
        """Journal each operation of ``change`` as soon as the API names it (write-ahead: a crash
        while it runs leaves its name for the next run to look at). The session's one hook hands
        each operation to the step whose context started it: steps run at once, each in its own
        context (goldenpath.remediation.schedule)."""
        if operations is None:
            _WATCHING.set(None)
            return

        def seen(api: str, name: str) -> None:
            operations.append(name)
            self.journal.write(event, change, api=api, operation=name)

        _WATCHING.set(seen)
        self.remedy.watch_operations(_to_the_step)

    def _reconcile(self, change: Change, event: str, operations: list[str]) -> Found:
        """Read the resource back and journal what it shows: landed, not landed, or unknown."""
        try:
            found = self.remedy.executor(change.step).reconcile(change)
        except Exception as exc:
            found = Found(UNKNOWN, f"it could not be read back: {_describe(exc)}")
        LOG.info("%s %s: %s (%s)", event, change.summary, found.state, found.detail)
        self.journal.write(event, change, found=found.state, detail=found.detail,
                           operation=operations[-1] if operations else "")
        return found

    def _roll_back(self, out: Outcome) -> bool:
        """Undo what was applied, newest first; then check that each undo holds. True if all did."""
        reversible = [c for c in reversed(out.applied) if c.reversible]
        out.kept = [c for c in out.applied if not c.reversible]
        for change in out.kept:
            self.journal.write("rollback.impossible", change, detail=change.why)
        if not reversible:
            return False
        LOG.info("rolling back %d change(s), newest first: %s", len(reversible), "; ".join(c.summary for c in reversible))
        # Undone in reverse order where one change waited for another (the same resource, or one it
        # needs), all at once otherwise; every undo is tried whatever the others do.
        applied = list(reversed(reversible))

        def undo(change: Change) -> bool:
            if self._undo(change, out):
                out.rolled_back.append(change)
                return True
            return False

        schedule.run(applied, schedule.undo_waits_for(applied), undo, stop_on_failure=False)
        self.remedy.invalidate()

        def check(change: Change) -> bool:
            try:
                restored, detail = self.remedy.executor(change.step).restored(change)
            except Exception as exc:
                restored, detail = False, f"could not check: {exc}"
            LOG.info("rollback of %s %s: %s", change.summary, "verified" if restored else "NOT verified", detail)
            self.journal.write("rollback.verified" if restored else "rollback.unverified", change, detail=detail)
            if not restored:
                out.escalations.append(f"rollback of '{change.summary}' did not restore the state before: {detail}")
            return restored

        undone = list(out.rolled_back)
        ok = schedule.run(undone, [[] for _ in undone], check, stop_on_failure=False)
        out.rollback_verified = ok and len(out.rolled_back) == len(reversible)
        return out.rollback_verified

    def _undo(self, change: Change, out: Outcome) -> bool:
        """Roll one change back, journaled; a failed call is read back like any other: the
        rollback may have landed (the resource is in its before-state) or not."""
        executor = self.remedy.executor(change.step)
        LOG.info("roll back %s on %s", change.summary, change.resource)
        self.journal.write("rollback.before", change, restore=change.before)
        backoff = _backoff()
        for attempt in range(1, WRITE_RETRIES + 2):
            operations: list[str] = []
            self._watch(change, operations, "rollback.operation")
            try:
                result = executor.rollback(change, self._results.get(id(change), {}))
            except Exception as exc:
                error = _describe(exc)
                LOG.warning("rollback of %s failed: %s", change.summary, error)
                self.journal.write("rollback.failed", change, error=error, attempt=attempt,
                                   operation=operations[-1] if operations else "")
                found = self._reconcile(change, "rollback.reconciled", operations)
                if found.state == NOT_LANDED:  # the resource is back in its before-state
                    self.journal.write("rollback.after", change, after={"read back": found.detail}, reconciled=True)
                    return True
                if found.state == LANDED and transient(exc) and attempt <= WRITE_RETRIES:
                    self._results[id(change)] = found.result  # a fresh etag for the next try
                    delay = next(backoff)
                    LOG.info("retry the rollback of %s in %.1f s", change.summary, delay)
                    self.journal.write("rollback.retry", change, attempt=attempt + 1, after_seconds=delay)
                    time.sleep(delay)
                    continue
                out.escalations.append(f"rollback of '{change.summary}' failed: {error}; read back: {found.detail}. "
                                       "`--recover` finishes it.")
                return False
            finally:
                self._watch(change, None)
                self.remedy.invalidate()
            self.journal.write("rollback.after", change, after=result)
            return True
        return False  # unreachable


# The current step's operation hook (see Runner._watch); each step's context has its own.
_WATCHING: contextvars.ContextVar[Callable[[str, str], None] | None] = contextvars.ContextVar(
    "goldenpath_step_operations", default=None)


def _to_the_step(api: str, name: str) -> None:
    hook = _WATCHING.get()
    if hook is not None:
        hook(api, name)


def _each(changes: list[Change], step: Callable[[Change], bool], out: Outcome) -> bool:
    """``step`` for every change, independent ones at once; stops starting new ones after a failure.
    ``out.applied`` is then put back in plan order: steps run at once finish in any order, and the
    summary, the report and verdict.json must not change from one run to the next. (Rolling back
    newest first still holds: steps that wait for one another finish in plan order anyway.)"""
    try:
        return schedule.run(changes, schedule.waits_for(changes), step, stop_on_failure=True)
    finally:
        position = {id(c): i for i, c in enumerate(changes)}
        before = [c for c in out.applied if id(c) not in position]
        ours = sorted((c for c in out.applied if id(c) in position), key=lambda c: position[id(c)])
        out.applied[:] = before + ours


def _backoff() -> Iterator[float]:
    from google.api_core.retry import exponential_sleep_generator  # only a run that retries pays for it

    return exponential_sleep_generator(initial=1.0, maximum=8.0)


def _describe(exc: BaseException) -> str:
    """The operator's paragraph for a gate error; the type as well for anything unexpected."""
    return str(exc) if isinstance(exc, GoldenpathError) else f"{type(exc).__name__}: {exc}"
