"""What differs between the SQL engines reached through SQLAlchemy, one family at a time.

Per family (dialects): what keeps the session read-only · the statement timeout.

- mysql (mysql, mariadb): ``SET SESSION TRANSACTION READ ONLY`` and ``START TRANSACTION READ
  ONLY`` · MariaDB ``max_statement_time`` (seconds), MySQL ``max_execution_time`` (ms, SELECT only)
- postgres (postgresql, cockroachdb): ``SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY``
  · ``statement_timeout``
- mssql (pymssql, pyodbc): none, the login's grants (``db_datareader``) · ``SET LOCK_TIMEOUT``
  and the driver's query timeout (pymssql ``timeout``, pyodbc ``Connection.timeout``)
- trino: none, the catalog's access control · session property ``query_max_execution_time``
- sqlite: ``PRAGMA query_only = ON`` · a watchdog that interrupts the query
- duckdb (duckdb-engine): the file is opened ``read_only`` · a watchdog that interrupts the query
- other: none, the user's grants · a watchdog that cancels the query where the driver can

Errors keep the warehouse contract: one line, what to do, exit 3; MySQL/MariaDB permission
errors carry the GRANT to run, Postgres-compatible ones reuse ``pg_errors``.
"""

from __future__ import annotations

import re
from typing import Any

from traits.errors import WarehouseError
from traits.warehouses.base import APPLICATION_NAME, limited, strip_comments_at_end
from traits.warehouses.pg_errors import connection_error, pg_error

_FAMILIES = {
    "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres", "cockroachdb": "postgres", "redshift": "postgres",
    "mssql": "mssql", "trino": "trino", "sqlite": "sqlite", "duckdb": "duckdb",
}
#: the extra that installs a dialect's driver
EXTRAS = {"mysql": "mysql", "mssql": "mssql", "trino": "trino", "duckdb": "duckdb-engine", "postgres": "postgres"}
#: families whose timeout is a watchdog on our side, not a server setting
WATCHDOG = {"sqlite", "duckdb", "other"}
_TRAILING = re.compile(r"[\s;]+$")


def family(dialect: str) -> str:
    return _FAMILIES.get(dialect, "other")


def session_statements(name: str, *, mariadb: bool, timeout: float) -> list[str]:
    """What runs first on every connection, before the trait's SQL."""
    millis = max(int(timeout * 1000), 1)
    if name == "mysql":
        limit = f"SET SESSION max_statement_time = {max(timeout, 0.001):g}" if mariadb else f"SET SESSION max_execution_time = {millis}"
        return ["SET SESSION TRANSACTION READ ONLY", limit, "SET SESSION time_zone = '+00:00'"]
    if name == "postgres":
        return ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", f"SET statement_timeout = {millis}",
                f"SET application_name = '{APPLICATION_NAME}'"]
    if name == "mssql":
        return [f"SET LOCK_TIMEOUT {millis}"]
    if name == "sqlite":
        return ["PRAGMA query_only = ON"]
    return []


def begin_statement(name: str) -> str | None:
    """The statement that opens the query's transaction read-only, where the engine has one."""
    return "START TRANSACTION READ ONLY" if name == "mysql" else None


def connect_args(name: str, driver: str, timeout: float, configured: dict[str, Any]) -> dict[str, Any]:
    args = dict(configured)
    if name == "mssql" and driver == "pymssql":
        args.setdefault("timeout", max(int(timeout), 1))  # pymssql's query timeout, in seconds
        args.setdefault("appname", APPLICATION_NAME)
    elif name == "duckdb":
        args.setdefault("read_only", True)
    elif name == "trino":
        properties = dict(args.get("session_properties") or {})
        properties.setdefault("query_max_execution_time", f"{max(int(timeout), 1)}s")
        args["session_properties"] = properties
        args.setdefault("source", APPLICATION_NAME)
    elif name == "mysql":
        args.setdefault("charset", "utf8mb4")
        args.setdefault("program_name", APPLICATION_NAME)
    elif name == "postgres":
        args.setdefault("application_name", APPLICATION_NAME)
    return args


def limited_sql(name: str, dialect: str, sql: str, max_rows: int) -> str:
    """The trait's SQL wrapped so the engine stops one row past ``max_rows``."""
    if name == "mssql":
        body = _TRAILING.sub("", strip_comments_at_end(sql))
        return f"select top ({int(max_rows) + 1}) * from (\n{body}\n) as sql_traits_result"
    if dialect == "oracle":
        body = _TRAILING.sub("", strip_comments_at_end(sql))
        return f"select * from (\n{body}\n) sql_traits_result fetch first {int(max_rows) + 1} rows only"
    return limited(sql, max_rows)


def text_type(name: str) -> str:
    return {"mysql": "char", "mssql": "nvarchar(max)"}.get(name, "varchar")


# -- errors -------------------------------------------------------------------------------------

_MY_DENIED = re.compile(r"command denied to user '([^']*)'@'([^']*)' for table [`']?([^`'.\s]+)[`']?(?:\.[`']?([^`'\s]+)[`']?)?", re.I)
_MY_DB_DENIED = re.compile(r"access denied for user '([^']*)'@'([^']*)' to database '([^']+)'", re.I)
_AT_LINE = re.compile(r"at line (\d+)", re.I)
_MY_NEAR = re.compile(r"near '(.*)' at line (\d+)", re.S)
_LINE = re.compile(r"LINE (\d+):")
_MY_TIMEOUT = {1969, 3024}
_MY_SYNTAX = {1064, 1149}
_MY_CONNECT = {2002, 2003, 2005, 2006, 2013}


