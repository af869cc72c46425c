"""The platform resource every code location gets: the catalog, the landing zone, the grants
and the audit log, and who the location is when it reads another domain's products."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mesh_platform.storage import Catalog


class MeshResource(dg.ConfigurableResource):
    """Local deployment: Iceberg catalog and tables under `home`, landing files under `landing`."""

    home: str
    landing: str
    consumer: str  # the code location: the identity its reads are granted to and audited as
    source_overrides: dict[str, str] = {}

    def catalog(self) -> Catalog:
        return Catalog(self.home)

    def grants(self):
        from mesh_platform.grants import GrantStore

        return GrantStore(self.catalog().db_path)

    def audit_log(self):
        from mesh_platform.audit import AuditLog

        return AuditLog(self.home)

    def reader(self, run_id: str):
        from mesh_platform.access import Reader

        return Reader(self.catalog(), self.grants(), self.audit_log(), self.consumer, run_id)

    def source_override(self, domain: str, source: str) -> str | None:
        return self.source_overrides.get(f"{domain}_{source}") or None

    @property
    def landing_root(self) -> Path:
        return Path(self.landing)
