"""Warehouses behind one interface; each engine's module and driver are imported only when used."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from traits.warehouses.base import Warehouse

if TYPE_CHECKING:
    from traits.config.models import SourceBase

#: source type -> "module:class"
ENGINES = {
    "duckdb": "traits.warehouses.duckdb:DuckDBWarehouse",
    "postgres": "traits.warehouses.postgres:PostgresWarehouse",
    "redshift": "traits.warehouses.redshift:RedshiftWarehouse",
    "snowflake": "traits.warehouses.snowflake:SnowflakeWarehouse",
    "bigquery": "traits.warehouses.bigquery:BigQueryWarehouse",
    "sqlalchemy": "traits.warehouses.sqlalchemy:SqlAlchemyWarehouse",
}


def open_warehouse(name: str, config: SourceBase, config_dir: Path) -> Warehouse:
    kind = config.type
    module_name, class_name = ENGINES[kind].split(":")
    cls: type[Warehouse] = getattr(importlib.import_module(module_name), class_name)
    return cls(name, config, config_dir)


__all__ = ["ENGINES", "Warehouse", "open_warehouse"]
