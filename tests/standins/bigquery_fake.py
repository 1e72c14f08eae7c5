"""A BigQuery stand-in: the REST API's query path, backed by DuckDB. Test-only.

The real ``google-cloud-bigquery`` client talks to it over HTTP (``client_options``
``api_endpoint``), so the warehouse code runs its real path: ``jobs.insert`` →
``jobs.getQueryResults`` (``maxResults=0``: schema and ``totalRows``) → pages of rows by
``pageToken`` → ``to_arrow_iterable``. SQL is translated from BigQuery's dialect to DuckDB's
with sqlglot. What it enforces:

- ``jobTimeoutMs``: the DuckDB query is interrupted when it passes it (reason ``timeout``);
- a schema listed in ``denied`` answers 403 ``accessDenied``, as BigQuery does for a table the
  caller may not read; a missing table answers 404 ``notFound``; a syntax error 400
  ``invalidQuery`` with ``[line:column]``.

For the bookkeeping session (``diff: warehouse``) it also runs statements (DDL and DML answer
an empty result), substitutes positional query parameters (scalars and ARRAY<STRING>), keeps
sessions (``createSession``, ``connectionProperties`` ``session_id``: one DuckDB cursor each,
so ``begin transaction`` … ``commit transaction`` spans jobs; ``CALL BQ.ABORT_SESSION()`` ends
one), reads ``INFORMATION_SCHEMA`` qualified by a region or dataset, and drops ``NOT
ENFORCED`` (DuckDB enforces its keys).

Concurrent transactions conflict as in BigQuery, not as in DuckDB: DuckDB refuses at once to
delete or update a row another open transaction changed, so a session left in a transaction by
a client that died (killed mid-transaction) would block that row for the fake's lifetime.
In BigQuery such a transaction blocks no one: it fails when it next runs a statement
("aborted due to concurrent update"), and its session ends after a day idle. So a job that
writes (``begin``, DML) first rolls back the open transactions of the sessions not running a
job, and marks them aborted. (The fake serves one client at a time: a session between two
jobs of a live transaction is not rolled back by its own jobs.)

Rows are encoded as the REST API does: every scalar a string, timestamps as int64
microseconds (``formatOptions.useInt64Timestamp``), bytes as base64, records as ``{"f": …}``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pyarrow as pa
import sqlglot

_JOBS = re.compile(r"^/bigquery/v2/projects/([^/]+)/jobs$")
_JOB = re.compile(r"^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)(/cancel)?$")
_QUERY = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries/([^/]+)$")
_DATASETS = re.compile(r"^/bigquery/v2/projects/([^/]+)/datasets$")
_WRITE = re.compile(r"^\s*(begin|insert|update|delete|merge|truncate)\b", re.I)
_TABLE_REF = re.compile(r"(?:from|join)\s+`?([\w-]+)\.([\w-]+)`?", re.I)


@dataclass
class Job:
    project: str
    job_id: str
    location: str
    configuration: dict[str, Any]
    table: pa.Table | None = None
    error: dict[str, str] | None = None
    session: str | None = None


@dataclass
class FakeBigQuery:
    """The state behind the API: one DuckDB database (datasets are its schemas)."""

    con: duckdb.DuckDBPyConnection
    denied: set[str] = field(default_factory=set)
    jobs: dict[str, Job] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, duckdb.DuckDBPyConnection] = field(default_factory=dict)
    #: sessions running a job now, and sessions whose open transaction another one's write aborted
    busy: set[str] = field(default_factory=set)
    aborted: set[str] = field(default_factory=set)

    def run(self, project: str, body: dict[str, Any]) -> Job:
        ref = body.get("jobReference") or {}
        config = body.get("configuration") or {}
        job = Job(project, ref.get("jobId") or uuid.uuid4().hex, ref.get("location") or "US", config)
        self.jobs[job.job_id] = job
        query = config.get("query", {})
        sql = _substitute(query.get("query", ""), query.get("queryParameters") or [])
        self.queries.append(sql)
        session = self._session(job, query)
        if session is not None and re.match(r"^\s*call\s+bq\.abort_session\s*\(\s*\)\s*;?\s*$", sql, re.I):
            cursor = self.sessions.pop(session)
            cursor.close()  # (rolls back an open transaction)
            job.table = pa.table({})
            return job
        job.error = self._denied(project, sql)
        if job.error is None and session is not None and session in self.aborted:
            self.aborted.discard(session)
            job.error = {"reason": "invalidQuery", "message": "Transaction is aborted due to concurrent update"}
        if job.error is None:
            if session is not None:
                with self.lock:
                    self.busy.add(session)
            try:
                if _WRITE.match(sql):
                    self._abort_idle_transactions(but=session)
                job.table, job.error = self._execute(sql, int(config.get("jobTimeoutMs") or 0),
                                                     self.sessions[session] if session is not None else None)
            finally:
                if session is not None:
                    with self.lock:
                        self.busy.discard(session)
        return job

    def _abort_idle_transactions(self, but: str | None) -> None:
        """Roll back the open transactions of the sessions not running a job (but ``but``'s)."""
        with self.lock:
            idle = [(name, cursor) for name, cursor in self.sessions.items() if name != but and name not in self.busy]
        for name, cursor in idle:
            try:
                cursor.execute("rollback")
            except duckdb.TransactionException:
                continue  # (no transaction open)
            self.aborted.add(name)

    def _session(self, job: Job, query: dict[str, Any]) -> str | None:
        if query.get("createSession"):
            session = uuid.uuid4().hex
            with self.lock:
                self.sessions[session] = self.con.cursor()
            job.session = session
            return session
        for prop in query.get("connectionProperties") or []:
            if prop.get("key") == "session_id":
                job.session = str(prop.get("value"))
                return job.session
        return None

    def _denied(self, project: str, sql: str) -> dict[str, str] | None:
        for dataset, table in _TABLE_REF.findall(sql):
            if dataset in self.denied:
                name = f"{project}:{dataset}.{table}"
                return {"reason": "accessDenied", "message": f"Access Denied: Table {name}: User does not have permission "
                        f"to query table {name}, or perhaps it does not exist."}
        return None

    def _execute(self, sql: str, timeout_ms: int,
                 session: duckdb.DuckDBPyConnection | None = None) -> tuple[pa.Table | None, dict[str, str] | None]:
        try:
            sql = re.sub(r"`[^`]+`\.INFORMATION_SCHEMA\.", "INFORMATION_SCHEMA.", sql, flags=re.I)
            translated = sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]
            translated = re.sub(r'"information_schema\.(\w+)"', r"information_schema.\1", translated, flags=re.I)
            translated = re.sub(r"\s+NOT ENFORCED", "", translated, flags=re.I)
        except sqlglot.errors.ParseError as e:
            err = e.errors[0] if e.errors else {}
            where = f"[{err.get('line', 1)}:{err.get('col', 1)}]"
            return None, {"reason": "invalidQuery", "message": f"Syntax error: {err.get('description', e)} at {where}"}
        with self.lock:
            cursor = self.con.cursor() if session is None else session
        timer = threading.Timer(timeout_ms / 1000, cursor.interrupt) if timeout_ms else None
        if timer is not None:
            timer.start()
        try:
            relation = cursor.sql(translated)
            if relation is None:  # a statement: DDL, DML, begin or commit
                return pa.table({}), None
            json_columns = [i for i, kind in enumerate(relation.types) if str(kind) == "JSON"]
            table = relation.to_arrow_table()
            for i in json_columns:  # DuckDB exports JSON as plain text: keep its type for the schema
                table = table.set_column(i, table.field(i).name, pa.ExtensionArray.from_storage(
                    pa.json_(), table.column(i).combine_chunks().cast(pa.string())))
            return table, None
        except duckdb.InterruptException:
            return None, {"reason": "timeout", "message": f"Job timed out after {timeout_ms / 1000:g} sec (jobTimeoutMs)"}
        except duckdb.CatalogException as e:
            match = re.search(r"Table with name (\w+) does not exist", str(e))
            name = match.group(1) if match else "?"
            return None, {"reason": "notFound", "message": f"Not found: Table {name} was not found in location US"}
        except duckdb.ParserException as e:
            return None, {"reason": "invalidQuery", "message": f"Syntax error: {str(e).splitlines()[0]} at [1:1]"}
        except duckdb.Error as e:
            return None, {"reason": "invalidQuery", "message": str(e).splitlines()[0]}
        finally:
            if timer is not None:
                timer.cancel()
            if session is None:
                cursor.close()


