"""The config models: sources, destinations, traits, settings and alerts.

Unknown keys are errors everywhere (``extra="forbid"``); sources and destinations are
discriminated on ``type``. Secrets are ``SecretStr`` so they never print by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
    model_validator,
)

from traits.config.durations import DEFAULT_MIN_INTERVAL, Schedule, parse_duration, parse_schedule

Seconds = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(float)]
_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


def _schedule(value: object) -> Schedule:
    if isinstance(value, Schedule):
        return value
    minimum = float(os.environ.get("TRAITS_MIN_INTERVAL", DEFAULT_MIN_INTERVAL))
    return parse_schedule(value, minimum)


ScheduleField = Annotated[Schedule, BeforeValidator(_schedule), PlainSerializer(str)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(Model):
    """A table of every known id, so preview can mark ids as known (✓) or unknown (?)."""

    table: str
    column: str = "id"


DiffMode = Literal["local", "warehouse"]
#: the engines that can diff in the warehouse (``traits.bookkeeping``)
WAREHOUSE_DIFF_ENGINES = ("duckdb", "postgres", "redshift", "snowflake", "bigquery")


class SourceBase(Model):
    #: the engine; each source model narrows it to its own tag
    type: str
    statement_timeout: Seconds = 600.0
    identity: Identity | None = None
    #: rows per fetched batch; the memory a batch takes is bounded by this
    batch_rows: int = Field(default=250_000, ge=1_000, le=1_000_000)
    #: where the diff runs: here, over the fetched result (``local``), or in the warehouse, so
    #: that only the changes leave it (``warehouse``)
    diff: DiffMode = "local"
    #: the schema that holds the warehouse mode's snapshots and per-run tables
    bookkeeping_schema: str = Field(default="sql_traits", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _diff_engine(self) -> SourceBase:
        if self.diff == "warehouse" and self.type not in WAREHOUSE_DIFF_ENGINES:
            raise ValueError(f"diff: warehouse is not available for type {self.type} (it is for {', '.join(WAREHOUSE_DIFF_ENGINES)}); use diff: local")
        return self


class DuckDBSource(SourceBase):
    type: Literal["duckdb"]
    path: str


class PostgresSource(SourceBase):
    type: Literal["postgres"]
    dsn: SecretStr | None = None
    host: str | None = None
    port: int = 5432
    database: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    sslmode: str | None = None
    #: adbc reads Arrow batches over COPY (fastest); psycopg uses a server-side cursor
    driver: Literal["auto", "adbc", "psycopg"] = "auto"

    @model_validator(mode="after")
    def _dsn_or_host(self) -> PostgresSource:
        if self.dsn is None and self.host is None:
            raise ValueError("set dsn, or host (with database, user, password)")
        return self


class RedshiftSource(SourceBase):
    type: Literal["redshift"]
    host: str | None = None
    port: int = 5439
    database: str = "dev"
    user: str | None = None
    password: SecretStr | None = None
    ssl: bool = True
    sslmode: str = "verify-ca"
    iam: bool = False
    cluster_identifier: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    db_user: str | None = None
    serverless_acct_id: str | None = None
    serverless_work_group: str | None = None
    timeout: Seconds = 10.0

    @model_validator(mode="after")
    def _host_or_iam(self) -> RedshiftSource:
        if self.host is None and not (self.iam and (self.cluster_identifier or self.serverless_work_group)):
            raise ValueError("set host (with user and password), or iam: true with cluster_identifier or serverless_work_group")
        return self


class SnowflakeSource(SourceBase):
    type: Literal["snowflake"]
    account: str
    user: str
    password: SecretStr | None = None
    private_key_file: str | None = None
    private_key_passphrase: SecretStr | None = None
    warehouse: str | None = None
    database: str | None = None
    #: named schema_ because BaseModel.schema exists; written ``schema`` in YAML
    schema_: str | None = Field(default=None, alias="schema")
    role: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: Literal["https", "http"] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _auth(self) -> SnowflakeSource:
        if self.password is None and self.private_key_file is None:
            raise ValueError("set password or private_key_file")
        return self


class BigQuerySource(SourceBase):
    type: Literal["bigquery"]
    project: str
    location: str | None = None
    credentials_file: str | None = None
    maximum_bytes_billed: int | None = Field(default=None, ge=1)
    #: a Bigquery-compatible API base URL (an emulator); the default is Google's
    api_endpoint: str | None = None


class SqlAlchemySource(SourceBase):
    """Any SQLAlchemy 2.x dialect the user installs (MySQL/MariaDB, SQL Server, Trino, SQLite, …)."""

    type: Literal["sqlalchemy"]
    #: ``dialect+driver://user:password@host/db``; a secret, since it carries the password
    url: SecretStr
    #: passed to the DBAPI driver's ``connect()`` as keyword arguments
    connect_args: dict[str, Any] = Field(default_factory=dict)
    #: columns the driver hands over as text that hold JSON (MariaDB's JSON is LONGTEXT on the wire)
    json_columns: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        if "://" not in value.get_secret_value():
            raise ValueError("url must be a SQLAlchemy URL such as mysql+pymysql://user:password@host/db")
        return value

    @property
    def dialect(self) -> str:
        """The URL's dialect name (``mysql``, ``mssql``, ``trino``, …), read without importing SQLAlchemy."""
        return self.url.get_secret_value().split("://", 1)[0].split("+", 1)[0].lower()


