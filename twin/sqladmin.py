"""Cloud SQL Admin v1 and the Cloud SQL metric in Monitoring v3, as world logic (no gRPC here).

Resources are kept in the APIs' REST JSON (``sqladmin#instance``, ``sql#operation``, Monitoring
``TimeSeries``) so the gRPC face only has to parse them into the client libraries' messages.

Time is lazy, as in :mod:`twin.world`: an operation stores when it finishes, and every reader
computes its status from ``now``. :func:`advance` records finished operations (idempotently), so no
scheduler runs and a test can pass any ``now`` it likes.

The rules reproduced here are the ones the runbook trips over:

* ``settings.databaseFlags`` in a patch REPLACES the whole flag list. A patch that carries only
  ``max_connections`` drops every other flag (the runbook's hazard);
* ``settings.settingsVersion``, when given, must be the current one, or the patch is refused, so a
  read-modify-write cannot silently undo somebody else's change;
* changing ``max_connections`` restarts the instance: it is unavailable for ``restart_seconds`` and
  its ``num_backends`` reads 0 meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.store import ApiError, Store, rfc3339, sample_times

if TYPE_CHECKING:
    from twin.scenario import Scenario

SQLADMIN = "https://sqladmin.googleapis.com/v1"
NUM_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"
OPERATOR = "goldenpath@twin"  # the "user" of operations the twin runs (the real API names the caller)

# Cloud SQL for PostgreSQL accepts max_connections in this range (flag reference); outside it the
# API answers 400 invalidFlagValue.
MAX_CONNECTIONS_RANGE = (14, 262_143)

# Top-level DatabaseInstance fields a patch may carry unchanged (a client that read the instance and
# sends it back whole); the twin patches ``settings`` only.
_IDENTITY_FIELDS = ("name", "project")


# ---- instances -------------------------------------------------------------------------------


def _record(world: Store, project: str, instance: str) -> dict[str, Any]:
    """The world's record for an instance (resource plus twin-only bookkeeping), or 404."""
    rec = world.state.get("sql_instances", {}).get(instance)
    if rec is None or project != world.state["project"]:
        raise ApiError(404, "NOT_FOUND", f"The Cloud SQL instance projects/{project}/instances/{instance} does not exist.")
    return rec


def get_instance(world: Store, project: str, instance: str, now: float | None = None) -> dict[str, Any]:
    """The DatabaseInstance as REST JSON (settle due operations first when ``now`` is given)."""
    rec = _record(world, project, instance)
    if now is not None:
        advance(world, now)
    return rec["resource"]


def flag_value(resource: dict[str, Any], name: str) -> str | None:
    """The value of database flag ``name`` on a DatabaseInstance resource, None when it is not set."""
    for flag in resource.get("settings", {}).get("databaseFlags", []):
        if flag.get("name") == name:
            return flag.get("value", "")
    return None


def is_available(world: Store, instance: str, now: float) -> bool:
    """Whether the instance accepts connections at ``now``: it exists, runs, and is not restarting."""
    rec = world.state.get("sql_instances", {}).get(instance)
    if rec is None:
        return False
    settings = rec["resource"].get("settings", {})
    return settings.get("activationPolicy", "ALWAYS") != "NEVER" and now >= rec["restarting_until"]


