"""A real dbt project (``project/``) built with dbt-core + dbt-postgres against the local Postgres.

dbt is not a dependency of sql-traits (it reads the manifest as JSON) and dbt-core's pins do
not sit well beside ours, so the fixture installs dbt-core and dbt-postgres into a venv of their
own (``.cache/dbt-venv`` at the repository root, made once, reused after) and runs ``dbt`` as a
process. Each test gets a copy of the project and a fresh Postgres schema, dropped after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, PG_DSN, Project, require_postgres

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("TRAITS_DBT_VENV", ROOT / ".cache" / "dbt-venv"))
DBT_PACKAGES = ["dbt-core>=1.10,<1.12", "dbt-postgres>=1.9,<2"]  # dbt-core 1.12 fetches a parser binary at install
PROJECT = Path(__file__).parent / "project"


def _dbt_binary() -> Path:
    """The venv's ``dbt``, installed by the first session (or xdist worker) to get the lock; the
    others wait for it and reuse it."""
    from filelock import FileLock

    VENV.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(VENV.parent / f"{VENV.name}.lock")):
        return _install_dbt()


def _install_dbt() -> Path:
    dbt = VENV / "bin" / "dbt"
    if dbt.exists():
        return dbt
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *DBT_PACKAGES], check=True, capture_output=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(VENV, ignore_errors=True)
        stderr = getattr(e, "stderr", b"") or b""
        why = f"cannot install {' '.join(DBT_PACKAGES)} into {VENV}: {stderr.decode(errors='replace').strip()[-300:]}"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    return dbt


@pytest.fixture(scope="session")
def dbt_binary() -> Path:
    require_postgres()
    return _dbt_binary()


@dataclass
class DbtProject:
    dir: Path
    schema: str
    dbt: Path

    def run(self, *args: str) -> str:
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
        done = subprocess.run([str(self.dbt), *args, "--project-dir", str(self.dir), "--profiles-dir", str(self.dir), "--target", "prod"],
                              capture_output=True, text=True, timeout=600, env=env, cwd=self.dir)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        return done.stdout


@pytest.fixture
def dbt_project(dbt_binary: Path, tmp_path: Path) -> Iterator[DbtProject]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    schema = "dbt_" + uuid.uuid4().hex[:10]
    params = conninfo_to_dict(PG_DSN)
    target = tmp_path / "analytics"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("target", "logs"))
    (target / "profiles.yml").write_text(
        "traits_test:\n  target: prod\n  outputs:\n    prod:\n      type: postgres\n"
        f"      host: {params.get('host', '127.0.0.1')}\n      port: {int(params.get('port', 5432))}\n"
        f"      user: {params.get('user', 'postgres')}\n      password: '{params.get('password', '')}'\n"
        f"      dbname: {params.get('dbname', 'postgres')}\n      schema: {schema}\n      threads: 1\n"
    )
    try:
        yield DbtProject(target, schema, dbt_binary)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")  # type: ignore[arg-type]


@pytest.fixture
def traits_project(dbt_project: DbtProject, tmp_path: Path) -> Project:
    """A traits config beside the dbt project, reading the same Postgres."""
    root = tmp_path / "traits"
    root.mkdir()
    return Project(root, "postgres-psycopg", dbt_project.schema)
