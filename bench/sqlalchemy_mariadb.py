"""The SQLAlchemy source reading a MariaDB table: rows/s and peak RSS against the floors.

Each reader is its own process (peak RSS from ``wait4``), reading the same query:

- ``mysql --quick`` to /dev/null (the client's floor);
- PyMySQL's unbuffered cursor, ``fetchmany(batch)`` (the driver's floor);
- sql-traits' ``type: sqlalchemy`` source, ``stream()`` into Arrow batches (what a run does).

    python bench/sqlalchemy_mariadb.py [--rows 1000000] [--batch 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

DATABASE = "bench_traits"
SQL = f"select concat('u', id) as user_id, plan, visits, revenue, active, last_seen from {DATABASE}.bench_users"


def mysql(statement: str) -> str:
    done = subprocess.run(["mysql", "-h", "127.0.0.1", "-u", "root", "-N", "-B", "-e", statement], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def ensure_table(rows: int) -> None:
    mysql(f"create database if not exists {DATABASE}")
    try:
        if mysql(f"select count(*) from {DATABASE}.bench_users") == str(rows):
            return
    except subprocess.CalledProcessError:
        pass
    print(f"creating {DATABASE}.bench_users with {rows:,} rows…", file=sys.stderr)
    mysql(f"drop table if exists {DATABASE}.bench_users")
    mysql(f"""create table {DATABASE}.bench_users (id int primary key, plan varchar(20), visits int, revenue decimal(12, 2),
              active boolean, last_seen timestamp null)""")
    mysql(f"""use {DATABASE}; insert into bench_users select seq, elt(1 + seq % 3, 'free', 'pro', 'team'), seq % 1000,
              (seq % 10000) / 100, seq % 2 = 0, from_unixtime(1700000000 + seq) from seq_1_to_{rows}""")


PYMYSQL = """
import pymysql, pymysql.cursors, sys
conn = pymysql.connect(host="127.0.0.1", user="root", password="", cursorclass=pymysql.cursors.SSCursor)
cur = conn.cursor(); cur.execute(sys.argv[1]); n = 0
while True:
    rows = cur.fetchmany(int(sys.argv[2]))
    if not rows: break
    n += len(rows)
print(n)
"""

TRAITS = """
import sys
from pathlib import Path
from pydantic import TypeAdapter
from traits.config.models import SourceConfig
from traits.warehouses import open_warehouse
source = TypeAdapter(SourceConfig).validate_python({"type": "sqlalchemy", "url": "mysql+pymysql://root:@127.0.0.1:3306/",
                                                     "batch_rows": int(sys.argv[2])})
with open_warehouse("bench", source, Path(".")) as wh:
    print(sum(b.num_rows for b in wh.stream(sys.argv[1], max_rows=100_000_000)))
"""


def measure(label: str, argv: list[str], rows: int) -> None:
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    assert process.stdout is not None
    assert process.stderr is not None
    out, err = process.stdout.read().decode().strip(), process.stderr.read().decode().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label} failed: {err[-500:]}")
    if out and out.isdigit() and int(out) != rows:
        raise SystemExit(f"{label} read {out} rows, expected {rows}")
    print(f"{label:<34} {elapsed:6.2f} s  {rows / elapsed:>10,.0f} rows/s  peak RSS {usage.ru_maxrss / 1024:6.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()
    ensure_table(args.rows)
    print(f"{args.rows:,} rows × 6 columns from MariaDB {mysql('select version()')}, batch {args.batch:,}")
    measure("mysql --quick > /dev/null", ["sh", "-c", f'mysql -h 127.0.0.1 -u root --quick -N -B -e "{SQL}" > /dev/null'], args.rows)
    measure("PyMySQL unbuffered fetchmany", [sys.executable, "-c", PYMYSQL, SQL, str(args.batch)], args.rows)
    measure("sql-traits sqlalchemy stream()", [sys.executable, "-c", TRAITS, SQL, str(args.batch)], args.rows)


if __name__ == "__main__":
    main()
