"""Phase 2 remediation: connector capacity within the API's limits, Cloud SQL connections by merge.

Runbook: "VPC Connector Validation and Recreation", "Cloud SQL Connection Optimization", "If Phase 2
Fails". Two of the runbook's commands are wrong for the real APIs, and the plan says so:
- `--max-instances=20`: Serverless VPC Access allows 3–10 instances. The plan asks for the target's
  valid shape (max 10, and a larger machine type where the target names one).
- `--database-flags=max_connections=200`: a patch of databaseFlags replaces the whole list, which
  would silently drop every other flag. The plan merges into the existing flags.
And its rollback "restore max 10 / min 2" is impossible after a scale-up (scale-down is not
supported), so the connector change is treated as one-way and the report says so.
"""

from __future__ import annotations

from typing import Any, Callable

from goldenpath.config import Target
from goldenpath.criteria import phase2 as criteria
from goldenpath.criteria import triggers, verifiable
from goldenpath.observations import ConnectorState, Phase2Observation
from goldenpath.observe import Observer
from goldenpath.errors import CheckError
from goldenpath.remediation.change import NOT_LANDED, UNKNOWN, Change, Found, compare
from goldenpath.remediation.remedy import ObservedRemedy, settled
from goldenpath.verdict import Verdict

SCALE, RECREATE, FLAGS = criteria.SCALE, criteria.RECREATE, criteria.FLAGS
TITLE = "Phase 2: Infrastructure Validation"
RUNBOOK_MAX_INSTANCES = 20  # what the runbook's command asks for


def plan(target: Target, obs: Phase2Observation) -> list[Change]:
    """Every planner's changes, in PLANNERS' order (the connector before the database)."""
    return [c for planner in PLANNERS.values() for c in planner(target, obs)]


def _where(target: Target) -> str:
    return f"--region={target.region} --project={target.project}"


def plan_recreate(target: Target, obs: Phase2Observation) -> list[Change]:
    """A connector in state ERROR is deleted and created again with the target's capacity."""
    conn, want = obs.connector, target.connector
    if conn is None or want is None or conn.state != "ERROR":
        return []
    where = _where(target)
    users = ", ".join(obs.connector_users) or "no Cloud Run service of this target"
    spec = {**conn.raw, "minInstances": max(conn.min_instances, want.min_instances),
            "maxInstances": max(conn.max_instances, want.max_instances),
            "machineType": want.machine_type or conn.machine_type}
    return [Change(
        phase=2, step=RECREATE, subject=conn.name, resource=conn.full_name,
        summary=f"{conn.name}: recreate the connector (state ERROR)",
        before={"state": conn.state}, after={"state": "READY", **{k: spec[k] for k in
                                                                  ("minInstances", "maxInstances", "machineType")}},
        reversible=False, destructive=True,
        gcloud=(f"gcloud compute networks vpc-access connectors delete {conn.name} {where} --quiet && "
                f"gcloud compute networks vpc-access connectors create {conn.name} {where} "
                f"--network={spec.get('network', '')} --range={spec.get('ipCidrRange', '')} "
                f"--min-instances={spec['minInstances']} --max-instances={spec['maxInstances']} "
                f"--machine-type={spec['machineType']}"),
        why=f"DESTRUCTIVE: while it is deleted and created again, {users} lose(s) egress through it "
            "(database and cache). The full connector spec is kept in the journal.",
        payload={"connector": conn.name, "spec": spec},
    )]


