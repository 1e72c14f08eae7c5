"""A timestamp's JSON text: ISO 8601 in UTC to the millisecond, the same for every way it is made."""

from __future__ import annotations

import json

import pytest

from traits import columnar
from traits.pipeline.types import Column, canonical_json

VALUES = [
    ("2026-12-01 10:00:00.123456+00", "2026-12-01T10:00:00.123Z"),
    ("2026-06-01 12:00:00+05:30", "2026-06-01T06:30:00.000Z"),
    ("1970-01-01 00:00:00+00", "1970-01-01T00:00:00.000Z"),
    ("1969-12-31 23:59:59.9999+00", "1969-12-31T23:59:59.999Z"),  # before the epoch: truncated, not rounded
    ("0001-01-01 00:00:00+00", "0001-01-01T00:00:00.000Z"),
    ("9999-12-31 23:59:59.999999+00", "9999-12-31T23:59:59.999Z"),
    ("294246-01-01 00:00:00+00", "294246-01-01T00:00:00.000Z"),
    ("infinity", "infinity"),
    ("-infinity", "-infinity"),
    (None, None),
]


@pytest.mark.parametrize("duck_type", ["TIMESTAMP WITH TIME ZONE", "TIMESTAMP"])
def test_timestamps_are_iso_text_in_utc(duck_type: str) -> None:
    con = columnar.connect()
    try:
        sql = canonical_json([Column("t", duck_type, "timestamp")], decimals="number", allow_non_finite=False)
        for value, expected in VALUES:
            if duck_type == "TIMESTAMP" and value is not None and "+05:30" in value:
                continue  # a plain timestamp has no offset to apply
            plain = value.removesuffix("+00") if duck_type == "TIMESTAMP" and value else value
            row = con.execute(f"select {sql} from (select cast(? as {duck_type}) as t)", [plain]).fetchone()
            assert row is not None
            assert json.loads(row[0]) == {"t": expected}, value
    finally:
        con.close()
