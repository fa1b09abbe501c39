"""Errors that reach an operator. Each message is one paragraph: what is wrong, then what to do."""

from __future__ import annotations


class GoldenpathError(Exception):
    """Base class: anything with a message written for the operator."""


class ConfigError(GoldenpathError):
    """targets.toml (or the command line) is wrong; nothing was contacted or changed."""


class CheckError(GoldenpathError):
    """A check could not be made (API or network error): not a verdict on the infrastructure."""


class RemediationRefused(GoldenpathError):
    """A safety rule forbids this remediation; nothing was changed."""
