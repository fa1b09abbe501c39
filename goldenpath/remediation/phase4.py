"""Phase 4 remediation: monitoring as code, applied idempotently.

Runbook: "Performance Monitoring Implementation", "Prevention Measures". What is missing is
created and what differs is updated (log metrics by PUT, alert policies through an update mask of
the differing fields, dashboards with their etag), in dependency order: the log-based metrics
before the policies that read them. Autoscaling is a template change, rolled out like Phase 3's.
Notification channels are never created: the gate attaches the target's existing channels, and
without one the policies are still created and the criterion says what to do.

Every change is reversible: a creation is undone by deleting exactly the resource this run made
(its name is in the journal), an update by writing back the values it replaced.

A new log-based metric is not usable at once: Google refuses a policy reading it with NOT_FOUND "…
If a metric was created recently, it could take up to 10 minutes to become available. Please try
again soon." for a while. Such a policy write is retried with backoff until the metric is
``thresholds.metric_propagation_seconds`` old (target time); after that it is *pending*: not a
failure, nothing is rolled back (the metrics stay, so the next run need not start the wait again),
and the alert-policy criteria say "run again in N minutes".
"""

from __future__ import annotations

import math
import re
import shlex
import time
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable

from goldenpath.config import Target
from goldenpath.criteria import phase4 as criteria
from goldenpath.definitions import Definitions
from goldenpath.errors import NotYetUsable
from goldenpath.gcp.run import template_spec
from goldenpath.observations import Phase4Observation
from goldenpath.observe import Observer
from goldenpath.remediation.change import LANDED, NOT_LANDED, UNKNOWN, Change, Found
from goldenpath.remediation.remedy import ObservedRemedy
from goldenpath.remediation.rollout import Rollout
from goldenpath.semantic import differences
from goldenpath.verdict import Verdict

CREATE_METRIC, UPDATE_METRIC = criteria.CREATE_METRIC, criteria.UPDATE_METRIC
CREATE_POLICY, UPDATE_POLICY = criteria.CREATE_POLICY, criteria.UPDATE_POLICY
CREATE_DASHBOARD, UPDATE_DASHBOARD = criteria.CREATE_DASHBOARD, criteria.UPDATE_DASHBOARD
AUTOSCALE = criteria.AUTOSCALE
TITLE = "Phase 4: Monitoring Setup"
# Output fields a dashboard carries that are not part of what is written back.
_DASHBOARD_OUTPUT = ("etag",)


def plan(target: Target, obs: Phase4Observation, defs: Definitions) -> list[Change]:
    metrics = _metrics(target, obs, defs)
    # The log-based metrics first, then what may read them (policies, dashboards): those need every
    # metric this plan writes. Everything else (each policy, dashboard, service rollout) runs at once.
    first = tuple(c.key for c in metrics)
    readers = [replace(c, needs=first) for c in _policies(target, obs, defs) + _dashboards(target, obs, defs)]
    return metrics + readers + _autoscaling(target, obs)


def _metrics(target: Target, obs: Phase4Observation, defs: Definitions) -> list[Change]:
    out, p = [], target.project
    for name, d in defs.log_metrics.items():
        actual, resource = obs.log_metrics.get(name), f"projects/{p}/metrics/{name}"
        if actual is None:
            out.append(Change(
                phase=4, step=CREATE_METRIC, subject=name, resource=resource,
                summary=f"create log-based metric {name}",
                before={}, after={"filter": d["filter"], "description": d.get("description", "")},
                reversible=True,
                gcloud=(f"gcloud logging metrics create {name} --description={shlex.quote(d.get('description', ''))} "
                        f"--log-filter={shlex.quote(d['filter'])} --project={p}"),
                why=f"defined in {defs.files[f'metric {name}']}; rollback deletes the metric this run created",
                payload={"metric": d},
            ))
        elif criteria.metric_drift(d, actual):
            before = {"filter": actual.get("filter", ""), "description": actual.get("description", "")}
            out.append(Change(
                phase=4, step=UPDATE_METRIC, subject=name, resource=resource,
                summary=f"update log-based metric {name}: {'; '.join(criteria.metric_drift(d, actual))}",
                before=before, after={"filter": d["filter"], "description": d.get("description", "")},
                reversible=True,
                gcloud=f"gcloud logging metrics update {name} --log-filter={shlex.quote(d['filter'])} --project={p}",
                why=("the filter decides what the metric counts (the update is a PUT of the whole metric, which "
                     "also enables it); rollback writes the previous filter back"),
                payload={"metric": d, "previous": {"name": name, **before}},
            ))
    return out


