"""Phase 1 success metrics (runbook: "Phase 1: Immediate Stabilization")."""

from __future__ import annotations

from typing import Sequence

from goldenpath.config import Thresholds
from goldenpath import sources as src
from goldenpath.criteria import BLOCKER, CRITICAL, PER_SERVED_SERVICE, PER_SERVICE, Criterion, Seen, got
from goldenpath.observations import Burst, RequestLog, RevisionState, ServiceObservation, ServiceState
from goldenpath.verdict import Status, Verdict

SINGLE_ACTIVE_REVISION = "single_active_revision"
NO_503 = "no_503"
HEALTH_FAST = "health_fast"
NO_CONTENTION = "no_contention"

TITLES = {
    SINGLE_ACTIVE_REVISION: "Single active Cloud Run revision",
    NO_503: "HTTP 503 errors eliminated",
    HEALTH_FAST: "Health endpoint responding < 2 seconds",
    NO_CONTENTION: "No revision-related resource contention",
}


def single_active_revision(svc: ServiceState) -> Verdict:
    holding = svc.holding_traffic
    evidence = {"serving": [s.__dict__ for s in svc.serving], "latest_ready": svc.latest_ready,
                "reconciling": svc.reconciling, "ready": svc.ready}

    def verdict(status: Status, reason: str) -> Verdict:
        return Verdict(SINGLE_ACTIVE_REVISION, svc.name, status, f"{svc.name}: {reason}", evidence)

    if len(holding) != 1:
        return verdict(Status.FAIL, f"{len(holding)} revisions serve traffic: {svc.split_text()}; "
                                    "expected one revision at 100 %")
    only = holding[0]
    if only.percent != 100:
        return verdict(Status.FAIL, f"{only.revision} serves {only.percent} %; expected 100 %")
    if only.revision != svc.latest_ready:
        return verdict(Status.FAIL, f"{only.revision} serves 100 % but the latest ready revision is "
                                    f"{svc.latest_ready}; expected the latest ready revision to serve")
    if svc.reconciling:
        return verdict(Status.FAIL, "the service is still reconciling an update; expected a settled service")
    if not svc.ready:
        return verdict(Status.FAIL, f"the service is not ready ({svc.ready_message}); expected Ready")
    return verdict(Status.PASS, f"{only.revision} serves 100 % and is the latest ready revision")


def no_503(svc: ServiceState, burst: Burst, log: RequestLog, thresholds: Thresholds) -> Verdict:
    evidence = {"burst": burst.summary(), "request_log": log.summary()}
    burst_503 = sum(1 for s in burst.samples if s.status == 503)

    def verdict(status: Status, reason: str) -> Verdict:
        return Verdict(NO_503, svc.name, status, f"{svc.name}: {reason}", evidence)

    since = log.since.strftime("%H:%M:%S UTC")
    if burst_503 or log.errors_503:
        parts = []
        if burst_503:
            parts.append(f"{burst_503} of {len(burst.samples)} concurrent requests to {burst.url} answered 503")
        if log.errors_503:
            plus = "+" if log.errors_capped else ""
            revs = sorted({e["revision"] for e in log.examples if e.get("revision")})
            parts.append(f"the request log shows {log.errors_503}{plus} 503s since {since}"
                         + (f" (from {', '.join(revs)})" if revs else ""))
        return verdict(Status.FAIL, "; ".join(parts) + "; expected none")
    if log.total_seen < thresholds.min_requests:
        return verdict(Status.INCONCLUSIVE,
                       f"no 503 seen, but the request log holds only {log.total_seen} requests since {since} "
                       f"(at least {thresholds.min_requests} needed to call it eliminated); send traffic "
                       "or wait, then run again")
    return verdict(Status.PASS, f"no 503 in {len(burst.samples)} concurrent requests nor in the request log "
                                f"since {since} ({log.total_seen}{'+' if log.total_capped else ''} requests)")


def health_fast(svc: ServiceState, burst: Burst, thresholds: Thresholds) -> Verdict:
    limit = thresholds.health_seconds
    p95, worst = burst.percentile(0.95), burst.max_seconds
    not_ok = {k: v for k, v in burst.statuses().items() if k != "200"}
    evidence = {"burst": burst.summary(), "threshold_s": limit}
    measured = f"p95 {p95:.2f} s, max {worst:.2f} s over {len(burst.samples)} requests"

    def verdict(status: Status, reason: str) -> Verdict:
        return Verdict(HEALTH_FAST, svc.name, status, f"{svc.name}: {burst.url} {reason}", evidence)

    problems = []
    if not_ok:
        problems.append("answers other than 200: " + ", ".join(f"{k} ×{v}" for k, v in not_ok.items()))
    if not worst < limit:
        problems.append(f"{measured}; expected every answer under {limit:g} s")
    if problems:
        return verdict(Status.FAIL, "; ".join(problems))
    return verdict(Status.PASS, f"{measured}, all 200")


def tagged(svc: ServiceState) -> set[str]:
    """Revisions with a traffic tag: addressable by URL even at 0 %."""
    return {t["revision"] for t in svc.raw.get("trafficStatuses", []) if t.get("tag") and t.get("revision")}


