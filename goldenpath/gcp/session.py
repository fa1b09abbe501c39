"""What every API module shares: credentials, endpoints, timeouts, retries, and the call log.

Errors are translated here once: an API error or an unreachable endpoint becomes a CheckError whose
message names the API, the resource and what to do, instead of a transport traceback.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Callable, Iterator

from goldenpath import polling
from goldenpath.config import Target
from goldenpath.errors import CheckError, ConfigError, GoldenpathError, NotYetUsable, OutcomeUnknown
from goldenpath.observations import ApiCall
from goldenpath.trail import logger
from goldenpath.warmup import Warmup

# The trail of the API calls: one record per call (DEBUG for a read, INFO for a write), per retried
# attempt and per operation poll, in goldenpath.gcp.<api>; retries of any call in goldenpath.gcp.retry.
RETRY_LOG = logger("gcp.retry")

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


class Unread(Exception):
    """A poll whose read failed transiently: the polling retry's signal to look again later."""


class GcpSession:
    def __init__(self, target: Target, on_operation: Callable[[str, str], None] | None = None) -> None:
        self.target = target
        self.calls: list[ApiCall] = []
        self._lock = threading.Lock()
        self._current = threading.local()  # the transient errors retried within this thread's call
        # Called with (api, operation name) as soon as a write's long-running operation is known,
        # before it is waited on: the remediation journal records it (a crash or a lost poll then
        # still leaves the operation to look at). None: nobody listens.
        self.on_operation = on_operation
        # Heavy client imports made while an operation is waited on (goldenpath.warmup).
        self.warmup = Warmup()

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
        """How every read is retried: transient errors (429, 500, 503, 504/DEADLINE_EXCEEDED, lost
        connections, timeouts) with backoff, within the target's ``api_seconds`` in all, each attempt
        given the time left as its timeout. Pass it with ``timeout=None`` to a client method: a float
        timeout there would be applied by api_core per attempt on top of this one."""
        t = self.target.timeouts.api_seconds
        return BoundedRetry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=t, predicate=transient,
                            on_error=self._note_retry)

    def operation_started(self, api: str, operation: str) -> None:
        """A write's long-running operation is known: tell whoever journals writes (the lead's
        remediation runner sets ``on_operation``) before waiting on it."""
        logger(f"gcp.{api}").info("%s operation started: %s", api, operation or "(unnamed)")
        if self.on_operation is not None and operation:
            self.on_operation(api, operation)
        # Journaled first; then, while it is waited on, the heavy imports of the phases to come.
        self.warmup.start(f"{api} operation {operation or '(unnamed)'} is waited on")

    def wait(self, poll: Callable[[], Any], done: Callable[[Any], bool], what: str, *,
             api: str = "", operation: str = "") -> Any:
        """Poll ``poll()`` until ``done(result)``, paced by :mod:`goldenpath.polling` (api_core's
        ``retry_target``), within the operation timeout. For operations that are not google.longrunning futures. A poll that fails
        transiently (its read already retried within api_seconds) is polled again, not the end of
        the wait; a wait that ends without an answer raises :class:`OutcomeUnknown`."""
        from google.api_core import exceptions as gexc
        from google.api_core import retry

        watch = AttemptWatch()
        log = logger(f"gcp.{api or 'wait'}")
        polls = [0]

        def once() -> Any:
            polls[0] += 1
            try:
                result = poll()
            except CheckError as exc:
                log.debug("%s: poll %d of %s could not be read (%s), %.3f s into the wait", what, polls[0],
                          operation or "(unnamed)", describe_error(root_cause(exc)), watch.elapsed())
                watch.failed(exc)
                # Unreadable for api_seconds in a row: stop; the caller reads the resource instead.
                if transient(root_cause(exc)) and watch.failing_since is not None \
                        and time.monotonic() - watch.failing_since < self.target.timeouts.api_seconds:
                    raise Unread(what) from exc
                if transient(root_cause(exc)):
                    raise self.unfinished(api, operation, what, watch) from None
                raise
            watch.succeeded()
            finished = done(result)
            log.debug("%s: poll %d of %s: %s, %.3f s into the wait", what, polls[0], operation or "(unnamed)",
                      "done" if finished else "not done yet", watch.elapsed())
            if not finished:
                raise NotDone(what)
            return result

        # Paced by goldenpath.polling: a finished operation is seen at most 10 % of its duration (or
        # 0.5 s) late, and the last look is made at the deadline itself.
        pauses, timeout = polling.retrying(self.target.timeouts.operation_seconds)
        try:
            return retry.retry_target(once, retry.if_exception_type(NotDone, Unread), pauses, timeout=timeout)
        except gexc.RetryError:
            raise self.unfinished(api, operation, what, watch) from None
        except CheckError as exc:
            # A poll refused for good (403, 404): the write was accepted, its outcome is not known.
            if isinstance(exc, OutcomeUnknown):
                raise
            raise OutcomeUnknown(f"{what}: {exc} The operation {operation or '(unnamed)'} was started and may "
                                 "have completed: read the resource before running again.",
                                 operation=operation, api=api) from exc

    def unfinished(self, api: str, operation: str, what: str, watch: "AttemptWatch",
                   method: str = "operations.get") -> OutcomeUnknown:
        """The message for a wait on ``operation`` that ended without its outcome: the time really
        waited, and whether the operation was still running or its state could not be read (by
        ``method``: the poll, or Cloud Run's operations.wait)."""
        from google.api_core import exceptions as gexc

        waited = watch.elapsed()
        op = operation or "(unnamed)"
        if watch.failing_since is not None:
            unread = time.monotonic() - watch.failing_since
            last = root_cause(watch.last_error)
            answer = (f"answered {describe_error(last)}" if isinstance(last, gexc.GoogleAPICallError)
                      else f"failed: {describe_error(last)}{'; it timed out' if _is_timeout(last) else ''}")
            return OutcomeUnknown(
                f"{what}: the operation {op}'s state could not be read for {_seconds(unread)} s ({api} {method} "
                f"{answer}); it may have completed. Read the resource to see whether the change landed before "
                "running again.", operation=operation, api=api)
        return OutcomeUnknown(
            f"{what}: the operation {op} had not finished after {_seconds(waited)} s (timeouts.operation_seconds = "
            f"{self.target.timeouts.operation_seconds:g}). It may still complete: check it in the console before "
            "running again.", operation=operation, api=api)

    def discovery(self, api: str, name: str, version: str) -> Any:
        """Google's discovery-based client for ``name`` ``version``, built from the discovery document
        google-api-python-client ships (no fetch at run time), with the target's endpoint and
        credentials. For the REST APIs whose generated Python client lacks a method or a REST
        transport (Serverless VPC Access, Cloud SQL Admin). Requests go out through :meth:`execute`."""
        from googleapiclient import discovery, discovery_cache

        document = discovery_cache.get_static_doc(name, version)
        if document is None:
            raise ConfigError(f"google-api-python-client ships no discovery document {name}.{version}.json; "
                              "reinstall the locked dependencies (bin/bootstrap).")
        return discovery.build_from_document(document, http=self._http(self.target.timeouts.api_seconds),
                                             client_options=self.client_options(api) or None)

    def _http(self, seconds: float) -> Any:
        """An authorized httplib2 Http whose requests time out after ``seconds`` (its default waits
        60 s). A fresh one per attempt: an attempt then gets exactly the time it has left, and never
        goes out on a keep-alive connection the server has closed meanwhile (httplib2 reuses an idle
        connection without checking it, and the request fails with a broken pipe or a reset, which
        for a write would leave its outcome unknown)."""
        import google_auth_httplib2
        import httplib2

        return google_auth_httplib2.AuthorizedHttp(self.credentials, http=httplib2.Http(timeout=seconds))

    def execute(self, api: str, method: str, resource: str, request: Any) -> dict[str, Any]:
        """Run one discovery-client request, recorded and explained like every other call. Reads are
        retried as :meth:`read_retry` says; writes never (a retried create, delete or patch is not
        safe: the lead reconciles first), and sent once within ``api_seconds``."""
        read = request.method == "GET"

        def attempt(timeout: float) -> dict[str, Any]:
            result: dict[str, Any] = request.execute(http=self._http(timeout), num_retries=0)
            return result

        with self.call(api, method, resource, write=not read):
            if read:
                return self.read_retry()(attempt)()
            return attempt(self.target.timeouts.api_seconds)

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
    def call(self, api: str, method: str, resource: str, *, write: bool = False) -> Iterator[None]:
        """Record one API call and translate its failure into an operator's message. ``write``: the
        call changes something, so a failure that does not say it was refused (a 5xx, a timeout, a
        lost connection) is :class:`OutcomeUnknown`."""
        t0 = time.perf_counter()
        outcome = "ok"
        outer = getattr(self._current, "retried", None)
        retried: list[str] = []
        self._current.retried = retried
        outer_what = getattr(self._current, "what", None)
        self._current.what = (api, method, resource, t0)
        try:
            yield
        except GoldenpathError as exc:  # already an operator's message (a nested call's, a refusal)
            outcome = {ConfigError: "no credentials", NotYetUsable: "not yet usable"}.get(type(exc), type(exc).__name__)
            raise
        except Exception as exc:
            outcome = f"{type(exc).__name__}"
            raise self._explain(api, method, resource, exc, time.perf_counter() - t0, write) from exc
        finally:
            self._current.retried = outer
            self._current.what = outer_what
            seconds = time.perf_counter() - t0
            with self._lock:
                self.calls.append(ApiCall(api, method, resource, seconds, outcome, tuple(retried)))
            logger(f"gcp.{api}").log(logging.INFO if write else logging.DEBUG, "%s %s %s: %s in %.3f s%s",
                                     api, method, resource, outcome, seconds,
                                     f" (retried after {', '.join(retried)})" if retried else "")

    def _note_retry(self, exc: Exception) -> None:
        retried = getattr(self._current, "retried", None)
        if retried is not None:
            retried.append(describe_error(exc))
        what = getattr(self._current, "what", None)
        if what is not None:
            api, method, resource, t0 = what
            logger(f"gcp.{api}").debug("%s %s %s: attempt %d failed with %s, %.3f s into the call; retrying", api, method,
                                       resource, len(retried or ()), describe_error(exc), time.perf_counter() - t0)

    def _explain(self, api: str, method: str, resource: str, exc: Exception, seconds: float = 0.0,
                 write: bool = False) -> Exception:
        from google.api_core import exceptions as gexc

        where = self.target.endpoint(api) or f"{api}.googleapis.com"
        twin_hint = (
            " The target is the twin: is it running (`python -m twin status`)?" if self.target.is_twin else ""
        )
        retried = isinstance(exc, gexc.RetryError)
        last = root_cause(exc)
        seconds_text = _seconds(seconds)
        after = (f", still after retrying for {seconds_text} s (timeouts.api_seconds = "
                 f"{self.target.timeouts.api_seconds:g})") if retried else ""
        said = {"api": api, "method": method, "where": where}
        if isinstance(last, (gexc.PermissionDenied, gexc.Forbidden)):
            read_role, write_role = ROLES.get(api, ("a viewer role", "an editor role"))
            return CheckError(
                f"{api} {method} on {resource} was refused: {api_message(last)}. Grant the gate's identity "
                f"({self.identity}) {read_role} (read-only runs) or {write_role} (remediation) on "
                f"project {self.target.project}.", kind="permission", status=describe_error(last), **said)
        if isinstance(last, (gexc.Unauthenticated, gexc.Unauthorized)) or type(last).__name__ == "RefreshError":
            return CheckError(
                f"{api} {method} on {resource}: the credentials were rejected ({getattr(last, 'message', last)}). Refresh them "
                "with `gcloud auth application-default login` and run again.", kind="permission",
                status=describe_error(last) if isinstance(last, gexc.GoogleAPICallError) else "", **said)
        if isinstance(last, gexc.NotFound):
            return CheckError(
                f"{api} {method}: {resource} does not exist ({api_message(last)}). Check the names in "
                f"targets.toml for target {self.target.name!r}.", kind="refused", status=describe_error(last), **said)
        unknown = write and ambiguous(last)
        may_have = (" The request may have been applied: read the resource to see whether the change landed "
                    "before running again.") if unknown else ""
        if isinstance(last, gexc.GoogleAPICallError) and not refused_connection(last):
            message = (f"{api} {method} on {resource} answered {describe_error(last)}: "
                       f"{api_message(last).rstrip('.')}{after}.{may_have}")
            kind = "timed out" if _is_timeout(last) else "refused"
            return OutcomeUnknown(message, api=api, method=method, kind=kind, status=describe_error(last),
                                  where=where) if unknown else \
                CheckError(message, kind=kind, status=describe_error(last), **said)
        if retried or _is_connection_error(last) or refused_connection(last):
            took = f"; it timed out after {seconds_text} s" if _is_timeout(last) else ""
            message = (f"Cannot reach the {api} API at {where} for {method} on {resource} "
                       f"({type(last).__name__}: {str(last)[:200]}{took}{after}).{may_have} Check the network and "
                       f"the endpoint in targets.toml.{twin_hint}")
            kind = "timed out" if _is_timeout(last) else "unreachable"
            return OutcomeUnknown(message, api=api, method=method, kind=kind, where=where) if unknown else \
                CheckError(message, kind=kind, **said)
        return CheckError(f"{api} {method} on {resource} failed unexpectedly: {type(last).__name__}: {last}", **said)


