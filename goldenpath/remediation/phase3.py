"""Phase 3 remediation: roll out the missing configuration as a new revision, then move traffic.

Runbook: "Environment Configuration Fixes" and "Staged Service Restart Approach". The runbook's
"restart" (`replace-traffic --to-latest`, then `sleep 30`) becomes a rollout: the template gets the
required environment (a new revision, validate_only first, etag-guarded), and once that revision is
ready, 100 % of traffic moves to it. Rollback puts traffic back on the previous revision and removes
what was added from the template. Both services are handled the same way.
"""

from __future__ import annotations


from goldenpath.config import Target
from goldenpath.criteria import phase3 as criteria
from goldenpath.gcp.run import template_spec
from goldenpath.observations import Phase3Observation
from goldenpath.observe import Observer
from goldenpath.remediation.change import Change
from goldenpath.remediation.remedy import ObservedRemedy
from goldenpath.remediation.rollout import Rollout
from goldenpath.verdict import Verdict

ROLLOUT = criteria.ROLLOUT
TITLE = "Phase 3: Service Recovery"


def plan(target: Target, obs: Phase3Observation) -> list[Change]:
    changes: list[Change] = []
    where = f"--region={target.region} --project={target.project}"
    for svc in target.services:
        state, serving = obs.services.get(svc.name), obs.serving.get(svc.name)
        if state is None or serving is None or state.reconciling or not svc.required_env:
            continue  # no single serving revision: phase 1's business, and its criteria say so
        missing = {k: v for k, v in svc.required_env.items() if serving.env_value(k) != v}
        if not missing:
            continue
        template_env = template_spec(state.raw, ["env"])["env"]
        merged = [[k, missing.get(k, v)] for k, v in template_env] + \
                 [[k, v] for k, v in missing.items() if all(k != name for name, _ in template_env)]
        pairs = ",".join(f"{k}={v}" for k, v in missing.items())
        changes.append(Change(
            phase=3, step=ROLLOUT, subject=svc.name, resource=state.full_name,
            summary=f"{svc.name}: roll out {pairs} as a new revision and move traffic to it (now {serving.name})",
            before={"env": {k: serving.env_value(k) for k in missing}, "serving": serving.name},
            after={"env": missing, "serving": "(the new revision)"},
            reversible=True,
            gcloud=(f"gcloud run services update {svc.name} {where} --update-env-vars={pairs} && "
                    f"gcloud run services update-traffic {svc.name} {where} --to-latest"),
            why=("the runbook's restart (replace-traffic --to-latest, sleep 30) becomes a rollout: a new revision "
                 "with the configuration, traffic moved only once it is ready, the phase verified; on failure "
                 f"traffic goes back to {serving.name} and the added variables are removed"),
            expected_etag=state.etag,
            payload={"service": svc.name, "template": {"env": merged}, "restore": {"env": template_env},
                     "previous": serving.name},
        ))
    return changes


class Phase3Remedy(ObservedRemedy):
    phase = 3
    title = TITLE
    records = criteria.RECORDS

    def __init__(self, target: Target, observer: Observer) -> None:
        super().__init__(target, observer, {ROLLOUT: Rollout(observer)})

    def plan(self) -> list[Change]:
        return self.plannable(plan(self.target, self.observer.phase3()))

    def verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        return criteria.evaluate(self.observer.phase3(), self.target, sorted({c.subject for c in changes}))

    def escalation(self, failed: list[Verdict], restored: bool) -> str:
        after = ("traffic is back on the previous revision and the added variables were removed (verified)"
                 if restored else "the previous revision and configuration could NOT be restored and verified")
        return (f"Phase 3 did not verify after the configuration rollout: {'; '.join(v.reason for v in failed)}. "
                f"{after}. Read the new revision's startup logs before trying again.")
