"""Cloud Run Admin API v2: services, revisions, traffic, long-running operations.

Writes always go validate_only first (the server's dry run), then for real with the etag read
just before, and wait on the operation with backoff. The client library is imported on first use.

A traffic change keeps every traffic tag it was not asked to remove: a tag is someone's URL
(``https://TAG---<service host>``), and an update that leaves it out removes it. A changed template
never carries the name of the revision it was read from (Cloud Run would refuse it: "Revision named
'…' with different configuration already exists.").
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Sequence

from goldenpath import polling, trail
from goldenpath.errors import CheckError, OutcomeUnknown
from goldenpath.gcp.session import AttemptWatch, GcpSession, describe_error, to_json, transient
from goldenpath.observations import RevisionState, ServiceState, TrafficShare

READY = "CONDITION_SUCCEEDED"
# The longest one operations.wait call asks for: a call that gets no answer (a lost connection) is
# noticed within this plus api_seconds, and the server caps a longer one anyway ("If the timeout
# specified is greater than the default HTTP/RPC timeout, the HTTP/RPC timeout is used", run.v2.json).
WAIT_SECONDS = 30.0


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


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
            return self._services.get_service(name=path, retry=self.session.read_retry(), timeout=None)

    def get_service(self, name: str) -> ServiceState:
        return self._state(self._get_service_message(name))

    def list_revisions(self, service: str) -> tuple[RevisionState, ...]:
        path = self.service_path(service)
        with self.session.call(self.API, "revisions.list", path):
            pager = self._revisions.list_revisions(parent=path, retry=self.session.read_retry(), timeout=None)
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
            ready_transition_time=_dt(cond.last_transition_time) if cond.last_transition_time else None,
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
            provisioned_min=int(rev.scaling_status.desired_min_instance_count),
        )

    def set_template(self, service: str, spec: dict[str, Any], *, expected_etag: str = "") -> ServiceState:
        """Give the template what ``spec`` says (see :func:`template_spec`): a new revision,
        validate_only first, etag-guarded, and wait for it."""
        v2 = self._v2
        msg = self._read_for_update(service, expected_etag)
        template = msg.template
        if "env" in spec:
            container = template.containers[0]
            keep = [e for e in container.env if e.value_source]  # secrets stay as they are
            container.env = keep + [v2.EnvVar(name=k, value=v) for k, v in spec["env"]
                                    if all(k != s.name for s in keep)]
        if "scaling" in spec:
            template.scaling.min_instance_count = int(spec["scaling"].get("minInstanceCount", 0))
            template.scaling.max_instance_count = int(spec["scaling"].get("maxInstanceCount", 0))
        if "maxInstanceRequestConcurrency" in spec:
            template.max_instance_request_concurrency = int(spec["maxInstanceRequestConcurrency"])
        template.revision = ""  # let Cloud Run name the new revision
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
        with self.session.call(self.API, "services.patch", path, write=True):
            op = self._services.update_service(request=v2.UpdateServiceRequest(service=msg), timeout=timeout)
        return self._state(self._wait(op, f"updating service {service}", self._v2.Service))

    def _wait(self, op: Any, what: str, result_type: Any) -> Any:
        """The operation's result, waited for with Cloud Run's long-poll ``operations.wait`` within
        ``operation_seconds``; its journal hook called first.

        ``operations.wait`` "waits until the specified long-running operation is done or reaches at
        most a specified timeout, returning the latest state. If the operation is already done, the
        latest state is immediately returned." It is best-effort: "it may return the latest state
        before the specified timeout (including immediately)" (run.v2.json; google/longrunning/
        operations.proto, WaitOperation). So: each call asks for at most the time left before the
        deadline (and at most WAIT_SECONDS), the loop goes on until the operation is done, and an
        answer that comes back early and not done is followed by a pause (goldenpath.polling's pace)
        rather than by an immediate call, so a server that never waits is polled, not hammered.
        A transient error on a call (429, 5xx, a lost connection) is retried with backoff until the
        deadline, but for ``api_seconds`` in a row at most; then the outcome is unknown
        (OutcomeUnknown, with the real time waited), as is a wait the API refuses (403, 404)."""
        from google.api_core import exceptions as gexc
        from google.api_core import operation as api_operation
        from google.api_core.retry import exponential_sleep_generator
        from google.longrunning import operations_pb2
        from google.protobuf import duration_pb2

        name = op.operation.name
        self.session.operation_started(self.API, name)
        timeouts = self.session.target.timeouts
        deadline = time.monotonic() + timeouts.operation_seconds
        watch = AttemptWatch()
        current = op.operation
        backoff = exponential_sleep_generator(initial=0.2, maximum=5.0, multiplier=2.0)
        log = trail.logger(f"gcp.{self.API}")
        calls = 0
        with self.session.call(self.API, "operations.wait", name):
            while not current.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.session.unfinished(self.API, name, what, watch, "operations.wait")
                asked = min(left, WAIT_SECONDS)
                request = operations_pb2.WaitOperationRequest(
                    name=name, timeout=duration_pb2.Duration(seconds=int(asked), nanos=int(asked % 1 * 1e9)))
                calls += 1
                t0 = time.monotonic()
                try:
                    # The client's own timeout leaves the server its whole wait plus api_seconds to answer.
                    current = self._services.wait_operation(request=request, retry=None,
                                                            timeout=asked + timeouts.api_seconds)
                except Exception as exc:
                    watch.failed(exc)
                    log.debug("%s: operations.wait %d on %s failed after %.3f s: %s", what, calls, name,
                              time.monotonic() - t0, describe_error(exc))
                    if not transient(exc):
                        if isinstance(exc, gexc.GoogleAPICallError):  # refused (403, 404): outcome unknown
                            raise OutcomeUnknown(
                                f"{what}: {self.API} operations.wait on {name} answered {describe_error(exc)}: "
                                f"{exc.message}. The change was accepted and may have completed: read the service "
                                "before running again.", operation=name, api=self.API) from exc
                        raise
                    pause = next(backoff)
                    unread = time.monotonic() - (watch.failing_since or t0)
                    if unread + pause >= timeouts.api_seconds or time.monotonic() + pause >= deadline:
                        raise self.session.unfinished(self.API, name, what, watch, "operations.wait") from None
                    time.sleep(pause)
                    continue
                watch.succeeded()
                took = time.monotonic() - t0
                log.debug("%s: operations.wait %d on %s: %s after %.3f s (asked for %.1f s)", what, calls, name,
                          "done" if current.done else "not done yet", took, asked)
                if not current.done and took < asked * 0.9:
                    # Back early and not done (best effort): pace the next call as a poll would be.
                    time.sleep(max(0.0, min(polling.delay(watch.elapsed()), deadline - time.monotonic())))
        # The finished operation's result or error, as api_core's operation future unpacks it (an
        # operation that ended in error raises GoogleAPICallError: the change was refused).
        finished = api_operation.Operation(current, refresh=lambda *a, **k: current, cancel=lambda: None,
                                           result_type=result_type)
        return finished.result(timeout=0)

    # ---- writes --------------------------------------------------------------------------

    def set_traffic(self, service: str, shares: Sequence[TrafficShare], *, expected_etag: str) -> ServiceState:
        """Route traffic as ``shares`` says, keeping every tag (a tagged revision left out of ``shares``
        stays tagged at 0 %); refuse if the service changed since it was planned."""
        v2 = self._v2
        msg = self._read_for_update(service, expected_etag)
        msg.traffic = with_tags([(s.revision, s.percent) for s in shares], list(msg.traffic), v2)
        return self._update(service, msg)

    def set_traffic_exact(self, service: str, entries: Sequence[dict[str, Any]], *, expected_etag: str) -> ServiceState:
        """Put back ``traffic`` as it was read (REST JSON entries: type, revision, percent, tag), tags
        included: a rollback restores what it captured, not an approximation of it."""
        v2 = self._v2
        msg = self._read_for_update(service, expected_etag)
        msg.traffic = [v2.TrafficTarget.from_json(json.dumps(e)) for e in entries]
        return self._update(service, msg)

    def get_revision_etag(self, service: str, revision: str) -> str:
        path = f"{self.service_path(service)}/revisions/{revision}"
        with self.session.call(self.API, "revisions.get", path):
            rev = self._revisions.get_revision(name=path, retry=self.session.read_retry(), timeout=None)
        return str(rev.etag)

    def delete_revision(self, service: str, revision: str) -> str:
        """Delete a revision (irreversible), guarded by its etag read just before; returns the
        operation's name for the journal."""
        path = f"{self.service_path(service)}/revisions/{revision}"
        timeout = self.session.target.timeouts.api_seconds
        etag = self.get_revision_etag(service, revision)
        with self.session.call(self.API, "revisions.delete(validate_only)", path):
            self._revisions.delete_revision(
                request=self._v2.DeleteRevisionRequest(name=path, validate_only=True, etag=etag), timeout=timeout
            ).result(timeout=timeout)
        with self.session.call(self.API, "revisions.delete", path, write=True):
            op = self._revisions.delete_revision(request=self._v2.DeleteRevisionRequest(name=path, etag=etag),
                                                 timeout=timeout)
        self._wait(op, f"deleting revision {revision}", self._v2.Revision)
        return str(op.operation.name)


def with_tags(shares: Sequence[tuple[str, int]], current: Sequence[Any], v2: Any) -> list[Any]:
    """The traffic targets for ``shares`` (revision, percent) with every tag of ``current`` kept: a
    tag on a revision that gets a share stays on that share's target, any other tag stays as a 0 %
    target of its own (of type LATEST if it was one)."""
    revision_type = v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    out = [v2.TrafficTarget(type_=revision_type, revision=rev, percent=pct) for rev, pct in shares]
    for old in current:
        if not old.tag:
            continue
        home = next((t for t in out if old.revision and t.revision == old.revision and not t.tag), None)
        if home is not None:
            home.tag = old.tag
        else:
            out.append(v2.TrafficTarget(type_=old.type_, revision=old.revision, percent=0, tag=old.tag))
    return out


def tags_of(service_raw: dict[str, Any]) -> list[dict[str, str]]:
    """The service's traffic tags (REST JSON), for a journal and a check that none was lost."""
    return sorted(({"tag": t["tag"], "revision": t.get("revision", "LATEST")}
                   for t in service_raw.get("traffic", []) if t.get("tag")), key=lambda t: t["tag"])


def template_spec(service_raw: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The parts of a service's template (REST JSON) that a rollout sets, in the shape
    :meth:`CloudRun.set_template` takes: ``env`` as [name, value] pairs (secrets left out), ``scaling``
    as {minInstanceCount, maxInstanceCount}, ``maxInstanceRequestConcurrency``; defaults filled in,
    so a spec read back compares equal to the spec that was set."""
    template = service_raw.get("template", {})
    out: dict[str, Any] = {}
    if "env" in keys:
        containers = template.get("containers", [])
        out["env"] = [[e["name"], e.get("value", "")] for e in (containers[0].get("env", []) if containers else [])
                      if "valueSource" not in e]
    if "scaling" in keys:
        scaling = template.get("scaling", {})
        out["scaling"] = {"minInstanceCount": int(scaling.get("minInstanceCount", 0)),
                          "maxInstanceCount": int(scaling.get("maxInstanceCount", 0))}
    if "maxInstanceRequestConcurrency" in keys:
        out["maxInstanceRequestConcurrency"] = int(template.get("maxInstanceRequestConcurrency", 0))
    return out
