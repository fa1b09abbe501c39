"""Cloud SQL Admin v1: instances and their database flags.

The client library (google-cloud-sql, ``google.cloud.sqladmin_v1``) speaks gRPC only. A patch of
``settings.databaseFlags`` replaces the whole list, so callers pass the merged list; the patch
carries the ``settingsVersion`` it was planned from, so a concurrent change is refused, not lost.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Sequence

from goldenpath.errors import CheckError
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import SqlInstanceState


class CloudSql:
    API = "sqladmin"

    def __init__(self, session: GcpSession) -> None:
        self.session = session
        self.project = session.target.project

    @cached_property
    def _v1(self) -> Any:
        from google.cloud import sqladmin_v1

        return sqladmin_v1

    @cached_property
    def _instances(self) -> Any:
        from google.cloud.sqladmin_v1.services.sql_instances_service.transports import (
            SqlInstancesServiceGrpcTransport,
        )

        return self._v1.SqlInstancesServiceClient(
            transport=self.session.grpc_transport(self.API, SqlInstancesServiceGrpcTransport))

    @cached_property
    def _operations(self) -> Any:
        from google.cloud.sqladmin_v1.services.sql_operations_service.transports import (
            SqlOperationsServiceGrpcTransport,
        )

        return self._v1.SqlOperationsServiceClient(
            transport=self.session.grpc_transport(self.API, SqlOperationsServiceGrpcTransport))

    def get(self, instance: str) -> SqlInstanceState:
        path = f"projects/{self.project}/instances/{instance}"
        with self.session.call(self.API, "instances.get", path):
            msg = self._instances.get(request=self._v1.SqlInstancesGetRequest(project=self.project, instance=instance),
                                      retry=self.session.read_retry(), timeout=self.session.target.timeouts.api_seconds)
        return state(msg)

    def set_flags(self, instance: str, flags: Sequence[tuple[str, str]], settings_version: int) -> SqlInstanceState:
        """Replace the flag list with ``flags`` (the caller merged it) and wait for the restart."""
        v1 = self._v1
        path = f"projects/{self.project}/instances/{instance}"
        body = v1.DatabaseInstance(settings=v1.Settings(
            settings_version=settings_version,
            database_flags=[v1.DatabaseFlags(name=k, value=v) for k, v in flags],
        ))
        with self.session.call(self.API, "instances.patch", path):
            op = self._instances.patch(request=v1.SqlInstancesPatchRequest(project=self.project, instance=instance,
                                                                          body=body),
                                       timeout=self.session.target.timeouts.api_seconds)
        done = self.session.wait(lambda: self._operation(op.name), lambda o: o.status.name == "DONE",
                                 f"patching {instance} (the instance restarts)")
        if done.error and done.error.errors:
            raise CheckError(f"patching {instance} failed: {'; '.join(e.message for e in done.error.errors)}")
        return self.get(instance)

    def _operation(self, name: str) -> Any:
        with self.session.call(self.API, "operations.get", name):
            return self._operations.get(request=self._v1.SqlOperationsGetRequest(project=self.project, operation=name),
                                        retry=self.session.read_retry(),
                                        timeout=self.session.target.timeouts.api_seconds)


def state(msg: Any) -> SqlInstanceState:
    raw = json.loads(type(msg).to_json(msg, use_integers_for_enums=False,
                                       always_print_fields_with_no_presence=False, indent=None))
    settings = msg.settings
    return SqlInstanceState(
        name=msg.name,
        state=msg.state.name if hasattr(msg.state, "name") else str(msg.state),
        tier=settings.tier,
        settings_version=int(settings.settings_version or 0),
        flags=tuple((f.name, f.value) for f in settings.database_flags),
        raw=raw,
    )
