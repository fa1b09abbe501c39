"""goldenpath.observe: the Success Confirmation's window reuses the phases' shared service reads, and
a soak's later looks (``fresh``) read the services again. The request log is read at every look."""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from goldenpath.observations import RequestLog, ServiceState
from goldenpath.observe import Observer
from selftest.unit.phase4_world import BACKEND, target


def test_the_window_reuses_the_shared_service_read_until_a_change_or_a_fresh_look() -> None:
    observer = Observer(target(services=[{"name": BACKEND, "health_url": "https://api.staging.example/health"}]))
    services: list[str] = []
    logs: list[list[str]] = []

    def get_service(name: str) -> ServiceState | None:
        services.append(name)
        return None  # not found: the window has no last change, which this test does not judge

    def request_logs(windows: Mapping[str, datetime], min_requests: int) -> dict[str, RequestLog]:
        logs.append(sorted(windows))
        return {}

    observer.run.get_service = get_service  # type: ignore[method-assign,assignment]  # None: a stand-in
    observer.logging.request_logs = request_logs  # type: ignore[method-assign]
    try:
        observer.clean_window()
        observer.clean_window()
        assert services == [BACKEND]  # the phases' shared read, made once
        observer.clean_window(fresh=True)
        assert services == [BACKEND, BACKEND]  # a soak's later look reads it now
        observer.invalidate()  # a change was made
        observer.clean_window()
        assert services == [BACKEND] * 3
        assert logs == [[BACKEND]] * 4  # the log at every look: the window moves
    finally:
        observer.close()
