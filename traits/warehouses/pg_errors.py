"""Postgres-protocol sources (Postgres and Redshift): errors as one-line messages with what to
do, and the access check of ``traits validate --connect``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from traits.errors import WarehouseError

if TYPE_CHECKING:
    from traits.warehouses.base import Warehouse

_PERMISSION = re.compile(r"permission denied for (schema|table|relation|view|database|sequence|function) \"?([\w.$\"]+)\"?", re.I)
_LINE = re.compile(r"LINE (\d+):")


def grant_hint(kind: str, obj: str, user: str | None) -> str:
    who = user or "<your traits user>"
    kind = kind.lower()
    if kind == "schema":
        return f"run: GRANT USAGE ON SCHEMA {obj} TO {who}; GRANT SELECT ON ALL TABLES IN SCHEMA {obj} TO {who};"
    if kind == "database":
        return f"run: GRANT CONNECT ON DATABASE {obj} TO {who};"
    schema = obj.rsplit(".", 1)[0] if "." in obj else "<its schema>"
    return f"run: GRANT USAGE ON SCHEMA {schema} TO {who}; GRANT SELECT ON {obj} TO {who};"


def sql_position(message: str, position: int | None, wrapped: str, sql: str) -> str:
    """Where in the trait's SQL the error is, as ``line L, column C``."""
    offset = wrapped.find(sql.strip()[:40]) if sql.strip() else -1
    if position is not None and offset >= 0 and position - 1 >= offset:
        before = wrapped[offset : position - 1]
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        return f"line {line}, column {column}"
    match = _LINE.search(message)
    if match:
        return f"line {max(int(match.group(1)) - 1, 1)}"
    return "position unknown"


def pg_error(source: str, engine: str, sqlstate: str | None, message: str, *, position: int | None = None,
             wrapped: str = "", sql: str = "", user: str | None = None, timeout: float | None = None) -> WarehouseError:
    where = f"source {source}"
    first = message.strip().splitlines()[0] if message.strip() else engine + " error"
    first = re.sub(r"^(ERROR|FATAL):\s+", "", first)
    code = sqlstate or _sqlstate_from_text(first)
    if code == "42501" or "permission denied" in first.lower():
        match = _PERMISSION.search(first)
        if match:
            return WarehouseError(f"{where}: {first}", hint=grant_hint(match.group(1), match.group(2).replace('"', ""), user))
        return WarehouseError(f"{where}: {first}", hint="grant the traits user USAGE on the schema and SELECT on the tables it reads")
    if code in ("42P01", "3F000") or ("does not exist" in first and "relation" in first):
        return WarehouseError(f"{where}: {first}", hint="check the schema and table names (and that the traits user can see them)")
    if code == "42601" or (code.startswith("42") and "syntax" in first.lower()):
        at = sql_position(message, position, wrapped, sql)
        return WarehouseError(f"{where}: SQL syntax error at {at}: {first}", hint="fix the trait's SQL")
    if code == "57014":
        return WarehouseError(
            f"{where}: the query ran past statement_timeout ({timeout or 0:g}s) and was cancelled",
            hint="make the query cheaper or raise statement_timeout",
        )
    if code == "25006":
        return WarehouseError(f"{where}: the trait SQL tried to write, and the session is read-only ({first})",
                              hint="trait SQL must be a read-only SELECT")
    if code in ("28P01", "28000") or "password authentication failed" in first:
        return WarehouseError(f"{where}: {engine} refused the credentials ({first})", hint="check the user and password")
    if code == "3D000":
        return WarehouseError(f"{where}: {first}", hint="check the database name")
    return connection_error(where, engine, first) or WarehouseError(f"{where}: {first}")


_TEXT_STATES = (
    ("read-only transaction", "25006"),
    ("statement timeout", "57014"),
    ("permission denied", "42501"),
    ("syntax error", "42601"),
)


def _sqlstate_from_text(message: str) -> str:
    """Some drivers (ADBC mid-stream) drop the SQLSTATE: recover the common ones from the text."""
    lowered = message.lower()
    for text, state in _TEXT_STATES:
        if text in lowered:
            return state
    return ""


def connection_error(where: str, engine: str, text: str) -> WarehouseError | None:
    text = " ".join(text.replace("IO: [libpq] ", "").split())  # libpq's message spans lines
    lowered = text.lower()
    if "could not translate host name" in lowered or "name or service not known" in lowered or "nodename nor servname" in lowered:
        return WarehouseError(f"{where}: cannot resolve the {engine} host ({text})", hint="check host in the source")
    if "timeout expired" in lowered or "timed out" in lowered:
        return WarehouseError(f"{where}: connecting to {engine} timed out ({text})", hint="check host, port and firewall rules")
    if "connection refused" in lowered:
        return WarehouseError(f"{where}: {engine} refused the connection ({text})", hint="check host and port, and that it is running")
    return None


def readable_tables(warehouse: Warehouse, user: str | None) -> list[str]:
    """What the configured user can read, for ``traits validate --connect``."""
    sql = """select table_schema || '.' || table_name from information_schema.tables
             where has_table_privilege(quote_ident(table_schema) || '.' || quote_ident(table_name), 'SELECT')
               and table_schema not in ('pg_catalog', 'information_schema') order by 1"""
    names: list[str] = []
    for batch in warehouse.stream(sql, max_rows=10_000):
        names.extend(str(v) for v in batch.column(0).to_pylist())
    shown = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
    return [f"connected as {user or 'the configured user'} (read-only session)", f"{len(names)} readable table(s): {shown or 'none'}"]
