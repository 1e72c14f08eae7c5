"""dbt-like selectors over traits, the one selection code every command uses.

The syntax is dbt's node selection, applied to traits:

- a criterion is a trait name or a glob (``zendesk_*``), or ``method:value`` with the methods
  ``tag:``, ``source:``, ``destination:``, ``model:`` (the dbt model a trait reads) and
  ``name:``; values may be globs too (``tag:after_*``);
- **space** between criteria (or a repeated ``--select``) is a **union**: ``tag:a tag:b`` is
  the traits tagged a or b;
- **comma** (no spaces) is an **intersection**: ``tag:nightly,source:wh`` is the traits tagged
  nightly *and* reading source wh — as in dbt, so a dbt user never gets more than dbt would select;
- ``--exclude`` takes the same syntax; what it selects is removed.

Methods and globs select enabled traits only; a plain exact name selects that trait even when
it is disabled (as ``traits run NAME`` always has). dbt's graph operators (``+``, ``@``) have no
meaning for traits and are errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from traits.errors import ConfigError

if TYPE_CHECKING:
    from traits.config.models import Config, Trait

METHODS = ("name", "tag", "source", "destination", "model")
_GLOB = set("*?[")


def _values(method: str, name: str, trait: Trait) -> list[str]:
    if method == "name":
        return [name]
    if method == "tag":
        return list(trait.tags)
    if method == "source":
        return [trait.source]
    if method == "destination":
        return list(trait.destinations)
    return [trait.model] if trait.model else []


def _parse(criterion: str) -> tuple[str, str]:
    if not criterion or criterion.startswith(("+", "@")) or criterion.endswith("+"):
        raise ConfigError(f"selector {criterion!r}: graph operators (+, @) do not apply to traits",
                          hint="select by name, glob, tag:, source:, destination: or model:")
    method, sep, value = criterion.partition(":")
    if not sep:
        return "name", criterion
    if method not in METHODS or not value:
        raise ConfigError(f"selector {criterion!r}: unknown selector method {method!r}", hint=f"use one of {', '.join(m + ':' for m in METHODS)}")
    return method, value


def _matches(config: Config, criterion: str) -> set[str]:
    method, value = _parse(criterion)
    exact_name = method == "name" and not (_GLOB & set(value))
    if exact_name:
        if value not in config.traits:
            known = ", ".join(sorted(config.traits)) or "none defined"
            raise ConfigError(f"unknown trait {value!r} (traits: {known})", hint="run `traits ls` to list them")
        return {value}
    return {
        name for name, trait in config.traits.items()
        if trait.enabled and any(fnmatchcase(v, value) for v in _values(method, name, trait))
    }


def _expression(config: Config, expression: str) -> set[str]:
    """One space-free term: the intersection of its comma-separated criteria."""
    parts = expression.split(",")
    found = _matches(config, parts[0])
    for part in parts[1:]:
        found &= _matches(config, part)
    return found


def terms(arguments: Iterable[str]) -> list[str]:
    """The union terms of ``--select`` arguments: each argument split on whitespace."""
    return [term for argument in arguments for term in argument.split()]


def select(config: Config, selectors: Sequence[str], exclude: Sequence[str] = (), *, allow_empty: bool = False) -> list[str]:
    """The traits ``selectors`` select less those ``exclude`` selects, in config order.

    No selectors means every enabled trait. Selecting nothing is an error unless
    ``allow_empty``: a job step whose selector has a typo must not succeed quietly.
    """
    chosen: set[str] = set()
    union = terms(selectors)
    if union:
        for term in union:
            chosen |= _expression(config, term)
    else:
        chosen = {name for name, trait in config.traits.items() if trait.enabled}
    for term in terms(exclude):
        chosen -= _expression(config, term)
    if not chosen and not allow_empty:
        shown = " ".join(union) or "every enabled trait"
        raise ConfigError(
            f"no trait matches --select {shown!r}" + (f" --exclude {' '.join(terms(exclude))!r}" if exclude else ""),
            hint="run `traits ls` to see each trait's tags, source and destinations",
        )
    return [name for name in config.traits if name in chosen]