def no_contention(svc: ServiceState, revisions: Sequence[RevisionState]) -> Verdict:
    holding = {s.revision for s in svc.holding_traffic}
    serving = next(iter(holding)) if len(holding) == 1 else None
    # Cloud Run starts a revision's minimum instances only while it is addressable (it holds
    # traffic or a tag): an old revision at 0 % and untagged holds none, whatever its setting.
    # The API's own count (scalingStatus.desiredMinInstanceCount) is taken when it says more.
    addressable = holding | tagged(svc)
    # Service-level minimum instances are divided among the revisions with traffic by percent
    # (ServiceScaling.minInstanceCount); tags get none of them (rollouts-rollbacks-traffic-migration).
    service_min = int(svc.raw.get("scaling", {}).get("minInstanceCount", 0))
    contenders, tagged_idle = [], []
    for rev in revisions:
        if rev.name == serving:
            continue
        why = []
        if rev.name in holding:
            share = next(s.percent for s in svc.holding_traffic if s.revision == rev.name)
            why.append(f"{share} % of traffic" + (f" and its share of the service's {service_min} min instances"
                                                  if service_min else ""))
        held = max(rev.min_instances if rev.name in addressable else 0, rev.provisioned_min)
        if held > 0:
            why.append(f"min instances {held}" + ("" if rev.name in holding else " (tagged)"))
            if rev.name not in holding:
                tagged_idle.append(rev.name)
        if why:
            contenders.append(f"{rev.name} ({', '.join(why)})")
    evidence = {"revisions": {r.name: {"min_instances": r.min_instances, "provisioned_min": r.provisioned_min,
                                       "addressable": r.name in addressable} for r in revisions},
                "serving": sorted(holding), "service_min_instances": service_min}
    if contenders:
        by_hand = (f" ({', '.join(tagged_idle)}: a tagged revision keeps its minimum instances while tagged; "
                   "remove the tag or move it to a revision with min instances 0)") if tagged_idle else ""
        return Verdict(NO_CONTENTION, svc.name, Status.FAIL,
                       f"{svc.name}: revisions other than the serving one hold resources: {'; '.join(contenders)}; "
                       f"expected only the serving revision to hold traffic or minimum instances{by_hand}", evidence)
    return Verdict(NO_CONTENTION, svc.name, Status.PASS,
                   f"{svc.name}: only {serving or 'the serving revision'} holds traffic or minimum instances",
                   evidence)


# Step kinds of goldenpath/remediation/phase1.py (the criteria name them; they do not import them).
ROUTE, DELETE = "route-traffic", "delete-revision"

RECORDS = (
    Criterion(SINGLE_ACTIVE_REVISION, 1, TITLES[SINGLE_ACTIVE_REVISION], BLOCKER, "phase1",
              lambda s, name: single_active_revision(got(s.obs[name].service)), per=PER_SERVICE, steps=(ROUTE,),
              sources=(src.RUN_SERVICE,)),
    Criterion(NO_503, 1, TITLES[NO_503], BLOCKER, "phase1",
              lambda s, name: no_503(got(s.obs[name].service), s.obs[name].burst, s.obs[name].request_log,
                                     s.th), per=PER_SERVED_SERVICE, steps=(ROUTE,),
              sources=(src.RUN_SERVICE, src.BURST, src.LOG_ENTRIES)),
    Criterion(HEALTH_FAST, 1, TITLES[HEALTH_FAST], CRITICAL, "phase1",
              lambda s, name: health_fast(got(s.obs[name].service), s.obs[name].burst, s.th),
              per=PER_SERVED_SERVICE, steps=(ROUTE,), sources=(src.RUN_SERVICE, src.BURST)),
    # Before the deletions the old revision still holds its minimum instances: judged finally only.
    Criterion(NO_CONTENTION, 1, TITLES[NO_CONTENTION], CRITICAL, "phase1",
              lambda s, name: no_contention(got(s.obs[name].service), s.obs[name].revisions), per=PER_SERVICE,
              steps=(ROUTE, DELETE), verify="final", sources=(src.RUN_SERVICE, src.RUN_REVISIONS)),
)
BY_ID = {r.id: r for r in RECORDS}


def evaluate(observations: dict[str, ServiceObservation], thresholds: Thresholds,
             criteria: Sequence[str] | None = None, subjects: Sequence[str] | None = None) -> list[Verdict]:
    """Every phase-1 verdict for the observed services (optionally only some criteria/services),
    from RECORDS: a service that was probed (it has a health URL, so a burst) is a served service."""
    wanted = set(criteria or [r.id for r in RECORDS])
    seen = Seen(None, observations, thresholds=thresholds)
    out: list[Verdict] = []
    for name, obs in observations.items():
        if subjects is not None and name not in subjects:
            continue
        # A served service whose burst or log could not be read is still served: its criteria say
        # they could not check, never nothing.
        served = (obs.burst is not None or src.BURST in obs.failures) and \
            (obs.request_log is not None or bool(obs.failures))
        for r in RECORDS:
            if r.id in wanted and (r.per == PER_SERVICE or served):
                out.append(r.judged(seen, name))
    return out
