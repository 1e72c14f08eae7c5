"""Configuration: YAML files with locations, env interpolation, pydantic models."""

from traits.config.loader import config_directory, load_config
from traits.config.models import Config, Settings, Trait

__all__ = ["Config", "Settings", "Trait", "config_directory", "load_config"]
