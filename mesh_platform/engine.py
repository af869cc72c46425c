"""The engine resource: one embedded, in-memory DuckDB per step, opened by dagster-duckdb.

dagster-duckdb's DuckDBResource imports the duckdb package (0.2 s) as soon as it is imported,
in every process that loads a code location, the UI's code servers included. This resource
carries the same settings and builds the DuckDBResource only when a step connects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import duckdb


class DuckDBEngine(dg.ConfigurableResource):
    """DuckDB as the engine, never the store: each step reads and writes files, nothing persists
    in the database. Bounded, so that a large aggregation spills to `temp_directory` instead of
    growing the step's memory without limit."""

    memory_limit: str
    temp_directory: str

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        from dagster_duckdb import DuckDBResource

        resource = DuckDBResource(
            database=":memory:",
            connection_config={
                "memory_limit": self.memory_limit,
                "temp_directory": self.temp_directory,
                "preserve_insertion_order": False,
            },
        )
        with resource.get_connection() as con:
            yield con
