"""The error hierarchy and the exit codes it maps to.

Every error a user can hit is one of these, with a message that says what happened, where,
and what to do. The command line maps them to exit codes in one place (`exit_code_for`).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INVALID = 1  # the result failed validation, the guard stopped it, or another runner holds it
    CONFIG = 2  # config or usage error
    WAREHOUSE = 3  # cannot connect, bad credentials, permission denied, SQL error, timeout
    DELIVERY = 4  # some calls were not acknowledged


class TraitsError(Exception):
    """Base of every error sql-traits reports to a user."""

    exit_code: ExitCode = ExitCode.INVALID
    #: terminal errors are not worth retrying; transient ones may pass on their own
    transient: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}: {self.hint}"
        return self.message


class ConfigError(TraitsError):
    """The configuration or the command line is wrong."""

    exit_code = ExitCode.CONFIG


class ValidationError(TraitsError):
    """The trait's result broke a validation rule; nothing was sent."""

    exit_code = ExitCode.INVALID


class GuardError(TraitsError):
    """The blast-radius guard stopped the run before sending."""

    exit_code = ExitCode.INVALID


class LockedError(TraitsError):
    """Another runner holds this trait."""

    exit_code = ExitCode.INVALID


class WarehouseError(TraitsError):
    """The warehouse refused, failed or could not be reached."""

    exit_code = ExitCode.WAREHOUSE


class DeliveryError(TraitsError):
    """A destination did not acknowledge some calls."""

    exit_code = ExitCode.DELIVERY


class StateError(TraitsError):
    """The state store could not be read or written."""

    exit_code = ExitCode.CONFIG


def prefixed(prefix: str, message: str) -> str:
    """``message`` led by ``prefix`` (e.g. "destination seg"), unless it already names it."""
    return message if message.startswith(prefix) else f"{prefix}: {message}"


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, TraitsError):
        return error.exit_code
    return ExitCode.CONFIG
