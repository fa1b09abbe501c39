"""A planned change: what it touches, how risky it is, how an operator would type it."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Change:
    phase: int
    step: str                 # executor id, e.g. "route-traffic"
    subject: str              # the service (or other resource) it is about
    resource: str             # full resource name
    summary: str              # one line an operator reads
    before: dict[str, Any]    # the part of the resource that changes, as it is
    after: dict[str, Any]     # … and as it will be
    reversible: bool
    restarts: bool = False
    destructive: bool = False  # takes something away while it runs (e.g. a connector's egress)
    gcloud: str = ""          # the equivalent command, for operators who think in gcloud
    why: str = ""             # why this change, and where it deviates from the runbook
    after_verification: bool = False  # only once the phase's criteria pass (e.g. deletions)
    expected_etag: str = ""   # the state it was planned from; applying refuses if it moved
    updated: str = ""         # the resource's last update time as the API reports it (a stale plan names it)
    payload: dict[str, Any] = field(default_factory=dict)  # what the executor needs
    # Sent twice, it does no harm: guarded (an etag, settingsVersion), named (a second create is 409
    # ALREADY_EXISTS) or setting a value (an update). A create whose name the server picks is not:
    # sent again after a lost answer, it makes a second one.
    idempotent: bool = True
    # What it changes, for ordering: changes of one phase that touch the same thing run one after
    # another, in plan order; all others may run at once (goldenpath.remediation.schedule). "" means
    # its ``resource``. A revision's deletion touches its service (Cloud Run changes a service's
    # revisions one at a time).
    touches: str = ""
    # What must be changed first: the ``touches`` of earlier changes of the same phase that must
    # have finished before this one starts (an alert policy reads the log-based metrics created
    # before it). A plan lists a change after everything it needs.
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Rebuilt from a journal (JSON), ``needs`` arrives as a list.
        object.__setattr__(self, "needs", tuple(self.needs))

    @property
    def key(self) -> str:
        """The thing it touches (see ``touches``)."""
        return self.touches or self.resource

    @property
    def needs_consent(self) -> bool:
        """Irreversible, restart-causing or destructive changes run only with --yes."""
        return not self.reversible or self.restarts or self.destructive

    @property
    def risk(self) -> str:
        parts = ["reversible" if self.reversible else "IRREVERSIBLE"]
        if self.destructive:
            parts.append("DESTRUCTIVE")
        if self.restarts:
            parts.append("causes a restart")
        if self.needs_consent:
            parts.append("needs --yes")
        if self.after_verification:
            parts.append("only after the phase verifies")
        return ", ".join(parts)

    def diff(self) -> str:
        a = json.dumps(self.before, indent=2, sort_keys=True).splitlines()
        b = json.dumps(self.after, indent=2, sort_keys=True).splitlines()
        return "\n".join(difflib.unified_diff(a, b, f"{self.resource} (now)", f"{self.resource} (planned)",
                                              lineterm=""))

    def render(self) -> str:
        lines = [f"[phase {self.phase}] {self.summary}", f"  risk:   {self.risk}"]
        if self.why:
            lines.append(f"  why:    {self.why}")
        if self.gcloud:
            lines.append(f"  gcloud: {self.gcloud}")
        lines += ["  " + line for line in self.diff().splitlines()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "needs_consent": self.needs_consent, "diff": self.diff()}


def render_plan(changes: list[Change], manual: list[str] | None = None) -> str:
    """The plan for people; ``manual`` are the actions no step may take (see ``PhaseRemedy.manual``)."""
    by_hand = [f"[manual] {m}" for m in manual or []]
    if not changes and by_hand:
        return "\n\n".join(["Nothing the gate may change, but the target does not meet these steps: "
                             "manual action is needed."] + by_hand)
    if not changes:
        return "Nothing to change: the target already meets what these steps would establish."
    return "\n\n".join([c.render() for c in changes] + by_hand)


@dataclass(frozen=True)
class Found:
    """What re-reading a resource after a failed or interrupted change showed.

    ``landed``: it is in the planned after-state; ``not landed``: still in the before-state;
    ``unknown``: neither (in between, still moving) or it could not be read. ``result`` is what the
    change's ``apply`` returns when it landed (the etag or name a rollback needs), read afresh."""

    state: str   # "landed" | "not landed" | "unknown"
    detail: str
    result: dict[str, Any] = field(default_factory=dict)


LANDED, NOT_LANDED, UNKNOWN = "landed", "not landed", "unknown"


def compare(now: Any, before: Any, after: Any, detail: str, result: dict[str, Any] | None = None) -> Found:
    """``now`` against the two states a change can leave: after first (a change to a value equal to
    the one before cannot be told apart, and then it has nothing left to do)."""
    if now == after:
        return Found(LANDED, detail, result or {})
    if now == before:
        return Found(NOT_LANDED, detail)
    return Found(UNKNOWN, detail)
