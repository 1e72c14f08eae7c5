"""The state store: local directory (default) or Postgres, behind one interface."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from traits.config.env import redact
from traits.state.base import AckLog, StateStore
from traits.state.records import DestinationCounts, RunRecord

if TYPE_CHECKING:
    from traits.config.models import Config


def open_state(config: Config) -> StateStore:
    """The store ``settings.state`` names (``TRAITS_STATE`` overrides it)."""
    location = os.environ.get("TRAITS_STATE") or config.settings.state
    if location.startswith(("postgresql://", "postgres://")):
        redact.add(location)  # its password is a secret
        from traits.state.postgres import PostgresStateStore

        return PostgresStateStore(location, work_dir=config.resolve(".traits"))
    from traits.state.local import LocalStateStore

    return LocalStateStore(Path(config.resolve(location)))


__all__ = ["AckLog", "DestinationCounts", "RunRecord", "StateStore", "open_state"]
