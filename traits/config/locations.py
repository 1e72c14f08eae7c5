"""YAML loading that remembers where every node came from.

Each config file is parsed with ruamel.yaml; the result is plain Python data plus a map from
each node's path (a tuple of keys and list indexes) to its ``file:line:col``, so that any
error found later, by pydantic or by the engine, can point at the place to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from traits.errors import ConfigError

NodePath = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    file: Path
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class LocatedData:
    """Plain data of one or more YAML files with the location of every node."""

    data: dict[str, Any] = field(default_factory=dict)
    locations: dict[NodePath, Location] = field(default_factory=dict)
    #: where a mapping key's scalar value starts, when it is on the key's line or after
    value_locations: dict[NodePath, Location] = field(default_factory=dict)

    def where(self, path: NodePath) -> Location | None:
        """The location of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), 0, -1):
            found = self.locations.get(path[:end])
            if found is not None:
                return found
        return None

    def where_value(self, path: NodePath) -> Location | None:
        """The location of the value at ``path`` (else of its key, or nearest ancestor)."""
        return self.value_locations.get(path) or self.where(path)


def load_yaml_file(file: Path) -> LocatedData:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{file}: cannot read the file ({e.strerror})") from e
    try:
        root = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        problem = (e.problem or e.context or "invalid YAML").strip()
        raise ConfigError(f"{where}: {problem}", hint="fix the YAML syntax there") from e
    except Exception as e:
        raise ConfigError(f"{file}: cannot parse YAML: {e}") from e
    located = LocatedData()
    if root is None:
        return located
    if not isinstance(root, CommentedMap):
        raise ConfigError(f"{file}:1:1: a config file must be a mapping of sections")
    located.data = _plain(root, (), file, located)
    return located


def _plain(node: Any, path: NodePath, file: Path, located: LocatedData) -> Any:
    if isinstance(node, CommentedMap):
        result: dict[str, Any] = {}
        for key, value in node.items():
            line, col = node.lc.key(key)
            child = (*path, str(key))
            located.locations[child] = Location(file, line + 1, col + 1)
            if not isinstance(value, CommentedMap | CommentedSeq):
                vline, vcol = node.lc.value(key)
                located.value_locations[child] = Location(file, vline + 1, vcol + 1)
            result[str(key)] = _plain(value, child, file, located)
        return result
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            child = (*path, index)
            located.locations[child] = Location(file, line + 1, col + 1)
            items.append(_plain(value, child, file, located))
        return items
    if isinstance(node, str):
        return str(node)
    return node
