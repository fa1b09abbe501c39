"""Criteria: the runbook's success metrics as pure functions from observations to verdicts.

No I/O here. The same functions judge the tests and verify remediation.

Each criterion is declared once, as a :class:`Criterion` record in its phase's module (``RECORDS``);
the Success Confirmation's items likewise (``confirmation.RECORDS``). Everything else is derived
from the records: each phase's ``evaluate`` (and so a remedy's ``verify``), the escalation
triggers, the tests' markers, titles, severities, parametrization and target-key checks
(fixtures/criteria.py), the checklist, and the plan's criterion → steps link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Final, Iterable, Literal, Mapping, Sequence, TypeVar

from goldenpath.sources import SourceFailure
from goldenpath.verdict import Status, Verdict

if TYPE_CHECKING:
    from goldenpath.config import Service, Target, Thresholds
    from goldenpath.definitions import Definitions

# How a criterion is parametrized: one verdict per ...
Per = Literal["service", "served_service", "health_endpoint", "domain", ""]
PER_SERVICE: Final = "service"                 # service of the target
PER_SERVED_SERVICE: Final = "served_service"   # service with a health_url (its traffic is probed)
PER_HEALTH_ENDPOINT: Final = "health_endpoint"  # URL in a service's health_endpoints
PER_DOMAIN: Final = "domain"                   # domain of the target (its certificate)
ONCE: Final = ""                               # one verdict for the target
SERVICE_SCOPED = (PER_SERVICE, PER_SERVED_SERVICE, PER_HEALTH_ENDPOINT)

# Which of a phase's remediation verifications judge the criterion: every one, only the final one
# (after the steps that wait for a verified phase, e.g. deletions), or none (nothing the phase changes
# can move it, e.g. certificates in Phase 2).
Verify = Literal["always", "final", "never"]

# Allure severity levels (allure.severity_level values), kept as words so criteria stay pytest-free.
BLOCKER, CRITICAL, NORMAL = "blocker", "critical", "normal"


@dataclass(frozen=True)
class Seen:
    """What a judge reads: the target, the observation its record names, and a phase's extras."""

    target: Target | None                      # None: a judge that needs only thresholds (Phase 1 units)
    obs: Any                                   # the observation named by Criterion.observation
    defs: Definitions | None = None            # Phase 4: the monitoring definitions
    pending: Mapping[str, str] = field(default_factory=dict)  # Phase 4: policies waiting on a new metric
    require_channels: bool = True              # Phase 4: False while verifying remediation
    thresholds: Thresholds | None = None       # default: the target's

    @property
    def th(self) -> Thresholds:
        if self.thresholds is not None:
            return self.thresholds
        assert self.target is not None, "a judge needs a target or thresholds"
        return self.target.thresholds

    @property
    def t(self) -> Target:
        assert self.target is not None, "this judge needs the target"
        return self.target


Judge = Callable[[Seen, str], Verdict]

# A parametrized criterion with no subject in the target gets this one parameter instead of none
# (pytest's "got empty parameter set"): its test is INCONCLUSIVE, never a pass, and says why.
NOT_CONFIGURED = "not configured"


T = TypeVar("T")


def got(value: T | None) -> T:
    """A value a judge reads: present, because a criterion is judged only when its sources are
    (Criterion.judged); a record whose ``sources`` leave one out fails here, loudly."""
    assert value is not None, "a criterion was judged without one of its sources: declare it in sources="
    return value


def record_of(function: Any) -> "Criterion | None":
    """The record a test function was declared for (``@criterion(RECORD)`` in fixtures/criteria.py)."""
    return getattr(function, "gp_record", None)


