"""What warehouse mode needs of the role, checked by ``traits validate --connect``.

The role needs SELECT on the data and write access only inside the bookkeeping schema. The
check creates and drops a table there (the only way to be sure), and on Postgres lists what
the role could write outside it, which it should not be able to. Each engine's GRANT
statements are printed with the check, ready to run as an administrator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from traits.bookkeeping.sessions import DuckDBSession, PostgresSession, Session, open_session
from traits.errors import WarehouseError
from traits.warehouses import open_warehouse

if TYPE_CHECKING:
    from traits.config.models import SourceBase

#: tables outside the bookkeeping schema the role can write, shown by name
SHOWN = 5


def grant_statements(engine: str, schema: str, role: str | None) -> list[str]:
    """The statements an administrator runs so ``role`` may use warehouse mode, and nothing more."""
    who = role or "<role>"
    if engine in ("postgres", "redshift"):
        return [
            f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {who};",
            f"GRANT USAGE ON SCHEMA <data schema> TO {who};",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA <data schema> TO {who};",
        ]
    if engine == "snowflake":
        return [
            f"CREATE SCHEMA IF NOT EXISTS <database>.{schema.upper()};",
            f"GRANT USAGE ON DATABASE <database> TO ROLE {who};",
            f"GRANT USAGE, CREATE TABLE ON SCHEMA <database>.{schema.upper()} TO ROLE {who};",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA <database>.<data schema> TO ROLE {who};",
        ]
    if engine == "bigquery":
        return [
            f"CREATE SCHEMA IF NOT EXISTS `<project>.{schema}`;",
            f"GRANT `roles/bigquery.dataEditor` ON SCHEMA `<project>.{schema}` TO \"serviceAccount:{who}\";",
            f"GRANT `roles/bigquery.dataViewer` ON SCHEMA `<project>.<data dataset>` TO \"serviceAccount:{who}\";",
            "-- and roles/bigquery.jobUser on the project, to run queries",
        ]
    return []


def check_bookkeeping(name: str, source: SourceBase, config_dir: Path) -> list[str]:
    """Details of the bookkeeping check for one source; raises ``WarehouseError`` (with the
    GRANT statements as its hint) when the role cannot write there."""
    engine = source.type
    schema = source.bookkeeping_schema
    with open_warehouse(name, source, config_dir) as warehouse:
        grants = grant_statements(engine, schema, warehouse.user)
        try:
            with open_session(name, source, warehouse, trait="sql_traits_check", config_dir=config_dir) as session:
                details = [_probe(session)]
                details += _writable_outside(session)
            if isinstance(session, DuckDBSession):
                session.file.unlink(missing_ok=True)
        except WarehouseError as e:
            raise WarehouseError(f"{e.message}; warehouse mode needs write access in {schema} only",
                                 hint="run as an administrator: " + " ".join(grants) if grants else e.hint) from None
    if grants:
        details.append("the GRANT statements warehouse mode needs: " + " ".join(grants))
    return details


def _probe(session: Session) -> str:
    probe = session.table(f"sql_traits_check_{os.getpid()}")
    schema = session.dialect.quote(session.schema)
    if isinstance(session, PostgresSession) and not session.rows("select 1 from information_schema.schemata where schema_name = %s",
                                                                 (session.schema,)):
        session.execute(f"create schema {schema}")
    session.execute(f"create table {probe} (sql_traits_id {session.dialect.text_type})")
    session.execute(f"drop table {probe}")
    return f"bookkeeping schema {session.schema}: the role can create and drop tables in it (diff: warehouse)"


def _writable_outside(session: Session) -> list[str]:
    """On Postgres: the tables outside the bookkeeping schema the role could change."""
    if not isinstance(session, PostgresSession) or session.dialect.name != "postgres":
        return []
    rows = session.rows(
        # by oid: a table dropped meanwhile (another session's) answers NULL instead of failing
        """select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname <> %s
             and n.nspname not like 'pg\\_%%'
             and (has_table_privilege(c.oid, 'INSERT') or has_table_privilege(c.oid, 'UPDATE') or has_table_privilege(c.oid, 'DELETE'))
           order by 1""",
        (session.schema,),
    )
    if not rows:
        return [f"the role can write no table outside {session.schema}"]
    shown = ", ".join(str(r[0]) for r in rows[:SHOWN])
    more = f" and {len(rows) - SHOWN:,} more" if len(rows) > SHOWN else ""
    return [f"warning: the role can also write {len(rows):,} table(s) outside {session.schema} ({shown}{more}); "
            "warehouse mode needs only SELECT on them: use a role without INSERT, UPDATE or DELETE there"]