def patch_instance(world: Store, project: str, instance: str, body: dict[str, Any], now: float) -> dict[str, Any]:
    """Apply a ``sql.instances.patch`` (Cloud SQL Admin v1) and return its Operation (REST JSON)."""
    rec = _record(world, project, instance)
    advance(world, now)
    current = rec["resource"]
    if now < rec["restarting_until"]:
        # The real API refuses concurrent operations on one instance (HTTP 409, operationInProgress).
        raise ApiError(
            409, "ABORTED",
            "Operation failed because another operation was already in progress. Try your request after "
            "the current operation is complete.",
        )
    for key in _IDENTITY_FIELDS:
        if body.get(key) not in (None, "", current[key]):
            raise ApiError(400, "INVALID_ARGUMENT", f"body.{key} {body[key]!r} does not match the request ({current[key]!r}).")
    others = {k: v for k, v in body.items() if k not in (*_IDENTITY_FIELDS, "settings") and current.get(k) != v}
    if others:
        raise ApiError(
            400, "INVALID_ARGUMENT",
            f"The twin patches settings only; this patch also changes {sorted(others)}.",
        )

    patch = dict(body.get("settings") or {})
    settings = current["settings"]
    version = int(settings["settingsVersion"])
    if "settingsVersion" in patch and int(patch["settingsVersion"]) != version:
        raise ApiError(
            412, "FAILED_PRECONDITION",
            f"The instance {instance} was modified since it was read (settingsVersion {patch['settingsVersion']} is "
            f"stale, current {version}). Re-read the instance and retry the patch.",
        )
    if "databaseFlags" in patch:
        _check_flags(patch["databaseFlags"])

    new_settings = _merge(settings, {k: v for k, v in patch.items() if k not in ("settingsVersion", "kind", "databaseFlags")})
    if "databaseFlags" in patch:
        # REPLACE, not merge: this is what the real API does with the repeated field, and why a patch
        # with only max_connections drops log_min_duration_statement and cloudsql.iam_authentication.
        new_settings["databaseFlags"] = [{"name": f["name"], "value": f.get("value", "")} for f in patch["databaseFlags"]]
    new_settings["settingsVersion"] = str(version + 1)
    updated = {**current, "settings": new_settings}

    old_max, new_max = flag_value(current, "max_connections"), flag_value(updated, "max_connections")
    done_at = now
    if old_max != new_max:
        # A flag that needs a restart: the instance goes down until restarting_until.
        done_at = rec["restarting_until"] = now + rec["restart_seconds"]
        rec.setdefault("restarts", []).append([now, done_at])
        if rec["backends_follow_max"] > 0 and new_max is not None:
            rec["backends_history"].append([done_at, int(rec["backends_follow_max"] * int(new_max))])
    rec["resource"] = updated

    op_id = str(uuid.uuid4())
    op = Operation(id=op_id, project=project, instance=instance, kind="UPDATE", insert_at=now, done_at=done_at)
    world.state.setdefault("sql_operations", {})[op_id] = op.to_state()
    world.dirty = True
    return op.to_json(now)


def _check_flags(flags: list[dict[str, Any]]) -> None:
    names = [f.get("name", "") for f in flags]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes or "" in names:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid flag list: duplicate or empty flag names {dupes or ['']}.")
    for f in flags:
        if f["name"] == "max_connections":
            lo, hi = MAX_CONNECTIONS_RANGE
            value = str(f.get("value", ""))
            if not value.isdigit() or not lo <= int(value) <= hi:
                raise ApiError(400, "INVALID_ARGUMENT",
                               f"Invalid flag value for max_connections: {value!r} (allowed {lo}..{hi}).")


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: nested messages merge field by field; lists and scalars are replaced."""
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ---- operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """A Cloud SQL operation: not a google.longrunning one, but sqladmin's own ``sql#operation``."""

    id: str
    project: str
    instance: str
    kind: str
    insert_at: float
    done_at: float

    def to_state(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "instance": self.instance, "kind": self.kind,
                "insert_at": self.insert_at, "done_at": self.done_at, "done": False}

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> "Operation":
        return cls(st["id"], st["project"], st["instance"], st["kind"], st["insert_at"], st["done_at"])

    def to_json(self, now: float) -> dict[str, Any]:
        done = now >= self.done_at
        out = {
            "kind": "sql#operation",
            "name": self.id,
            "selfLink": f"{SQLADMIN}/projects/{self.project}/operations/{self.id}",
            "targetLink": f"{SQLADMIN}/projects/{self.project}/instances/{self.instance}",
            "targetId": self.instance,
            "targetProject": self.project,
            "operationType": self.kind,
            "status": "DONE" if done else "RUNNING",
            "user": OPERATOR,
            "insertTime": rfc3339(self.insert_at),
            "startTime": rfc3339(self.insert_at),
        }
        if done:
            out["endTime"] = rfc3339(self.done_at)
        return out


def get_operation(world: Store, project: str, operation: str, now: float) -> dict[str, Any]:
    st = world.state.get("sql_operations", {}).get(operation)
    if st is None or st["project"] != project:
        raise ApiError(404, "NOT_FOUND", f"The operation projects/{project}/operations/{operation} does not exist.")
    advance(world, now)
    return Operation.from_state(st).to_json(now)