# ---- what is transient, and how a retry is bounded ------------------------------------------------

# The canonical status of an HTTP answer, where the exception does not carry it (REST 504 is
# GatewayTimeout without a gRPC code); as Google's REST front end maps them
# (https://cloud.google.com/apis/design/errors#handling_errors).
STATUS_FOR_HTTP = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                   409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                   500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
# An attempt gets at least this long: a deadline already reached still lets the call be made once.
MIN_ATTEMPT_SECONDS = 0.5


def _seconds(value: float) -> str:
    """A duration as an operator reads it: tenths below 10 s, whole seconds above."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def root_cause(exc: BaseException | None) -> BaseException | None:
    """The error an API or the network really answered: through our CheckError, api_core's
    RetryError (its last attempt's error) and googleapiclient's HttpError (as api_core's class)."""
    from google.api_core import exceptions as gexc

    seen = 0
    while exc is not None and seen < 10:
        seen += 1
        if isinstance(exc, CheckError) and exc.__cause__ is not None:
            exc = exc.__cause__
        elif isinstance(exc, gexc.RetryError) and exc.cause is not None:
            exc = exc.cause
        else:
            break
    return _from_discovery(exc) if isinstance(exc, Exception) else exc


def _is_timeout(exc: BaseException | None) -> bool:
    import requests

    return isinstance(exc, (TimeoutError, requests.exceptions.Timeout)) or type(exc).__name__ in (
        "DeadlineExceeded", "ReadTimeout", "ConnectTimeout")


def _is_connection_error(exc: BaseException | None) -> bool:
    import requests
    from google.auth import exceptions as auth_exceptions

    return isinstance(exc, (OSError, requests.exceptions.RequestException, auth_exceptions.TransportError)) or \
        "Connection" in type(exc).__name__


def transient(exc: BaseException | None) -> bool:
    """Worth trying again: 429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, 504 / gRPC
    DEADLINE_EXCEEDED, and the network failing (refused or reset connections, timeouts). api_core's
    own ``if_transient_error`` leaves out 504/DEADLINE_EXCEEDED and timeouts (``retry_base.py``)."""
    from google.api_core import exceptions as gexc

    exc = _from_discovery(exc) if isinstance(exc, Exception) else exc
    if isinstance(exc, (gexc.TooManyRequests, gexc.InternalServerError, gexc.ServiceUnavailable,
                        gexc.GatewayTimeout)):  # GatewayTimeout: REST 504, and DeadlineExceeded (gRPC)
        return True
    if isinstance(exc, gexc.GoogleAPICallError):
        return False
    return _is_connection_error(exc) or _is_timeout(exc)


# A connection refused says nothing is listening at the endpoint: a server restarting may be back in
# a moment, a wrong or dead endpoint never. So it is retried only this many times (with the read's
# usual backoff: about half a second in all), never for the whole of timeouts.api_seconds, and the
# run says "unreachable" at once instead of after 15 s of retries. Other transient errors (503, 429,
# timeouts, a reset connection) keep the full bounded retry.
REFUSED_RETRIES = 2
_REFUSED_WORDS = ("connection refused", "errno 111", "econnrefused", "failed to connect to all addresses")


def refused_connection(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a connection the endpoint refused (nothing listens):
    ConnectionRefusedError itself, or its words as requests/urllib3 and gRPC carry them in their text."""
    seen: set[int] = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return True
        text = str(cur).lower()
        if any(w in text for w in _REFUSED_WORDS):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def ambiguous(exc: BaseException | None) -> bool:
    """A write that failed so may still have been applied: the server failed or did not answer in
    time (500, 503, 504/DEADLINE_EXCEEDED) or the connection failed or timed out. A 429 or another 4xx
    is a refusal: nothing was applied."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.TooManyRequests):
        return False
    return transient(exc)


def describe_error(exc: BaseException | None) -> str:
    """``503 UNAVAILABLE`` for an API's answer, the exception's type for the network's."""
    from google.api_core import exceptions as gexc

    exc = _from_discovery(exc) if isinstance(exc, Exception) else exc
    if isinstance(exc, gexc.GoogleAPICallError):
        code = exc.code
        status = getattr(exc, "status_name", None) or _rest_status(exc)
        if not status and exc.grpc_status_code is not None:
            status = exc.grpc_status_code.name
        return f"{code} {status or STATUS_FOR_HTTP.get(int(code or 0), '')}".strip()
    return type(exc).__name__


def api_message(exc: Any) -> str:
    """What the API said: a REST error body's ``error.message`` (api_core's own message prefixes the
    method and URL), else the exception's message."""
    response = getattr(exc, "response", None)
    try:
        message = response.json()["error"]["message"]  # type: ignore[union-attr]
    except Exception:
        message = None
    return message if isinstance(message, str) and message else str(getattr(exc, "message", exc))


def _rest_status(exc: Any) -> str:
    """The ``error.status`` of a REST error body (requests.Response), when there is one."""
    response = getattr(exc, "response", None)
    try:
        status = response.json()["error"]["status"]  # type: ignore[union-attr]
    except Exception:
        return ""
    return status if isinstance(status, str) else ""


class AttemptWatch:
    """What the attempts of a poll did: when the current run of failures began, the last error."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failing_since: float | None = None
        self.last_error: BaseException | None = None

    def failed(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = exc

    def succeeded(self) -> None:
        self.failing_since, self.last_error = None, None

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class BoundedRetry:
    """api_core's Retry (``google.api_core.retry.Retry``), with each attempt given as its
    ``timeout`` keyword the time left before the retry's deadline (at most ``attempt_seconds``).

    api_core's own per-attempt timeout (``TimeToDeadlineTimeout``, what a float ``timeout=`` becomes)
    goes back to the whole timeout once less than a second is left, so the last attempt may run a
    full ``api_seconds`` past the deadline; and an operation's poll takes no timeout at all. This
    one never outlives the deadline by more than MIN_ATTEMPT_SECONDS. ``ends_at`` (time.monotonic)
    fixes the deadline in advance (an operation's polls share one); otherwise it is ``timeout``
    from the first attempt. ``watch`` sees every attempt's outcome."""

    def __init__(self, *, predicate: Callable[[Exception], bool], initial: float, maximum: float,
                 multiplier: float, timeout: float | None, ends_at: float | None = None,
                 attempt_seconds: float | None = None, on_error: Callable[[Exception], Any] | None = None,
                 watch: AttemptWatch | None = None, label: str | None = None) -> None:
        self.predicate, self.initial, self.maximum, self.multiplier = predicate, initial, maximum, multiplier
        self.timeout, self.ends_at, self.attempt_seconds = timeout, ends_at, attempt_seconds
        self.on_error, self.watch = on_error, watch
        # label: log every attempt under this name (an operation's polls, which no call record
        # shows one by one); a read's retries are logged by its session's on_error instead
        self.label = label

    def __call__(self, func: Callable[..., Any],
                 on_error: Callable[[Exception], Any] | None = None) -> Callable[..., Any]:
        from google.api_core import retry

        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            now = time.monotonic()
            ends_at = min(t for t in (self.ends_at, None if self.timeout is None else now + self.timeout)
                          if t is not None) if (self.ends_at, self.timeout) != (None, None) else now
            watch = self.watch
            attempts = [0]

            def attempt() -> Any:
                left = ends_at - time.monotonic()
                if self.attempt_seconds is not None:
                    left = min(left, self.attempt_seconds)
                attempts[0] += 1
                t0 = time.perf_counter()
                try:
                    result = func(*args, **{**kwargs, "timeout": max(MIN_ATTEMPT_SECONDS, left)})
                except Exception as exc:
                    if self.label:
                        RETRY_LOG.debug("%s: attempt %d failed after %.3f s: %s (%s)", self.label, attempts[0],
                                        time.perf_counter() - t0, describe_error(exc),
                                        "retried while time is left" if self.predicate(exc) else "not retried")
                    if watch is not None:
                        watch.failed(exc)
                    raise
                if self.label:
                    RETRY_LOG.debug("%s: attempt %d ok in %.3f s", self.label, attempts[0], time.perf_counter() - t0)
                if watch is not None:
                    watch.succeeded()
                return result

            refusals = [0]

            def predicate(exc: Exception) -> bool:
                # A refused connection: a short bounded retry only (REFUSED_RETRIES).
                if refused_connection(exc):
                    refusals[0] += 1
                    return refusals[0] <= REFUSED_RETRIES and self.predicate(exc)
                return self.predicate(exc)

            policy = retry.Retry(predicate=predicate, initial=self.initial, maximum=self.maximum,
                                 multiplier=self.multiplier, timeout=max(0.0, ends_at - time.monotonic()),
                                 on_error=self.on_error or on_error)
            return policy(attempt)()

        return wrapped


def _from_discovery(exc: Exception) -> Exception:
    """The discovery-based client raises googleapiclient's HttpError: map it to api_core's classes
    so it is explained like every other API's error (the REST body's status kept as status_name)."""
    if type(exc).__name__ != "HttpError" or not hasattr(exc, "status_code"):
        return exc
    import json

    from google.api_core import exceptions as gexc

    mapped = gexc.from_http_status(exc.status_code, getattr(exc, "reason", "") or str(exc))
    try:
        status = json.loads(getattr(exc, "content", b"") or b"{}").get("error", {}).get("status", "")
    except (ValueError, AttributeError):
        status = ""
    mapped.status_name = status if isinstance(status, str) else ""
    return mapped
