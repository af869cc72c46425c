"""The platform resource every code location gets: the catalog, the landing zone, the grants
and the audit log, and who the location is when it reads another domain's products."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mesh_platform.deployment import override_key
from mesh_platform.storage import Catalog


class MeshResource(dg.ConfigurableResource):
    """Local deployment: Iceberg catalog and tables under `home`, landing files under `landing`."""

    env: str = "dev"  # MESH_ENV: where products live, per their contracts' servers
    home: str
    landing: str
    consumer: str  # the code location: the identity its reads are granted to and audited as
    source_overrides: dict[str, str] = {}
    # The catalog database's SQLAlchemy URL with MESH_INSTANCE=postgres (given as EnvVar); empty:
    # the SQLite catalog under `home`.
    catalog_url: str = ""

    def catalog(self) -> Catalog:
        """The local catalog (in every environment it also holds the grants)."""
        from mesh_platform.places import local_catalog

        return local_catalog(self.home, self.catalog_url or None)

    def table(self, contract):
        """Where `contract`'s product lives in this environment."""
        from mesh_platform.places import table

        return table(contract, self.env, self.home, self.catalog_url or None)

    def table_of(self, key: str):
        """Where another product lives, from its producer's contract in the workspace."""
        from mesh_platform.registry import product_contract

        return self.table(product_contract(key))

    def grants(self):
        from mesh_platform.grants import GrantStore

        return GrantStore(self.catalog().url)

    def audit_log(self):
        from mesh_platform.audit import AuditLog

        return AuditLog(self.home)

    def reader(self, run_id: str):
        from mesh_platform.access import Reader

        return Reader(self.table_of, self.grants(), self.audit_log(), self.consumer, run_id, Path(self.home))

    def source_override(self, domain: str, source: str) -> str | None:
        return self.source_overrides.get(override_key(domain, source)) or None

    @property
    def landing_root(self) -> Path:
        return Path(self.landing)
