"""What every API module shares: credentials, endpoints, timeouts, retries, and the call log.

Errors are translated here once: an API error or an unreachable endpoint becomes a CheckError whose
message names the API, the resource and what to do, instead of a transport traceback.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Callable, Iterator

from goldenpath.config import Target
from goldenpath.errors import CheckError, ConfigError, NotYetUsable
from goldenpath.observations import ApiCall

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

# What an operator must grant when a call is refused: per API, read-only and remediation roles.
ROLES = {
    "run": ("roles/run.viewer", "roles/run.developer"),
    "logging": ("roles/logging.viewer", "roles/logging.configWriter"),
    "vpcaccess": ("roles/vpcaccess.viewer", "roles/vpcaccess.admin"),
    "sqladmin": ("roles/cloudsql.viewer", "roles/cloudsql.editor"),
    "compute": ("roles/compute.viewer", "roles/compute.loadBalancerAdmin"),
    "monitoring": ("roles/monitoring.viewer", "roles/monitoring.editor"),
    "dashboards": ("roles/monitoring.dashboardViewer", "roles/monitoring.dashboardEditor"),
}


def to_json(message: Any) -> dict[str, Any]:
    """A proto-plus message as the API's REST JSON (camelCase, enum names, defaults left out)."""
    import json

    text = type(message).to_json(message, use_integers_for_enums=False,
                                 always_print_fields_with_no_presence=False, indent=None)
    return json.loads(text)


def from_json(message_type: Any, data: dict[str, Any]) -> Any:
    """REST JSON → a proto-plus message; a field the API does not have is an error, not dropped."""
    import json

    return message_type.from_json(json.dumps(data), ignore_unknown_fields=False)


class NotDone(Exception):
    """An operation still running: the polling retry's signal to look again later."""


