"""The run's final verdict: the Success Confirmation checklist, then PASS, FAIL, INCONCLUSIVE or ESCALATE.

Written to the terminal and to ``verdict.json`` (schema in reports/README.md) so a pipeline can act on
it. The rules, first match wins:

* ESCALATE: a runbook escalation trigger fired (a rollback that did not restore, the service still
  unavailable after Phase 1, a connector that cannot be restored, connections still above 90 %);
* FAIL: a criterion failed (a phase's, or a Success Confirmation item);
* INCONCLUSIVE: nothing failed, but something could not be shown: a check that could not be made
  (API or network error), an inconclusive criterion, or a Success Confirmation item not checked in
  this run (e.g. ``-m phase1``);
* PASS: every criterion that ran passed and every Success Confirmation item passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from goldenpath.criteria.confirmation import RECORDS, all_of
from goldenpath.sources import SourceFailure
from goldenpath.verdict import Verdict

SCHEMA = "goldenpath.verdict/1"
MARK = {"pass": "✅", "fail": "❌", "inconclusive": "❔", "not checked": "➖"}


@dataclass(frozen=True)
class Item:
    item: str       # stable key, e.g. zero_503_window
    title: str      # the runbook's words
    status: str     # pass | fail | inconclusive | not checked
    value: str      # what was measured, short
    reason: str     # the verdict's sentence(s)

    def line(self) -> str:
        value = f" — {self.value}" if self.value else ""
        return f"{MARK[self.status]} {self.title}{value}"


@dataclass(frozen=True)
class TestResult:
    test: str       # the pytest node id
    outcome: str    # passed | failed | inconclusive | error | skipped
    message: str
    title: str = ""  # the runbook item and its subject ("Single active Cloud Run revision: netra-backend-staging")
    criterion: str = ""  # its record's key (Criterion.key: phase2.db_connections), "" for a test without one
    could_not_check: list[str] = field(default_factory=list)  # the failed observation sources it needed (goldenpath.sources ids)

    @property
    def name(self) -> str:
        """What an operator reads: the title; the test's name for a test without a record."""
        return self.title or self.test.split("::")[-1]


@dataclass
class Final:
    verdict: str
    reason: str
    checklist: list[Item]
    tests: list[TestResult]
    escalations: list[str]
    extra: dict[str, Any] = field(default_factory=dict)  # target, run, start/end, mutations
    sources: list[dict[str, Any]] = field(default_factory=list)  # failed observation sources (RunState.failed_sources)

    def lines(self) -> list[str]:
        return [i.line() for i in self.checklist] + [f"VERDICT: {self.verdict} — {self.reason}"]

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for t in self.tests:
            counts[t.outcome] = counts.get(t.outcome, 0) + 1
        return {"schema": SCHEMA, "verdict": self.verdict, "reason": self.reason, **self.extra,
                "checklist": [asdict(i) for i in self.checklist], "counts": counts,
                "criteria": [asdict(t) for t in self.tests], "escalations": self.escalations,
                "sources": self.sources}


def checklist(confirmed: dict[str, list[Verdict]]) -> list[Item]:
    """One line per Success Confirmation item; an item with several verdicts (per service or
    endpoint) is as good as its worst."""
    out = []
    for record in RECORDS:
        key, title = record.id, record.title
        verdicts = confirmed.get(key, [])
        if not verdicts:
            out.append(Item(key, title, "not checked", "", "not part of this run (select -m confirmation)"))
            continue
        if len(verdicts) == 1:
            v = verdicts[0]
            out.append(Item(key, title, v.status.value, v.value, v.reason))
            continue
        # Several verdicts (one per service): the worst decides; the reason is the worst ones' reasons.
        combined = all_of(key, title, verdicts)
        worst = [x for x in verdicts if x.status is combined.status] if not combined.passed else []
        reason = "; ".join(x.reason for x in worst) if worst else f"all {len(verdicts)} pass"
        out.append(Item(key, title, combined.status.value, "; ".join(x.value or x.status.value for x in verdicts),
                        reason))
    return out


def _first(text: str) -> str:
    return (text.splitlines() or [""])[0][:300]


def source_line(failed: dict[str, Any]) -> str:
    """``sqladmin instances.get: unreachable at http://… (2 criteria could not be checked: A, B)``."""
    line = SourceFailure.from_json(failed).short()
    names = list(failed.get("criteria", []))
    noun = "criterion" if len(names) == 1 else "criteria"
    return f"{line} ({len(names)} {noun} could not be checked: {', '.join(names)})"


def decide(items: Sequence[Item], tests: Sequence[TestResult], escalations: Sequence[str],
           sources: Sequence[dict[str, Any]] = ()) -> tuple[str, str]:
    if escalations:
        return "ESCALATE", escalations[0]
    failed = [t for t in tests if t.outcome == "failed"]
    if failed:
        names = ", ".join(t.name for t in failed[:3]) + (" …" if len(failed) > 3 else "")
        noun = "criterion" if len(failed) == 1 else "criteria"
        return "FAIL", f"{len(failed)} {noun} failed ({names}): {_first(failed[0].message)}"
    failed_items = [i for i in items if i.status == "fail"]
    if failed_items:
        return "FAIL", f"{failed_items[0].title}: {_first(failed_items[0].reason)}"
    if sources:
        more = f"; and {len(sources) - 1} other source(s) failed" if len(sources) > 1 else ""
        return "INCONCLUSIVE", f"a source could not be read: {source_line(sources[0])}{more}"
    errors = [t for t in tests if t.outcome == "error"]
    if errors:
        return "INCONCLUSIVE", (f"{len(errors)} check(s) could not be made (the check broke, not the "
                                f"infrastructure): {_first(errors[0].message)}")
    unsure = [i for i in items if i.status == "inconclusive"]
    if unsure:
        return "INCONCLUSIVE", f"{unsure[0].title}: {unsure[0].reason}"
    inconclusive = [t for t in tests if t.outcome == "inconclusive"]
    if inconclusive:
        return "INCONCLUSIVE", _first(inconclusive[0].message)
    if not tests:
        return "INCONCLUSIVE", "no criterion ran"
    unchecked = [i.title for i in items if i.status == "not checked"]
    if unchecked:
        return "INCONCLUSIVE", (f"every criterion that ran passed, but the Success Confirmation was not fully "
                                f"checked ({', '.join(unchecked)}): run the whole gate, or add -m confirmation")
    return "PASS", f"all {len(tests)} criteria pass and the Success Confirmation holds"


def build(confirmed: dict[str, list[Verdict]], tests: Sequence[TestResult], escalations: Sequence[str],
          extra: dict[str, Any], sources: Sequence[dict[str, Any]] = ()) -> Final:
    items = checklist(confirmed)
    verdict, reason = decide(items, tests, escalations, sources)
    return Final(verdict, reason, items, list(tests), list(escalations), extra, list(sources))