def _grantee(user: str, host: str, account: str | None) -> str:
    """The account a GRANT names: ``current_user()`` (the host as granted, e.g. ``%``), else the error's client host."""
    if account and "@" in account:
        user, host = account.rsplit("@", 1)
    return f"'{user}'@'{host}'"


def mysql_error(where: str, code: int | None, message: str, *, timeout: float, account: str | None = None) -> WarehouseError:
    first = message.strip().splitlines()[0] if message.strip() else "MySQL error"
    if code in (1142, 1143):
        match = _MY_DENIED.search(first)
        if match:
            user, host, a, b = match.groups()
            table = f"{a}.{b}" if b else f"<database>.{a}"
            return WarehouseError(f"{where}: {first}", hint=f"run: GRANT SELECT ON {table} TO {_grantee(user, host, account)};")
        return WarehouseError(f"{where}: {first}", hint="grant the traits user SELECT on the tables it reads")
    if code == 1044:
        match = _MY_DB_DENIED.search(first)
        if match:
            user, host, database = match.groups()
            return WarehouseError(f"{where}: {first}", hint=f"run: GRANT SELECT ON {database}.* TO {_grantee(user, host, account)};")
    if code in (1045, 1698):
        return WarehouseError(f"{where}: MySQL refused the credentials ({first})", hint="check the user and password in the source url")
    if code in (1146, 1049, 1051, 1054):
        return WarehouseError(f"{where}: {first}", hint="check the database, table and column names (and that the traits user can see them)")
    if code in _MY_SYNTAX:
        match = _MY_NEAR.search(message)
        if match:  # the wrapper adds one line before the trait's SQL
            near = match.group(1).strip().splitlines()[0] if match.group(1).strip() else ""
            return WarehouseError(f"{where}: SQL syntax error at line {max(int(match.group(2)) - 1, 1)}: near {near!r}", hint="fix the trait's SQL")
        return WarehouseError(f"{where}: SQL syntax error at position unknown: {first}", hint="fix the trait's SQL")
    if code in _MY_TIMEOUT:
        return timeout_error(where, timeout)
    if code == 1792:
        return write_refused(where, first)
    if code in _MY_CONNECT:
        if "name or service not known" in first.lower() or code == 2005 or "nodename nor servname" in first.lower():
            return WarehouseError(f"{where}: cannot resolve the MySQL host ({first})", hint="check the host in the source url")
        return WarehouseError(f"{where}: cannot reach MySQL ({first})", hint="check host and port in the source url, and that the server is running")
    return WarehouseError(f"{where}: {first}")


def timeout_error(where: str, timeout: float) -> WarehouseError:
    return WarehouseError(f"{where}: the query ran past statement_timeout ({timeout:g}s) and was stopped",
                          hint="make the query cheaper or raise statement_timeout")


def write_refused(where: str, first: str) -> WarehouseError:
    return WarehouseError(f"{where}: the trait SQL tried to write, and the session is read-only ({first})",
                          hint="trait SQL must be a read-only SELECT")


def dbapi_error(name: str, where: str, orig: BaseException, *, sql: str, wrapped: str, user: str | None,
                timeout: float, timed_out: bool) -> WarehouseError:
    """A driver's exception as the warehouse contract's one-line error."""
    message = str(orig.args[1]) if name == "mysql" and len(orig.args) > 1 else str(orig)
    if timed_out:
        return timeout_error(where, timeout)
    if name == "mysql":
        code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
        return mysql_error(where, code, message, timeout=timeout, account=user)
    if name == "postgres":
        # the server counts a syntax error's position from the DECLARE of the driver's named
        # cursor, whose name is not ours to know: its LINE context (same lines as ours) is used
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return pg_error(where.removeprefix("source "), "Postgres", sqlstate, message, position=None, wrapped=wrapped, sql=sql,
                        user=user, timeout=timeout)
    return generic_error(where, message, timeout=timeout)


def generic_error(where: str, message: str, *, timeout: float) -> WarehouseError:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    lowered = message.lower()
    if "read-only" in lowered or "readonly" in lowered or "read only" in lowered:
        return write_refused(where, first)
    if "interrupt" in lowered or "cancel" in lowered:
        return timeout_error(where, timeout)
    if "syntax" in lowered or "parser error" in lowered:
        line = _LINE.search(message) or _AT_LINE.search(message)
        at = f"line {max(int(line.group(1)) - 1, 1)}" if line else "position unknown"
        return WarehouseError(f"{where}: SQL syntax error at {at}: {first}", hint="fix the trait's SQL")
    if "no such table" in lowered or "does not exist" in lowered or "not found" in lowered:
        return WarehouseError(f"{where}: {first}", hint="check the table and schema names in the trait's SQL")
    if "permission" in lowered or "denied" in lowered or "not authorized" in lowered:
        return WarehouseError(f"{where}: {first}", hint="grant the traits user SELECT on the tables it reads")
    return connection_error(where, "the warehouse", first) or WarehouseError(f"{where}: {first}")
