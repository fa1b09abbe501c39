"""Cloud Run Admin API v2: services, revisions, traffic, long-running operations.

Writes always go validate_only first (the server's dry run), then for real with the etag read
just before, and wait on the operation with backoff. The client library is imported on first use.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Sequence

from goldenpath.errors import CheckError
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import RevisionState, ServiceState, TrafficShare

READY = "CONDITION_SUCCEEDED"


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def to_json(message: Any) -> dict[str, Any]:
    text = type(message).to_json(message, use_integers_for_enums=False,
                                 always_print_fields_with_no_presence=False, indent=None)
    return json.loads(text)


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(0, timezone.utc)


class CloudRun:
    API = "run"

    def __init__(self, session: GcpSession) -> None:
        self.session = session
        t = session.target
        self.parent = f"projects/{t.project}/locations/{t.region}"

    @cached_property
    def _v2(self) -> Any:
        from google.cloud import run_v2

        return run_v2

    @cached_property
    def _services(self) -> Any:
        return self._v2.ServicesClient(transport="rest", credentials=self.session.credentials,
                                       client_options=self.session.client_options(self.API))

    @cached_property
    def _revisions(self) -> Any:
        return self._v2.RevisionsClient(transport="rest", credentials=self.session.credentials,
                                        client_options=self.session.client_options(self.API))

    def service_path(self, name: str) -> str:
        return f"{self.parent}/services/{name}"

    # ---- reads ---------------------------------------------------------------------------

    def _get_service_message(self, name: str) -> Any:
        path = self.service_path(name)
        with self.session.call(self.API, "services.get", path):
            return self._services.get_service(name=path, retry=self.session.read_retry(),
                                              timeout=self.session.target.timeouts.api_seconds)

    def get_service(self, name: str) -> ServiceState:
        return self._state(self._get_service_message(name))

    def list_revisions(self, service: str) -> tuple[RevisionState, ...]:
        path = self.service_path(service)
        with self.session.call(self.API, "revisions.list", path):
            pager = self._revisions.list_revisions(parent=path, retry=self.session.read_retry(),
                                                   timeout=self.session.target.timeouts.api_seconds)
            revs = list(pager)
        return tuple(self._revision_state(r) for r in revs)

    def _state(self, svc: Any) -> ServiceState:
        latest_ready = short(svc.latest_ready_revision)

        def shares(items: Sequence[Any]) -> tuple[TrafficShare, ...]:
            out = []
            for t in items:
                # A LATEST target serves the latest ready revision; name it so operators see which.
                rev = short(t.revision) if t.revision else latest_ready
                out.append(TrafficShare(rev, int(t.percent)))
            return tuple(out)

        cond = svc.terminal_condition
        return ServiceState(
            name=short(svc.name),
            full_name=svc.name,
            serving=shares(svc.traffic_statuses),
            requested=shares(svc.traffic),
            latest_ready=latest_ready,
            latest_created=short(svc.latest_created_revision),
            reconciling=bool(svc.reconciling),
            ready=cond.state.name == READY,
            ready_message=cond.message or cond.state.name,
            etag=svc.etag,
            generation=int(svc.generation),
            observed_generation=int(svc.observed_generation),
            update_time=_dt(svc.update_time),
            raw=to_json(svc),
        )

    def _revision_state(self, rev: Any) -> RevisionState:
        ready = any(c.type_ == "Ready" and c.state.name == READY for c in rev.conditions)
        env = tuple((e.name, e.value) for e in rev.containers[0].env) if rev.containers else ()
        return RevisionState(
            name=short(rev.name),
            full_name=rev.name,
            create_time=_dt(rev.create_time),
            min_instances=int(rev.scaling.min_instance_count),
            ready=ready,
            raw=to_json(rev),
            env=env,
        )

    def set_env(self, service: str, env: Sequence[tuple[str, str]], *, expected_etag: str = "") -> ServiceState:
        """Give the template exactly ``env`` (a new revision), validate_only first, etag-guarded, and wait."""
        v2 = self._v2
        msg = self._read_for_update(service, expected_etag)
        container = msg.template.containers[0]
        keep = [e for e in container.env if e.value_source]  # secrets stay as they are
        container.env = keep + [v2.EnvVar(name=k, value=v) for k, v in env if all(k != s.name for s in keep)]
        msg.template.revision = ""  # let Cloud Run name the new revision
        return self._update(service, msg)

    def _read_for_update(self, service: str, expected_etag: str) -> Any:
        """The service as it is now; refused if it moved since the plan (someone else is changing it)."""
        msg = self._get_service_message(service)
        if expected_etag and msg.etag != expected_etag:
            raise CheckError(
                f"{service} changed since the plan was made (etag {expected_etag} → {msg.etag}); someone else "
                "is changing it. Nothing was applied: run the gate again to re-plan from the current state."
            )
        return msg

    def _update(self, service: str, msg: Any) -> ServiceState:
        v2 = self._v2
        path = self.service_path(service)
        timeout = self.session.target.timeouts.api_seconds
        with self.session.call(self.API, "services.patch(validate_only)", path):
            self._services.update_service(request=v2.UpdateServiceRequest(service=msg, validate_only=True),
                                          timeout=timeout).result(timeout=timeout)
        with self.session.call(self.API, "services.patch", path):
            op = self._services.update_service(request=v2.UpdateServiceRequest(service=msg), timeout=timeout)
        with self.session.call(self.API, "operations.wait", op.operation.name):
            done = op.result(timeout=self.session.target.timeouts.operation_seconds, polling=self.session.polling())
        return self._state(done)

    # ---- writes --------------------------------------------------------------------------

    def set_traffic(self, service: str, shares: Sequence[TrafficShare], *, expected_etag: str) -> ServiceState:
        """Route traffic exactly as ``shares`` says; refuse if the service changed since it was planned."""
        v2 = self._v2
        msg = self._read_for_update(service, expected_etag)
        msg.traffic = [
            v2.TrafficTarget(type_=v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
                             revision=s.revision, percent=s.percent)
            for s in shares
        ]
        return self._update(service, msg)

    def delete_revision(self, service: str, revision: str) -> str:
        """Delete a revision (irreversible); returns the operation's name for the journal."""
        path = f"{self.service_path(service)}/revisions/{revision}"
        timeout = self.session.target.timeouts.api_seconds
        with self.session.call(self.API, "revisions.delete(validate_only)", path):
            self._revisions.delete_revision(
                request=self._v2.DeleteRevisionRequest(name=path, validate_only=True), timeout=timeout
            ).result(timeout=timeout)
        with self.session.call(self.API, "revisions.delete", path):
            op = self._revisions.delete_revision(request=self._v2.DeleteRevisionRequest(name=path), timeout=timeout)
        with self.session.call(self.API, "operations.wait", op.operation.name):
            op.result(timeout=self.session.target.timeouts.operation_seconds, polling=self.session.polling())
        return op.operation.name
