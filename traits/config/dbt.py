"""dbt models as trait sources: where a model lives, read from dbt's artifacts, never from dbt itself.

A trait may say ``model: customer_traits`` instead of SQL. Its relation (database, schema and
alias) comes from ``manifest.json`` in the project's target directory (``settings.dbt``), so a
renamed schema or alias in the dbt project is followed on the next run without touching the
trait. The trait's SQL is then ``select * from <relation>``, quoted for the source's dialect.

``run_results.json`` beside the manifest says which models dbt's last invocation built and
when; ``traits run --if-changed`` uses it to skip a trait whose model was not rebuilt since
the trait last ran (``built_at`` / ``needs_run``).

Both files are read as JSON (dbt is not imported) and cached by path and modification time.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traits.config.models import SqlAlchemySource
from traits.errors import ConfigError

if TYPE_CHECKING:
    from traits.config.models import Config, DbtProject, SourceConfig

#: the kinds of dbt node a trait may select from
RELATION_TYPES = ("model", "seed", "snapshot")


@dataclass(frozen=True)
class Relation:
    unique_id: str
    database: str | None
    schema: str
    identifier: str

    def sql_name(self, source: SourceConfig) -> str:
        """The relation as the source's SQL names it."""
        return quoted_relation(self, source)


def manifest_path(config_dir: Path, dbt: DbtProject) -> Path:
    base = config_dir
    if dbt.manifest is not None:
        path = Path(dbt.manifest).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    assert dbt.project_dir is not None
    project = Path(dbt.project_dir).expanduser()
    project = project if project.is_absolute() else base / project
    return (project / dbt.target_path / "manifest.json").resolve()


def run_results_path(config_dir: Path, dbt: DbtProject) -> Path:
    return manifest_path(config_dir, dbt).with_name("run_results.json")


_cache: dict[Path, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _read_json(path: Path) -> Any:
    stat = path.stat()
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stat.st_mtime_ns:
            return cached[1]
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    with _cache_lock:
        _cache[path] = (stat.st_mtime_ns, data)
    return data


def find_relation(config_dir: Path, dbt: DbtProject, model: str) -> Relation:
    """The relation of ``model`` (a name, or ``package.name``); a ConfigError naming model and manifest when missing."""
    path = manifest_path(config_dir, dbt)
    if not path.is_file():
        raise ConfigError(
            f"dbt model {model!r}: the manifest {path} does not exist",
            hint="run `dbt compile` (or `dbt build`) in the dbt project, or fix settings.dbt",
        )
    try:
        manifest = _read_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"dbt model {model!r}: cannot read the manifest {path} ({e})", hint="rebuild it with `dbt compile`") from e
    matches = _nodes_named(manifest, model)
    if not matches:
        raise ConfigError(f"dbt model {model!r} is not in the manifest {path}", hint="check the model's name, and run `dbt compile` after adding it")
    packages = sorted({str(n.get("package_name")) for n in matches})
    if len(packages) > 1:
        raise ConfigError(f"dbt model {model!r} is in more than one package of the manifest {path} ({', '.join(packages)})",
                          hint=f"name it as package.model, e.g. {packages[0]}.{model.rpartition('.')[2]}")
    if len(matches) > 1:  # a versioned model: its latest version, as ref() without a version picks
        latest = [n for n in matches if str(n.get("version")) == str(n.get("latest_version"))]
        matches = latest or sorted(matches, key=lambda n: str(n.get("version")))[-1:]
    node = matches[0]
    identifier = node.get("alias") or node.get("identifier") or node["name"]
    return Relation(str(node["unique_id"]), node.get("database"), str(node["schema"]), str(identifier))


_VERSION = re.compile(r"^v(\w+)$")


