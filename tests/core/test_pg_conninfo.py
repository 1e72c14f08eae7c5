"""The Postgres conninfo made without psycopg says what psycopg's (libpq's) would have said."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from traits.config.models import PostgresSource
from traits.warehouses.base import APPLICATION_NAME
from traits.warehouses.postgres import CONNECT_TIMEOUT, PostgresWarehouse, session_options


def _by_psycopg(c: PostgresSource, read_only: bool) -> str:
    """The conninfo as it was made before: every case parsed and written by psycopg."""
    params: dict[str, Any] = conninfo_to_dict(c.dsn.get_secret_value()) if c.dsn else {}
    for key, value in (("host", c.host), ("port", c.port if c.host else None), ("dbname", c.database), ("user", c.user),
                       ("password", c.password.get_secret_value() if c.password else None), ("sslmode", c.sslmode)):
        if value is not None:
            params[key] = value
    params["options"] = (str(params.get("options", "")) + " " + session_options(c.statement_timeout, read_only=read_only)).strip()
    params["application_name"] = APPLICATION_NAME
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return make_conninfo(**params)


CASES: list[dict[str, Any]] = [
    {"dsn": "postgresql://postgres@127.0.0.1:5432/analytics"},
    {"dsn": "postgres://u%40x:p%20w%27d@db.example.com/my%20db"},
    {"dsn": "postgresql://[::1]:6543/a"},
    {"dsn": "postgresql://h1:5432,h2:5433/a"},
    {"dsn": "postgresql:///a"},
    {"dsn": "postgresql://u@h/a", "statement_timeout": 0.5},
    # parsed by psycopg, as before: parameters of its own, fields over it, key=value
    {"dsn": "postgresql://u@h/a?sslmode=require&options=-c%20work_mem%3D4MB"},
    {"dsn": "postgresql://u@h/a", "user": "other", "sslmode": "disable"},
    {"dsn": "host=h dbname=a options='-c work_mem=4MB'"},
    # fields alone
    {"host": "db.internal", "database": "analytics", "user": "reader", "password": "it's a \\ secret"},
    {"host": "h", "port": 6000, "database": "", "user": "u", "sslmode": "verify-full"},
]


@pytest.mark.parametrize("read_only", [True, False], ids=["source", "bookkeeping"])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_conninfo_matches_psycopg(case: dict[str, Any], read_only: bool) -> None:
    config = PostgresSource.model_validate({"type": "postgres", **case})
    made = conninfo_to_dict(PostgresWarehouse("pg", config, Path()).conninfo(read_only=read_only))
    assert made == conninfo_to_dict(_by_psycopg(config, read_only))
    assert f"default_transaction_read_only={'on' if read_only else 'off'}" in str(made["options"])


def test_a_uri_source_does_not_import_psycopg() -> None:
    code = (
        "import sys; from pathlib import Path; from traits.config.models import PostgresSource; "
        "from traits.warehouses.postgres import PostgresWarehouse; "
        "c = PostgresSource.model_validate({'type': 'postgres', 'dsn': 'postgresql://u@h/a'}); "
        "PostgresWarehouse('pg', c, Path()).conninfo(); print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