SourceConfig = Annotated[
    DuckDBSource | PostgresSource | RedshiftSource | SnowflakeSource | BigQuerySource | SqlAlchemySource,
    Field(discriminator="type"),
]


class HttpDestinationBase(Model):
    concurrency: int = Field(default=4, ge=1, le=64)
    #: requests per second and calls per second across this destination; off when unset
    rate_limit_rps: float | None = Field(default=None, gt=0)
    rate_limit_cps: float | None = Field(default=None, gt=0)
    connect_timeout: Seconds = 5.0
    timeout: Seconds = 15.0
    max_attempts: int = Field(default=10, ge=1, le=100)
    max_call_bytes: int = Field(default=32_000, ge=256)
    #: full-jitter backoff: a retry waits uniform(0, min(retry_backoff_max, retry_backoff * 2**attempt))
    retry_backoff: Seconds = Field(default=0.5, ge=0)
    retry_backoff_max: Seconds = Field(default=60.0, ge=0)
    #: an HTTP(S) proxy URL; proxy variables in the environment are not read (explicit is safer)
    proxy: SecretStr | None = None


class SegmentDestination(HttpDestinationBase):
    type: Literal["segment"]
    write_key: SecretStr
    region: Literal["us", "eu"] = "us"
    endpoint: str | None = None
    max_batch_calls: int = Field(default=2_500, ge=1, le=100_000)
    max_batch_bytes: int = Field(default=490_000, ge=1_000)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("endpoint is a base URL such as https://hosted.rudderlabs.com")
        return value.rstrip("/") if value else value

    @property
    def base_url(self) -> str:
        if self.endpoint:
            return self.endpoint
        return "https://events.eu1.segmentapis.com" if self.region == "eu" else "https://api.segment.io"


