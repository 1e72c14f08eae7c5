"""Redshift as a source, through ``redshift-connector``.

The session: ``autocommit`` on, then one explicit ``BEGIN READ ONLY`` transaction, then
``SET statement_timeout`` (the connection is ours alone and closed after) and a cursor over the
trait SQL. Rows come ``FETCH FORWARD batch_rows`` at a time, so only one batch is ever held
here (redshift-connector buffers a whole statement's result, so a plain ``execute`` of the
trait SQL would hold all of it). The transaction is rolled back at the end: nothing a trait
runs can change the warehouse, and a write fails with SQLSTATE 25006.

Passwords or IAM: every IAM setting of the source is passed to the driver as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from traits.errors import WarehouseError
from traits.warehouses.base import APPLICATION_NAME, Warehouse, limited, missing_driver
from traits.warehouses.pg_errors import connection_error, pg_error, readable_tables
from traits.warehouses.pg_rows import rows_to_batch, schema_for

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import RedshiftSource

CURSOR = "sql_traits_result"


class RedshiftWarehouse(Warehouse):
    config: RedshiftSource
    engine = "Redshift"

    @property
    def user(self) -> str | None:
        return self.config.db_user or self.config.user

    def connect_args(self) -> dict[str, Any]:
        """The keyword arguments for ``redshift_connector.connect`` (secrets included)."""
        c = self.config
        args: dict[str, Any] = {
            "database": c.database, "port": c.port, "ssl": c.ssl, "sslmode": c.sslmode,
            "timeout": max(int(c.timeout), 1), "application_name": APPLICATION_NAME, "iam": c.iam,
        }
        plain = {"host": c.host, "user": c.user, "cluster_identifier": c.cluster_identifier, "region": c.region,
                 "profile": c.profile, "db_user": c.db_user, "serverless_acct_id": c.serverless_acct_id,
                 "serverless_work_group": c.serverless_work_group}
        secret = {"password": c.password, "access_key_id": c.access_key_id, "secret_access_key": c.secret_access_key,
                  "session_token": c.session_token}
        args.update({k: v for k, v in plain.items() if v is not None})
        args.update({k: v.get_secret_value() for k, v in secret.items() if v is not None})
        if c.serverless_work_group:
            args["is_serverless"] = True
        return args

    def connect(self) -> Any:
        """A connection as the source logs in (autocommit); the bookkeeping session opens its own with it."""
        redshift_connector, RedshiftError = _driver()
        try:
            conn = redshift_connector.connect(**self.connect_args())
        except RedshiftError as e:
            raise self._error(e) from e
        except OSError as e:  # DNS, refused, unreachable: raised before the driver wraps them
            raise self._error(e) from e
        conn.autocommit = True
        return conn

    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        _, RedshiftError = _driver()
        wrapped = limited(sql, max_rows)
        declare = f"declare {CURSOR} cursor for {wrapped}"
        conn = self.connect()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute("begin read only")
                cursor.execute(f"set statement_timeout to {max(int(self.config.statement_timeout * 1000), 1)}")
                cursor.execute(declare)
                schema: pa.Schema | None = None
                while True:
                    cursor.execute(f"fetch forward {self.config.batch_rows} from {CURSOR}")
                    if schema is None:
                        schema = schema_for((str(d[0]), int(d[1])) for d in cursor.description or [])
                    rows = cursor.fetchall() if cursor.description else []
                    yield rows_to_batch(rows, schema)
                    if len(rows) < self.config.batch_rows:
                        break
                cursor.execute("rollback")
            except RedshiftError as e:
                raise self._error(e, sql, declare) from e
            finally:
                cursor.close()
        finally:
            _close_quietly(conn)

    def _error(self, error: Exception, sql: str = "", wrapped: str = "") -> WarehouseError:
        fields = error.args[0] if error.args and isinstance(error.args[0], dict) else None
        if fields is None:
            text = str(error).strip() or type(error).__name__
            found = connection_error(f"source {self.name}", self.engine, text)
            if found is not None:
                return found
            where = f"source {self.name}"
            if "authentication" in text.lower() or "password" in text.lower():
                return WarehouseError(f"{where}: Redshift refused the credentials ({text})",
                                      hint="check user and password, or the IAM settings")
            return WarehouseError(f"{where}: cannot use Redshift ({text.splitlines()[0]})", hint="check host, port and credentials")
        position = int(fields["P"]) if str(fields.get("P", "")).isdigit() else None
        return pg_error(self.name, self.engine, fields.get("C"), str(fields.get("M", "")), position=position, wrapped=wrapped,
                        sql=sql, user=self.user, timeout=self.config.statement_timeout)

    def check(self) -> list[str]:
        return readable_tables(self, self.user)


def _driver() -> tuple[Any, type[Exception]]:
    """The ``redshift_connector`` module and its base error class, or how to install them."""
    try:
        import redshift_connector
        from redshift_connector.error import Error
    except ImportError as e:
        raise missing_driver("redshift-connector", "redshift") from e
    return redshift_connector, Error


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - the connection may already be gone; nothing to report
        return
