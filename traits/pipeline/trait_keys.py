"""Trait keys: two traits must not write the same key to one profile, and ids are not traits.

A trait's keys are its result's trait columns, known only once its SQL has run: each run
records them in the state store (``trait-keys/NAME``), so ``traits validate`` checks them
later without running any SQL, and each run checks its own columns before anything is sent.

- Two traits of the same ``kind`` that send the same key to the same destination collide:
  the profile ends with whichever was sent last. That is an error naming both traits and the
  key, unless one of them sets ``allow_shared_keys: true``.
- A key that is an identifier (``user_id``, ``userId``, ``email``, ``anonymous_id``,
  ``group_id``, ``id`` …) is a warning: a collector merges or overwrites identities by it. A
  key that is one of Segment's reserved traits (Identify / Group spec) is a warning when the
  trait sends to a Segment destination: Segment's destinations map those to fields of their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from traits.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from traits.config.models import Config
    from traits.state.base import StateStore

log = logging.getLogger("traits.run")

KEYS_PREFIX = "trait-keys/"
#: identifiers, compared without case and underscores: a trait by that name is an id
IDENTIFIERS = ("userid", "email", "anonymousid", "groupid", "id", "previousid")
#: Segment's reserved traits (Spec: Identify, Spec: Group), which its destinations map specially
SEGMENT_USER_TRAITS = (
    "address", "age", "avatar", "birthday", "company", "createdAt", "description", "email", "firstName", "gender", "id",
    "lastName", "name", "phone", "title", "username", "website",
)
SEGMENT_GROUP_TRAITS = ("address", "avatar", "createdAt", "description", "email", "employees", "id", "industry", "name", "phone", "plan", "website")


@dataclass(frozen=True)
class Collision:
    key: str
    first: str
    second: str
    destinations: tuple[str, ...]

    def __str__(self) -> str:
        where = ", ".join(self.destinations)
        return (
            f"traits {self.first} and {self.second} both write the key {self.key!r} to {where}: "
            "the profile keeps whichever was sent last"
        )


def stored_keys(state: StateStore, name: str) -> list[str] | None:
    value: Any = state.get_value(KEYS_PREFIX + name)
    if isinstance(value, dict) and isinstance(value.get("keys"), list):
        return [str(k) for k in value["keys"]]
    return None


def known_keys(config: Config, state: StateStore) -> dict[str, list[str]]:
    """Each trait's keys as its last run recorded them (traits never run are left out)."""
    found = {}
    for name in config.traits:
        keys = stored_keys(state, name)
        if keys is not None:
            found[name] = keys
    return found


def collisions(config: Config, keys: dict[str, list[str]]) -> list[Collision]:
    """Every pair of traits (same kind, a shared destination) writing the same key, not allowed."""
    found = []
    names = sorted(keys)
    for i, first in enumerate(names):
        a = config.traits.get(first)
        if a is None:
            continue
        for second in names[i + 1 :]:
            b = config.traits.get(second)
            if b is None or a.kind != b.kind or a.allow_shared_keys or b.allow_shared_keys:
                continue
            shared = tuple(d for d in a.destinations if d in b.destinations)
            if not shared:
                continue
            for key in sorted(set(keys[first]) & set(keys[second])):
                found.append(Collision(key, first, second, shared))
    return found


def reserved_warnings(config: Config, name: str, keys: list[str]) -> list[str]:
    trait = config.traits[name]
    to_segment = any(config.destinations[d].type == "segment" for d in trait.destinations if d in config.destinations)
    reserved = SEGMENT_USER_TRAITS if trait.kind == "user" else SEGMENT_GROUP_TRAITS
    warnings = []
    for key in keys:
        if key.lower().replace("_", "") in IDENTIFIERS:
            warnings.append(
                f"trait {name}: the key {key!r} is an identifier: a collector uses it to identify or merge profiles, "
                "so sending it as a trait can overwrite or merge identities; rename the column unless that is the intent"
            )
        elif to_segment and key in reserved:
            spec = "Identify" if trait.kind == "user" else "Group"
            warnings.append(
                f"trait {name}: the key {key!r} is a reserved trait of Segment's {spec} spec: destinations map it to a field "
                "of their own, so its values must have the spec's meaning; rename the column if they do not"
            )
    return warnings


def check_stored_keys(config: Config, state: StateStore) -> list[str]:
    """For ``traits validate``: raise on a collision among the keys runs recorded; return the warnings."""
    known = known_keys(config, state)
    found = collisions(config, known)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(
            f"{found[0]}{more}",
            hint="rename the column in one of them, or set allow_shared_keys: true on one to accept it",
        )
    return [w for name, keys in known.items() for w in reserved_warnings(config, name, keys)]


def check_keys_at_run(config: Config, state: StateStore, name: str, keys: list[str], *, persist: bool) -> list[str]:
    """Stop a run whose keys collide with another trait's; record its keys; return the warnings."""
    known = known_keys(config, state)
    known[name] = keys
    found = [c for c in collisions(config, known) if name in (c.first, c.second)]
    if persist and stored_keys(state, name) != keys:  # recorded even when they collide, so validate names it too
        state.set_value(KEYS_PREFIX + name, {"kind": config.traits[name].kind, "keys": keys})
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ValidationError(
            f"trait {name}: {first}{more}; nothing was sent",
            hint="rename the column in one of them, or set allow_shared_keys: true on one to accept it",
        )
    warnings = reserved_warnings(config, name, keys)
    for warning in warnings:
        log.warning("%s", warning, extra={"trait": name})
    return warnings


__all__ = ["Collision", "check_keys_at_run", "check_stored_keys", "collisions", "known_keys", "reserved_warnings", "stored_keys"]
