"""Load a config directory: merge its YAML files, interpolate env, validate, cross-check."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from traits.config.env import interpolate, register_secrets
from traits.config.locations import LocatedData, NodePath, load_yaml_file
from traits.config.models import WAREHOUSE_DIFF_ENGINES, Config, check_names
from traits.errors import ConfigError

SECTIONS = ("sources", "destinations", "traits", "settings", "alerts")
_MAPPED_SECTIONS = ("sources", "destinations", "traits")


def config_directory(option: str | Path | None = None) -> Path:
    """The config directory: ``--config``, else ``TRAITS_CONFIG``, else ``./config``."""
    chosen = option or os.environ.get("TRAITS_CONFIG") or "config"
    return Path(chosen).expanduser().resolve()


def load_config(directory: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    root = config_directory(directory)
    if not root.is_dir():
        raise ConfigError(
            f"config directory {root} does not exist",
            hint="pass --config DIR or set TRAITS_CONFIG to a directory of *.yml files",
        )
    files = sorted([*root.glob("*.yml"), *root.glob("*.yaml")])
    if not files:
        raise ConfigError(f"{root}: no *.yml or *.yaml files", hint="write the config there, see the README")
    merged = _merge([load_yaml_file(f) for f in files])
    interpolate(merged, ("sources", "destinations", "settings", "alerts"), environ)
    for path, problem in check_names(merged.data):
        raise ConfigError(f"{merged.where(path)}: {problem}")
    try:
        config = Config.model_validate({**merged.data, "directory": root})
    except pydantic.ValidationError as e:
        raise _located_error(e, merged) from None
    register_secrets(config)
    _cross_check(config, merged)
    return config


def _merge(parts: list[LocatedData]) -> LocatedData:
    merged = LocatedData()
    for part in parts:
        for section, value in part.data.items():
            here = part.locations[(section,)]
            if section not in SECTIONS:
                raise ConfigError(
                    f"{here}: unknown section {section!r}",
                    hint=f"the sections are {', '.join(SECTIONS)}",
                )
            if section in _MAPPED_SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise ConfigError(f"{here}: {section} must be a mapping of names to definitions")
                target = merged.data.setdefault(section, {})
                for name, definition in value.items():
                    if name in target:
                        first = merged.locations[(section, name)]
                        raise ConfigError(
                            f"{part.locations[(section, name)]}: {section}.{name} is defined twice (first at {first})",
                            hint="rename one of them",
                        )
                    target[name] = definition
            else:
                if section in merged.data:
                    raise ConfigError(f"{here}: section {section} is defined twice (first at {merged.locations[(section,)]})")
                merged.data[section] = value
        for path, location in part.locations.items():
            merged.locations.setdefault(path, location)
        for path, location in part.value_locations.items():
            merged.value_locations.setdefault(path, location)
    return merged


def _located_error(error: pydantic.ValidationError, located: LocatedData) -> ConfigError:
    first = error.errors(include_url=False, include_input=False)[0]
    path = _data_path(first["loc"], located.data)
    if first["type"] in ("union_tag_invalid",):
        path = (*path, "type")
    about_value = first["type"] not in ("missing", "extra_forbidden")
    where = (located.where_value(path) if about_value else located.where(path)) or located.where(path[:1])
    dotted = ".".join(str(p) for p in (path[:-1] if first["type"] == "union_tag_invalid" else path)) or "config"
    message = _message(first, path)
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(f"{where or 'config'}: {dotted}: {message}{suffix}")


def _data_path(loc: tuple[int | str, ...], data: dict[str, Any]) -> NodePath:
    """Drop the discriminator tags pydantic adds to ``loc`` (e.g. ``postgres``) to get the YAML path."""
    path: list[str | int] = []
    node: Any = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            path.append(part)
            node = node[part] if isinstance(node, dict) else node[int(part)]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_tag(part, node):
            path.append(part)  # a missing or unknown key
            node = None
    return tuple(path)


def _is_tag(part: str, node: dict[str, Any]) -> bool:
    return node.get("type") == part or part in ("function-after", "function-before")


def _message(error: Any, path: NodePath) -> str:
    kind = error["type"]
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        return f"unknown key {key!r}: remove it or check its spelling"
    if kind == "missing":
        return f"required key {key!r} is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown type {ctx.get('tag', '')!r}: use one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return "missing key 'type'"
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


def _cross_check(config: Config, located: LocatedData) -> None:
    for name, trait in config.traits.items():
        if trait.source not in config.sources:
            known = ", ".join(sorted(config.sources)) or "none defined"
            raise ConfigError(
                f"{located.where_value(('traits', name, 'source'))}: traits.{name}.source: unknown source {trait.source!r} (sources: {known})"
            )
        for index, destination in enumerate(trait.destinations):
            if destination not in config.destinations:
                known = ", ".join(sorted(config.destinations)) or "none defined"
                raise ConfigError(
                    f"{located.where(('traits', name, 'destinations', index))}: traits.{name}.destinations: "
                    f"unknown destination {destination!r} (destinations: {known})"
                )
        if len(set(trait.destinations)) != len(trait.destinations):
            raise ConfigError(f"{located.where(('traits', name, 'destinations'))}: traits.{name}.destinations lists a destination twice")
        if trait.sql_file is not None and not config.resolve(trait.sql_file).is_file():
            raise ConfigError(
                f"{located.where_value(('traits', name, 'sql_file'))}: traits.{name}.sql_file: {config.resolve(trait.sql_file)} does not exist"
            )
        if trait.sql is not None and not trait.sql.strip():
            raise ConfigError(f"{located.where(('traits', name, 'sql'))}: traits.{name}.sql is empty")
        if trait.model is not None:
            _check_model(config, located, name)
        kind = config.sources[trait.source].type
        if trait.diff == "warehouse" and kind not in WAREHOUSE_DIFF_ENGINES:
            raise ConfigError(
                f"{located.where_value(('traits', name, 'diff'))}: traits.{name}.diff: warehouse is not available for "
                f"source {trait.source!r} (type {kind})",
                hint=f"diff: warehouse works on {', '.join(WAREHOUSE_DIFF_ENGINES)}; use diff: local",
            )


def _check_model(config: Config, located: LocatedData, name: str) -> None:
    """The trait's dbt model must be in the manifest; the error points at the trait's ``model:``."""
    from traits.config.dbt import find_relation

    where = located.where_value(("traits", name, "model"))
    model = config.traits[name].model
    assert model is not None
    if config.settings.dbt is None:
        raise ConfigError(f"{where}: traits.{name}.model: dbt model {model!r} needs settings.dbt",
                          hint="set settings.dbt: {project_dir: ../analytics} or {manifest: path/to/target/manifest.json}")
    try:
        find_relation(config.directory, config.settings.dbt, model)
    except ConfigError as e:
        raise ConfigError(f"{where}: traits.{name}.model: {e.message}", hint=e.hint) from None