@dataclass(frozen=True)
class Criterion:
    """One runbook success metric (or Success Confirmation item), declared once."""

    id: str                 # stable, the verdict's ``criterion`` (and a checklist item's key)
    phase: int | None       # 1..4; None: the Success Confirmation
    title: str              # the runbook's words
    severity: str           # Allure severity level
    observation: str        # the named observation source: an Observer method and a session fixture
    judge: Judge            # (what was seen, the subject) → verdict
    needs: tuple[str, ...] = ()   # target keys it cannot be checked without (targets.toml)
    per: Per = ONCE
    steps: tuple[str, ...] = ()   # the remediation step kinds that can fix it
    verify: Verify = "always"
    # Runbook escalation trigger when it still fails after its phase's remediation; with
    # ``escalate_on_value`` only when the verdict says its value is the trigger (Verdict.escalation).
    escalation: str = ""
    escalate_on_value: bool = False
    manual: str = ""        # what to do by hand when it fails and no step can fix it
    # Whether the observation holds what the judge reads for a subject (None: always). A part not
    # observed (e.g. a read that returned nothing) yields no verdict in ``evaluate``.
    observed: Callable[[Seen, str], bool] | None = None
    # The observation sources its judge reads (goldenpath.sources ids): with all of them present it is
    # judged; when one failed it "could not check" (INCONCLUSIVE, with that source named).
    sources: tuple[str, ...] = ()

    @property
    def marker(self) -> str:
        return f"phase{self.phase}" if self.phase else "confirmation"

    @property
    def key(self) -> str:
        """Unique over all records (a Success Confirmation item may share a phase criterion's id)."""
        return f"{self.marker}.{self.id}"

    def missing(self, target: Target) -> list[str]:
        """The target keys this criterion needs and the target does not configure."""
        return [k for k in self.needs if getattr(target, k, None) in (None, "", [], ())]

    def subjects(self, target: Target, services: Sequence[str] | None = None) -> list[str]:
        """What it is judged for in ``target`` (``[""]`` for a criterion judged once)."""
        if self.per == ONCE:
            return [""]
        if self.per == PER_DOMAIN:
            return list(target.domains)
        return [s for svc in target.services if services is None or svc.name in services
                for s in self.subjects_of(svc)]

    def subjects_of(self, svc: Service) -> list[str]:
        if self.per == PER_SERVICE:
            return [svc.name]
        if self.per == PER_SERVED_SERVICE:
            return [svc.name] if svc.health_url else []
        if self.per == PER_HEALTH_ENDPOINT:
            return list(svc.health_endpoints)
        return []

    def nothing_configured(self) -> str:
        """One line for a parametrized criterion with nothing to check in the target."""
        what = {PER_SERVICE: "no service", PER_SERVED_SERVICE: "no service has a health_url",
                PER_HEALTH_ENDPOINT: "no service lists health_endpoints", PER_DOMAIN: "no domain"}[self.per]
        return (f"{self.title}: nothing configured to check ({what} in targets.toml), so it cannot be shown to "
                "hold; add it (see README, Targets) or deselect the test")

    def display(self, subject: str) -> str:
        """Operator-facing name: the runbook item and its subject."""
        return f"{self.title}: {subject}" if subject else self.title

    def unchecked(self, seen: Seen, subject: str) -> list[SourceFailure]:
        """The failed sources (of what was seen for ``subject``) this criterion needs: empty when it
        can be judged."""
        failed = failures_in(seen.obs, subject)
        return [failed[s] for s in self.sources if s in failed]

    def could_not_check(self, subject: str, failed: Sequence[SourceFailure]) -> Verdict:
        """The verdict of a criterion whose sources failed: INCONCLUSIVE, never a pass; the sources are
        named (their paragraph is in the run's summary, once)."""
        names = ", ".join(f.short() for f in failed)
        return Verdict(self.id, subject, Status.INCONCLUSIVE, f"could not check: {names}",
                       {"could_not_check": [f.to_json() for f in failed]}, value="could not check",
                       unchecked=tuple(f.to_json() for f in failed))

    def judged(self, seen: Seen, subject: str) -> Verdict:
        """The judge's verdict, or "could not check" when a source it needs failed."""
        failed = self.unchecked(seen, subject)
        return self.could_not_check(subject, failed) if failed else self.judge(seen, subject)


def failures_in(obs: Any, subject: str = "") -> Mapping[str, SourceFailure]:
    """The failed sources of an observation, for ``subject``: a phase's own ``failures``; for an
    observation per service (Phase 1, the clean window) the subject service's, or every service's
    when the subject is not one of them."""
    own = getattr(obs, "failures", None)
    if isinstance(own, Mapping):
        return own
    if isinstance(obs, Mapping):
        if subject in obs:
            return getattr(obs[subject], "failures", {})
        merged: dict[str, SourceFailure] = {}
        for value in obs.values():
            for k, v in getattr(value, "failures", {}).items():
                merged.setdefault(k, v)
        return merged
    return {}


def could_not_check(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The verdicts that could not be checked (a source they need failed)."""
    return [v for v in verdicts if v.unchecked]


def evaluate(records: Iterable[Criterion], seen: Seen, only: Iterable[str] | None = None,
             services: Sequence[str] | None = None, final: bool = True) -> list[Verdict]:
    """Every verdict the records allow on what was seen: service by service first (each service's
    criteria in declaration order), then the target-wide ones. Criteria whose target keys are
    missing are left out (their tests say why). ``only``: criterion ids; ``services``: only those
    services' per-service verdicts; ``final=False`` leaves out criteria judged only finally."""
    wanted = None if only is None else set(only)
    target = seen.t
    chosen = [r for r in records if (wanted is None or r.id in wanted) and not r.missing(target)
              and (final or r.verify != "final")]
    out: list[Verdict] = []

    def judge(r: Criterion, subject: str) -> None:
        failed = r.unchecked(seen, subject)
        if failed:
            out.append(r.could_not_check(subject, failed))
        elif r.observed is None or r.observed(seen, subject):
            out.append(r.judge(seen, subject))

    for svc in target.services:
        if services is not None and svc.name not in services:
            continue
        for r in chosen:
            for subject in r.subjects_of(svc) if r.per in SERVICE_SCOPED else ():
                judge(r, subject)
    for r in chosen:
        for subject in r.subjects(target) if r.per not in SERVICE_SCOPED else ():
            judge(r, subject)
    return out


def verifiable(records: Iterable[Criterion], final: bool) -> list[str]:
    """The ids a phase's remediation verification judges (see Criterion.verify)."""
    return [r.id for r in records if r.verify == "always" or (final and r.verify == "final")]


def triggers(records: Iterable[Criterion], failed: Iterable[Verdict]) -> list[str]:
    """The runbook escalation triggers that verdicts still failing after remediation fire, once each."""
    by_id = {r.id: r for r in records}
    out: list[str] = []
    for v in failed:
        r = by_id.get(v.criterion)
        if r is None or not r.escalation or v.status is not Status.FAIL:
            continue
        if (v.escalation or not r.escalate_on_value) and r.escalation not in out:
            out.append(r.escalation)
    return out


def unfixable(records: Iterable[Criterion], verdicts: Iterable[Verdict]) -> list[str]:
    """For each failing criterion that no remediation step can fix: the manual action, one paragraph."""
    by_id = {r.id: r for r in records}
    out = []
    for v in verdicts:
        r = by_id.get(v.criterion)
        if r is not None and v.failed and not r.steps:
            out.append(f"{r.display(v.subject)} fails and no remediation step can fix it: {v.reason}. By hand: "
                       f"{r.manual or 'see the runbook'}.")
    return out