class GcpSession:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.calls: list[ApiCall] = []
        self._lock = threading.Lock()

    @cached_property
    def credentials(self) -> Any:
        if self.target.credentials == "anonymous":
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            creds, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        except DefaultCredentialsError:
            raise ConfigError(
                f"Target {self.target.name!r} uses Application Default Credentials, but none were found. "
                "Run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a "
                "credentials file; in CI use Workload Identity Federation), then run again."
            ) from None
        return creds

    @property
    def identity(self) -> str:
        if self.target.credentials == "anonymous":
            return "anonymous (twin)"
        creds = self.credentials
        return getattr(creds, "service_account_email", None) or "application-default credentials"

    def client_options(self, api: str) -> dict[str, Any]:
        endpoint = self.target.endpoint(api)
        return {"api_endpoint": endpoint} if endpoint else {}

    def read_retry(self) -> Any:
        """Retry transient errors on reads with backoff, bounded by the API timeout."""
        from google.api_core import retry

        t = self.target.timeouts.api_seconds
        return retry.Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=t,
                           predicate=retry.if_transient_error)

    def polling(self) -> Any:
        """Polling for long-running operations: quick first polls, then backing off."""
        from google.api_core import retry
        from google.api_core.future import polling

        return retry.Retry(initial=0.1, maximum=5.0, multiplier=1.5,
                           timeout=self.target.timeouts.operation_seconds,
                           predicate=polling.POLLING_PREDICATE)

    def wait(self, poll: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
        """Poll ``poll()`` until ``done(result)``, backing off (api_core's Retry), within the
        operation timeout. For operations that are not google.longrunning futures."""
        from google.api_core import exceptions as gexc
        from google.api_core import retry

        def once() -> Any:
            result = poll()
            if not done(result):
                raise NotDone(what)
            return result

        policy = retry.Retry(initial=0.1, maximum=5.0, multiplier=1.5,
                             timeout=self.target.timeouts.operation_seconds,
                             predicate=retry.if_exception_type(NotDone))
        try:
            return policy(once)()
        except gexc.RetryError:
            raise CheckError(
                f"{what} did not finish within {self.target.timeouts.operation_seconds:g} s. It may still "
                "complete: check it in the console before running again."
            ) from None

    def discovery(self, api: str, name: str, version: str) -> Any:
        """Google's discovery-based client for ``name`` ``version``, built from the discovery document
        google-api-python-client ships (no fetch at run time), with the target's endpoint, credentials
        and timeout. For the REST APIs whose generated Python client lacks a method or a REST
        transport (Serverless VPC Access, Cloud SQL Admin)."""
        import google_auth_httplib2
        import httplib2
        from googleapiclient import discovery, discovery_cache

        document = discovery_cache.get_static_doc(name, version)
        if document is None:
            raise ConfigError(f"google-api-python-client ships no discovery document {name}.{version}.json; "
                              "reinstall the locked dependencies (bin/bootstrap).")
        # An http with the target's timeout on every call: the discovery client's default waits 60 s.
        http = google_auth_httplib2.AuthorizedHttp(
            self.credentials, http=httplib2.Http(timeout=self.target.timeouts.api_seconds))
        return discovery.build_from_document(document, http=http,
                                             client_options=self.client_options(api) or None)

    def execute(self, api: str, method: str, resource: str, request: Any) -> dict[str, Any]:
        """Run one discovery-client request, recorded and explained like every other call. Reads are
        retried on transient errors; writes never (a retried create, delete or patch is not safe)."""
        retries = 2 if request.method == "GET" else 0
        if not retries:
            _drop_idle_connections(request.http)
        with self.call(api, method, resource):
            result: dict[str, Any] = request.execute(num_retries=retries)
        return result

    def grpc_transport(self, api: str, transport_cls: Any) -> Any:
        """A gRPC transport for the gRPC-only clients: plaintext to an http:// loopback endpoint (the
        twin), the library's default TLS channel otherwise."""
        endpoint = self.target.endpoint(api)
        if endpoint.startswith("http://"):
            import grpc

            return transport_cls(channel=grpc.insecure_channel(endpoint.removeprefix("http://")),
                                 credentials=None)
        host = endpoint.removeprefix("https://") if endpoint else transport_cls.DEFAULT_HOST
        return transport_cls(credentials=self.credentials, host=host)

    @contextmanager
    def call(self, api: str, method: str, resource: str) -> Iterator[None]:
        """Record one API call and translate its failure into an operator's message."""
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except ConfigError:
            outcome = "no credentials"
            raise
        except NotYetUsable:
            outcome = "not yet usable"
            raise
        except Exception as exc:
            outcome = f"{type(exc).__name__}"
            raise self._explain(api, method, resource, exc) from exc
        finally:
            with self._lock:
                self.calls.append(ApiCall(api, method, resource, time.perf_counter() - t0, outcome))

    def _explain(self, api: str, method: str, resource: str, exc: Exception) -> Exception:
        from google.api_core import exceptions as gexc

        where = self.target.endpoint(api) or f"{api}.googleapis.com"
        twin_hint = (
            " The target is the twin: is it running (`python -m twin status`)?" if self.target.is_twin else ""
        )
        exc = _from_discovery(exc)
        if isinstance(exc, (gexc.PermissionDenied, gexc.Forbidden)):
            read_role, write_role = ROLES.get(api, ("a viewer role", "an editor role"))
            return CheckError(
                f"{api} {method} on {resource} was refused: {exc.message}. Grant the gate's identity "
                f"({self.identity}) {read_role} (read-only runs) or {write_role} (remediation) on "
                f"project {self.target.project}."
            )
        if isinstance(exc, (gexc.Unauthenticated, gexc.Unauthorized)) or type(exc).__name__ == "RefreshError":
            return CheckError(
                f"{api} {method} on {resource}: the credentials were rejected ({getattr(exc, 'message', exc)}). Refresh them "
                "with `gcloud auth application-default login` and run again."
            )
        if isinstance(exc, gexc.NotFound):
            return CheckError(
                f"{api} {method}: {resource} does not exist ({exc.message}). Check the names in "
                f"targets.toml for target {self.target.name!r}."
            )
        if isinstance(exc, gexc.GoogleAPICallError):
            return CheckError(f"{api} {method} on {resource} failed: {exc.code} {exc.message}.{twin_hint}")
        if isinstance(exc, gexc.RetryError) or "Connection" in type(exc).__name__ or isinstance(exc, OSError):
            return CheckError(
                f"Cannot reach the {api} API at {where} for {method} on {resource} "
                f"({type(exc).__name__}: {str(exc)[:200]}). Check the network and the endpoint in "
                f"targets.toml.{twin_hint}"
            )
        return CheckError(f"{api} {method} on {resource} failed unexpectedly: {type(exc).__name__}: {exc}")


def _drop_idle_connections(http: Any) -> None:
    """Close the keep-alive connections an httplib2 Http holds, so the next request opens a fresh one.

    httplib2 reuses an idle connection without checking whether the server closed it meanwhile (a
    front end closes idle connections after a few seconds; the twin's uvicorn after 5 s), and the
    request then fails with a broken pipe or a reset. A read is retried; a write is not (it might
    have been applied), so it must not go out on a connection that may be dead."""
    inner = getattr(http, "http", http)  # google_auth_httplib2.AuthorizedHttp wraps an httplib2.Http
    for conn in list(getattr(inner, "connections", {}).values()):
        conn.close()


def _from_discovery(exc: Exception) -> Exception:
    """The discovery-based client raises googleapiclient's HttpError: map it to api_core's classes
    so it is explained like every other API's error."""
    if type(exc).__name__ != "HttpError" or not hasattr(exc, "status_code"):
        return exc
    from google.api_core import exceptions as gexc

    return gexc.from_http_status(exc.status_code, getattr(exc, "reason", "") or str(exc))
