"""The platform resource every code location gets: the catalog, the landing zone, and who
the location is when it reads another domain's products."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mesh_platform.storage import Catalog


class MeshResource(dg.ConfigurableResource):
    """Local deployment: Iceberg catalog and tables under `home`, landing files under `landing`."""

    home: str
    landing: str
    consumer: str
    source_overrides: dict[str, str] = {}

    def catalog(self) -> Catalog:
        return Catalog(self.home)

    def source_path(self, domain: str, source: str, default: str) -> str:
        override = self.source_overrides.get(f"{domain}_{source}")
        return override if override else str(Path(self.landing) / default)
