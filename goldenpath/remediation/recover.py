"""``--recover``: settle what an interrupted or failed remediation left, from the journal.

For each unfinished change (newest first, the order a rollback undoes them), the change is
rebuilt from its ``apply.before`` record and the resource is read back (the executor's
``reconcile``). Then, in this order:

1. a rollback was under way: finish it, unless the resource is already back in its before-state;
2. the change landed but was never verified: verify it with the phase's own criteria; if they
   fail, restore the before-state (as the interrupted run would have); a one-way change
   (an irreversible deletion, a connector scale-up) is kept and reported;
3. the resource is in neither state (half-changed) or its state could not be read: restore the
   before-state;
4. the resource is already in its before-state: nothing to do.

Every restore is checked (``restored``), consent rules apply as to any step (``--yes`` for one that
restarts or takes something away), and each change ends in ``recover.resolved`` (it no longer
counts as unfinished) or ``recover.unresolved`` (it still does, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from goldenpath.remediation.change import LANDED, NOT_LANDED, Change, Found
from goldenpath.remediation.interrupted import Unfinished
from goldenpath.remediation.journal import Journal
from goldenpath.remediation.runner import PhaseRemedy, _describe
from goldenpath.verdict import Status


@dataclass
class Recovered:
    unfinished: Unfinished
    resolved: bool
    action: str    # what was done
    detail: str    # what the world shows now

    def line(self) -> str:
        mark = "resolved" if self.resolved else "NOT RESOLVED"
        return f"recover {mark}: {self.unfinished.summary or self.unfinished.resource}: {self.action} ({self.detail})"


def rebuild(u: Unfinished) -> Change | None:
    """The change as it was planned, from its ``apply.before`` record."""
    rec = u.before_record
    if rec is None:
        return None
    fields: dict[str, Any] = dict(rec["spec"])
    return Change(**{**fields, "before": rec.get("before", {}), "after": rec.get("planned", {}),
                     "payload": rec.get("payload", {})})


def applied_result(u: Unfinished) -> dict[str, Any]:
    return next((r.get("after", {}) for r in reversed(u.records) if r.get("event") == "apply.after"), {})


def recover(unfinished: list[Unfinished], remedy_for: Callable[[int], PhaseRemedy], journal: Journal,
            consent: bool) -> list[Recovered]:
    out = []
    for u in reversed(unfinished):
        out.append(_one(u, remedy_for(u.phase), journal, consent))
    return out


def _one(u: Unfinished, remedy: PhaseRemedy, journal: Journal, consent: bool) -> Recovered:
    change = rebuild(u)
    if change is None:
        return _end(journal, u, None, False, "cannot rebuild the change",
                    "its apply.before record is missing from the journal: compare the resource with what the run "
                    "meant to do by hand")
    journal.write("recover.before", change, recovers=u.key, last_event=u.last.get("event"))
    executor = remedy.executor(change.step)
    found = _read(executor, change)
    journal.write("recover.reconciled", change, recovers=u.key, found=found.state, detail=found.detail)
    if found.state == NOT_LANDED:
        what = ("the rollback had landed" if u.rolling_back else "the change had not landed")
        return _end(journal, u, change, True, f"{what}: the resource is in its before-state", found.detail)
    if found.state == LANDED and not u.rolling_back:
        if not change.reversible:
            return _end(journal, u, change, True, "the change landed and cannot be undone: kept", found.detail)
        remedy.invalidate()
        try:
            verdicts = remedy.verify([change], False)
        except Exception as exc:
            verdicts = []
            failed_text = f"could not verify: {_describe(exc)}"
        else:
            failed = [v for v in verdicts if v.status is Status.FAIL]
            failed_text = "; ".join(v.reason for v in failed)
        if verdicts and not failed_text:
            return _end(journal, u, change, True, "the change landed and the phase's criteria hold: kept",
                        found.detail)
        journal.write("recover.verify_failed", change, recovers=u.key, reasons=failed_text)
    # A rollback to finish, a change that did not verify, or a state in between: back to before.
    if change.needs_consent and not consent:
        return _end(journal, u, change, False, "restoring the state before needs consent",
                    f"{found.detail}; it restarts or takes something away: run `--recover --yes`")
    if not change.reversible:
        return _end(journal, u, change, False, "cannot be undone", f"{found.detail}; {change.why}")
    try:
        result = executor.rollback(change, found.result or applied_result(u))
        journal.write("recover.rolled_back", change, recovers=u.key, after=result)
    except Exception as exc:
        after = _read(executor, change)
        if after.state != NOT_LANDED:
            return _end(journal, u, change, False, f"restoring the state before failed: {_describe(exc)}", after.detail)
    finally:
        remedy.invalidate()
    try:
        ok, detail = executor.restored(change)
    except Exception as exc:
        ok, detail = False, f"could not check: {_describe(exc)}"
    return _end(journal, u, change, ok, "restored the state before the change" + ("" if ok else ", but it does not hold"),
                detail)


def _read(executor: Any, change: Change) -> Found:
    try:
        found: Found = executor.reconcile(change)
        return found
    except Exception as exc:
        return Found("unknown", f"it could not be read back: {_describe(exc)}")


def _end(journal: Journal, u: Unfinished, change: Change | None, resolved: bool, action: str,
         detail: str) -> Recovered:
    event = "recover.resolved" if resolved else "recover.unresolved"
    if change is not None:
        journal.write(event, change, recovers=u.key, action=action, detail=detail)
    else:
        journal.write(event, None, recovers=u.key, action=action, detail=detail, resource=u.resource)
    return Recovered(u, resolved, action, detail)
