"""What every phase's remedy shares: its target, its observer, its executors by step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from goldenpath.config import Target
from goldenpath.criteria import Criterion, unfixable, verifiable
from goldenpath.errors import GoldenpathError
from goldenpath.remediation.change import Change
from goldenpath.remediation.preflight import preflight
from goldenpath.sources import SourceFailure
from goldenpath.remediation.runner import Executor
from goldenpath.verdict import Verdict

if TYPE_CHECKING:
    from goldenpath.observe import Observer

T = TypeVar("T")


class ObservedRemedy(ABC):
    """A phase's remedy reads through one Observer; a mutation makes everything it saw stale."""

    phase: int
    title: str
    records: tuple[Criterion, ...] = ()  # the phase's criteria (goldenpath.criteria.phaseN.RECORDS)

    def __init__(self, target: Target, observer: Observer, executors: Mapping[str, Executor]) -> None:
        self.target = target
        self.observer = observer
        self._executors = dict(executors)

    def executor(self, step: str) -> Executor:
        return self._executors[step]

    def invalidate(self) -> None:
        self.observer.invalidate()

    def watch_operations(self, callback: Callable[[str, str], None] | None) -> None:
        """``callback(api, operation name)`` as soon as a write's operation is known (for the journal)."""
        self.observer.session.on_operation = callback

    @abstractmethod
    def plan(self) -> list[Change]:
        """The phase's changes, from its observation (each phase plans its own)."""

    def judged(self) -> list[Verdict]:
        """The phase's verdicts on the current observation (for what no step can fix)."""
        return []

    def manual(self) -> list[str]:
        """What fails and no step may change: the operator's actions, each in one paragraph. By
        default, every failing criterion whose record names no remediation step; and what could not
        be planned because a source failed."""
        fixed = unfixable(self.records, self.judged()) if any(not r.steps for r in self.records) else []
        return fixed + self.unplannable()

    # ---- failed observation sources -----------------------------------------------------------

    def failed_sources(self) -> dict[str, SourceFailure]:
        """The sources that failed in the phase's current observation."""
        return self.observer.failures(self.phase)

    def _blind(self) -> list[tuple[Criterion, list[SourceFailure]]]:
        """The phase's criteria that could not check now, each with the failed sources it needs."""
        failed = self.failed_sources()
        out = []
        for r in self.records:
            needed = [failed[s] for s in r.sources if s in failed]
            if needed and (not r.needs or not r.missing(self.target)):
                out.append((r, needed))
        return out

    def plannable(self, changes: list[Change]) -> list[Change]:
        """The changes a plan may hold: a step that only criteria which could not check would call for
        is left out (it rests on a value that was not read, e.g. a metric "missing" because its read
        failed); ``unplannable`` says so."""
        blind = {r.id for r, _ in self._blind()}
        if not blind:
            return changes
        seen = {s for r in self.records if r.id not in blind for s in r.steps}
        return [c for c in changes if c.step in seen]

    def unplannable(self) -> list[str]:
        """One paragraph per criterion that could not check: which of its steps could not be planned,
        and which source failed."""
        out = []
        for r, failed in self._blind():
            steps = ", ".join(r.steps) if r.steps else "no step (it is fixed by hand)"
            out.append(f"not planned: '{r.title}' could not be checked, because "
                       f"{' and '.join(f.short() for f in failed)}; the steps that could fix it ({steps}) are planned "
                       "only where a criterion that was checked calls for them. Restore the source and run again.")
        return out

    def preflight(self) -> list[str]:
        """Why this phase's verification of its plan could not be evaluated (credentials, target keys,
        endpoints, and sources that failed in this run), each in a sentence; empty when it can. The
        plan is the cached observation's."""
        problems = preflight(self.phase, self.target, self.plan(), session=self.observer.session)
        # Every criterion the verification judges (finally) must be checkable: a change whose
        # verification needs a failed source would stand unverified, or be rolled back for nothing.
        judged = set(verifiable(self.records, final=True))
        for r, failed in self._blind():
            if r.id in judged:
                problems.append(f"'{r.title}' could not be checked in this run ({'; '.join(f.short() for f in failed)}), "
                                "and the phase's verification judges it.")
        return problems

def settled(observer: Observer, read: Callable[[], T], moving: Callable[[T], bool], what: str) -> tuple[T, bool]:
    """Read a resource until it stops moving (a rollout or an update still under way), within the
    target's operation timeout; (the last state read, whether it settled). A reconciliation must
    judge the resource, not an operation that may itself be what failed."""
    last: list[Any] = []

    def poll() -> T:
        value = read()
        last[:] = [value]
        return value

    try:
        return observer.session.wait(poll, lambda v: not moving(v), what), True
    except GoldenpathError:
        if not last:
            raise
        return last[0], False