def _policies(target: Target, obs: Phase4Observation, defs: Definitions) -> list[Change]:
    out, p = [], target.project
    have, wanted = criteria.existing_channels(obs), criteria.wanted_channels(obs, target)
    for pid, d in defs.alert_policies.items():
        actual = criteria.find_policy(obs.policies, pid, d)
        source = defs.files[f"policy {pid}"]
        if actual is None:
            note = "" if wanted else " (no existing notification channel to attach: see the alert-policy criterion)"
            out.append(Change(
                phase=4, step=CREATE_POLICY, subject=pid, resource=f"projects/{p}/alertPolicies/(new: {pid})",
                summary=f"create alert policy '{d['displayName']}'{note}",
                before={}, after={**d, "notificationChannels": wanted},
                reversible=True, idempotent=False,  # the server names a new policy: a resend makes a second
                gcloud=f"gcloud alpha monitoring policies create --policy-from-file={source} --project={p}",
                why=(f"defined in {source} (the runbook's thresholds, corrected for the API: see the file); "
                     "rollback deletes the policy this run created"),
                payload={"policy": {**d, "notificationChannels": wanted}, "pid": pid},
            ))
            continue
        fields = {k: d[k] for k in criteria.policy_drift(d, actual)}
        if "userLabels" in fields:  # the policy's own labels stay; the gate adds its own
            fields["userLabels"] = {**(actual.get("userLabels") or {}), **d["userLabels"]}
        attached = actual.get("notificationChannels", [])
        kept = [c for c in attached if c in have]
        channels = kept + [c for c in wanted if c not in kept]
        if channels != attached:
            fields["notificationChannels"] = channels
        if not fields:
            continue
        before = {k: actual.get(k) for k in fields}
        out.append(Change(
            phase=4, step=UPDATE_POLICY, subject=pid, resource=actual["name"],
            summary=f"update alert policy '{d['displayName']}': {', '.join(fields)} differ(s) from the definition",
            before=before, after=fields, reversible=True,
            gcloud=(f"gcloud alpha monitoring policies update {actual['name']} --policy-from-file={source} "
                    f"--fields={','.join(fields)}"),
            why="only the differing fields change (an update mask); rollback writes their previous values back",
            payload={"name": actual["name"], "fields": fields, "previous": before, "pid": pid},
        ))
    return out


def _dashboards(target: Target, obs: Phase4Observation, defs: Definitions) -> list[Change]:
    out = []
    for name, d in defs.dashboards.items():
        actual = obs.dashboards.get(name)
        source = defs.files[f"dashboard {name}"]
        if actual is None:
            out.append(Change(
                phase=4, step=CREATE_DASHBOARD, subject=d.get("displayName", name), resource=name,
                summary=f"create dashboard '{d.get('displayName', name)}'",
                before={}, after={"displayName": d.get("displayName"), "widgets": list(criteria.widgets(d))},
                reversible=True,
                gcloud=f"gcloud monitoring dashboards create --config-from-file={source} --project={target.project}",
                why=f"the runbook's capacity dashboard, defined in {source}; rollback deletes it",
                payload={"dashboard": d},
            ))
            continue
        one = criteria.dashboard(_only(obs, name), _only_defs(defs, name))
        if one.passed:
            continue
        previous = {k: v for k, v in actual.items() if k not in _DASHBOARD_OUTPUT}
        out.append(Change(
            phase=4, step=UPDATE_DASHBOARD, subject=d.get("displayName", name), resource=name,
            summary=f"update dashboard '{d.get('displayName', name)}': {one.value}",
            before={"widgets": list(criteria.widgets(actual))}, after={"widgets": list(criteria.widgets(d))},
            reversible=True,
            gcloud=f"gcloud monitoring dashboards update {name} --config-from-file={source}",
            why="the whole dashboard is written with the etag read now, so a concurrent edit fails instead of "
                "being overwritten; rollback writes the previous dashboard back",
            expected_etag=actual.get("etag", ""),
            payload={"dashboard": d, "previous": previous},
        ))
    return out


