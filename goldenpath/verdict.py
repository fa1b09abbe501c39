"""A criterion's judgement: pass, fail or inconclusive, with a reason an operator can act on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Mapping


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    # Not enough evidence to say (e.g. too little traffic in the window). Never a pass.
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    criterion: str     # stable id, e.g. "single_active_revision"
    subject: str       # what was judged, e.g. the service name
    status: Status
    reason: str        # one sentence: what is true, and for a failure what was expected
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    # What was measured, short (the checklist's value column, a plan's summary): set by the judge, so
    # nothing has to parse ``reason`` for it.
    value: str = field(default="", compare=False)
    # The measured value itself is one of the runbook's escalation triggers (e.g. database connections
    # above 90 %). Part of the judgement, so it compares.
    escalation: bool = False
    # Could not check: the failed observation sources it needed (goldenpath.sources.SourceFailure as
    # JSON), and then the status is INCONCLUSIVE. Named once in the run's summary, not per test.
    unchecked: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def line(self) -> str:
        mark = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.INCONCLUSIVE: "INCONCLUSIVE"}[self.status]
        return f"{mark} {self.criterion} [{self.subject}]: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (every field, whatever fields a Verdict has): how a verdict travels on a
        test report from an xdist worker to the controller. Evidence values JSON cannot hold are
        written as their text, as verdict.json writes them."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["status"] = self.status.value
        result: dict[str, Any] = json.loads(json.dumps(out, default=str))
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Verdict":
        """The verdict ``to_json`` wrote; keys this version of Verdict has no field for are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = Status(values["status"])
        values["unchecked"] = tuple(values.get("unchecked", ()))
        return cls(**values)
