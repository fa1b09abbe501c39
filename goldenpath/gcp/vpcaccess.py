"""Serverless VPC Access v1: connectors.

The generated client (google-cloud-vpc-access) has get/create/delete but no update, and the fix
needs a patch with an updateMask. So this module uses Google's discovery-based client
(google-api-python-client, with the discovery document it ships), which has every method. Every
patch names its fields in updateMask: without one the API replaces every field.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from goldenpath.errors import CheckError
from goldenpath.gcp.session import GcpSession
from goldenpath.observations import ConnectorState

# Per-instance throughput (Mbps) by machine type, from the Serverless VPC Access documentation.
THROUGHPUT_MBPS = {"f1-micro": 100, "e2-micro": 200, "e2-standard-4": 3200}


class VpcAccess:
    API = "vpcaccess"

    def __init__(self, session: GcpSession) -> None:
        self.session = session
        t = session.target
        self.parent = f"projects/{t.project}/locations/{t.region}"

    @cached_property
    def _connectors(self) -> Any:
        return self.session.discovery(self.API, "vpcaccess", "v1").projects().locations()

    def path(self, name: str) -> str:
        return f"{self.parent}/connectors/{name}"

    def _execute(self, method: str, resource: str, request: Any) -> dict[str, Any]:
        return self.session.execute(self.API, method, resource, request)

    def get(self, name: str) -> ConnectorState:
        path = self.path(name)
        return state(self._execute("connectors.get", path, self._connectors.connectors().get(name=path)))

    def _wait(self, op: dict[str, Any], what: str) -> dict[str, Any]:
        ops = self._connectors.operations()
        name = str(op.get("name", ""))
        self.session.operation_started(self.API, name)
        done = op if op.get("done") else self.session.wait(
            lambda: self._execute("operations.get", name, ops.get(name=name)),
            lambda o: bool(o.get("done")), what, api=self.API, operation=name)
        if done.get("error"):
            raise CheckError(f"{what} failed: {done['error'].get('message', done['error'])}")
        return done

    def update(self, name: str, fields: dict[str, Any]) -> ConnectorState:
        """Patch exactly ``fields`` (API field names), naming each in updateMask, and wait."""
        path = self.path(name)
        mask = ",".join(sorted(fields))
        req = self._connectors.connectors().patch(name=path, updateMask=mask, body={"name": path, **fields})
        self._wait(self._execute("connectors.patch", path, req), f"updating connector {name}")
        return self.get(name)

    def recreate(self, name: str, spec: dict[str, Any]) -> ConnectorState:
        """Delete and create again from ``spec`` (destructive: egress stops meanwhile)."""
        path = self.path(name)
        self._wait(self._execute("connectors.delete", path, self._connectors.connectors().delete(name=path)),
                   f"deleting connector {name}")
        body = {k: v for k, v in spec.items() if k in ("network", "ipCidrRange", "subnet", "machineType",
                                                        "minInstances", "maxInstances")}
        req = self._connectors.connectors().create(parent=self.parent, connectorId=name, body=body)
        self._wait(self._execute("connectors.create", path, req), f"creating connector {name}")
        return self.get(name)


def state(body: dict[str, Any]) -> ConnectorState:
    return ConnectorState(
        name=body["name"].rsplit("/", 1)[-1],
        full_name=body["name"],
        state=body.get("state", "STATE_UNSPECIFIED"),
        machine_type=body.get("machineType", ""),
        min_instances=int(body.get("minInstances", 0)),
        max_instances=int(body.get("maxInstances", 0)),
        raw=body,
    )
