"""Cloud SQL Admin v1: instances and their database flags, over REST.

Cloud SQL Admin is a REST-only API on Google's public endpoint: a gRPC call ends in UNIMPLEMENTED
("Received HTTP status code 404", googleapis/google-cloud-node#6228; google-cloud-cpp#8730 calls it
"a REST-only API"), and the google-cloud-sql package ships gRPC transports only. So this module uses
Google's discovery-based client built from the document google-api-python-client ships
(``sqladmin.v1.json``), as Google's "Cloud SQL Admin API client libraries" page tells Python users.

A patch of ``settings.databaseFlags`` replaces the whole list, so callers pass the merged list; the
patch carries the ``settingsVersion`` it was planned from, so a concurrent change is refused (HTTP
412 "Condition does not match.", staleData), not lost. The patch answers a ``sql#operation``
(not a google.longrunning one), polled until its status is DONE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Sequence

from goldenpath.errors import CheckError, OutcomeUnknown
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import SqlInstanceState


@dataclass(frozen=True)
class FlagsPatched:
    """A finished flag patch: the instance as read afterwards and the operation that changed it."""

    state: SqlInstanceState
    operation: str
    seconds: float | None  # the operation's own startTime → endTime (the restart), when it says


class CloudSql:
    API = "sqladmin"

    def __init__(self, session: GcpSession) -> None:
        self.session = session
        self.project = session.target.project

    @cached_property
    def _service(self) -> Any:
        return self.session.discovery(self.API, "sqladmin", "v1")

    def _path(self, instance: str) -> str:
        return f"projects/{self.project}/instances/{instance}"

    def get(self, instance: str) -> SqlInstanceState:
        request = self._service.instances().get(project=self.project, instance=instance)
        return state(self.session.execute(self.API, "instances.get", self._path(instance), request))

    def set_flags(self, instance: str, flags: Sequence[tuple[str, str]], settings_version: int) -> FlagsPatched:
        """Replace the flag list with ``flags`` (the caller merged it), guarded by ``settings_version``,
        and wait for the operation (the instance restarts when max_connections changes)."""
        path = self._path(instance)
        body = {"settings": {
            "settingsVersion": str(settings_version),  # int64: a string in REST JSON
            "databaseFlags": [{"name": k, "value": v} for k, v in flags],
        }}
        request = self._service.instances().patch(project=self.project, instance=instance, body=body)
        try:
            op = self.session.execute(self.API, "instances.patch", path, request)
        except CheckError as exc:
            if getattr(exc.__cause__, "status_code", None) == 412:
                raise CheckError(
                    f"Refused to patch {instance}: its settings changed after the gate read them (the patch "
                    f"carried settingsVersion {settings_version}, and Cloud SQL answered 412 "
                    f"{getattr(exc.__cause__, 'reason', '') or 'Condition does not match.'}). Nothing was "
                    "overwritten. Somebody else changed the instance meanwhile: find out who, then run the "
                    "gate again so it re-reads the flags and merges into the current ones."
                ) from exc.__cause__
            raise
        self.session.operation_started(self.API, str(op.get("name", "")))
        done = self._wait(op, f"patching {instance} (the instance restarts)")
        seconds = elapsed(done)
        took = f" after {seconds:.1f} s" if seconds is not None else ""
        errors = (done.get("error") or {}).get("errors") or []
        if errors:
            detail = "; ".join(f"{e.get('code', 'error')}: {e.get('message', '')}" for e in errors)
            raise CheckError(f"patching {instance} failed{took} (operation {done.get('name')}): {detail}. The flags "
                             "may be partly applied: read the instance before running again.")
        return FlagsPatched(self.get(instance), str(done.get("name", "")), seconds)

    def _wait(self, op: dict[str, Any], what: str) -> dict[str, Any]:
        if op.get("status") == "DONE":  # a patch that needs no restart may answer DONE at once
            return op
        last = [op]

        def poll() -> dict[str, Any]:
            name = op["name"]
            request = self._service.operations().get(project=self.project, operation=name)
            last[0] = self.session.execute(self.API, "operations.get", f"projects/{self.project}/operations/{name}",
                                           request)
            return last[0]

        try:
            return self.session.wait(poll, lambda o: o.get("status") == "DONE", what, api=self.API,
                                     operation=str(op.get("name", "")))
        except OutcomeUnknown as exc:
            seen = last[0]
            raise OutcomeUnknown(
                f"{exc} Operation {seen.get('name')} was last read as {seen.get('status', 'unknown')} (started "
                f"{seen.get('startTime') or seen.get('insertTime') or 'at an unknown time'}).",
                operation=exc.operation, api=exc.api) from exc.__cause__


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def elapsed(op: dict[str, Any]) -> float | None:
    """How long the operation ran by its own clock (startTime, else insertTime, to endTime)."""
    start, end = _time(op.get("startTime") or op.get("insertTime")), _time(op.get("endTime"))
    return (end - start).total_seconds() if start and end else None


def state(body: dict[str, Any]) -> SqlInstanceState:
    settings = body.get("settings", {})
    return SqlInstanceState(
        name=body["name"],
        state=body.get("state", "SQL_INSTANCE_STATE_UNSPECIFIED"),
        tier=settings.get("tier", ""),
        settings_version=int(settings.get("settingsVersion") or 0),
        flags=tuple((f["name"], f.get("value", "")) for f in settings.get("databaseFlags", [])),
        raw=body,
    )
