"""Errors that reach an operator. Each message is one paragraph: what is wrong, then what to do."""

from __future__ import annotations


class GoldenpathError(Exception):
    """Base class: anything with a message written for the operator."""


class ConfigError(GoldenpathError):
    """targets.toml (or the command line) is wrong; nothing was contacted or changed."""


class CheckError(GoldenpathError):
    """A check could not be made (API or network error): not a verdict on the infrastructure."""


class OutcomeUnknown(CheckError):
    """A write was sent, and whether it took effect is not known: the call itself failed in a way
    that does not say it was refused (503, 504/DEADLINE_EXCEEDED, a timeout, a lost connection), or
    its long-running operation's state could not be read, or the operation had not finished in time.
    The caller must re-read the resource (reconcile) before deciding it was or was not applied; a
    refusal (4xx, an operation that finished with an error) is a plain CheckError instead."""

    def __init__(self, message: str, *, operation: str = "", api: str = "") -> None:
        super().__init__(message)
        self.operation = operation  # the long-running operation's name, "" when none was returned
        self.api = api              # the API's short name, as in GcpSession (run, vpcaccess, sqladmin, …)


class RemediationRefused(GoldenpathError):
    """A safety rule forbids this remediation; nothing was changed."""


class NotYetUsable(GoldenpathError):
    """The target refused a change only because something it depends on is not usable yet (a new
    log-based metric still propagating): not a failure, nothing to roll back; a later run applies it."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts  # how many times the target refused it
