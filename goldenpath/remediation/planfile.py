"""``reports/plan.json``: the plan a reviewer approves, and ``--plan FILE``: applying exactly it.

``--remediate=plan`` writes every phase's planned changes as steps (schema ``goldenpath.plan/1``,
described in reports/README.md), each with the state it was planned from as a *fingerprint*: the
resource's etag, the Cloud SQL ``settingsVersion``, or else a sha256 of the fields the step reads
(its ``before``). The file carries a digest of itself, so a reviewer's copy cannot be edited
unnoticed.

``--remediate --plan FILE`` plans afresh (the runner always does) and, before the phase's first
mutation, holds every step it would apply against the file: the same phase, step, resource and
planned after-state must be there, and the resource must still show the fingerprint it had. A step
that is not in the file, or whose resource moved, refuses the phase and nothing is changed.

No pytest here; a file that cannot be used is a ConfigError paragraph (a usage error).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from goldenpath.errors import ConfigError
from goldenpath.redact import redact
from goldenpath.remediation.change import Change

SCHEMA = "goldenpath.plan/1"

# The API method each step calls (discovery-document method ids; what an auditor looks for in the
# audit log). A step that calls two says both, in order.
METHODS: dict[str, str] = {
    "route-traffic": "run.projects.locations.services.patch",
    "delete-revision": "run.projects.locations.services.revisions.delete",
    "scale-connector": "vpcaccess.projects.locations.connectors.patch",
    "recreate-connector": "vpcaccess.projects.locations.connectors.delete, vpcaccess.projects.locations.connectors.create",
    "set-database-flags": "sql.instances.patch",
    "rollout-config": "run.projects.locations.services.patch (template), run.projects.locations.services.patch (traffic)",
    "create-log-metric": "logging.projects.metrics.create",
    "update-log-metric": "logging.projects.metrics.update",
    "create-alert-policy": "monitoring.projects.alertPolicies.create",
    "update-alert-policy": "monitoring.projects.alertPolicies.patch",
    "create-dashboard": "monitoring.projects.dashboards.create",
    "update-dashboard": "monitoring.projects.dashboards.patch",
    "autoscale-service": "run.projects.locations.services.patch",
}


def canonical(value: Any) -> bytes:
    """The one byte string a JSON value has: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def fingerprint(change: Change) -> dict[str, Any]:
    """The state the change was planned from, in the strongest form the API gives."""
    if change.expected_etag:
        return {"etag": change.expected_etag}
    if "settings_version" in change.payload:
        return {"settingsVersion": change.payload["settings_version"]}
    # Unredacted: a change of a secret value must make the plan stale too (only the hash is written).
    return {"sha256": sha256(change.before)}


def changed_fields(change: Change) -> list[str]:
    """The update mask (or flag list) of the change: what it writes, by name."""
    if isinstance(change.payload.get("fields"), dict):
        return sorted(change.payload["fields"])
    out = []
    for key, after in change.after.items():
        before = change.before.get(key)
        if key == "databaseFlags" and isinstance(after, list) and isinstance(before, list):
            was = {f["name"]: f.get("value") for f in before}
            out += [f"databaseFlags.{f['name']}" for f in after if was.get(f["name"]) != f.get("value")]
        elif after != before:
            out.append(key)
    return out


def step(change: Change, keep_env: frozenset[str]) -> dict[str, Any]:
    return {
        "phase": change.phase, "step": change.step, "method": METHODS.get(change.step, change.step),
        "resource": change.resource, "subject": change.subject, "summary": change.summary,
        "fields": changed_fields(change), "fingerprint": fingerprint(change),
        "updated": change.updated, "before": redact(change.before, keep_env),
        "after": redact(change.after, keep_env),
        "consent": {"risk": change.risk, "needs_yes": change.needs_consent,
                    "after_verification": change.after_verification},
        "gcloud": change.gcloud,
    }


