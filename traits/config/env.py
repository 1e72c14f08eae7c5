"""``${env:NAME}`` and ``${env:NAME:-default}`` interpolation, and the set of secret values.

The redactor knows the secret values (the config's secret fields, not every value taken from
the environment) and scrubs them, in every encoding, from logs, errors, history and output.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from traits.config.locations import LocatedData, NodePath
from traits.errors import ConfigError

_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MALFORMED = re.compile(r"\$\{env:[^}]*\}?")


#: secrets shorter than this cannot be told apart from ordinary text, so they are not scrubbed
MIN_SECRET_CHARS = 4


def encodings(secret: str) -> set[str]:
    """Every form a secret can take in text we write: raw, JSON- and repr-escaped, URL-encoded, Basic."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        # HTTP Basic with the secret as user (a Segment write key) or as password
        base64.b64encode(f"{secret}:".encode()).decode(),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


class Redactor:
    """Replaces known secret values, in each of their encodings, with ``***``.

    Only secret fields are secrets: the config's ``SecretStr`` values (write keys, passwords,
    webhook secrets and headers, tokens, a DSN's password) and the state store's credentials,
    registered once they are known (``register_secrets``). Structured output is redacted value
    by value before it is serialised (``redact.data``), so ``--json`` and JSON logs always parse.
    """

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: list[str] = []

    def add(self, secret: str) -> None:
        """Register a secret; of a URL or a libpq DSN that holds a password, the password is the secret."""
        credentials = _credentials(secret)
        forms = set() if credentials else encodings(secret)
        for user, password in credentials:
            forms |= encodings(password)
            forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
        with self._lock:
            self._forms |= {f for f in forms if len(f) >= MIN_SECRET_CHARS}
            self._ordered = sorted(self._forms, key=len, reverse=True)

    def clear(self) -> None:
        with self._lock:
            self._forms.clear()
            self._ordered = []

    def __call__(self, text: str) -> str:
        for form in self._ordered:
            if form in text:
                text = text.replace(form, "***")
        return text

    def data(self, value: Any) -> Any:
        """``value`` with every string in it redacted: dicts, lists and tuples are walked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def _credentials(secret: str) -> list[tuple[str, str]]:
    """(user, password) pairs inside a URL (``scheme://user:pass@host``) or a libpq ``password=`` DSN."""
    found: list[tuple[str, str]] = []
    if "://" in secret:
        try:
            parts = urlsplit(secret)
            if parts.password:
                found.append((unquote(parts.username or ""), unquote(parts.password)))
                found.append((parts.username or "", parts.password))
        except ValueError:
            pass
    for match in re.finditer(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", secret):
        value = match.group(1)
        found.append(("", value.strip("'")))
    return found


def register_secrets(model: Any) -> None:
    """Register every ``SecretStr`` value found in a config model tree."""
    from pydantic import BaseModel, SecretStr

    if isinstance(model, SecretStr):
        redact.add(model.get_secret_value())
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            register_secrets(getattr(model, name))
    elif isinstance(model, dict):
        for item in model.values():
            register_secrets(item)
    elif isinstance(model, list | tuple):
        for item in model:
            register_secrets(item)


redact = Redactor()


def interpolate(located: LocatedData, sections: tuple[str, ...], environ: Mapping[str, str] | None = None) -> None:
    """Replace env references in every string under ``sections``, in place."""
    env = os.environ if environ is None else environ
    for section in sections:
        if section in located.data:
            located.data[section] = _walk(located.data[section], (section,), located, env)


def _walk(node: Any, path: NodePath, located: LocatedData, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*path, k), located, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, (*path, i), located, env) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _substitute(node, path, located, env)
    return node


def _substitute(text: str, path: NodePath, located: LocatedData, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                where = located.where(path)
                dotted = ".".join(str(p) for p in path)
                raise ConfigError(
                    f"{where}: {dotted}: environment variable {name} is not set",
                    hint=f"export {name}=… or write ${{env:{name}:-default}}",
                )
            value = default
        return value

    result = _REFERENCE.sub(replace, text)
    leftover = _MALFORMED.search(_REFERENCE.sub("", text))
    if leftover:
        where = located.where(path)
        raise ConfigError(
            f"{where}: malformed reference {leftover.group(0)!r}",
            hint="write ${env:NAME} or ${env:NAME:-default}",
        )
    return result
