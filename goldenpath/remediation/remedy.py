"""What every phase's remedy shares: its target, its observer, its executors by step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from goldenpath.config import Target
from goldenpath.criteria import Criterion, unfixable
from goldenpath.errors import GoldenpathError
from goldenpath.remediation.change import Change
from goldenpath.remediation.preflight import preflight
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
        default, every failing criterion whose record names no remediation step."""
        return unfixable(self.records, self.judged()) if any(not r.steps for r in self.records) else []

    def preflight(self) -> list[str]:
        """Why this phase's verification of its plan could not be evaluated (credentials, target keys,
        endpoints), each in a sentence; empty when it can. The plan is the cached observation's."""
        return preflight(self.phase, self.target, self.plan(), session=self.observer.session)

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
