"""Snowflake as a source, through ``snowflake-connector-python``.

Password or key-pair auth (``private_key_file`` with an optional passphrase). The session has
``STATEMENT_TIMEOUT_IN_SECONDS`` and a ``QUERY_TAG`` set at login, so they hold before the
first statement. Snowflake has no read-only session: the role is what keeps it read-only
(README: a role with USAGE and SELECT only), and the trait SQL runs wrapped in a ``select``.

Results stream with ``fetch_arrow_batches``. Names Snowflake upper-cased (an unquoted
``user_id`` comes back as ``USER_ID``) are lower-cased; a quoted mixed-case name is kept.
VARIANT, OBJECT and ARRAY arrive as JSON text and are staged as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from traits.errors import WarehouseError
from traits.warehouses.arrow_types import as_json_text, portable_batch
from traits.warehouses.base import APPLICATION_NAME, Warehouse, fmt_error, limited, missing_driver, resolve_path

if TYPE_CHECKING:
    from traits.config.models import SnowflakeSource

#: Snowflake's application identifier allows only word characters
APPLICATION = APPLICATION_NAME.replace("-", "_")
LOGIN_TIMEOUT = 30
_JSON_TYPES = {b"VARIANT", b"OBJECT", b"ARRAY", b"MAP"}
# cursor.description type codes (snowflake.connector.constants.FIELD_TYPES)
_TYPE_CODES: dict[int, pa.DataType] = {
    1: pa.float64(), 2: pa.string(), 3: pa.date32(), 4: pa.timestamp("us"), 6: pa.timestamp("us", tz="UTC"),
    7: pa.timestamp("us", tz="UTC"), 8: pa.timestamp("us"), 11: pa.binary(), 12: pa.time64("us"), 13: pa.bool_(),
}
_JSON_CODES = {5, 9, 10}
_UNRESOLVED = ("name or service not known", "failed to resolve", "nodename nor servname", "could not resolve", "getaddrinfo")
_CODE_PREFIX = re.compile(r"^\d{6} \(\w+\): ")
_POSITION = re.compile(r"line (\d+) at position (\d+)|Line (\d+), Col: (\d+)", re.I)


def column_name(name: str) -> str:
    """``USER_ID`` (Snowflake's folding of an unquoted name) → ``user_id``; ``"userId"`` stays."""
    return name.lower() if name == name.upper() else name


class SnowflakeWarehouse(Warehouse):
    config: SnowflakeSource
    engine = "Snowflake"

    def connect_args(self) -> dict[str, Any]:
        c = self.config
        args: dict[str, Any] = {
            "account": c.account, "user": c.user, "application": APPLICATION, "login_timeout": LOGIN_TIMEOUT,
            "session_parameters": {"STATEMENT_TIMEOUT_IN_SECONDS": max(int(c.statement_timeout), 1), "QUERY_TAG": APPLICATION_NAME},
        }
        if c.private_key_file:
            args["authenticator"] = "SNOWFLAKE_JWT"
            args["private_key_file"] = str(resolve_path(self.config_dir, c.private_key_file))
            if c.private_key_passphrase is not None:
                args["private_key_file_pwd"] = c.private_key_passphrase.get_secret_value()
        elif c.password is not None:
            args["password"] = c.password.get_secret_value()
        optional = {"warehouse": c.warehouse, "database": c.database, "schema": c.schema_, "role": c.role,
                    "host": c.host, "port": c.port, "protocol": c.protocol}
        args.update({k: v for k, v in optional.items() if v is not None})
        return args

    def _connect(self) -> Any:
        snowflake = _driver()
        try:
            return snowflake.connector.connect(**self.connect_args())
        except snowflake.connector.Error as e:
            raise self.error(e) from e
        except (OSError, ValueError, TypeError) as e:  # the key file: missing, unreadable, wrong passphrase
            raise WarehouseError(f"source {self.name}: cannot use private_key_file {self.config.private_key_file} ({fmt_error(e)})",
                                 hint="check the key file's path and private_key_passphrase") from e

    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        snowflake = _driver()
        wrapped = limited(sql, max_rows)
        conn = self._connect()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(wrapped)
                yielded = False
                for table in cursor.fetch_arrow_batches():
                    for batch in table.to_batches():
                        yielded = True
                        yield self._portable(batch)
                if not yielded:
                    yield self._portable(pa.RecordBatch.from_pylist([], schema=_schema(cursor.description or [])))
            except snowflake.connector.Error as e:
                raise self.error(e, sql) from e
            finally:
                cursor.close()
        finally:
            conn.close()

    @staticmethod
    def _portable(batch: pa.RecordBatch) -> pa.RecordBatch:
        fields, columns = [], []
        for field, column in zip(batch.schema, batch.columns, strict=True):
            logical = (field.metadata or {}).get(b"logicalType")
            if logical in _JSON_TYPES and not isinstance(field.type, pa.BaseExtensionType) and pa.types.is_string(field.type):
                column = as_json_text(column)
            elif logical == b"FIXED" and pa.types.is_decimal(field.type) and field.type.scale == 0 and field.type.precision <= 18:
                column = column.cast(pa.int64())
            fields.append(pa.field(column_name(field.name), column.type))
            columns.append(column)
        return portable_batch(pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields)))

    def error(self, error: Exception, sql: str = "") -> WarehouseError:
        where = f"source {self.name}"
        errno = int(getattr(error, "errno", 0) or 0)
        raw = str(getattr(error, "raw_msg", None) or getattr(error, "msg", None) or error).strip()
        text = _CODE_PREFIX.sub("", raw.splitlines()[0]) if raw else fmt_error(error)
        role = self.config.role or "<your traits role>"
        if errno == 2003:
            return WarehouseError(
                f"{where}: {text}",
                hint=f"check the name, and that role {role} can read it: GRANT USAGE ON DATABASE <db> TO ROLE {role}; "
                f"GRANT USAGE ON SCHEMA <db>.<schema> TO ROLE {role}; GRANT SELECT ON ALL TABLES IN SCHEMA <db>.<schema> TO ROLE {role};",
            )
        if errno in (1003, 1007, 904) or "syntax error" in text.lower():
            return WarehouseError(f"{where}: SQL syntax error at {_position(raw, sql)}: {text}", hint="fix the trait's SQL")
        if errno in (630, 604) or ("timeout" in text.lower() and "statement" in text.lower()):
            return WarehouseError(
                f"{where}: the query ran past statement_timeout ({self.config.statement_timeout:g}s) and was cancelled",
                hint="make the query cheaper or raise statement_timeout",
            )
        if errno in (390100, 390144, 390318, 251006, 250001) and ("password" in text.lower() or "jwt" in text.lower() or errno != 250001):
            return WarehouseError(f"{where}: Snowflake refused the credentials ({text})", hint="check user and password, or the key pair")
        if errno in (390201, 390189, 2043):
            return WarehouseError(f"{where}: {text}", hint="check database, schema, warehouse and role, and that the role may use them")
        lowered = text.lower()
        if any(s in lowered for s in _UNRESOLVED):
            return WarehouseError(f"{where}: cannot resolve the Snowflake host ({text})", hint="check account (and host) in the source")
        if errno in (250001, 250003) or "could not connect" in lowered or "connection refused" in lowered:
            return WarehouseError(f"{where}: cannot connect to Snowflake ({text})", hint="check account, host and network access")
        return WarehouseError(f"{where}: {text}")

    def check(self) -> list[str]:
        who = "select current_user() as u, current_role() as r, current_database() as d"
        row = next(iter(self.stream(who, max_rows=1))).to_pylist()
        info = row[0] if row else {}
        tables = "select table_schema || '.' || table_name as t from information_schema.tables where table_schema <> 'INFORMATION_SCHEMA'"
        names: list[str] = []
        for batch in self.stream(tables, max_rows=10_000):
            names.extend(str(v) for v in batch.column(0).to_pylist())
        shown = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
        return [
            f"connected as {info.get('u')} with role {info.get('r')}, database {info.get('d')}",
            f"{len(names)} readable table(s): {shown or 'none'}",
        ]


def _driver() -> Any:
    """The ``snowflake`` package with its connector imported, or how to install it."""
    try:
        import snowflake.connector
    except ImportError as e:
        raise missing_driver("snowflake-connector-python", "snowflake") from e
    return snowflake


def _schema(description: Any) -> pa.Schema:
    fields = []
    for column in description:
        name, code = column_name(str(column.name)), int(column.type_code)
        if code in _JSON_CODES:
            fields.append(pa.field(name, pa.json_()))
        elif code == 0:
            scale = column.scale or 0
            fields.append(pa.field(name, pa.int64() if scale == 0 else pa.decimal128(column.precision or 38, scale)))
        else:
            fields.append(pa.field(name, _TYPE_CODES.get(code, pa.string())))
    return pa.schema(fields)


def _position(message: str, sql: str) -> str:
    """Where the error is in the trait's SQL: the wrapper adds one line before it."""
    match = _POSITION.search(message)
    if not match:
        return "position unknown"
    line = int(match.group(1) or match.group(3))
    # Snowflake counts positions from 0; some stand-ins print 1-based columns as "Col:"
    column = int(match.group(2)) + 1 if match.group(2) else int(match.group(4))
    return f"line {max(line - 1, 1)}, column {column}"
