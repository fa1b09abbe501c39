"""One run's safety state: the target's lock, what earlier runs left unfinished, and ``--recover``.

Kept apart from the pytest glue (goldenpath/gate.py's Gate holds one of these per run) so that the rules
read in one place: no mutation while another run holds the lock; none while a dead run's change is
unsettled (until ``--recover`` settles it); the lock taken before the first mutation, journaled,
and released at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from goldenpath.config import Target
from goldenpath.remediation import interrupted
from goldenpath.remediation.journal import Journal
from goldenpath.remediation.lock import Locked, TargetLock
from goldenpath.remediation.recover import Recovered, recover
from goldenpath.remediation.runner import PhaseRemedy


class Safety:
    def __init__(self, target: Target, journal_path: Path, run_id: str, *, break_lock: bool, recover: bool,
                 consent: bool) -> None:
        self.target = target
        self.journal_path = journal_path
        self.run_id = run_id
        self.break_lock = break_lock
        self.recover_asked = recover
        self.consent = consent
        self.lock: TargetLock | None = None
        self.unfinished: list[interrupted.Unfinished] = []
        self.recovered: list[Recovered] = []
        self._scanned = False

    def scan(self) -> list[interrupted.Unfinished]:
        """Read the journal for what dead runs left unfinished (each run, read-only ones too)."""
        self.unfinished = interrupted.find(self.journal_path, self.target.name, self.run_id)
        self._scanned = True
        return self.unfinished

    @property
    def unsettled(self) -> list[interrupted.Unfinished]:
        done = {id(r.unfinished) for r in self.recovered if r.resolved}
        return [u for u in self.unfinished if id(u) not in done]

    def warning(self) -> str | None:
        """The paragraph for the verdict while something is unsettled. (Under xdist the controller
        never builds an observer, so it reads the journal here.)"""
        if not self._scanned:
            self.scan()
        return interrupted.paragraph(self.unsettled) if self.unsettled else None

    def guard(self, journal: Journal) -> str | None:
        """Before a mutation: a refusal paragraph, or None once the lock is held."""
        if self.unsettled:
            return interrupted.paragraph(self.unsettled)
        return self._take(journal)

    def _take(self, journal: Journal) -> str | None:
        if self.lock is not None and self.lock.held:
            return None
        lock = TargetLock(self.target, self.run_id, journal.identity, journal.path)
        try:
            # --recover settles what a dead run left, so it may take that run's lock over; a live
            # holder is never taken over (acquire refuses whatever is asked).
            stale = lock.acquire(self.break_lock or self.recover_asked)
        except Locked as exc:
            return str(exc)
        self.lock = lock
        journal.write("run.start", lock=str(lock.path))
        if stale is not None:
            why = "--break-lock" if self.break_lock else "--recover"
            journal.write("lock.broken", stale=stale.describe(), by=why)
        return None

    def recover(self, journal: Journal, remedy_for: Callable[[int], PhaseRemedy]) -> str | None:
        """``--recover``: settle every unfinished change; a refusal paragraph if the lock is held.
        The lock is taken even with nothing to settle: a dead run's stale lock is cleared so."""
        refusal = self._take(journal)
        if refusal:
            return refusal
        self.recovered = recover(self.unfinished, remedy_for, journal, self.consent)
        return None

    def finish(self, journal: Journal | None) -> None:
        if journal is not None and journal.started:
            journal.write("run.end", unsettled=len(self.unsettled))
        if self.lock is not None:
            self.lock.release()
