"""What a product function gets: its landing sources read to their source contracts, the
published products it was granted, and SQL over them, all on the step's sandboxed DuckDB; and
a scratch folder of the step's own, for work too large for memory staged in buckets.

Everything the step may read was resolved (and, for other products, granted and audited)
before the function runs; the context holds no catalog and no way to publish.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mesh_platform import sources
from mesh_platform.sandbox import Relation, SandboxViolation, check_select, check_view_name

if TYPE_CHECKING:
    import duckdb

    from mesh_platform.access import Granted
    from mesh_platform.contracts import Contract
    from mesh_platform.spec import ProductSpec


class UsageError(ValueError):
    """Product code asking for what its @product declaration does not give it."""


class ProductContext:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        contract: Contract,
        spec: ProductSpec,
        landings: dict[str, sources.Landing],
        inputs: dict[str, Granted],
        log,
        scratch: Path | None = None,
        bucket_budget: int = 0,
    ):
        self._con, self._spec, self._landings, self._inputs = con, spec, landings, inputs
        self._scratch, self._bucket_budget = scratch, bucket_budget
        self.contract, self.log = contract, log
        self._read: dict[str, int] = {}
        # Each input is also a view for the contract's sql rules, which check the output against it.
        written = {product: name for name, product in spec.written}
        for key in inputs:
            self._input_relation(key).to_view(upstream_view(written.get(key, key)))

    def sql(self, query: str, **params) -> Relation:
        """One SELECT over the views this step made (sources, products, your own to_view names)."""
        check_select(self._con, query, f"{self._label}: ctx.sql")
        return Relation(self._con.sql(query, params=params or None))

    def source(self, name: str) -> Relation:
        """The landing source `name`, typed as its source contract says."""
        if name not in self._landings:
            raise UsageError(f"{self._label}: source '{name}' is not declared in @product(sources=...)")
        return Relation(sources.read(self._con, self._landings[name]))

    def buckets(self, *source_names: str) -> int:
        """How many buckets to split the work on these sources into: 1 when their landing files
        fit the step's memory budget whole, else as many as give each bucket half the budget. A
        bucket's work holds more than its landing bytes: it reads staged files, which compress
        less, and writes the split of the next stage, whose open files hold memory too (history
        at 10M customers within 1 GB: 9 buckets of a whole budget 222 s, 18 of half 167 s, 36 of
        a quarter 162 s)."""
        size = 0
        for name in source_names:
            if name not in self._landings:
                raise UsageError(f"{self._label}: source '{name}' is not declared in @product(sources=...)")
            size += sum(os.path.getsize(f) for f in self._landings[name].files)
        if not self._bucket_budget or size <= self._bucket_budget:
            return 1
        return math.ceil(2 * size / self._bucket_budget)

    def stage(self, name: str, query: str, *, bucket_by: str | None = None, buckets: int = 1) -> Relation:
        """Write the rows of one SELECT to the step's scratch folder, split into `buckets` by a
        hash of column `bucket_by`, and (re)define view `name` over all rows staged under that
        name so far, with their bucket in column mesh_bucket. `WHERE mesh_bucket = b` reads that
        bucket's files only: work too large for memory at once is done a bucket at a time. The
        folder is the step's alone and is removed when the step ends."""
        check_view_name(name)
        what = f"{self._label}: ctx.stage('{name}')"
        check_select(self._con, query, what)
        if self._scratch is None:
            raise UsageError(f"{what}: this step has no scratch folder")
        if not isinstance(buckets, int) or buckets < 1 or (buckets > 1 and bucket_by is None):
            raise UsageError(f"{what}: buckets must be a whole number >= 1, and more than 1 needs bucket_by")
        rel = self._con.sql(query)
        if bucket_by is not None and bucket_by not in rel.columns:
            raise UsageError(f"{what}: bucket_by '{bucket_by}' is not a column of the query ({', '.join(rel.columns)})")
        if "mesh_bucket" in rel.columns:
            raise SandboxViolation(f"{what}: mesh_bucket is the platform's column")
        folder = self._scratch / name
        folder.mkdir(exist_ok=True)
        quoted = '"' + bucket_by.replace('"', '""') + '"' if bucket_by is not None else None
        bucket = f"hash({quoted}) % {buckets}" if quoted else "0"
        rel.select(f"*, ({bucket})::BIGINT AS mesh_bucket").to_parquet(
            str(folder), partition_by=["mesh_bucket"], append=True)
        if any(folder.glob("*/*.parquet")):
            pattern = f"{folder}/*/*.parquet".replace("'", "''")
            files = f"read_parquet('{pattern}', hive_partitioning = true)"
            view = self._con.sql(f"SELECT * REPLACE (mesh_bucket::BIGINT AS mesh_bucket) FROM {files}")
        else:  # nothing staged yet: an empty view of the query's columns
            view = rel.select("*, 0::BIGINT AS mesh_bucket").limit(0)
        return Relation(view.to_view(name, replace=True))

    def product(self, key: str) -> Relation:
        """The published snapshot of another product ("domain/product") this step was granted,
        pinned when the run started; masked or reduced as its grant says."""
        key = dict(self._spec.written).get(key, key)
        if key not in self._inputs:
            raise UsageError(f"{self._label}: '{key}' is not declared in @product(inputs=...)")
        self._read[key] = self._inputs[key].snapshot.snapshot_id
        return Relation(self._input_relation(key))

    @property
    def upstream_snapshots(self) -> dict[str, int]:
        """The snapshot of every input the function read."""
        return dict(self._read)

    def _input_relation(self, key: str) -> duckdb.DuckDBPyRelation:
        granted = self._inputs[key]
        if granted.files:
            return granted.relation(self._con)
        return self._con.from_arrow(granted.snapshot.arrow_schema.empty_table())

    @property
    def _label(self) -> str:
        return self.contract.key


def upstream_view(key: str) -> str:
    """The view of an input for contract rules: "upstream_customer_profiles" for
    "customer/profiles", whichever major version the product pins ("customer/profiles@1")."""
    return "upstream_" + key.partition("@")[0].replace("/", "_")