def document(target: Any, run_id: str, outcomes: list[Any], keep_env: frozenset[str]) -> dict[str, Any]:
    """The plan file of this run's plan-mode outcomes (in phase order), with its digest."""
    steps: list[dict[str, Any]] = []
    unplanned: list[dict[str, Any]] = []
    for outcome in sorted(outcomes, key=lambda o: o.phase):
        if outcome.refused:
            # Planned from a state the earlier phases will change: not what would be applied.
            unplanned.append({"phase": outcome.phase, "why": outcome.refused})
        else:
            steps += [step(c, keep_env) for c in outcome.plan]
    body: dict[str, Any] = {
        "schema": SCHEMA, "target": {"name": target.name, "project": target.project, "region": target.region},
        "run": run_id, "made_at": datetime.now(timezone.utc).isoformat(),
        "phases": sorted(o.phase for o in outcomes if not o.refused),
        "steps": steps, "not_planned": unplanned,
    }
    return {**body, "digest": "sha256:" + sha256(body)}


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


@dataclass
class PlanFile:
    """A reviewed plan, loaded and checked (``load``)."""

    path: Path
    digest: str
    made_at: str
    steps: list[dict[str, Any]]
    not_planned: dict[int, str] = field(default_factory=dict)
    keep_env: frozenset[str] = frozenset()

    @property
    def short(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    def refusal(self, changes: list[Change], read_at: str) -> str | None:
        """Why these changes (what the runner would apply now) may not be applied under this plan;
        None when every one of them is a step of the file, its resource as it was planned from."""
        for change in changes:
            mine = json.loads(canonical(step(change, self.keep_env)))  # as the file holds it (tuples are lists)
            same = [s for s in self.steps if (s["phase"], s["step"], s["resource"]) ==
                    (change.phase, change.step, change.resource)]
            exact = [s for s in same if s["after"] == mine["after"]]
            if exact and exact[0]["fingerprint"] == mine["fingerprint"]:
                continue
            if same:
                when = change.updated or f"some time before it was read at {read_at}"
                return (f"stale plan: {change.subject} changed at {when} since the plan was made at "
                        f"{self.made_at}; plan again (--remediate=plan, then review the new plan.json). "
                        f"{self.path} (digest {self.short}) planned '{same[0]['summary']}' from "
                        f"{_fp(same[0]['fingerprint'])}; now it reads {_fp(mine['fingerprint'])}"
                        + ("" if exact else f" and the change would be '{change.summary}'")
                        + ". Nothing was changed.")
            why = self.not_planned.get(change.phase)
            return (f"'{change.summary}' is not in the plan {self.path} (digest {self.short}): plan again "
                    "(--remediate=plan), review it, and apply the new plan.json."
                    + (f" The plan could not cover phase {change.phase} then: {why}" if why else "")
                    + " Nothing was changed.")
        return None


def _fp(fp: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in fp.items())


def load(path: Path, target: Any, keep_env: frozenset[str] = frozenset()) -> PlanFile:
    """Read and check a plan file for ``target``: any problem is one paragraph naming the fix."""
    again = (f"Make a new one with --remediate=plan --target {target.name} (it is written to plan.json under "
             "--reports-dir), review it, and pass that file to --plan.")
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--plan {path}: no such file: nothing was changed. {again}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--plan {path} cannot be read as JSON ({exc}): nothing was changed. {again}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"--plan {path} is not a goldenpath plan (schema {found!r}, expected {SCHEMA!r}): "
                          f"nothing was changed. {again}")
    body = {k: v for k, v in doc.items() if k != "digest"}
    if doc.get("digest") != "sha256:" + sha256(body):
        raise ConfigError(f"--plan {path}: its digest does not match its content (the file was edited after it "
                          "was written, or cut short): nothing was changed. A plan is applied only as it was "
                          f"reviewed. {again}")
    named = doc.get("target") or {}
    if (named.get("name"), named.get("project"), named.get("region")) != (target.name, target.project, target.region):
        raise ConfigError(f"--plan {path} is a plan for target {named.get('name')!r} (project {named.get('project')}, "
                          f"region {named.get('region')}), not for {target.name!r} (project {target.project}, region "
                          f"{target.region}): nothing was changed. Pass the plan made for this target, or {again[0].lower()}"
                          f"{again[1:]}")
    try:
        return PlanFile(path, str(doc["digest"]), str(doc["made_at"]), list(doc["steps"]),
                        {int(u["phase"]): str(u["why"]) for u in doc.get("not_planned", [])}, keep_env)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"--plan {path} lacks a part of the plan schema ({exc!r}): nothing was changed. {again}") \
            from None
