"""Unique ids are checked by counting the ids' hashes; two ids whose hashes meet are told apart by their text."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from traits import columnar
from traits.config.models import Settings, Trait
from traits.errors import ValidationError
from traits.pipeline import validate
from traits.pipeline.validate import check_shape, check_unique, duck_types


def _staged(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "result.parquet"
    pq.write_table(pa.table({"user_id": ids, "plan": ["pro"] * len(ids)}), path)
    return path


def _check(tmp_path: Path, ids: list[str]) -> None:
    staged = _staged(tmp_path, ids)
    con = columnar.connect()
    try:
        trait = Trait.model_validate({"kind": "user", "source": "s", "sql": "select 1", "destinations": []})
        shape = check_shape("t", trait, Settings(), pq.read_schema(staged), duck_types(con, staged))
        check_unique(con, "t", shape, staged)
    finally:
        con.close()


@pytest.fixture
def colliding_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id hashes to one of two values: what a chance 64-bit collision looks like, made certain."""
    monkeypatch.setattr(validate, "ID_HASH_SQL", "hash(id) % 2")


@pytest.mark.usefixtures("colliding_hashes")
def test_distinct_ids_whose_hashes_collide_pass(tmp_path: Path) -> None:
    _check(tmp_path, [f"u{i}" for i in range(1000)])


@pytest.mark.usefixtures("colliding_hashes")
def test_a_duplicate_among_colliding_hashes_is_still_found(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"1 user_id value\(s\) appear more than once \('u7' ×2\)"):
        _check(tmp_path, [*(f"u{i}" for i in range(1000)), "u7"])


def test_a_duplicate_is_found_by_the_hashes_alone(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"appear more than once \('u3' ×3\)"):
        _check(tmp_path, ["u1", "u2", "u3", "u3", "u3"])
