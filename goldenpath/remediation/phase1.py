"""Phase 1 remediation: one revision serves 100 %, then the superseded revisions go.

Runbook: "Resolve Dual Revision Deployment State" and "If Phase 1 Fails". Where the runbook names
revisions literally, the plan uses what Cloud Run reports: the latest *ready* revision
gets the traffic, and only revisions that held traffic or minimum instances are deleted.

Traffic tags are someone's URL: the route keeps every tag (a tagged revision stays tagged at 0 %),
its rollback puts back the traffic exactly as it was read, tags included, and a tagged revision is
never deleted (Cloud Run refuses: it "is able to receive traffic"). A tagged revision that keeps
minimum instances running is therefore left to the operator, and the plan says what to do by hand.
"""

from __future__ import annotations

from typing import Any

from goldenpath.config import Target
from goldenpath.criteria import phase1 as criteria
from goldenpath.criteria import verifiable
from goldenpath.observations import ServiceObservation, TrafficShare
from goldenpath.observe import Observer
from goldenpath.gcp.run import tags_of
from goldenpath.remediation.change import LANDED, NOT_LANDED, Change, Found, compare
from goldenpath.remediation.remedy import ObservedRemedy, settled
from goldenpath.verdict import Verdict

ROUTE, DELETE = criteria.ROUTE, criteria.DELETE
TITLE = "Phase 1: Immediate Stabilization"


def _shares(items: Any) -> list[dict[str, Any]]:
    return [{"revision": s.revision, "percent": s.percent} for s in items]


def plan(target: Target, observations: dict[str, ServiceObservation]) -> list[Change]:
    """The changes that would bring every service to one latest-ready revision at 100 %."""
    changes: list[Change] = []
    where = f"--region={target.region} --project={target.project}"
    for name, obs in observations.items():
        svc = obs.service
        if svc is None:
            continue  # not read (its source failed): nothing is planned on what was not seen
        if svc.reconciling:
            # Planning against a moving service would race its own rollout; the criteria report it.
            continue
        holding = svc.holding_traffic
        tagged = criteria.tagged(svc)
        latest = svc.latest_ready
        target_split = [TrafficShare(latest, 100)]
        if len(holding) == 1 and holding[0].revision != latest:
            # One older revision at 100 % is an operator's rollback, not the runbook's dual-revision
            # state: the criteria say so, and the gate changes nothing it cannot know the intent of.
            continue
        if list(holding) != target_split or [s for s in svc.requested if s.percent] != target_split:
            tags = tags_of(svc.raw)
            kept = {"tags": tags} if tags else {}
            changes.append(Change(
                phase=1, step=ROUTE, subject=name, resource=svc.full_name,
                summary=f"{name}: route 100 % of traffic to {latest} (now {svc.split_text()})",
                before={"traffic": _shares(holding), **kept}, after={"traffic": _shares(target_split), **kept},
                reversible=True,
                gcloud=f"gcloud run services update-traffic {name} --to-revisions={latest}=100 {where}",
                why=f"{latest} is the latest ready revision as Cloud Run reports it; the split is restored "
                    "if Phase 1 does not verify" + ("; every traffic tag stays as it is" if tags else ""),
                expected_etag=svc.etag, updated=svc.update_time.isoformat(),
                payload={"service": name, "to": _shares(target_split), "restore": _shares(holding),
                         "restore_traffic": list(svc.raw.get("traffic", []))},
            ))
        if obs.burst is None:
            # Deletion is irreversible: never on control-plane evidence alone. A service without a
            # health URL cannot show that the serving revision really answers.
            continue
        for rev in obs.revisions:
            if rev.name == latest or rev.name in tagged:
                # Cloud Run refuses to delete a tagged revision (it can receive traffic by its URL);
                # removing a tag is the operator's call: see manual().
                continue
            held = [s.percent for s in holding if s.revision == rev.name]
            # Only what contends: traffic. An untagged revision at 0 % starts no minimum instances
            # (it is not addressable) and stays as a way back.
            if not held:
                continue
            holds = ", ".join(filter(None, [f"{held[0]} % of traffic" if held else "",
                                            f"min instances {rev.min_instances}" if rev.min_instances else ""]))
            changes.append(Change(
                phase=1, step=DELETE, subject=name, resource=rev.full_name,
                touches=rev.full_name.split("/revisions/")[0],  # one service's deletions one at a time
                summary=f"{name}: delete superseded revision {rev.name} (holds {holds})",
                before={"revision": rev.name, "state": "exists", "min_instances": rev.min_instances,
                        "traffic_percent": sum(held)},
                after={"revision": rev.name, "state": "deleted"},
                reversible=False, after_verification=True,
                gcloud=f"gcloud run revisions delete {rev.name} {where} --quiet",
                why="frees what the old revision still holds; irreversible, so it runs only after Phase 1 "
                    "verifies, and its full spec is kept in the journal",
                payload={"service": name, "revision": rev.name, "spec": rev.raw},
            ))
    return changes