def _nodes_named(manifest: Any, model: str) -> list[Any]:
    """The manifest's nodes for ``name``, ``package.name``, ``name.v2`` or ``package.name.v2``."""
    nodes = [n for n in (manifest.get("nodes") or {}).values() if n.get("resource_type") in RELATION_TYPES]

    def named(name: str, package: str, version: str | None) -> list[Any]:
        return [n for n in nodes if n.get("name") == name and (not package or n.get("package_name") == package)
                and (version is None or str(n.get("version")) == version)]

    *prefix, last = model.split(".")
    match = _VERSION.match(last)
    if match and prefix:  # name.v2 (or package.name.v2); else package.v2 is a model named v2
        found = named(prefix[-1], ".".join(prefix[:-1]), match.group(1))
        if found:
            return found
    return named(last, ".".join(prefix), None)


def model_relation(config: Config, trait_name: str) -> Relation:
    trait = config.traits[trait_name]
    assert trait.model is not None
    if config.settings.dbt is None:
        raise ConfigError(f"trait {trait_name}: model {trait.model!r} needs settings.dbt (project_dir or manifest)")
    return find_relation(config.directory, config.settings.dbt, trait.model)


def model_sql(config: Config, trait_name: str) -> str:
    trait = config.traits[trait_name]
    relation = model_relation(config, trait_name)
    return f"select * from {relation.sql_name(config.sources[trait.source])}"


# -- quoting per dialect -----------------------------------------------------------------------

def _double(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _bracket(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def quoted_relation(relation: Relation, source: SourceConfig) -> str:
    """``schema.identifier`` (or ``database.schema.identifier``) quoted the way the source's SQL quotes.

    Postgres-like engines and MySQL connect to one database, so the database part is left out
    there (Postgres refuses cross-database names; MySQL's dbt "schema" is its database).
    Snowflake names are left unquoted, as dbt-snowflake writes them by default (Snowflake
    upper-cases them, matching what dbt created).
    """
    kind = source.type
    parts = [relation.schema, relation.identifier]
    if kind == "bigquery":
        return _backtick(".".join([p for p in (relation.database, *parts) if p]))
    if kind == "snowflake":
        return ".".join(p for p in (relation.database, *parts) if p)
    if isinstance(source, SqlAlchemySource):
        dialect = source.dialect
        if dialect in ("mysql", "mariadb"):
            return ".".join(_backtick(p) for p in parts)
        if dialect == "mssql":
            return ".".join(_bracket(p) for p in (relation.database, *parts) if p)
        if dialect in ("trino", "presto", "awsathena", "databricks"):
            return ".".join(_double(p) if dialect != "databricks" else _backtick(p) for p in (relation.database, *parts) if p)
    return ".".join(_double(p) for p in parts)


# -- run results: what dbt's last invocation built ------------------------------------------------

@dataclass(frozen=True)
class BuildState:
    """What ``run_results.json`` says about one model."""

    #: when dbt last built it successfully (ISO text), None when the last invocation did not
    built_at: str | None
    #: why it counts as not rebuilt, when ``built_at`` is None
    why: str


def model_build(config: Config, trait_name: str) -> BuildState:
    dbt = config.settings.dbt
    assert dbt is not None
    relation = model_relation(config, trait_name)
    path = run_results_path(config.directory, dbt)
    if not path.is_file():
        return BuildState(None, f"no dbt run results at {path}")
    results = _read_json(path)
    target = (results.get("args") or {}).get("target")
    if dbt.target is not None and target is not None and target != dbt.target:
        return BuildState(None, f"dbt's last invocation ran target {target!r}, not {dbt.target!r}")
    for result in results.get("results") or []:
        if result.get("unique_id") != relation.unique_id:
            continue
        if result.get("status") != "success":
            return BuildState(None, f"dbt's last invocation did not build it (status {result.get('status')!r})")
        times = [t.get("completed_at") for t in result.get("timing") or [] if t.get("name") == "execute" and t.get("completed_at")]
        built = times[-1] if times else (results.get("metadata") or {}).get("generated_at")
        return BuildState(str(built), "")
    return BuildState(None, "dbt's last invocation did not build it")


def state_key(trait_name: str) -> str:
    """The state-store key holding the model build a trait last ran after."""
    return f"dbt.built_at:{trait_name}"