def _substitute(sql: str, parameters: list[dict[str, Any]]) -> str:
    """Positional ``?`` parameters written into the SQL as BigQuery literals (outside quotes)."""
    if not parameters:
        return sql
    values = iter(parameters)
    parts = re.split(r"('(?:[^'\\]|\\.)*'|`[^`]*`)", sql)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\?", lambda _: _literal(next(values)), parts[i])
    return "".join(parts)


def _literal(parameter: dict[str, Any]) -> str:
    kind = parameter.get("parameterType", {})
    value = parameter.get("parameterValue", {})
    if kind.get("type") == "ARRAY":
        return "[" + ", ".join(_scalar(kind["arrayType"]["type"], v.get("value")) for v in value.get("arrayValues") or []) + "]"
    return _scalar(kind.get("type", "STRING"), value.get("value"))


def _scalar(kind: str, value: Any) -> str:
    if value is None:
        return "null"
    if kind in ("INT64", "FLOAT64", "NUMERIC", "BOOL"):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


_STATUS = {"accessDenied": 403, "notFound": 404, "invalidQuery": 400, "timeout": 400}


def _bq_field(f: pa.Field) -> dict[str, Any]:
    t = f.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _bq_field(pa.field(f.name, t.value_type))
        return {**inner, "mode": "REPEATED"}
    if pa.types.is_struct(t):
        return {"name": f.name, "type": "RECORD", "mode": "NULLABLE", "fields": [_bq_field(t.field(i)) for i in range(t.num_fields)]}
    if isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.json":
        kind = "JSON"
    elif pa.types.is_integer(t):
        kind = "INTEGER"
    elif pa.types.is_floating(t):
        kind = "FLOAT"
    elif pa.types.is_decimal(t):
        kind = "NUMERIC" if t.scale <= 9 and t.precision - t.scale <= 29 else "BIGNUMERIC"
    elif pa.types.is_boolean(t):
        kind = "BOOLEAN"
    elif pa.types.is_date(t):
        kind = "DATE"
    elif pa.types.is_time(t):
        kind = "TIME"
    elif pa.types.is_timestamp(t):
        kind = "TIMESTAMP" if t.tz else "DATETIME"
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        kind = "BYTES"
    else:
        kind = "STRING"
    return {"name": f.name, "type": kind, "mode": "NULLABLE"}


