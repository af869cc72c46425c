"""The engine resource: one embedded, in-memory DuckDB per step, opened by dagster-duckdb.

dagster-duckdb's DuckDBResource imports the duckdb package (0.2 s) as soon as it is imported,
in every process that loads a code location, the UI's code servers included. This resource
carries the same settings and builds the DuckDBResource only when a step connects.
"""

from __future__ import annotations

import re
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
    # Landing bytes a product's work may take on whole, and twice a bucket's once it is split
    # (ProductContext.buckets); 0: a third of the memory limit.
    bucket_bytes: int = 0

    def bucket_budget(self, con: duckdb.DuckDBPyConnection) -> int:
        if self.bucket_bytes:
            return self.bucket_bytes
        # DuckDB's own reading of the limit, whichever spelling it was given ("953.6 MiB" for 1GB,
        # "1.5 GiB" for 1700MB: rounded down, so the budget errs small).
        return memory_bytes(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]) // 3

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


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(limit: str) -> int:
    """DuckDB's spelling of a memory size ("1GB", "1700MB", "2 GiB") in bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", limit)
    if not m or m[2].lower() not in _UNITS:
        raise ValueError(f"{limit!r} is not a memory size such as 1GB, 1700MB or 2GiB")
    return int(float(m[1]) * _UNITS[m[2].lower()])
