"""Read the journal back: the changes an earlier run left unfinished.

A change is *unfinished* when the last record of it is one after which the target may be changed
and nobody is settling it:

* ``apply.before`` / ``apply.operation`` / ``apply.retry``: the call may or may not have landed;
* ``apply.failed`` without a reconciliation, or reconciled as ``unknown``;
* ``rollback.before`` / ``rollback.retry`` / ``rollback.after`` (not yet checked), ``rollback.failed``,
  ``rollback.unverified``: a rollback under way, or one that did not restore;
* ``apply.after`` of a phase that never got to its end (no ``phase.end``): applied, never verified.

Only runs that are no longer alive count (a live one holds the lock). A ``recover.resolved``
record of a later run settles a change for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from goldenpath.remediation import journal as journal_mod
from goldenpath.remediation.lock import alive

OPEN_ALWAYS = frozenset({"apply.before", "apply.operation", "apply.retry", "apply.failed", "rollback.before",
                         "rollback.retry", "rollback.operation", "rollback.after", "rollback.failed", "rollback.reconciled",
                         "rollback.unverified"})


def key_of(rec: dict[str, Any]) -> tuple[str, int, str, str]:
    return (str(rec.get("run")), int(rec.get("phase", 0)), str(rec.get("step")), str(rec.get("resource")))


@dataclass
class Unfinished:
    run: str
    host: str
    pid: int
    ended: bool
    phase: int
    step: str
    resource: str
    summary: str
    last: dict[str, Any]                  # the change's last record
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> dict[str, Any]:
        return {"run": self.run, "phase": self.phase, "step": self.step, "resource": self.resource}

    @property
    def rolling_back(self) -> bool:
        return str(self.last.get("event", "")).startswith("rollback.")

    @property
    def before_record(self) -> dict[str, Any] | None:
        return next((r for r in self.records if r.get("event") == "apply.before" and "spec" in r), None)

    def describe(self) -> str:
        ended = "ended" if self.ended else "was killed or crashed"
        return (f"run {self.run} (pid {self.pid} on {self.host}, {ended}), phase {self.phase} step {self.step}, "
                f"resource {self.resource}: last journaled '{self.last.get('event')}'"
                + (f" ({self.last.get('found')})" if self.last.get("found") else ""))


def _open(last: dict[str, Any], phase_ended: bool) -> bool:
    event = last.get("event")
    if event in OPEN_ALWAYS:
        return True
    if event == "apply.reconciled":
        return last.get("found") == "unknown"
    if event == "apply.after":
        return not phase_ended
    return False


def find(path: Path, target: str, current_run: str,
         is_alive: Callable[[str, int], bool | None] = alive) -> list[Unfinished]:
    """The unfinished changes of dead runs in the journal at ``path``, oldest first."""
    records = [r for r in journal_mod.read(path) if r.get("journal") == journal_mod.SCHEMA and r.get("target") == target]
    settled = {tuple(r["recovers"].get(k) for k in ("run", "phase", "step", "resource"))
               for r in records if r.get("event") == "recover.resolved" and isinstance(r.get("recovers"), dict)}
    runs: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        runs.setdefault(str(rec.get("run")), []).append(rec)
    out: list[Unfinished] = []
    for run, recs in runs.items():
        if run == current_run:
            continue
        ended = any(r.get("event") == "run.end" for r in recs)
        first = recs[0]
        if not ended and is_alive(str(first.get("host")), int(first.get("pid", 0))):
            continue  # still running: the lock keeps the two apart
        phases_ended = {int(r.get("phase", 0)) for r in recs if r.get("event") == "phase.end"}
        changes: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
        for rec in recs:
            if "step" in rec and not str(rec.get("event", "")).startswith(("recover.", "run.", "lock.")):
                changes.setdefault(key_of(rec), []).append(rec)
        for key, crs in changes.items():
            if key in settled or not _open(crs[-1], key[1] in phases_ended):
                continue
            out.append(Unfinished(run=run, host=str(first.get("host")), pid=int(first.get("pid", 0)), ended=ended,
                                  phase=key[1], step=key[2], resource=key[3], summary=str(crs[-1].get("summary", "")),
                                  last=crs[-1], records=crs))
    return out


def paragraph(unfinished: list[Unfinished]) -> str:
    """What the operator reads when a run finds them."""
    first = unfinished[0]
    more = f" (and {len(unfinished) - 1} more: see the journal)" if len(unfinished) > 1 else ""
    return (f"an interrupted remediation ({first.describe()}){more} may have left the target changed. `--recover` "
            "resolves it: it reads the resource, finishes the rollback that was under way or restores the state "
            "journaled before the change (or marks it resolved when the world already equals the state before or "
            "after), and verifies. Until then no remediation runs.")
