"""What a product function gets: a DuckDB connection, its landing sources read to their
source contracts, and other domains' published products, read through their access grants."""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import duckdb

from mesh_platform.contracts import Contract
from mesh_platform.products import ProductSpec
from mesh_platform.resource import MeshResource
from mesh_platform.storage import Catalog, Snapshot


class SourceError(ValueError):
    """Landing data that does not match its source contract."""


class AccessDenied(PermissionError):
    pass


class ProductContext:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        contract: Contract,
        spec: ProductSpec,
        sources: dict[str, Contract],
        mesh: MeshResource,
        catalog: Catalog,
        log,
    ):
        self.con, self.contract, self.log = con, contract, log
        self._spec, self._sources, self._mesh, self._catalog = spec, sources, mesh, catalog
        self.upstream_snapshots: dict[str, int | None] = {}

    def sql(self, query: str, **params) -> duckdb.DuckDBPyRelation:
        return self.con.sql(query, params=params or None)

    def source(self, name: str) -> duckdb.DuckDBPyRelation:
        """The landing source `name`, typed as its source contract says."""
        if name not in self._spec.sources:
            raise ValueError(f"{self._label}: source '{name}' is not declared in @product(sources=...)")
        source = self._sources[name]
        pattern = self._mesh.source_path(source.domain, name, source.server_path or "")
        files = sorted(glob.glob(pattern))
        if not files:
            raise SourceError(f"{self._label}: source '{name}' ({source.path}): no file matches {pattern}")
        columns = {c.name: c.physical_type for c in source.columns}
        try:
            if source.server_format == "csv":
                for f in files:
                    _check_header(f, list(columns), source)
                rel = self.con.read_csv(files, header=True, columns=columns)
            elif source.server_format == "parquet":
                rel = self.con.read_parquet(files, union_by_name=True)
                missing = [c for c in columns if c not in rel.columns]
                if missing:
                    raise SourceError(f"{source.path}: {files[0]}: missing columns {missing}")
                rel = rel.select(", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns.items()))
            elif source.server_format == "json":
                rel = self.con.read_json(files, format="newline_delimited", columns=columns)
            else:
                raise SourceError(f"{source.path}: servers[0].format '{source.server_format}' is not readable")
            return rel
        except duckdb.Error as exc:
            raise SourceError(
                f"{self._label}: source '{name}' ({pattern}) does not match {source.path}: {exc}"
            ) from exc

    def product(self, key: str) -> duckdb.DuckDBPyRelation:
        """The current snapshot of another product ("domain/product"), if this product may read it.
        The snapshot read is recorded, and visible to sql rules as view upstream_<domain>_<product>."""
        if tuple(key.split("/")) not in {tuple(k.path) for k in self._spec.inputs}:
            raise ValueError(f"{self._label}: '{key}' is not declared in @product(inputs=...)")
        snapshot = read_product(self._catalog, key, self._mesh.consumer)
        self.upstream_snapshots[key] = snapshot.snapshot_id
        if snapshot.files:
            rel = self.con.read_parquet(list(snapshot.files), union_by_name=True)
        else:
            rel = self.con.from_arrow(snapshot.arrow_schema.empty_table())
        # Also a view for the contract's sql rules, which check the output against its inputs.
        rel.to_view(upstream_view(key))
        return rel

    @property
    def _label(self) -> str:
        return f"{self.contract.domain}/{self.contract.name}"


def upstream_view(key: str) -> str:
    return "upstream_" + key.replace("/", "_")


def read_product(catalog: Catalog, key: str, consumer: str, snapshot_id: int | None = None) -> Snapshot:
    """Resolve a published product for `consumer`, enforcing the producer's grants."""
    domain, name = key.split("/")
    snapshot = catalog.current(domain, name, snapshot_id)
    if snapshot is None or snapshot.snapshot_id is None:
        raise LookupError(f"product {key} has not been published yet")
    readers = [r for r in snapshot.properties.get("mesh.readers", "").split(",") if r]
    if consumer != domain and consumer not in readers:
        raise AccessDenied(
            f"{consumer} may not read {key}: its contract grants read access to {readers or 'its owner only'}"
        )
    return snapshot


def _check_header(path: str, expected: list[str], source: Contract) -> None:
    with Path(path).open(newline="") as f:
        header = next(csv.reader(f), [])
    missing = [c for c in expected if c not in header]
    if missing or header != expected:
        raise SourceError(
            f"{source.path}: {path}: header {header} does not match the contract's columns {expected}"
            + (f" (missing {missing})" if missing else "")
        )
