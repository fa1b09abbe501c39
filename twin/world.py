"""The twin's world: one state that drives both the control plane and the data plane.

The state is plain JSON (resources kept in their APIs' own REST field names) so it can be
persisted between pytest runs and shown by ``python -m twin status --json``. Time-driven changes
(an operation finishing) are applied lazily by :meth:`World.advance` at the start of every
request, so the twin needs no background scheduler and stays deterministic.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twin import encode
from twin import scenario as scenarios
from twin.logfilter import matches

STATE_FILE = "world.json"
REQUEST_LOG_CAP = 20_000


class ApiError(Exception):
    """An error the way Google's REST APIs return it: HTTP code, canonical status, message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _etag(*parts: object) -> str:
    return '"' + hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:20] + '"'


@dataclass(frozen=True)
class DataAnswer:
    status: int
    body: dict[str, Any]
    latency: float


class World:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.state: dict[str, Any] = {}
        self.dirty = False

    # ---- persistence ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.home / STATE_FILE

    def load_or_reset(self, scenario: str | None) -> None:
        if self.path.exists():
            self.state = json.loads(self.path.read_text())
        else:
            self.reset(scenario)

    def save(self) -> None:
        # Write-then-rename: a twin killed mid-write must not leave a torn world behind.
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)
        self.dirty = False

    # ---- scenario ------------------------------------------------------------------------

    def reset(self, scenario_ref: str | None, now: float | None = None, clock_scale: float = 1.0) -> None:
        """Start the world from a scenario. ``clock_scale`` > 1 makes time windows pass faster for a
        rehearsal: one real second counts as that many seconds of the twin's time (the gate reads the
        scale from the twin and measures the 503 window in twin time; a real target is always 1)."""
        if not 1 <= clock_scale <= 3600:
            raise scenarios.ScenarioError(f"clock_scale must be between 1 and 3600, got {clock_scale:g}")
        sc = scenarios.load(scenario_ref)
        now = time.time() if now is None else now
        base = f"projects/{sc.project}/locations/{sc.region}"
        st: dict[str, Any] = {
            "scenario": sc.name,
            "scenario_ref": scenario_ref or scenarios.DEFAULT_SCENARIO,
            "description": sc.description,
            "reset_at": now,
            "clock_scale": clock_scale,
            "project": sc.project,
            "region": sc.region,
            "timing": sc.timing.model_dump(),
            "contention": sc.contention.model_dump(),
            "services": {},
            "revisions": {},
            "operations": {},
            "request_log": [],
            "connectors": {},
            "vpc_operations": {},
            "connector_log": [],
            "sql_instances": {},
            "certificates": {},
            "counters": {},
            "requests": {"reads": 0, "writes": 0, "by_method": {}},
            # The data plane's application side (twin.dataplane): the rehearsal account and its agent,
            # how the WebSocket behaves, what happens to revisions a template change creates, the
            # tokens the auth service issued (by digest) and the revisions' own stdout/stderr log.
            "golden_path": sc.golden_path.model_dump(),
            "websocket": sc.websocket.model_dump(),
            "rollout": sc.rollout.model_dump(),
            "tokens": {},
            "run_log": [],
            # Phase 4 (twin.monitoring): Logging log-based metrics, Monitoring dashboards, alert
            # policies and the scenario's notification channels, each {"resource": REST JSON} keyed
            # by the last part of its name; and the scenario's injected failures, by method id.
            "log_metrics": {},
            "dashboards": {},
            "alert_policies": {},
            "notification_channels": {},
            "faults": {},
        }
        for svc in sc.services:
            revs = sorted(svc.revisions, key=lambda r: -r.created_minutes_ago)
            connector = f"{base}/connectors/{svc.vpc_connector}" if svc.vpc_connector else None
            for rev in revs:
                st["revisions"][rev.name] = {
                    "service": svc.name,
                    "broken": rev.broken,
                    "resource": encode.revision(_revision_resource(base, svc.name, rev, now, connector)),
                }
            latest = revs[-1].name
            updated = now - svc.updated_minutes_ago * 60
            created = now - revs[0].created_minutes_ago * 60
            traffic = [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": t.revision, "percent": t.percent}
                for t in svc.traffic
            ]
            uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/services/{svc.name}"))
            generation = len(revs) + 3
            resource = {
                "name": f"{base}/services/{svc.name}",
                "uid": uid,
                "generation": str(generation),
                "createTime": rfc3339(created),
                "updateTime": rfc3339(updated),
                "creator": f"deployer@{sc.project}.iam.gserviceaccount.com",
                "lastModifier": f"deployer@{sc.project}.iam.gserviceaccount.com",
                "ingress": "INGRESS_TRAFFIC_ALL",
                "launchStage": "GA",
                "template": _template_from_revision(st["revisions"][latest]["resource"]),
                "traffic": traffic,
                "observedGeneration": str(generation),
                "terminalCondition": _condition("Ready", "CONDITION_SUCCEEDED", updated),
                "conditions": [
                    _condition("RoutesReady", "CONDITION_SUCCEEDED", updated),
                    _condition("ConfigurationsReady", "CONDITION_SUCCEEDED", updated),
                ],
                "latestReadyRevision": f"{base}/services/{svc.name}/revisions/{latest}",
                "latestCreatedRevision": f"{base}/services/{svc.name}/revisions/{latest}",
                "trafficStatuses": [dict(t) for t in traffic],
                "uri": f"https://{svc.name}-{uid[:10]}-uc.a.run.app",
                "reconciling": False,
                "etag": _etag(uid, generation),
            }
            st["services"][svc.name] = {"hosts": list(svc.hosts), "kind": svc.kind, "resource": encode.service(resource)}
            st["counters"][svc.name] = 0
        if sc.connector is not None:
            c = sc.connector
            st["connectors"][c.name] = {
                "resource": {
                    "name": f"{base}/connectors/{c.name}",
                    "network": c.network,
                    "ipCidrRange": c.ip_cidr_range,
                    "state": c.state,
                    "machineType": c.machine_type,
                    "minInstances": c.min_instances,
                    "maxInstances": c.max_instances,
                    "minThroughput": c.min_instances * 100,
                    "maxThroughput": c.max_instances * 100,
                    "connectedProjects": [sc.project],
                },
                "load_mbps": c.load_mbps,
                "errors_per_minute": c.errors_per_minute,
            }
        if sc.sql is not None:
            q = sc.sql
            st["sql_instances"][q.name] = {
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
                "restart_seconds": q.restart_seconds,
                "restarting_until": 0.0,
            }
        for cert in sc.certificates:
            st["certificates"][cert.name] = {
                "resource": {
                    "kind": "compute#sslCertificate",
                    "id": str(int(hashlib.sha1(cert.name.encode()).hexdigest()[:12], 16)),
                    "creationTimestamp": rfc3339(now - 90 * 86400),
                    "name": cert.name,
                    "selfLink": f"https://www.googleapis.com/compute/v1/projects/{sc.project}/global/sslCertificates/{cert.name}",
                    "type": "MANAGED",
                    "managed": {
                        "domains": list(cert.domains),
                        "status": cert.status,
                        "domainStatus": {d: "ACTIVE" if cert.status == "ACTIVE" else "PROVISIONING" for d in cert.domains},
                    },
                    "subjectAlternativeNames": list(cert.domains),
                    "expireTime": rfc3339(now + cert.expires_in_days * 86400),
                },
            }
        self.state = st
        monitoring().seed(self, sc.notification_channels, sc.log_metrics, sc.faults, now)
        # Every scenario revision started once, when it was created: its startup log says how.
        for svc in sc.services:
            for rev in svc.revisions:
                dataplane().log_startup(self, svc.name, rev.name, now - rev.created_minutes_ago * 60, now,
                                        broken=rev.broken, errors=rev.startup_errors, explain_broken=False)
        self._seed_history(sc, now)
        network().seed_errors(self, now - sc.history.minutes * 60, now)
        self.dirty = True

    def _seed_history(self, sc: scenarios.Scenario, now: float) -> None:
        total = sc.history.minutes * sc.history.requests_per_minute
        if not total:
            return
        step = 60.0 / sc.history.requests_per_minute
        for svc in sc.services:
            if not svc.hosts:
                continue
            for i in range(total):
                ts = now - sc.history.minutes * 60 + i * step
                self.serve(svc.hosts[0], "/health", at=ts)
        # Seeding is history, not traffic this reset should count.
        self.state["requests"] = {"reads": 0, "writes": 0, "by_method": {}}

    # ---- time ----------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> None:
        """Finish every operation whose time has come."""
        now = time.time() if now is None else now
        for op in self.state["operations"].values():
            if not op["done"] and op["done_at"] <= now:
                self._complete(op, now)
        network().advance(self, now)

    def _complete(self, op: dict[str, Any], now: float) -> None:
        op["done"] = True
        self.dirty = True
        if op["kind"] == "update_service":
            svc = self.state["services"][op["service"]]["resource"]
            base = svc["name"]
            if op.get("new_revision"):
                svc["latestReadyRevision"] = f"{base}/revisions/{op['new_revision']}"
                record = self.state["revisions"][op["new_revision"]]
                rev = record["resource"]
                rev["reconciling"] = False
                # A broken rollout revision is still marked Ready, as the scenarios' broken revisions are
                # (real Cloud Run would fail the deploy instead): it answers 503 once traffic reaches it,
                # and its startup log says why, so a gate must look at both before trusting it.
                rev["conditions"] = [_condition("Ready", "CONDITION_SUCCEEDED", now)]
                dataplane().log_startup(self, op["service"], op["new_revision"], op.get("created_at", now), now,
                                        broken=record["broken"], errors=[], explain_broken=True)
            svc["trafficStatuses"] = self._resolve_traffic(svc)
            svc["observedGeneration"] = svc["generation"]
            svc["reconciling"] = False
            svc["terminalCondition"] = _condition("Ready", "CONDITION_SUCCEEDED", now)
            op["response"] = dict(svc)
        elif op["kind"] == "delete_revision":
            rev = self.state["revisions"].pop(op["revision"])
            op["response"] = rev["resource"]

    def _resolve_traffic(self, svc: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for t in svc.get("traffic", []):
            t = dict(t)
            if t.get("type") == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST":
                t["revision"] = svc["latestReadyRevision"].rsplit("/", 1)[-1]
            out.append(t)
        return out

    # ---- request accounting --------------------------------------------------------------

    def count(self, method: str, write: bool) -> None:
        req = self.state["requests"]
        req["writes" if write else "reads"] += 1
        req["by_method"][method] = req["by_method"].get(method, 0) + 1
        self.dirty = True

    def check_fault(self, method: str, dry_run: bool = False) -> None:
        """Fail the call as the scenario says (a quota error, an outage), once it has been counted.

        A dry run (validateOnly) passes unless the fault says otherwise, so a client's preflight
        succeeds and the real write fails: the case its rollback exists for.
        """
        fault = self.state.get("faults", {}).get(method)
        if not fault or (dry_run and not fault.get("dry_runs")):
            return
        fault["calls"] = fault.get("calls", 0) + 1
        self.dirty = True
        if fault["calls"] > fault.get("after_calls", 0):
            raise ApiError(fault["code"], fault["status"], fault["message"])

    # ---- Cloud Run Admin v2 --------------------------------------------------------------

    def _check_parent(self, project: str, location: str) -> None:
        if project != self.state["project"] or location != self.state["region"]:
            raise ApiError(
                404, "NOT_FOUND", f"Location projects/{project}/locations/{location} has no services in this twin."
            )

    def service(self, project: str, location: str, name: str) -> dict[str, Any]:
        self._check_parent(project, location)
        svc = self.state["services"].get(name)
        if svc is None:
            raise ApiError(404, "NOT_FOUND", f"Resource 'projects/{project}/locations/{location}/services/{name}' was not found")
        return svc["resource"]

    def services(self, project: str, location: str) -> list[dict[str, Any]]:
        self._check_parent(project, location)
        return [s["resource"] for s in self.state["services"].values()]

    def revisions(self, project: str, location: str, service: str) -> list[dict[str, Any]]:
        self.service(project, location, service)
        revs = [r["resource"] for r in self.state["revisions"].values() if r["service"] == service]
        return sorted(revs, key=lambda r: r["createTime"], reverse=True)

    def revision(self, project: str, location: str, service: str, name: str) -> dict[str, Any]:
        self.service(project, location, service)
        rev = self.state["revisions"].get(name)
        if rev is None or rev["service"] != service:
            raise ApiError(
                404, "NOT_FOUND",
                f"Resource 'projects/{project}/locations/{location}/services/{service}/revisions/{name}' was not found",
            )
        return rev["resource"]

    def update_service(
        self, project: str, location: str, name: str, body: dict[str, Any], validate_only: bool, now: float | None = None
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        current = self.service(project, location, name)
        if body.get("name") and body["name"] != current["name"]:
            raise ApiError(400, "INVALID_ARGUMENT", f"service.name {body['name']!r} does not match the request path.")
        if body.get("etag") and body["etag"] != current["etag"]:
            raise ApiError(
                409, "ABORTED",
                f"The service {name} was modified since it was read (etag {body['etag']} is stale, current "
                f"{current['etag']}). Read it again and retry.",
            )
        if current.get("reconciling"):
            raise ApiError(409, "ABORTED", f"The service {name} is still reconciling a previous update; retry when it is done.")
        traffic = body.get("traffic") or []
        if traffic:
            for t in traffic:
                if not 0 <= int(t.get("percent", 0)) <= 100:
                    raise ApiError(400, "INVALID_ARGUMENT", f"Traffic percent must be between 0 and 100, got {t.get('percent')}.")
            total = sum(int(t.get("percent", 0)) for t in traffic)
            if total != 100:
                raise ApiError(400, "INVALID_ARGUMENT", f"Traffic percentages must sum to 100, got {total}.")
            for t in traffic:
                rev = t.get("revision")
                if t.get("type", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION") == "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION":
                    if not rev or self.state["revisions"].get(rev, {}).get("service") != name:
                        raise ApiError(400, "INVALID_ARGUMENT", f"Revision named '{rev}' does not exist in service {name}.")
        new_template = body.get("template")
        if new_template is not None:
            _check_template(new_template)
        template_changed = new_template is not None and _comparable_template(new_template) != _comparable_template(
            current["template"]
        )
        op_id = str(uuid.uuid4())
        op_name = f"projects/{project}/locations/{location}/operations/{op_id}"
        if validate_only:
            preview = {**current, **{k: v for k, v in body.items() if k in ("traffic", "template")}}
            return {"name": op_name, "done": True, "response": preview}

        generation = int(current["generation"]) + 1
        updated = dict(current)
        updated["generation"] = str(generation)
        updated["updateTime"] = rfc3339(now)
        updated["lastModifier"] = "goldenpath@twin"
        updated["reconciling"] = True
        updated["terminalCondition"] = _condition("Ready", "CONDITION_RECONCILING", now)
        if traffic:
            updated["traffic"] = [
                {k: v for k, v in t.items() if k in ("type", "revision", "percent", "tag")} for t in traffic
            ]
        op: dict[str, Any] = {"kind": "update_service", "service": name, "done": False}
        duration = self.state["timing"]["deploy_seconds"]
        if template_changed:
            rollout = self.state.get("rollout", {})
            rev_name = self._new_revision_name(name)
            rev_resource = encode.revision(_revision_from_template(current["name"], rev_name, new_template, now))
            # The scenario decides whether the revisions a rollout creates can start (config-rollout-broken).
            broken = bool(rollout.get("new_revisions_broken", False))
            self.state["revisions"][rev_name] = {"service": name, "broken": broken, "resource": rev_resource}
            updated["template"] = new_template
            updated["latestCreatedRevision"] = f"{current['name']}/revisions/{rev_name}"
            op["new_revision"] = rev_name
            op["created_at"] = now
            # The operation ends once the new revision has started (or failed to), so its startup log
            # is complete, and never stamped in the future, when the operation says done.
            duration = max(duration, float(rollout.get("startup_seconds", 0)))
        updated["etag"] = _etag(updated["uid"], generation)
        self.state["services"][name]["resource"] = updated
        op.update(done_at=now + duration, metadata=dict(updated), name=op_name)
        self.state["operations"][op_id] = op
        self.dirty = True
        return self.operation_json(op)

    def _new_revision_name(self, service: str) -> str:
        numbers = [
            int(n.rsplit("-", 2)[-2])
            for n, r in self.state["revisions"].items()
            if r["service"] == service and n.rsplit("-", 2)[-2].isdigit()
        ]
        suffix = hashlib.sha1(f"{service}{time.time_ns()}".encode()).hexdigest()[:3]
        return f"{service}-{max(numbers, default=0) + 1:05d}-{suffix}"

    def delete_revision(
        self, project: str, location: str, service: str, name: str, validate_only: bool, etag: str | None,
        now: float | None = None,
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        rev = self.revision(project, location, service, name)
        if etag and etag != rev["etag"]:
            raise ApiError(409, "ABORTED", f"Revision {name} was modified since it was read (stale etag).")
        svc = self.service(project, location, service)
        holding = {t.get("revision") for t in svc["trafficStatuses"] + svc["traffic"] if int(t.get("percent", 0)) > 0}
        if name in holding:
            raise ApiError(
                400, "FAILED_PRECONDITION",
                f"Revision {name} is receiving traffic and cannot be deleted. Route its traffic elsewhere first.",
            )
        op_id = str(uuid.uuid4())
        op_name = f"projects/{project}/locations/{location}/operations/{op_id}"
        if validate_only:
            return {"name": op_name, "done": True, "response": rev}
        op = {
            "kind": "delete_revision", "service": service, "revision": name, "done": False,
            "done_at": now + self.state["timing"]["delete_seconds"], "metadata": dict(rev), "name": op_name,
        }
        self.state["operations"][op_id] = op
        self.dirty = True
        return self.operation_json(op)

    def operation(self, project: str, location: str, op_id: str) -> dict[str, Any]:
        op = self.state["operations"].get(op_id)
        if op is None or not op["name"].startswith(f"projects/{project}/locations/{location}/"):
            raise ApiError(404, "NOT_FOUND", f"Operation projects/{project}/locations/{location}/operations/{op_id} not found")
        return op

    @staticmethod
    def operation_json(op: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": op["name"], "done": op["done"]}
        if op.get("metadata") is not None:
            out["metadata"] = op["metadata"]
        if op["done"] and op.get("response") is not None:
            out["response"] = op["response"]
        return out

    # ---- Logging v2 ----------------------------------------------------------------------

    def list_entries(
        self, resource_names: list[str], filter_: str, order_desc: bool, page_size: int, page_token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        projects = {f"projects/{self.state['project']}"}
        if not resource_names or not set(resource_names) <= projects:
            raise ApiError(
                403, "PERMISSION_DENIED",
                f"The twin holds logs only for {sorted(projects)}; asked for {resource_names}.",
            )
        # Requests, connector errors and the revisions' startup logs, merged in timestamp order
        # (each list is in order already; rfc3339() timestamps compare correctly as strings).
        merged = heapq.merge(network().log_entries(self), self.state.get("run_log", []), key=lambda e: e["timestamp"])
        hits = [e for e in merged if matches(filter_, e)]
        if order_desc:
            hits.reverse()
        start = int(page_token or 0)
        page = hits[start : start + page_size]
        nxt = str(start + page_size) if start + page_size < len(hits) else None
        return page, nxt

    # ---- data plane ----------------------------------------------------------------------

    def service_for_host(self, host: str) -> str | None:
        for name, svc in self.state["services"].items():
            if host in svc["hosts"]:
                return name
        return None

    def pick_revision(self, name: str) -> tuple[str, int, bool]:
        """The revision that serves the next request to service ``name``, the request's number, and
        whether the traffic is split (contended). Every data-plane request and WebSocket goes through here."""
        svc = self.state["services"][name]["resource"]
        n = self.state["counters"][name] = self.state["counters"].get(name, 0) + 1
        serving = [t for t in self._resolve_traffic_statuses(svc) if t["percent"] > 0]
        return _pick(serving, n), n, len(serving) > 1

    def serve(self, host: str, path: str, at: float | None = None, method: str = "GET",
              body: bytes = b"") -> DataAnswer:
        """Answer one data-plane request and write it to the request log, as Cloud Run would."""
        now = time.time() if at is None else at
        name = self.service_for_host(host)
        if name is None:
            return DataAnswer(404, {"error": f"no service is mapped to host {host}"}, 0.0)
        svc = self.state["services"][name]["resource"]
        revision, n, contended = self.pick_revision(name)
        contention = self.state["contention"]
        route = path.rstrip("/")
        lo, hi = contention["latency_seconds"]
        slow = lo + (hi - lo) * ((n * 29) % 100) / 100
        if self.state["revisions"].get(revision, {}).get("broken"):
            answer = DataAnswer(503, {"status": "unhealthy", "revision": revision, "error": "startup dependency failed"}, 0.05)
        elif contended and (n * 53) % 100 < contention["error_rate"] * 100:
            answer = DataAnswer(503, {"error": "Service Unavailable", "revision": revision}, slow)
        elif (app := dataplane().answer(self, name, revision, method, route, body, n, now)) is not None:
            # The service's own routes (login, …) behind the same platform: contention slows them too.
            answer = replace(app, latency=slow) if contended else app
        elif route in ("/health/db", "/health/redis"):
            # Contention slows these down too, but their answer is their dependencies'.
            cause = network().dependency_failure(self, name, route, now)
            latency = slow if contended else 0.03 + (n % 5) * 0.005
            answer = (DataAnswer(503, {"status": "unhealthy", "revision": revision, "cause": cause}, latency) if cause
                      else DataAnswer(200, {"status": "healthy", "revision": revision}, latency))
        elif contended:
            answer = DataAnswer(200, {"status": "healthy", "revision": revision}, slow)
        elif route in ("/health", ""):
            answer = DataAnswer(200, {"status": "healthy", "revision": revision}, 0.02 + (n % 5) * 0.005)
        else:
            answer = DataAnswer(404, {"error": "not found"}, 0.01)
        self.log_request(svc, revision, host, path, answer, now, method)
        return answer

    @staticmethod
    def _resolve_traffic_statuses(svc: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for t in svc.get("trafficStatuses", []):
            rev = t.get("revision") or svc["latestReadyRevision"].rsplit("/", 1)[-1]
            out.append({"revision": rev, "percent": int(t.get("percent", 0))})
        return out

    def log_request(
        self, svc: dict[str, Any], revision: str, host: str, path: str, answer: DataAnswer, at: float,
        method: str = "GET",
    ) -> None:
        """One entry of the request log (run.googleapis.com%2Frequests), as Cloud Run writes it; the
        data plane's WebSocket sessions are logged here too (101 accepted, 4xx/5xx refused)."""
        name = svc["name"].rsplit("/", 1)[-1]
        severity = "ERROR" if answer.status >= 500 else "WARNING" if answer.status >= 400 else "INFO"
        entry = {
            "logName": f"projects/{self.state['project']}/logs/run.googleapis.com%2Frequests",
            "resource": {
                "type": "cloud_run_revision",
                "labels": {
                    "project_id": self.state["project"],
                    "location": self.state["region"],
                    "service_name": name,
                    "revision_name": revision,
                    "configuration_name": name,
                },
            },
            "timestamp": rfc3339(at),
            "receiveTimestamp": rfc3339(at + answer.latency),
            "severity": severity,
            "insertId": uuid.uuid4().hex[:16],
            "httpRequest": {
                "requestMethod": method,
                "requestUrl": f"https://{host}{path}",
                "status": answer.status,
                "responseSize": str(len(json.dumps(answer.body))),
                "userAgent": "goldenpath-probe",
                "remoteIp": "127.0.0.1",
                "latency": f"{answer.latency:.6f}s",
                "protocol": "HTTP/1.1",
            },
        }
        log = self.state["request_log"]
        log.append(entry)
        if len(log) > REQUEST_LOG_CAP:
            del log[: len(log) - REQUEST_LOG_CAP]
        self.dirty = True

    # ---- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        st = self.state
        return {
            "scenario": st["scenario"],
            "description": st["description"],
            "reset_at": rfc3339(st["reset_at"]),
            "clock_scale": st.get("clock_scale", 1.0),
            "project": st["project"],
            "region": st["region"],
            "run": {
                "services": [s["resource"] for s in st["services"].values()],
                "revisions": [r["resource"] for r in st["revisions"].values()],
                "operations": [self.operation_json(o) for o in st["operations"].values()],
            },
            **network().status(self),
            "sqladmin": {
                "instances": [i["resource"] for i in st.get("sql_instances", {}).values()],
                "operations": list(st.get("sql_operations", {}).values()),
            },
            "logging": {"request_log_entries": len(st["request_log"]),
                        "connector_log_entries": len(st.get("connector_log", [])),
                        "run_log_entries": len(st.get("run_log", []))},
            **monitoring().status(self),
            "data_plane": {name: s["hosts"] for name, s in st["services"].items()},
            "requests": st["requests"],
        }


def network() -> Any:
    # twin.network builds on this module (ApiError, World), so it is imported when first used.
    from twin import network as module

    return module


def dataplane() -> Any:
    # twin.dataplane builds on this module too (World, DataAnswer): imported when first used.
    from twin import dataplane as module

    return module


def monitoring() -> Any:
    # twin.monitoring builds on this module too (ApiError, World): imported when first used.
    from twin import monitoring as module

    return module


# Cloud Run's limits on a revision template: at most 1000 concurrent requests per instance.
MAX_CONCURRENCY = 1000


def _check_template(template: dict[str, Any]) -> None:
    """Refuse a template Cloud Run refuses, in its words ("Violation in UpdateServiceRequest...")."""
    at = "Violation in UpdateServiceRequest.service.template"
    scaling = template.get("scaling", {})
    lo, hi = int(scaling.get("minInstanceCount", 0)), int(scaling.get("maxInstanceCount", 0))
    # proto3 int32: 0 is unset, and an unset maximum bounds nothing.
    if hi and lo > hi:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"{at}.scaling.max_instance_count: must be greater or equal than min_instance_count "
                       f"(min {lo}, max {hi}).")
    concurrency = template.get("maxInstanceRequestConcurrency")
    if concurrency is not None and not 1 <= int(concurrency) <= MAX_CONCURRENCY:
        raise ApiError(400, "INVALID_ARGUMENT",
                       f"{at}.max_instance_request_concurrency: must be between 1 and {MAX_CONCURRENCY}, "
                       f"got {concurrency}.")


def _pick(serving: list[dict[str, Any]], n: int) -> str:
    # A stride coprime with 100 spreads consecutive requests over the split deterministically.
    pos = (n * 37) % 100
    acc = 0
    for t in serving:
        acc += t["percent"]
        if pos < acc:
            return t["revision"]
    return serving[-1]["revision"] if serving else ""


def _condition(kind: str, state: str, at: float) -> dict[str, Any]:
    return {"type": kind, "state": state, "lastTransitionTime": rfc3339(at)}


def _revision_resource(base: str, service: str, rev: scenarios.RevisionSpec, now: float,
                       connector: str | None) -> dict[str, Any]:
    created = now - rev.created_minutes_ago * 60
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/services/{service}/revisions/{rev.name}"))
    vpc = {"vpcAccess": {"connector": connector, "egress": "PRIVATE_RANGES_ONLY"}} if connector else {}
    return {
        **vpc,
        "name": f"{base}/services/{service}/revisions/{rev.name}",
        "uid": uid,
        "generation": "1",
        "createTime": rfc3339(created),
        "updateTime": rfc3339(created),
        "launchStage": "GA",
        "service": f"{base}/services/{service}",
        "scaling": {"minInstanceCount": rev.min_instances, "maxInstanceCount": rev.max_instances},
        "containers": [{"image": rev.image, "env": [{"name": k, "value": v} for k, v in rev.env.items()]}],
        "maxInstanceRequestConcurrency": 80,
        "timeout": "300s",
        "serviceAccount": f"{service}@{base.split('/')[1]}.iam.gserviceaccount.com",
        "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
        "reconciling": False,
        "conditions": [_condition("Ready", "CONDITION_SUCCEEDED", created)],
        "observedGeneration": "1",
        "logUri": f"https://console.cloud.google.com/logs/viewer?revision={rev.name}",
        "etag": _etag(uid, 1),
    }


def _template_from_revision(rev: dict[str, Any]) -> dict[str, Any]:
    vpc = {"vpcAccess": dict(rev["vpcAccess"])} if rev.get("vpcAccess") else {}
    return {
        **vpc,
        "scaling": dict(rev["scaling"]),
        "containers": [dict(c) for c in rev["containers"]],
        "maxInstanceRequestConcurrency": rev["maxInstanceRequestConcurrency"],
        "timeout": rev["timeout"],
        "serviceAccount": rev["serviceAccount"],
        "executionEnvironment": rev["executionEnvironment"],
    }


def _comparable_template(t: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in t.items() if k != "revision"}, sort_keys=True)


def _revision_from_template(service_name: str, rev_name: str, template: dict[str, Any], now: float) -> dict[str, Any]:
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{service_name}/revisions/{rev_name}"))
    vpc = {"vpcAccess": dict(template["vpcAccess"])} if template.get("vpcAccess") else {}
    return {
        **vpc,
        "name": f"{service_name}/revisions/{rev_name}",
        "uid": uid,
        "generation": "1",
        "createTime": rfc3339(now),
        "updateTime": rfc3339(now),
        "launchStage": "GA",
        "service": service_name,
        "scaling": template.get("scaling", {}),
        "containers": template.get("containers", []),
        "maxInstanceRequestConcurrency": template.get("maxInstanceRequestConcurrency", 80),
        "timeout": template.get("timeout", "300s"),
        "serviceAccount": template.get("serviceAccount", ""),
        "executionEnvironment": template.get("executionEnvironment", "EXECUTION_ENVIRONMENT_GEN2"),
        "reconciling": True,
        "conditions": [_condition("Ready", "CONDITION_RECONCILING", now)],
        "observedGeneration": "1",
        "etag": _etag(uid, 1),
    }
