"""What every command shares: the config directory, loading config and state, name checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traits.config import Config, config_directory, load_config
from traits.errors import ConfigError
from traits.state import StateStore, open_state


@dataclass
class Context:
    config_dir: Path
    debug: bool = False

    def config(self) -> Config:
        return load_config(self.config_dir)

    def state(self, config: Config) -> StateStore:
        return open_state(config)


def check_trait(config: Config, name: str) -> None:
    if name not in config.traits:
        known = ", ".join(sorted(config.traits)) or "none defined"
        raise ConfigError(f"unknown trait {name!r} (traits: {known})", hint="run `traits status` to list them")


def make_context(config: str | None, debug: bool) -> Context:
    return Context(config_directory(config), debug)
