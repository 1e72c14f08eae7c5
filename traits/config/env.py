"""``${env:NAME}`` and ``${env:NAME:-default}`` interpolation, and the set of secret values.

Every value taken from the environment is registered with the redactor, so it can be
scrubbed from any message before it reaches a log, an error, history or ``--json`` output.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from traits.config.locations import LocatedData, NodePath
from traits.errors import ConfigError

_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MALFORMED = re.compile(r"\$\{env:[^}]*\}?")


class Redactor:
    """Replaces known secret values with ``***`` in any text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) >= 4:
            with self._lock:
                self._secrets.add(value)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text


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
        redact.add(value)
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