def advance(world: Store, now: float) -> None:
    """Record every operation that has finished by ``now``. Idempotent; readers do not depend on it."""
    for st in world.state.get("sql_operations", {}).values():
        if not st["done"] and st["done_at"] <= now:
            st["done"] = True
            world.dirty = True


# ---- the Cloud SQL metric in Monitoring v3 ------------------------------------------------------


def backends_at(rec: dict[str, Any], t: float) -> int | None:
    """The instance's connections at ``t``: 0 while restarting, else the last recorded value (None before any)."""
    if any(start <= t < until for start, until in rec.get("restarts", [])):
        return 0
    value = None
    for at, n in rec["backends_history"]:
        if at <= t:
            value = n
    return value


def _split(rec: dict[str, Any], total: int) -> dict[str, int]:
    """``total`` connections by database: each system database its own count (while the total
    lasts), the application's database the rest, so the series always sum to the total."""
    out: dict[str, int] = {}
    left = total
    for name, count in rec.get("system_databases", {}).items():
        out[name] = min(count, left)
        left -= out[name]
    return {rec.get("app_database", "postgres"): left, **out}


def num_backends_series(world: Store, start: float, end: float) -> list[dict[str, Any]]:
    """Raw ``num_backends`` samples in (start, end] for every instance: one GAUGE INT64 series per
    database (metric label ``database``) on a ``cloudsql_database`` resource, as Google's metrics list
    describes the metric. Each series is ``{metric, resource, metricKind, valueType, samples}`` with
    samples ``(time, value)`` newest first; :mod:`twin.monitoring` filters, lags and aggregates them.

    Every database is sampled once a period, but each at its own offset in the period (the first
    database at 0, the next 1/n of a period later, ...), deterministically: the series of one
    instance end at different times, so summing "the newest point of each" is wrong, as it is for
    the real metric, whose per-database points are not published together.
    """
    period = float(world.state.get("timing", {}).get("metric_period_seconds", 60))
    project, region = world.state["project"], world.state["region"]
    out = []
    for name, rec in world.state.get("sql_instances", {}).items():
        databases = list(_split(rec, 0))
        for i, database in enumerate(databases):
            offset = round(i * period / len(databases), 3)
            samples = []
            for t in sample_times(start, end, period, offset):
                total = backends_at(rec, t)
                if total is not None:
                    samples.append((t, _split(rec, total)[database]))
            out.append({
                "metric": {"type": NUM_BACKENDS, "labels": {"database": database}},
                "resource": {"type": "cloudsql_database",
                             "labels": {"project_id": project, "database_id": f"{project}:{name}", "region": region}},
                "metricKind": "GAUGE",
                "valueType": "INT64",
                "samples": samples,
            })
    return out


# ---- scenario and status -------------------------------------------------------------------


def seed(world: Store, sc: Scenario, now: float) -> None:
    world.state.update(sql_instances={}, sql_operations={})
    if sc.sql is None:
        return
    q = sc.sql
    world.state["sql_instances"][q.name] = {
        "resource": {
            "kind": "sql#instance",
            "name": q.name,
            "project": sc.project,
            "region": sc.region,
            "gceZone": f"{sc.region}-a",
            "databaseVersion": q.database_version,
            "state": "RUNNABLE",
            "backendType": "SECOND_GEN",
            "instanceType": "CLOUD_SQL_INSTANCE",
            "connectionName": f"{sc.project}:{sc.region}:{q.name}",
            "settings": {
                "kind": "sql#settings",
                "tier": q.tier,
                "settingsVersion": str(q.settings_version),
                "activationPolicy": "ALWAYS",
                "availabilityType": "ZONAL",
                "dataDiskSizeGb": "100",
                "databaseFlags": [{"name": k, "value": v} for k, v in q.flags.items()],
            },
        },
        # (time, num_backends) from this moment on; the metric is generated from it
        "backends_history": [[now - 6 * 3600, q.backends]],
        "backends_follow_max": q.backends_follow_max,
        # num_backends is reported per database: the application's first, then the system ones
        "app_database": q.database,
        "system_databases": dict(sorted(q.system_databases.items())),
        "restart_seconds": q.restart_seconds,
        "restarting_until": 0.0,
    }


def status(world: Store) -> dict[str, Any]:
    st = world.state
    return {
        "sqladmin": {
            "instances": [i["resource"] for i in st.get("sql_instances", {}).values()],
            "operations": list(st.get("sql_operations", {}).values()),
        },
    }