def plan_scale(target: Target, obs: Phase2Observation) -> list[Change]:
    """A working connector below the target's capacity is scaled up (one-way)."""
    conn, want = obs.connector, target.connector
    if conn is None or want is None or conn.state == "ERROR":
        return []
    fields: dict[str, Any] = {}
    if conn.max_instances < want.max_instances:
        fields["maxInstances"] = want.max_instances
    if conn.min_instances < want.min_instances:
        fields["minInstances"] = want.min_instances
    if want.machine_type and conn.machine_type != want.machine_type:
        fields["machineType"] = want.machine_type
    if not fields:
        return []
    before = {"minInstances": conn.min_instances, "maxInstances": conn.max_instances,
              "machineType": conn.machine_type}
    flags = " ".join(f"--{_kebab(k)}={v}" for k, v in sorted(fields.items()))
    return [Change(
        phase=2, step=SCALE, subject=conn.name, resource=conn.full_name,
        summary=f"{conn.name}: scale to {fields.get('minInstances', conn.min_instances)}-"
                f"{fields.get('maxInstances', conn.max_instances)} × "
                f"{fields.get('machineType', conn.machine_type)} (now {conn.min_instances}-"
                f"{conn.max_instances} × {conn.machine_type})",
        before=before, after={**before, **fields},
        reversible=False,
        gcloud=f"gcloud compute networks vpc-access connectors update {conn.name} {_where(target)} {flags}",
        why=(f"the runbook asks for --max-instances={RUNBOOK_MAX_INSTANCES}, which Serverless VPC Access "
             f"refuses (max instances 3-10, min 2-9): planned max {want.max_instances}"
             + (f" and machine type {want.machine_type} for the capacity instead" if "machineType" in fields
                else "")
             + "; one-way: instance counts cannot be lowered again, so this is not rolled back; "
               f"updateMask={','.join(sorted(fields))} so no other field is touched"),
        payload={"connector": conn.name, "fields": fields},
    )]


def plan_flags(target: Target, obs: Phase2Observation) -> list[Change]:
    """max_connections raised to the target's value, merged into the instance's other flags."""
    inst, db = obs.instance, target.database
    current_max = criteria.effective_max_connections(inst)[0] if inst is not None else None
    # Only ever raise it: a restart that lowers max_connections on a healthy instance is no fix.
    if inst is None or db is None or db.max_connections is None or current_max is None \
            or current_max >= db.max_connections:
        return []
    merged = _merge(inst.flags, "max_connections", str(db.max_connections))
    others = [k for k, _ in inst.flags if k != "max_connections"]
    flag_text = ",".join(f"{k}={v}" for k, v in merged)
    return [Change(
        phase=2, step=FLAGS, subject=inst.name, resource=f"projects/{target.project}/instances/{inst.name}",
        summary=f"{inst.name}: set max_connections {inst.flag('max_connections') or '(default)'} → "
                f"{db.max_connections}, keeping {len(others)} other flag(s)",
        before={"databaseFlags": [{"name": k, "value": v} for k, v in inst.flags]},
        after={"databaseFlags": [{"name": k, "value": v} for k, v in merged]},
        reversible=True, restarts=True,
        gcloud=f"gcloud sql instances patch {inst.name} --project={target.project} --database-flags={flag_text}",
        why=(f"the runbook's --database-flags=max_connections={db.max_connections} would replace the whole flag "
             f"list and drop {', '.join(others) or 'nothing'}: merged instead; guarded by settingsVersion "
             f"{inst.settings_version}; max_connections needs a RESTART of the instance (brief downtime)"),
        payload={"instance": inst.name, "flags": merged, "restore": list(inst.flags),
                 "settings_version": inst.settings_version},
    )]


# The step kinds and their planners, listed once; the criteria records name the steps that fix them.
PLANNERS: dict[str, Callable[[Target, Phase2Observation], list[Change]]] = {
    RECREATE: plan_recreate, SCALE: plan_scale, FLAGS: plan_flags,
}


def _merge(flags: Any, name: str, value: str) -> list[tuple[str, str]]:
    merged = [(k, value if k == name else v) for k, v in flags]
    if not any(k == name for k, _ in flags):
        merged.append((name, value))
    return merged


def _kebab(field: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in field)


def _shape(state: ConnectorState) -> dict[str, Any]:
    return {"state": state.state, "minInstances": state.min_instances, "maxInstances": state.max_instances,
            "machineType": state.machine_type}


class ScaleConnector:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def apply(self, change: Change) -> dict[str, Any]:
        p = change.payload
        return _shape(self.observer.vpcaccess.update(p["connector"], p["fields"]))

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a connector scale-up cannot be undone (Serverless VPC Access does not scale down)")

    def restored(self, change: Change) -> tuple[bool, str]:
        return False, "one-way change"

    def _settled(self, name: str) -> tuple[ConnectorState, bool]:
        return settled(self.observer, lambda: self.observer.vpcaccess.get(name),
                       lambda c: c.state in ("CREATING", "DELETING", "UPDATING"), f"connector {name}")

    def reconcile(self, change: Change) -> Found:
        conn, still = self._settled(change.payload["connector"])
        shape = _shape(conn)
        detail = f"connector {conn.name} is {conn.state}, {conn.min_instances}-{conn.max_instances} × {conn.machine_type}"
        if not still:
            return Found(UNKNOWN, detail + " (still changing)")
        return compare({k: shape[k] for k in change.before}, change.before, change.after, detail, shape)


