"""BigQuery as a source, through ``google-cloud-bigquery``.

Credentials: ``credentials_file`` (a service-account key), else application default
credentials; with ``api_endpoint`` (an emulator) and no file, anonymous credentials. The job
has ``jobTimeoutMs`` = ``statement_timeout`` (BigQuery cancels it there), the optional
``maximum_bytes_billed`` cap, and the label ``application=sql-traits``. BigQuery has no
read-only session: the roles are what keep it read-only (README: BigQuery Data Viewer on the
datasets and BigQuery Job User on the project), and the SQL runs wrapped in a ``select``.

Rows stream page by page (``batch_rows`` per page) through ``to_arrow_iterable``, over the
REST API unless the BigQuery Storage client is installed and picked up by the library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from traits.errors import WarehouseError
from traits.warehouses.arrow_types import mark_json, portable_batch
from traits.warehouses.base import APPLICATION_NAME, Warehouse, fmt_error, limited, missing_driver, resolve_path

if TYPE_CHECKING:
    import pyarrow as pa

    from traits.config.models import BigQuerySource

NOT_FOUND_HINT = "check the project, dataset, table and location (and that the service account can see them)"
BYTES_HINT = "the query scans more than maximum_bytes_billed: narrow it or raise the cap"
ROLES_HINT = "grant the service account BigQuery Data Viewer on the dataset and BigQuery Job User on the project"
_POSITION = re.compile(r"\[(\d+):(\d+)\]")
#: room past jobTimeoutMs for BigQuery to report the cancelled job before the client gives up
WAIT_SLACK = 30.0


class BigQueryWarehouse(Warehouse):
    config: BigQuerySource
    engine = "BigQuery"
    text_type = "string"

    def literal(self, value: str) -> str:
        """BigQuery escapes quotes in literals with a backslash, not by doubling them."""
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def client(self) -> Any:
        """A client as the source's queries use (the bookkeeping session makes its own with it)."""
        try:
            import google.cloud.bigquery as bigquery
            from google.api_core.client_options import ClientOptions
        except ImportError as e:
            raise missing_driver("google-cloud-bigquery", "bigquery") from e
        c = self.config
        options = ClientOptions(api_endpoint=c.api_endpoint) if c.api_endpoint else None
        try:
            return bigquery.Client(project=c.project, location=c.location, credentials=self._credentials(),
                                   client_options=options, client_info=_client_info())
        except Exception as e:  # google.auth raises several unrelated types for missing ADC
            raise WarehouseError(f"source {self.name}: cannot create a BigQuery client ({fmt_error(e)})",
                                 hint="set credentials_file, or configure application default credentials "
                                 "(gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)") from e

    def _credentials(self) -> Any:
        c = self.config
        if c.credentials_file:
            from google.oauth2 import service_account

            key: Any = service_account.Credentials
            path = resolve_path(self.config_dir, c.credentials_file)
            try:
                return key.from_service_account_file(
                    str(path), scopes=["https://www.googleapis.com/auth/bigquery"])
            except (OSError, ValueError) as e:
                raise WarehouseError(f"source {self.name}: cannot read credentials_file {path} ({fmt_error(e)})",
                                     hint="point credentials_file at a service-account JSON key") from e
        if c.api_endpoint:
            from google.auth import credentials

            anonymous: Any = credentials.AnonymousCredentials
            return anonymous()
        return None  # the client falls back to application default credentials

    def job_config(self) -> Any:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(use_legacy_sql=False, labels={"application": APPLICATION_NAME})
        config.job_timeout_ms = max(int(self.config.statement_timeout * 1000), 1)
        if self.config.maximum_bytes_billed is not None:
            config.maximum_bytes_billed = self.config.maximum_bytes_billed
        return config

    def stream(self, sql: str, *, max_rows: int) -> Iterator[pa.RecordBatch]:
        import concurrent.futures

        import pyarrow as pa
        from google.api_core import exceptions as gexc

        wrapped = limited(sql, max_rows)
        client = self.client()
        job = None
        try:
            job = client.query(wrapped, job_config=self.job_config(), location=self.config.location)
            rows = job.result(page_size=self.config.batch_rows, timeout=self.config.statement_timeout + WAIT_SLACK)
            json_columns = {f.name for f in rows.schema or [] if f.field_type == "JSON" and f.mode != "REPEATED"}
            yielded = False
            for batch in rows.to_arrow_iterable(bqstorage_client=None):
                yielded = True
                yield portable_batch(mark_json(batch, json_columns))
            if not yielded:
                schema = rows.to_arrow(create_bqstorage_client=False).schema
                yield portable_batch(mark_json(pa.RecordBatch.from_pylist([], schema=schema), json_columns))
        except (concurrent.futures.TimeoutError, gexc.DeadlineExceeded) as e:
            _cancel(client, job)
            raise self._timeout() from e
        except gexc.GoogleAPIError as e:
            raise self._error(e, sql) from e
        except OSError as e:  # DNS and refused connections surface as requests' ConnectionError (an OSError)
            raise self._connection_error(e) from e
        finally:
            client.close()

    def _timeout(self) -> WarehouseError:
        return WarehouseError(
            f"source {self.name}: the query ran past statement_timeout ({self.config.statement_timeout:g}s) and was cancelled",
            hint="make the query cheaper or raise statement_timeout",
        )

    def _connection_error(self, error: Exception) -> WarehouseError:
        text = fmt_error(error)
        lowered = text.lower()
        if any(s in lowered for s in ("name or service not known", "failed to resolve", "nodename nor servname", "getaddrinfo")):
            return WarehouseError(f"source {self.name}: cannot resolve the BigQuery host ({text})", hint="check api_endpoint and DNS")
        return WarehouseError(f"source {self.name}: cannot reach BigQuery ({text})", hint="check network access (and api_endpoint, if set)")

    def _error(self, error: Any, sql: str) -> WarehouseError:
        where = f"source {self.name}"
        errors = list(getattr(error, "errors", None) or [])
        reason = str(errors[0].get("reason", "")) if errors and isinstance(errors[0], dict) else ""
        message = str(errors[0].get("message", "")) if reason else str(getattr(error, "message", "") or error)
        message = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        code = int(getattr(error, "code", 0) or 0)
        if reason == "timeout" or "timed out" in message.lower() or "jobtimeoutms" in message.lower():
            return self._timeout()
        if reason in ("accessDenied", "forbidden") or code == 403:
            if "bytes billed" in message.lower():
                return WarehouseError(f"{where}: {message}", hint=BYTES_HINT)
            return WarehouseError(f"{where}: {message}", hint=ROLES_HINT)
        if reason == "notFound" or code == 404:
            return WarehouseError(f"{where}: {message}", hint=NOT_FOUND_HINT)
        if reason == "bytesBilledLimitExceeded":
            return WarehouseError(f"{where}: {message}", hint=BYTES_HINT)
        if reason == "invalidQuery" or code == 400:
            return WarehouseError(f"{where}: SQL error at {_position(message)}: {message}", hint="fix the trait's SQL")
        if code == 401 or reason in ("authError", "unauthorized"):
            return WarehouseError(f"{where}: BigQuery refused the credentials ({message})",
                                  hint="check credentials_file or the default credentials")
        return WarehouseError(f"{where}: {message}")

    def check(self) -> list[str]:
        for _ in self.stream("select 1 as ok", max_rows=1):
            pass
        client = self.client()
        try:
            from google.api_core import exceptions as gexc

            try:
                datasets = [d.dataset_id for d in client.list_datasets(max_results=100)]
            except gexc.GoogleAPIError as e:
                raise self._error(e, "") from e
        finally:
            client.close()
        shown = ", ".join(datasets[:10]) + (" …" if len(datasets) > 10 else "")
        return [f"ran a query in project {self.config.project}", f"{len(datasets)} visible dataset(s): {shown or 'none'}"]


def _client_info() -> Any:
    from google.api_core import client_info

    info: Any = client_info.ClientInfo
    return info(user_agent=APPLICATION_NAME)


def _cancel(client: Any, job: Any) -> None:
    if job is None:
        return
    try:
        client.cancel_job(job.job_id, location=job.location)
    except Exception:  # noqa: BLE001 - best effort: BigQuery's own jobTimeoutMs stops it anyway
        return


def _position(message: str) -> str:
    """BigQuery reports ``[line:column]``; the wrapper adds one line before the trait's SQL."""
    match = _POSITION.search(message)
    if not match:
        return "position unknown"
    return f"line {max(int(match.group(1)) - 1, 1)}, column {match.group(2)}"
