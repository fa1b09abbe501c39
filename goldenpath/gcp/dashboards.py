"""Cloud Monitoring dashboards v1 (its own API, with a REST transport in the client library)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from goldenpath.gcp.session import GcpSession, from_json, to_json


class Dashboards:
    API = "dashboards"

    def __init__(self, session: GcpSession) -> None:
        self.session = session

    @cached_property
    def _v1(self) -> Any:
        from google.cloud import monitoring_dashboard_v1

        return monitoring_dashboard_v1

    @cached_property
    def _client(self) -> Any:
        return self._v1.DashboardsServiceClient(transport="rest", credentials=self.session.credentials,
                                                client_options=self.session.client_options(self.API))

    @property
    def _timeout(self) -> float:
        return self.session.target.timeouts.api_seconds

    def get(self, name: str) -> dict[str, Any] | None:
        """The dashboard as REST JSON, or None when it does not exist."""
        from google.api_core.exceptions import NotFound

        with self.session.call(self.API, "dashboards.get", name):
            try:
                return to_json(self._client.get_dashboard(name=name, retry=self.session.read_retry(), timeout=None))
            except NotFound:
                return None

    def list(self, parent: str) -> list[dict[str, Any]]:
        """Every dashboard of ``parent`` (projects/P), as REST JSON."""
        with self.session.call(self.API, "dashboards.list", parent):
            return [to_json(d) for d in self._client.list_dashboards(parent=parent, retry=self.session.read_retry(),
                                                                      timeout=None)]

    def create(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        """Create it under its own name (validate_only first, the server's dry run)."""
        v1 = self._v1
        parent = "/".join(dashboard["name"].split("/")[:2])
        message = from_json(v1.Dashboard, dashboard)
        with self.session.call(self.API, "dashboards.create(validate_only)", dashboard["name"]):
            self._client.create_dashboard(request=v1.CreateDashboardRequest(
                parent=parent, dashboard=message, validate_only=True), timeout=self._timeout)
        with self.session.call(self.API, "dashboards.create", dashboard["name"], write=True):
            return to_json(self._client.create_dashboard(request=v1.CreateDashboardRequest(
                parent=parent, dashboard=message), timeout=self._timeout))

    def update(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        """Replace it; the body's etag makes a concurrent change fail instead of being overwritten."""
        v1 = self._v1
        message = from_json(v1.Dashboard, dashboard)
        with self.session.call(self.API, "dashboards.patch(validate_only)", dashboard["name"]):
            self._client.update_dashboard(request=v1.UpdateDashboardRequest(dashboard=message, validate_only=True),
                                          timeout=self._timeout)
        with self.session.call(self.API, "dashboards.patch", dashboard["name"], write=True):
            return to_json(self._client.update_dashboard(request=v1.UpdateDashboardRequest(dashboard=message),
                                                         timeout=self._timeout))

    def delete(self, name: str) -> None:
        with self.session.call(self.API, "dashboards.delete", name, write=True):
            self._client.delete_dashboard(name=name, timeout=self._timeout)
