"""Where a product lives in the active environment: its contract's `servers` entry for that
environment, resolved to the Iceberg catalog, namespace, name and location of its table.

dev:  type local, the SQL catalog (SQLite under MESH_HOME, or PostgreSQL with
      MESH_INSTANCE=postgres), namespace = the domain.
prod: type glue, the Glue database the server names, data at its S3 location; other types are
      served by their cloud's module (azure: ADLS; bigquery: the federation's view).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from mesh_platform.contracts import Contract
from mesh_platform.storage import Catalog, DataFile, Head, Snapshot


@dataclass(frozen=True)
class Table:
    key: str  # domain/name
    kind: str  # the server type
    catalog: Catalog
    namespace: str
    name: str
    location: str | None  # None: the catalog's default

    def current(self, snapshot_id: int | None = None) -> Snapshot | None:
        return self.catalog.current(self.namespace, self.name, snapshot_id)

    def head(self) -> Head | None:
        return self.catalog.head(self.namespace, self.name)

    def history(self) -> list[int]:
        return self.catalog.history(self.namespace, self.name)

    def new_data_file(self) -> DataFile:
        return self.catalog.new_data_file(self.namespace, self.name, self.location)

    def publish(self, files: list[DataFile], properties: dict[str, str], snapshot_properties: dict[str, str]) -> Snapshot:
        return self.catalog.publish(self.namespace, self.name, files, properties, snapshot_properties, self.location)


def table(contract: Contract, env: str, home: Path | str, catalog_url: str | None = None) -> Table:
    server = contract.server(env)
    if server.type == "local":
        return Table(contract.key, "local", local_catalog(str(home), catalog_url), contract.domain, contract.name, None)
    if server.type == "glue":
        from mesh_platform.deployment import deployment_file
        from mesh_platform.storage import GlueCatalog

        region = deployment_file(env)["aws"]["region"]
        catalog = _cached(GlueCatalog, str(home), region)
        return Table(contract.key, "glue", catalog, server.get("database"), contract.name, server.get("location"))
    if server.type == "azure":
        from mesh_platform.cloud.azure import adls_table

        return adls_table(contract, server, env, home)
    raise ValueError(f"{contract.path}: servers ({env}): no Iceberg table for server type '{server.type}'")


def local_catalog(home: str, url: str | None = None) -> Catalog:
    """The SQL catalog of local tables: SQLite under `home`, or the database `url` names."""
    return _cached(Catalog, home, url or None)


@functools.cache
def _cached(cls, *args):
    return cls(*args)