class WebhookDestination(HttpDestinationBase):
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    batch_size: int = Field(default=1, ge=1, le=10_000)
    max_batch_bytes: int = Field(default=4_000_000, ge=1_000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


class FileDestination(Model):
    type: Literal["file"]
    path: str
    batch_size: int = Field(default=10_000, ge=1)

    @property
    def max_call_bytes(self) -> int:
        """A file takes calls of any size; each is still held to the collectors' 32 KB."""
        return 32_000


DestinationConfig = Annotated[
    SegmentDestination | WebhookDestination | FileDestination,
    Field(discriminator="type"),
]


ExitRule = Literal["clear", "keep"]
#: what an exit sends for one column: clear (null), keep (nothing), or a literal JSON value
ExitValue = str | int | float | bool | None


class OnExitRules(Model):
    """Per-column exits: ``{default: clear, columns: {plan: keep, open_tickets: 0}}``.

    A column's rule is ``clear`` (send null), ``keep`` (leave it out of the exit call) or any
    other value, sent as it is (``null`` is the same as clear). An exit with no column left
    to send sends no call.
    """

    default: ExitRule = "clear"
    columns: dict[str, ExitValue] = Field(default_factory=dict)


def _exit_after(value: object) -> ExitAfter | None:
    if value is None or isinstance(value, ExitAfter):
        return value
    if isinstance(value, bool):
        raise ValueError("exit_after is a number of runs (2) or a duration (24h)")  # noqa: TRY004
    if isinstance(value, int):
        if value < 1:
            raise ValueError("exit_after counts runs: use 1 or more")
        return ExitAfter(runs=value)
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("exit_after must be longer than 0s")
    return ExitAfter(seconds=seconds)


class ExitAfter(BaseModel):
    """How long an id must be missing from the result before it exits: N runs or a duration."""

    model_config = ConfigDict(frozen=True)
    runs: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        from traits.config.durations import format_duration

        return f"{self.runs} run(s)" if self.runs is not None else format_duration(self.seconds or 0)


ExitAfterField = Annotated[ExitAfter | None, BeforeValidator(_exit_after), PlainSerializer(lambda v: str(v) if v else None)]


class Trait(Model):
    kind: Literal["user", "account"]
    source: str
    sql: str | None = None
    sql_file: str | None = None
    #: a dbt model whose relation (from the manifest of ``settings.dbt``) the trait selects from
    model: str | None = None
    #: for selectors: ``--select tag:NAME``
    tags: list[str] = Field(default_factory=list)
    destinations: list[str] = Field(default_factory=list)
    schedule: ScheduleField = Field(default_factory=lambda: parse_schedule("every 12h"))
    on_exit: ExitRule | OnExitRules = "clear"
    #: an id missing from the result exits only once missing this many runs, or this long
    exit_after: ExitAfterField = None
    send: Literal["row", "changed"] = "row"
    #: overrides the source's ``diff``
    diff: DiffMode | None = None
    max_exit_ratio: float = Field(default=0.5, ge=0, le=1)
    max_change_ratio: float | None = Field(default=None, ge=0, le=1)
    #: guard: stop the run when fewer than this share of the result's ids are known
    min_known_ratio: float | None = Field(default=None, ge=0, le=1)
    #: accept trait keys that another trait also writes to the same destination
    allow_shared_keys: bool = False
    enabled: bool = True
    description: str | None = None
    max_rows: int | None = Field(default=None, ge=1)
    #: the table of known ids for preview's ✓ / ? marks; defaults to the source's for user traits
    identity: Identity | None = None

    @model_validator(mode="after")
    def _one_sql(self) -> Trait:
        if sum(x is not None for x in (self.sql, self.sql_file, self.model)) != 1:
            raise ValueError("set exactly one of sql, sql_file or model")
        return self

    @property
    def identity_column(self) -> str:
        return "user_id" if self.kind == "user" else "group_id"


class DbtProject(Model):
    """Where the dbt project's artifacts are: a project directory, or a manifest file."""

    project_dir: str | None = None
    #: the dbt target the artifacts were built for; ``--if-changed`` ignores run results of another
    target: str | None = None
    #: the artifacts' directory inside ``project_dir`` (dbt's ``target-path``)
    target_path: str = "target"
    manifest: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> DbtProject:
        if (self.project_dir is None) == (self.manifest is None):
            raise ValueError("set exactly one of project_dir or manifest")
        return self


class Settings(Model):
    state: str = ".traits"
    max_rows: int = Field(default=10_000_000, ge=1)
    max_columns: int = Field(default=25, ge=2, le=1_000)
    concurrency: int = Field(default=4, ge=1, le=64)
    decimals: Literal["number", "string"] = "number"
    #: NaN and ±Infinity are errors unless allowed; allowed, they are sent as null
    allow_non_finite: bool = False
    #: nested values (lists, structs, JSON) are errors unless allowed; allowed, sent as JSON
    allow_nested: bool = False
    #: the memory the embedded columnar engine may use for staging and diffing
    memory_limit: str = "512MB"
    #: a run's delivery gives up on what is still unacknowledged after this long
    delivery_deadline: Seconds = 3600.0
    #: the random delay added to each scheduled run, at most this long
    jitter: Seconds = 30.0
    #: how long each run's changes (before and after values) are kept, for ``traits revert``
    history_retention: Seconds = 30 * 86400.0
    #: the dbt project whose models traits may name with ``model:``
    dbt: DbtProject | None = None


AlertEvent = Literal["failed", "guarded", "invalid", "partial", "recovered"]
ALERT_EVENTS: list[AlertEvent] = ["failed", "guarded", "invalid", "partial", "recovered"]


class SlackAlerts(Model):
    url: SecretStr
    on: list[AlertEvent] = Field(default_factory=lambda: list(ALERT_EVENTS))


class Config(Model):
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    traits: dict[str, Trait] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    alerts: SlackAlerts | None = None
    #: where the config was loaded from; relative paths resolve against it
    directory: Path = Field(default=Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.directory / path)

    def trait_sql(self, name: str) -> str:
        trait = self.traits[name]
        if trait.sql is not None:
            return trait.sql
        if trait.model is not None:
            from traits.config.dbt import model_sql

            return model_sql(self, name)
        assert trait.sql_file is not None
        return self.resolve(trait.sql_file).read_text(encoding="utf-8")

    def max_rows_for(self, name: str) -> int:
        return self.traits[name].max_rows or self.settings.max_rows

    def diff_mode(self, name: str) -> DiffMode:
        """Where ``name``'s diff runs: the trait's ``diff``, else its source's."""
        trait = self.traits[name]
        return trait.diff or self.sources[trait.source].diff


def check_names(data: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Problems with section keys that pydantic cannot see: names and cross references."""
    import re

    problems: list[tuple[tuple[str, ...], str]] = []
    for section in ("sources", "destinations", "traits"):
        for name in data.get(section) or {}:
            if not re.match(_NAME, str(name)):
                problems.append(((section, name), f"{name!r} is not a valid name: use letters, digits, _ and -"))
    return problems