def _cell(value: Any, t: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [{"v": _cell(v, t.value_type)} for v in value]
    if pa.types.is_struct(t):
        return {"f": [{"v": _cell(value.get(t.field(i).name), t.field(i).type)} for i in range(t.num_fields)]}
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return "Infinity" if value == float("inf") else "-Infinity" if value == float("-inf") else repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return str(int(value.timestamp() * 1_000_000))
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _handler(fake: FakeBigQuery) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, error: dict[str, str]) -> None:
            code = _STATUS.get(error["reason"], 500)
            self._send(code, {"error": {"code": code, "message": error["message"], "errors": [{**error, "domain": "global"}]}})

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if m := _JOBS.match(path):
                job = fake.run(m.group(1), body)
                self._send(200, _job_resource(job))
            elif (m := _JOB.match(path)) and m.group(3):
                job = fake.jobs[m.group(2)]
                self._send(200, {"kind": "bigquery#jobCancelResponse", "job": _job_resource(job)})
            else:
                self._send(404, _no_route(path))

        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if m := _JOB.match(url.path):
                self._send(200, _job_resource(fake.jobs[m.group(2)]))
            elif m := _QUERY.match(url.path):
                job = fake.jobs[m.group(2)]
                if job.error is not None:
                    self._error(job.error)
                    return
                self._send(200, _results(job, params))
            elif m := _DATASETS.match(url.path):
                names = [r[0] for r in fake.con.cursor().execute(
                    "select schema_name from information_schema.schemata where catalog_name = current_database()").fetchall()]
                self._send(200, {"kind": "bigquery#datasetList", "datasets": [
                    {"datasetReference": {"projectId": m.group(1), "datasetId": n}, "id": f"{m.group(1)}:{n}"} for n in names]})
            else:
                self._send(404, _no_route(url.path))

    return Handler


def _no_route(path: str) -> dict[str, Any]:
    return {"error": {"code": 404, "message": f"no route {path}", "errors": [{"reason": "notFound", "message": path}]}}


def _job_resource(job: Job) -> dict[str, Any]:
    status: dict[str, Any] = {"state": "DONE"}
    if job.error is not None:
        status["errorResult"] = job.error
        status["errors"] = [job.error]
    ref = {"projectId": job.project, "jobId": job.job_id, "location": job.location}
    stats: dict[str, Any] = {"query": {"totalBytesProcessed": "0", "statementType": "SELECT"}}
    if job.session is not None:
        stats["sessionInfo"] = {"sessionId": job.session}
    return {"kind": "bigquery#job", "id": f"{job.project}:{job.location}.{job.job_id}", "jobReference": ref,
            "configuration": job.configuration, "status": status, "statistics": stats}


def _results(job: Job, params: dict[str, str]) -> dict[str, Any]:
    table = job.table
    assert table is not None
    ref = {"projectId": job.project, "jobId": job.job_id, "location": job.location}
    body: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse", "jobReference": ref, "jobComplete": True,
                            "totalRows": str(table.num_rows), "schema": {"fields": [_bq_field(f) for f in table.schema]},
                            "cacheHit": False}
    limit = int(params.get("maxResults", table.num_rows or 1))
    start = int(params.get("pageToken") or params.get("startIndex") or 0)
    if limit == 0:
        return body
    page = table.slice(start, limit)
    types = [f.type for f in table.schema]
    body["rows"] = [{"f": [{"v": _cell(v, t)} for v, t in zip(row.values(), types, strict=True)]} for row in page.to_pylist()]
    if start + limit < table.num_rows:
        body["pageToken"] = str(start + limit)
    return body


@contextmanager
def fake_bigquery(con: duckdb.DuckDBPyConnection, denied: set[str] | None = None) -> Iterator[tuple[str, FakeBigQuery]]:
    """Serve the fake on 127.0.0.1; yields the ``api_endpoint`` and the fake's state."""
    fake = FakeBigQuery(con, denied or set())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, name="fake-bigquery", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