def _only(obs: Phase4Observation, name: str) -> Phase4Observation:
    return replace(obs, dashboards={name: obs.dashboards.get(name)})


def _only_defs(defs: Definitions, name: str) -> Definitions:
    return replace(defs, dashboards={name: defs.dashboards[name]})


def _autoscaling(target: Target, obs: Phase4Observation) -> list[Change]:
    out = []
    where = f"--region={target.region} --project={target.project}"
    for svc in target.services:
        cfg, state, serving = svc.autoscaling, obs.services.get(svc.name), obs.serving.get(svc.name)
        if cfg is None or state is None or serving is None or state.reconciling:
            continue  # no single serving revision: Phase 1's business, and the criterion says so
        drift = criteria.autoscaling_drift(target, serving, svc.name)
        if not drift:
            continue
        spec = {"scaling": {"minInstanceCount": cfg.min_instances, "maxInstanceCount": cfg.max_instances},
                "maxInstanceRequestConcurrency": cfg.concurrency}
        restore = template_spec(state.raw, list(spec))
        db = target.database
        pool = (f"; {cfg.max_instances} instances each holding a connection pool can exceed Cloud SQL's "
                f"max_connections ({db.max_connections}): size the pool per instance accordingly"
                if db is not None and db.max_connections and cfg.max_instances > db.max_connections // 4 else "")
        out.append(Change(
            phase=4, step=AUTOSCALE, subject=svc.name, resource=state.full_name,
            summary=(f"{svc.name}: roll out autoscaling min {cfg.min_instances}, max {cfg.max_instances}, "
                     f"concurrency {cfg.concurrency} as a new revision (now {serving.name})"),
            before={"scaling": restore["scaling"], "concurrency": restore["maxInstanceRequestConcurrency"]},
            after={"scaling": spec["scaling"], "concurrency": cfg.concurrency},
            reversible=True,
            gcloud=(f"gcloud run services update {svc.name} {where} --min-instances={cfg.min_instances} "
                    f"--max-instances={cfg.max_instances} --concurrency={cfg.concurrency} && "
                    f"gcloud run services update-traffic {svc.name} {where} --to-latest"),
            why=("the runbook's auto-scaling rules; a scaling change is a new revision, so it is rolled out and "
                 f"traffic moves once it is ready; on failure traffic goes back to {serving.name}{pool}"),
            expected_etag=state.etag,
            payload={"service": svc.name, "template": spec, "restore": restore, "previous": serving.name},
        ))
    return out


# ---- executors ---------------------------------------------------------------------------------

class LogMetricCreation:
    def __init__(self, observer: Observer) -> None:
        self.logging = observer.logging

    def apply(self, change: Change) -> dict[str, Any]:
        return {"created": self.logging.create_metric(change.payload["metric"]).get("name", change.subject)}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        self.logging.delete_metric(change.payload["metric"]["name"])
        return {"deleted": change.resource}

    def restored(self, change: Change) -> tuple[bool, str]:
        gone = self.logging.get_metric(change.payload["metric"]["name"]) is None
        return gone, f"{change.resource} {'no longer exists' if gone else 'still exists'}"

    def reconcile(self, change: Change) -> Found:
        metric = self.logging.get_metric(change.payload["metric"]["name"])
        if metric is None:
            return Found(NOT_LANDED, f"{change.resource} does not exist")
        if metric.get("filter") == change.payload["metric"].get("filter"):
            return Found(LANDED, f"{change.resource} exists with the planned filter",
                         {"created": metric.get("name", change.subject)})
        return Found(UNKNOWN, f"{change.resource} exists with another filter: {metric.get('filter')!r}")


class LogMetricUpdate:
    def __init__(self, observer: Observer) -> None:
        self.logging = observer.logging

    def apply(self, change: Change) -> dict[str, Any]:
        return {"filter": self.logging.update_metric(change.payload["metric"]).get("filter")}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        return {"filter": self.logging.update_metric(change.payload["previous"]).get("filter")}

    def restored(self, change: Change) -> tuple[bool, str]:
        actual = self.logging.get_metric(change.subject) or {}
        ok = not differences({"filter": change.payload["previous"]["filter"]}, actual)
        return ok, f"{change.resource} filter is {actual.get('filter')!r}"

    def reconcile(self, change: Change) -> Found:
        actual = (self.logging.get_metric(change.subject) or {}).get("filter")
        detail = f"{change.resource} filter is {actual!r}"
        if actual == change.payload["metric"].get("filter"):
            return Found(LANDED, detail, {"filter": actual})
        if actual == change.payload["previous"].get("filter"):
            return Found(NOT_LANDED, detail)
        return Found(UNKNOWN, detail)


USER_METRIC = re.compile(r'\bmetric\.type\s*=\s*"logging\.googleapis\.com/user/([^"]+)"')
# Google's own bound, from its refusal: "it could take up to 10 minutes to become available".
GOOGLE_PROPAGATION_SECONDS = 600


def user_metrics(conditions: list[dict[str, Any]]) -> list[str]:
    """The log-based metrics (logging.googleapis.com/user/NAME) the conditions' filters read."""
    names: list[str] = []
    for cond in conditions:
        for kind in ("conditionThreshold", "conditionAbsent"):
            body = cond.get(kind) or {}
            for flt in (body.get("filter", ""), body.get("denominatorFilter", "")):
                names += [n for n in USER_METRIC.findall(flt) if n not in names]
    return names


def _span(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


class MetricPropagation:
    """How long a policy write may wait for the log-based metrics it reads to become usable, and
    which policies are still pending because of them (by definition id)."""

    def __init__(self, target: Target, observer: Observer) -> None:
        self.target, self.observer = target, observer
        self.pending: dict[str, str] = {}

    def _created(self, conditions: list[dict[str, Any]]) -> dict[str, datetime]:
        created = {}
        for name in user_metrics(conditions):
            metric = self.observer.logging.get_metric(name)
            if metric is None or not metric.get("createTime"):
                return {}  # a metric that does not exist is not propagating: its NOT_FOUND is an error
            created[name] = datetime.fromisoformat(str(metric["createTime"]).replace("Z", "+00:00"))
        return created

    def write(self, pid: str, conditions: list[dict[str, Any]],
              attempt: Callable[[float | None, list[str]], dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
        """``attempt(wait_for_metrics, refusals)``, waiting (real seconds) until the newest
        metric the conditions read is ``metric_propagation_seconds`` old in the target's time (tried
        again paced as a poll, the last time at the end of the wait: :meth:`Monitoring.create_alert_policy`);
        the refusals seen. When the wait runs out, :class:`NotYetUsable` with when to run again, and
        ``pid`` is pending."""
        created = self._created(conditions)
        refusals: list[str] = []
        if not created:
            return attempt(None, refusals), refusals
        scale = self.observer.clock_scale()
        bound = self.target.thresholds.metric_propagation_seconds
        newest = max(created.values()).timestamp()
        wait = (bound - (time.time() - newest) * scale) / scale
        try:
            return attempt(max(0.0, wait), refusals), refusals
        except NotYetUsable as exc:
            age = (time.time() - newest) * scale  # target seconds since the newest metric was created
            minutes = max(1, math.ceil((GOOGLE_PROPAGATION_SECONDS - age) / 60))
            clock = f" (the twin's clock runs ×{scale:g}: {minutes * 60 / scale:.0f} real seconds)" if scale != 1 else ""
            reason = (f"metric not yet usable, run again in {minutes} minute{'s' if minutes != 1 else ''}{clock}: "
                      f"Google refused the policy {exc.attempts} time(s) within thresholds.metric_propagation_seconds "
                      f"({bound:g} s) because {', '.join(created)} (created {_span(age)} ago) is not usable yet "
                      f"(Google: up to {GOOGLE_PROPAGATION_SECONDS // 60} minutes after a metric's creation); "
                      "the metrics and the policies made so far are kept, and the next run creates what is pending")
            self.pending[pid] = reason
            raise NotYetUsable(reason, exc.attempts) from exc


class PolicyCreation:
    def __init__(self, observer: Observer, propagation: MetricPropagation) -> None:
        self.monitoring = observer.monitoring
        self.propagation = propagation

    def apply(self, change: Change) -> dict[str, Any]:
        policy = change.payload["policy"]
        created, refusals = self.propagation.write(
            change.payload["pid"], policy.get("conditions", []),
            lambda wait, refused: self.monitoring.create_alert_policy(policy, wait, refused))
        # Each refusal before the create went through, so the journal shows every attempt.
        return {"name": created["name"], **({"refused": refusals} if refusals else {})}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        # Only the policy this run created, by the name the API gave it (journaled in apply.after).
        self.monitoring.delete_alert_policy(applied["name"])
        return {"deleted": applied["name"]}

    def restored(self, change: Change) -> tuple[bool, str]:
        found = criteria.find_policy(self.monitoring.alert_policies(), change.payload["pid"], change.payload["policy"])
        return found is None, ("no policy of this definition exists" if found is None
                               else f"{found['name']} still exists")

    def reconcile(self, change: Change) -> Found:
        # A create has no etag to guard it: reading back by the gate's label (or display name) is
        # what keeps a retried create from making a second policy.
        found = criteria.find_policy(self.monitoring.alert_policies(), change.payload["pid"], change.payload["policy"])
        if found is None:
            return Found(NOT_LANDED, "no policy of this definition exists")
        return Found(LANDED, f"{found['name']} exists", {"name": found["name"]})


class PolicyUpdate:
    def __init__(self, observer: Observer, propagation: MetricPropagation) -> None:
        self.monitoring = observer.monitoring
        self.propagation = propagation

    def apply(self, change: Change) -> dict[str, Any]:
        fields = change.payload["fields"]
        updated, refusals = self.propagation.write(
            change.payload["pid"], fields.get("conditions") or [],  # only written conditions must be usable
            lambda wait, refused: self.monitoring.update_alert_policy(change.payload["name"], fields, wait, refused))
        return {"name": updated["name"], "fields": sorted(fields), **({"refused": refusals} if refusals else {})}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        self.monitoring.update_alert_policy(change.payload["name"], change.payload["previous"])
        return {"restored": sorted(change.payload["previous"])}

    def restored(self, change: Change) -> tuple[bool, str]:
        actual = self.monitoring.get_alert_policy(change.payload["name"]) or {}
        previous = {k: v for k, v in change.payload["previous"].items() if v is not None}
        drift = differences(previous, actual)
        return not drift, "; ".join(drift) or f"{change.resource}: previous values back"

    def reconcile(self, change: Change) -> Found:
        actual = self.monitoring.get_alert_policy(change.payload["name"]) or {}
        fields = {k: v for k, v in change.payload["fields"].items() if v is not None}
        previous = {k: v for k, v in change.payload["previous"].items() if v is not None}
        if not differences(fields, actual):
            return Found(LANDED, f"{change.resource} has the planned values",
                         {"name": change.payload["name"], "fields": sorted(fields)})
        drift = differences(previous, actual)
        if not drift:
            return Found(NOT_LANDED, f"{change.resource} has its previous values")
        return Found(UNKNOWN, f"{change.resource} has neither its previous nor the planned values: {'; '.join(drift[:3])}")


class DashboardCreation:
    def __init__(self, observer: Observer) -> None:
        self.dashboards = observer.dashboards

    def apply(self, change: Change) -> dict[str, Any]:
        return {"created": self.dashboards.create(change.payload["dashboard"])["name"]}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        self.dashboards.delete(change.resource)
        return {"deleted": change.resource}

    def restored(self, change: Change) -> tuple[bool, str]:
        gone = self.dashboards.get(change.resource) is None
        return gone, f"{change.resource} {'no longer exists' if gone else 'still exists'}"

    def reconcile(self, change: Change) -> Found:
        if self.dashboards.get(change.resource) is None:
            return Found(NOT_LANDED, f"{change.resource} does not exist")
        return Found(LANDED, f"{change.resource} exists", {"created": change.resource})


class DashboardUpdate:
    def __init__(self, observer: Observer) -> None:
        self.dashboards = observer.dashboards

    def apply(self, change: Change) -> dict[str, Any]:
        updated = self.dashboards.update({**change.payload["dashboard"], "etag": change.expected_etag})
        return {"etag": updated.get("etag", "")}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        restored = self.dashboards.update({**change.payload["previous"], "etag": applied.get("etag", "")})
        return {"etag": restored.get("etag", "")}

    def restored(self, change: Change) -> tuple[bool, str]:
        actual = self.dashboards.get(change.resource) or {}
        drift = differences(change.payload["previous"], actual)
        return not drift, "; ".join(drift[:3]) or f"{change.resource}: previous dashboard back"

    def reconcile(self, change: Change) -> Found:
        actual = self.dashboards.get(change.resource) or {}
        if not differences(change.payload["dashboard"], actual):
            return Found(LANDED, f"{change.resource} has the planned layout", {"etag": actual.get("etag", "")})
        drift = differences(change.payload["previous"], actual)
        if not drift:
            return Found(NOT_LANDED, f"{change.resource} has its previous layout")
        return Found(UNKNOWN, f"{change.resource} has neither its previous nor the planned layout: {'; '.join(drift[:3])}")


class Phase4Remedy(ObservedRemedy):
    phase = 4
    title = TITLE
    records = criteria.RECORDS

    def __init__(self, target: Target, observer: Observer) -> None:
        self.propagation = MetricPropagation(target, observer)
        super().__init__(target, observer, {
            CREATE_METRIC: LogMetricCreation(observer), UPDATE_METRIC: LogMetricUpdate(observer),
            CREATE_POLICY: PolicyCreation(observer, self.propagation),
            UPDATE_POLICY: PolicyUpdate(observer, self.propagation),
            CREATE_DASHBOARD: DashboardCreation(observer), UPDATE_DASHBOARD: DashboardUpdate(observer),
            AUTOSCALE: Rollout(observer),
        })

    def plan(self) -> list[Change]:
        return self.plannable(plan(self.target, self.observer.phase4(), self.observer.definitions()))

    def verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        # What remediation can establish: a missing notification channel is the operator's to create,
        # so it never rolls back the monitoring that was made (the criterion still fails, with instructions);
        # a policy pending on a new metric is inconclusive, not failed, so nothing is rolled back for it.
        return criteria.evaluate(self.observer.phase4(), self.observer.definitions(), self.target,
                                 require_channels=False, pending=self.propagation.pending)

    def escalation(self, failed: list[Verdict], restored: bool) -> str:
        after = ("what this run created was deleted and what it updated was written back (verified)" if restored
                 else "what this run created or updated could NOT all be restored and verified: see the journal")
        return (f"Phase 4 did not verify after applying the monitoring definitions: "
                f"{'; '.join(v.reason for v in failed)}. {after}.")
