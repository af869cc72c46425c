"""What a product function gets: its landing sources read to their source contracts, the
published products it was granted, and SQL over them, all on the step's sandboxed DuckDB.

Everything the step may read was resolved (and, for other products, granted and audited)
before the function runs; the context holds no catalog and no way to publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh_platform import sources
from mesh_platform.sandbox import Relation, check_select

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
    ):
        self._con, self._spec, self._landings, self._inputs = con, spec, landings, inputs
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