def manual(target: Target, observations: dict[str, ServiceObservation]) -> list[str]:
    """What contends and no step of the plan may change: tagged revisions that keep minimum
    instances running. The gate never removes a tag (it is someone's URL)."""
    where = f"--region={target.region} --project={target.project}"
    out = []
    for name, obs in observations.items():
        svc = obs.service
        if svc is None or svc.reconciling:
            continue
        latest = svc.latest_ready
        # What Cloud Run serves (trafficStatuses), as the contention criterion reads it.
        tags = {t["revision"]: t["tag"] for t in svc.raw.get("trafficStatuses", []) if t.get("tag") and t.get("revision")}
        for rev in obs.revisions:
            held = max(rev.min_instances, rev.provisioned_min)
            if rev.name == latest or rev.name not in tags or not held:
                continue
            tag = tags[rev.name]
            out.append(
                f"{name}: {rev.name} is tagged '{tag}' and keeps {held} minimum instance(s) running, which "
                "contend with the serving revision. The gate removes no tag (it is someone's URL) and Cloud Run "
                "refuses to delete a tagged revision. By hand: remove the tag if nobody uses that URL "
                f"(gcloud run services update-traffic {name} --remove-tags={tag} {where}), then the revision "
                "holds nothing; or, to keep the URL, deploy that configuration with min instances 0 and move "
                f"the tag to the new revision (--set-tags={tag}=NEW_REVISION)."
            )
    return out


class RouteTraffic:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def apply(self, change: Change) -> dict[str, Any]:
        p = change.payload
        state = self.observer.run.set_traffic(
            p["service"], [TrafficShare(**s) for s in p["to"]], expected_etag=change.expected_etag)
        return {"traffic": _shares(state.holding_traffic), "etag": state.etag}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        p = change.payload
        # The traffic exactly as it was read when planned, tags included.
        state = self.observer.run.set_traffic_exact(p["service"], p["restore_traffic"],
                                                    expected_etag=applied.get("etag", ""))
        return {"traffic": _shares(state.holding_traffic), "tags": tags_of(state.raw), "etag": state.etag}

    def restored(self, change: Change) -> tuple[bool, str]:
        # The service alone: a rollback is judged on the traffic it restores, so a read it does not
        # need (the request logs of a full Phase 1 observation) cannot leave it unverified.
        svc = self.observer.run.get_service(change.payload["service"])
        now = sorted(_shares(svc.holding_traffic), key=lambda s: s["revision"])
        want = sorted(change.payload["restore"], key=lambda s: s["revision"])
        traffic_ok = _normal(svc.raw.get("traffic", [])) == _normal(change.payload["restore_traffic"])
        tags = ", ".join(f"{t['tag']}→{t['revision']}" for t in tags_of(svc.raw)) or "none"
        return now == want and traffic_ok, (f"{svc.name} serves {svc.split_text()} (traffic targets "
                                            f"{'as captured' if traffic_ok else 'differ from those captured'}; tags: {tags})")

    def reconcile(self, change: Change) -> Found:
        p = change.payload
        svc, still = settled(self.observer, lambda: self.observer.run.get_service(p["service"]),
                             lambda s: s.reconciling, f"{p['service']}'s traffic change")
        now = sorted(_shares(svc.holding_traffic), key=lambda s: s["revision"])
        detail = f"{svc.name} serves {svc.split_text()}" + ("" if still else " and is still reconciling")
        if not still:
            return Found("unknown", detail)
        return compare(now, sorted(p["restore"], key=lambda s: s["revision"]),
                       sorted(p["to"], key=lambda s: s["revision"]), detail,
                       {"traffic": now, "etag": svc.etag})


def _normal(entries: list[dict[str, Any]]) -> list[tuple[str, str, int, str]]:
    # REST JSON leaves out defaults (percent 0, no tag): compare the four fields, in order.
    return [(e.get("type", ""), e.get("revision", ""), int(e.get("percent", 0)), e.get("tag", "")) for e in entries]


class DeleteRevision:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def apply(self, change: Change) -> dict[str, Any]:
        p = change.payload
        op = self.observer.run.delete_revision(p["service"], p["revision"])
        return {"deleted": p["revision"], "operation": op}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a deleted revision cannot be restored; its spec is in the journal")

    def restored(self, change: Change) -> tuple[bool, str]:
        return False, "deletion is irreversible"

    def reconcile(self, change: Change) -> Found:
        p = change.payload
        names = {r.name for r in self.observer.run.list_revisions(p["service"])}
        if p["revision"] in names:
            return Found(NOT_LANDED, f"revision {p['revision']} still exists")
        return Found(LANDED, f"revision {p['revision']} no longer exists", {"deleted": p["revision"]})


class Phase1Remedy(ObservedRemedy):
    phase = 1
    title = TITLE
    records = criteria.RECORDS

    def __init__(self, target: Target, observer: Observer) -> None:
        super().__init__(target, observer, {ROUTE: RouteTraffic(observer), DELETE: DeleteRevision(observer)})

    def plan(self) -> list[Change]:
        return self.plannable(plan(self.target, self.observer.phase1()))

    def manual(self) -> list[str]:
        return manual(self.target, self.observer.phase1()) + self.unplannable()

    def verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        subjects = sorted({c.subject for c in changes})
        # Before the deletions, contention is expected to remain (the old revision still holds
        # its minimum instances); the final check includes it.
        wanted = verifiable(criteria.RECORDS, final)
        return criteria.evaluate(self.observer.phase1(), self.target.thresholds, wanted, subjects)

    def escalation(self, failed: list[Verdict], restored: bool) -> str:
        reasons = "; ".join(v.reason for v in failed)
        after = ("the traffic split before the change was restored and verified" if restored
                 else "the state before the change could NOT be restored and verified")
        if all(v.criterion == "verification" or v.unchecked for v in failed):
            # Nothing showed the service unavailable: the verification itself could not be made (it
            # raised, or a source the criteria read failed).
            return (f"Phase 1 could not be verified, so its change was not kept: {reasons}. {after}. Fix what "
                    "the verification could not read, then run the remediation again.")
        return (f"service unavailable after Phase 1 (runbook escalation trigger): {reasons}. {after}. "
                "Investigate the new revision's errors (gcloud logging read 'resource.type=\"cloud_run_revision\" "
                "AND severity>=ERROR') before trying again.")
