"""What one run has found so far, kept by the process that writes the verdict.

The gate's plugin keeps one ``RunState`` in ``config.stash`` and fills it from the test reports it
receives (``pytest_runtest_logreport``): in a plain run those are its own, under xdist the
controller receives every worker's. So the VERDICT line, the checklist and verdict.json are built
from the same records either way, and never from a module's globals (a worker's globals never reach
the controller).

Each report carries its test's place in the collection (``order``): under xdist reports arrive in
whatever order the workers finish, and sorting by it gives the order a plain run has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from goldenpath.final import TestResult
from goldenpath.verdict import Verdict


@dataclass
class RunState:
    started: str = ""  # ISO time the session started
    # phase -> {"start", "end"}: epoch seconds its fixture (observe, remediate, observe again) ran
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    _results: dict[str, tuple[int, TestResult]] = field(default_factory=dict)
    _judged: list[tuple[int, int, Verdict]] = field(default_factory=list)
    _confirmed: list[tuple[int, int, str, Verdict]] = field(default_factory=list)
    # Each observation source that failed (goldenpath.sources.SourceFailure JSON, the first seen) and
    # the criteria (titles, in order) that could not be checked for it, by source id.
    _unchecked: dict[str, tuple[dict[str, Any], list[tuple[int, str]]]] = field(default_factory=dict)

    def result(self, order: int, result: TestResult) -> None:
        """A test's outcome (a later report of the same test, e.g. a teardown error, replaces it)."""
        self._results[result.test] = (order, result)

    def phase(self, phase: str, start: float, end: float) -> None:
        """When a phase's fixture ran. Under xdist each worker that needs the phase runs its own
        fixture: the phase spans them all (the earliest start, the latest end)."""
        seen = self.phases.get(phase)
        if seen is not None:
            start, end = min(start, seen["start"]), max(end, seen["end"])
        self.phases[phase] = {"start": start, "end": end}

    def judged(self, order: int, verdicts: Iterable[dict[str, Any]]) -> None:
        """The verdicts a test judged, as ``Verdict.to_json`` wrote them on its report."""
        for verdict in verdicts:
            self._judged.append((order, len(self._judged), Verdict.from_json(verdict)))

    def confirmed(self, order: int, items: Iterable[Sequence[Any]]) -> None:
        """The Success Confirmation items a test recorded: ``[item, verdict JSON]`` pairs."""
        for item, verdict in items:
            self._confirmed.append((order, len(self._confirmed), str(item), Verdict.from_json(verdict)))

    def could_not_check(self, order: int, title: str, failures: Iterable[dict[str, Any]]) -> None:
        """A test (its place and title) could not check, because these sources failed."""
        for f in failures:
            entry = self._unchecked.setdefault(str(f.get("source", "")), (dict(f), []))
            if (order, title) not in entry[1]:
                entry[1].append((order, title))

    @property
    def failed_sources(self) -> list[dict[str, Any]]:
        """Each failed source once (as SourceFailure JSON) with ``criteria``: the titles of what could
        not be checked for it, in collection order; the sources in the order their first criterion ran."""
        entries = sorted(self._unchecked.values(), key=lambda e: min(o for o, _ in e[1]))
        return [{**failure, "criteria": [t for _, t in sorted(titles)]} for failure, titles in entries]

    @property
    def tests(self) -> list[TestResult]:
        return [r for _, r in sorted(self._results.values(), key=lambda x: x[0])]

    @property
    def verdicts(self) -> list[Verdict]:
        """Every judged verdict, in the order a plain run judges them."""
        return [v for *_, v in sorted(self._judged, key=lambda x: x[:2])]

    @property
    def confirmation(self) -> dict[str, list[Verdict]]:
        """The Success Confirmation's verdicts by checklist item, in collection order."""
        out: dict[str, list[Verdict]] = {}
        for _, _, item, verdict in sorted(self._confirmed, key=lambda x: x[:2]):
            out.setdefault(item, []).append(verdict)
        return out