class RecreateConnector(ScaleConnector):
    def apply(self, change: Change) -> dict[str, Any]:
        p = change.payload
        return _shape(self.observer.vpcaccess.recreate(p["connector"], p["spec"]))

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a recreated connector cannot be un-created; its old spec is in the journal")

    def reconcile(self, change: Change) -> Found:
        name = change.payload["connector"]
        try:
            conn, still = self._settled(name)
        except CheckError as exc:
            if "does not exist" not in str(exc):
                raise
            return Found(UNKNOWN, f"connector {name} does not exist: it was deleted and not created again. Create it "
                                  "from the spec in the journal's apply.before record (payload.spec), then run again")
        shape = _shape(conn)
        detail = f"connector {conn.name} is {conn.state}, {conn.min_instances}-{conn.max_instances} × {conn.machine_type}"
        if not still:
            return Found(UNKNOWN, detail + " (still changing)")
        if conn.state == "ERROR":
            return Found(NOT_LANDED, detail)
        return compare({k: shape[k] for k in change.after}, None, change.after, detail, shape)


class SetDatabaseFlags:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def apply(self, change: Change) -> dict[str, Any]:
        p = change.payload
        done = self.observer.sql.set_flags(p["instance"], p["flags"], p["settings_version"])
        return {"databaseFlags": [{"name": k, "value": v} for k, v in done.state.flags],
                "settingsVersion": done.state.settings_version,
                "operation": done.operation, "operationSeconds": done.seconds}

    def rollback(self, change: Change, applied: dict[str, Any]) -> dict[str, Any]:
        p = change.payload
        done = self.observer.sql.set_flags(p["instance"], [tuple(f) for f in p["restore"]],
                                           applied.get("settingsVersion", p["settings_version"]))
        return {"databaseFlags": [{"name": k, "value": v} for k, v in done.state.flags],
                "operation": done.operation, "operationSeconds": done.seconds}

    def restored(self, change: Change) -> tuple[bool, str]:
        inst = self.observer.phase2().instance
        now = [list(f) for f in inst.flags] if inst else []
        want = [list(f) for f in change.payload["restore"]]
        return now == want, f"flags now {dict(inst.flags) if inst else 'unknown'}"

    def reconcile(self, change: Change) -> Found:
        inst, still = settled(self.observer, lambda: self.observer.sql.get(change.payload["instance"]),
                              lambda i: i.state not in ("RUNNABLE", "SUSPENDED", "FAILED"),
                              f"Cloud SQL instance {change.payload['instance']}")
        now = [{"name": k, "value": v} for k, v in inst.flags]
        detail = (f"{inst.name} is {inst.state}, settingsVersion {inst.settings_version}, flags {dict(inst.flags)}"
                  + ("" if still else " (an operation is still under way)"))
        if not still:
            return Found(UNKNOWN, detail)
        return compare(now, change.before["databaseFlags"], change.after["databaseFlags"], detail,
                       {"databaseFlags": now, "settingsVersion": inst.settings_version})


class Phase2Remedy(ObservedRemedy):
    phase = 2
    title = TITLE
    records = criteria.RECORDS

    def __init__(self, target: Target, observer: Observer) -> None:
        super().__init__(target, observer, {SCALE: ScaleConnector(observer), RECREATE: RecreateConnector(observer),
                                            FLAGS: SetDatabaseFlags(observer)})

    def plan(self) -> list[Change]:
        return self.plannable(plan(self.target, self.observer.phase2()))

    def judged(self) -> list[Verdict]:
        return criteria.evaluate(self.observer.phase2(), self.target)

    def verify(self, changes: list[Change], final: bool) -> list[Verdict]:
        # What this phase's steps can move (not the certificates): from the records.
        return criteria.evaluate(self.observer.phase2(), self.target, verifiable(criteria.RECORDS, final))

    def escalation(self, failed: list[Verdict], restored: bool) -> str:
        head = ", ".join(triggers(criteria.RECORDS, failed)) or "Phase 2 did not verify"
        after = ("the database flags before the change were restored and verified" if restored
                 else "the state before the change could NOT be fully restored")
        return (f"{head} (runbook escalation trigger): {'; '.join(v.reason for v in failed)}. {after}; a connector "
                "scale-up stays in place (it cannot be undone).")
