"""Errors that reach an operator. Each message is one paragraph: what is wrong, then what to do."""

from __future__ import annotations

from typing import Any, Iterator


class GoldenpathError(Exception):
    """Base class: anything with a message written for the operator."""


class ConfigError(GoldenpathError):
    """targets.toml (or the command line) is wrong; nothing was contacted or changed."""


class CheckError(GoldenpathError):
    """A check could not be made (API or network error): not a verdict on the infrastructure.

    Where the session explains an API's failure (goldenpath/gcp/session.py) it says what failed, so
    that a failed observation source can be named once in the run's summary: ``api`` and ``method``
    (``sqladmin``, ``instances.get``), ``kind`` (``unreachable``, ``refused``, ``timed out``,
    ``permission``; "" when not known), ``status`` (``403 PERMISSION_DENIED``; "" when the API did not
    answer) and ``where`` (the endpoint)."""

    def __init__(self, message: str, *, api: str = "", method: str = "", kind: str = "", status: str = "",
                 where: str = "") -> None:
        super().__init__(message)
        self.api, self.method, self.kind, self.status, self.where = api, method, kind, status, where


class OutcomeUnknown(CheckError):
    """A write was sent, and whether it took effect is not known: the call itself failed in a way
    that does not say it was refused (503, 504/DEADLINE_EXCEEDED, a timeout, a lost connection), or
    its long-running operation's state could not be read, or the operation had not finished in time.
    The caller must re-read the resource (reconcile) before deciding it was or was not applied; a
    refusal (4xx, an operation that finished with an error) is a plain CheckError instead."""

    def __init__(self, message: str, *, operation: str = "", api: str = "", method: str = "", kind: str = "",
                 status: str = "", where: str = "") -> None:
        # api: the API's short name, as in GcpSession (run, vpcaccess, sqladmin, …)
        super().__init__(message, api=api, method=method, kind=kind, status=status, where=where)
        self.operation = operation  # the long-running operation's name, "" when none was returned


class RemediationRefused(GoldenpathError):
    """A safety rule forbids this remediation; nothing was changed."""


class NotYetUsable(GoldenpathError):
    """The target refused a change only because something it depends on is not usable yet (a new
    log-based metric still propagating): not a failure, nothing to roll back; a later run applies it."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts  # how many times the target refused it


# HTTP answers after which a request may be sent again (AIP-194: UNAVAILABLE always; the others for
# requests that are safe to repeat, which the caller decides): 429, 500, 502, 503, 504.
TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})
TRANSIENT_GRPC = frozenset({"RESOURCE_EXHAUSTED", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"})


def _chain(exc: BaseException) -> Iterator[tuple[BaseException, Any, Any]]:
    """``exc`` and what caused it, each with its status as the client libraries carry it: api_core's
    errors ``code`` (an HTTP status), grpc's ``code()`` (a StatusCode), googleapiclient's
    ``status_code``. Read without importing any client library."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        code = getattr(cur, "code", None)
        if callable(code):
            try:
                code = code()
            except Exception:
                code = None
        yield cur, code, getattr(cur, "status_code", None)
        cur = cur.__cause__ or cur.__context__


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is an error worth trying again: a transient HTTP or gRPC
    status, a timeout or a lost connection."""
    for cur, code, http in _chain(exc):
        if (isinstance(code, int) and code in TRANSIENT_HTTP) or getattr(code, "name", None) in TRANSIENT_GRPC \
                or http in TRANSIENT_HTTP:
            return True
        if isinstance(cur, (TimeoutError, ConnectionError)) or any(
                w in type(cur).__name__ for w in ("Timeout", "Connection", "RetryError", "OutcomeUnknown")):
            return True
    return False


def unprocessed(exc: BaseException) -> bool:
    """Whether ``exc`` says the request was refused before it was processed, so that even a request
    that is not idempotent may be sent again: 429 RESOURCE_EXHAUSTED and 503 UNAVAILABLE (AIP-194
    retries UNAVAILABLE; Google's own non-idempotent retry predicate, Workflows'
    ``http.default_retry_predicate_non_idempotent``, retries 429 and 503). A timeout, a 504 or a 500
    says nothing of the kind: the request may have been carried out."""
    return any(code in (429, 503) or getattr(code, "name", None) in ("RESOURCE_EXHAUSTED", "UNAVAILABLE")
               or http in (429, 503) for _, code, http in _chain(exc))
