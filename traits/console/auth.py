"""Who may read the console: credentials from the environment, and where it is bound.

- ``TRAITS_CONSOLE_TOKEN``: requests carry ``Authorization: Bearer <token>``;
- ``TRAITS_CONSOLE_USER`` and ``TRAITS_CONSOLE_PASSWORD``: HTTP Basic (a browser asks for them).

Either one (or both) set: every console page and ``/api`` answer needs them, on any address.
None set: a console bound to a loopback address is open (only this machine reaches it); bound
to any other address (``0.0.0.0`` in the Docker image) it is off, and answers 403 saying how
to turn it on. ``/healthz`` and ``/metrics`` never need credentials (probes and Prometheus).
Comparisons are constant-time; the values are registered with the redactor.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from traits.config.env import redact

TOKEN_VAR = "TRAITS_CONSOLE_TOKEN"  # noqa: S105 - the name of a variable
USER_VAR = "TRAITS_CONSOLE_USER"
PASSWORD_VAR = "TRAITS_CONSOLE_PASSWORD"  # noqa: S105 - the name of a variable
HOW_TO_ENABLE = (
    f"the console is off: it is bound to a non-loopback address and no credentials are set; "
    f"set {TOKEN_VAR} (bearer token) or {USER_VAR} and {PASSWORD_VAR} (Basic) and restart"
)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    token: str | None
    user: str | None
    password: str | None
    loopback: bool

    @classmethod
    def from_env(cls, host: str, environ: Mapping[str, str] | None = None) -> Access:
        env = os.environ if environ is None else environ
        token = env.get(TOKEN_VAR) or None
        user, password = env.get(USER_VAR) or None, env.get(PASSWORD_VAR) or None
        for secret in (token, password):
            if secret:
                redact.add(secret)
        return cls(token, user if password else None, password if user else None, is_loopback(host))

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or (self.user and self.password))

    @property
    def enabled(self) -> bool:
        """Whether the console is served at all."""
        return self.has_credentials or self.loopback

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may read the console."""
        if not self.has_credentials:
            return self.loopback
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token:
            return hmac.compare_digest(value.encode(), self.token.encode())
        if scheme.lower() == "basic" and self.user and self.password:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            same_user = hmac.compare_digest(user.encode(), self.user.encode())
            same_password = hmac.compare_digest(password.encode(), self.password.encode())
            return same_user and same_password
        return False

    def describe(self) -> str:
        if self.token and self.password:
            return "bearer token or Basic credentials"
        if self.token:
            return "bearer token"
        if self.password:
            return "Basic credentials"
        return "open on loopback" if self.loopback else "off"
