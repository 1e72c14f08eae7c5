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
    STATE = 5  # the state store could not be reached, read or written; nothing was committed


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
    """The state store could not be reached, read or written; nothing was committed."""

    exit_code = ExitCode.STATE
    transient = True


class LockLostError(StateError):
    """The run's lock in the state store was lost while it ran: it stopped, and committed nothing."""


def prefixed(prefix: str, message: str) -> str:
    """``message`` led by ``prefix`` (e.g. "destination seg"), unless it already names it."""
    return message if message.startswith(prefix) else f"{prefix}: {message}"


#: the exit code of a finished run, by its status (a run that raised maps through its error)
_STATUS_CODES = {"ok": ExitCode.OK, "partial": ExitCode.DELIVERY, "failed": ExitCode.DELIVERY, "invalid": ExitCode.INVALID, "guarded": ExitCode.INVALID}

#: the table ``traits --help`` and the README show
EXIT_CODES_HELP = (
    "0 ok · 1 invalid result, guarded, or trait busy · 2 config or usage error · 3 warehouse error · "
    "4 delivery failed (some calls not acknowledged) · 5 state store error (nothing committed; the run resumes next time)"
)


def exit_code_for(error: BaseException) -> ExitCode:
    """The one place an error becomes an exit code."""
    if isinstance(error, TraitsError):
        return error.exit_code
    # an unexpected error is a bug: reported as a failed run (1), never as success
    return ExitCode.INVALID


def exit_code_for_status(status: str) -> ExitCode:
    """The exit code of a run that ended with ``status`` (``partial`` and ``failed`` delivery: 4)."""
    return _STATUS_CODES.get(status, ExitCode.INVALID)
