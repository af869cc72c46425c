"""Every product's state, as a platform team asks for it: published where, by whom, checked how.

Without Dagster: contracts from the workspace's folders, the current snapshot from the catalog
(read straight from the local SQLite catalog when the product lives there), the latest checks
from what publish keeps (mesh_platform.last_audit). Well under a second locally.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from mesh_platform import last_audit
from mesh_platform.cloud import CloudError
from mesh_platform.contracts import Contract, ContractError
from mesh_platform.deployment import Settings
from mesh_platform.places import table
from mesh_platform.registry import location_entries
from mesh_platform.workspace import locations


@dataclass(frozen=True)
class ProductStatus:
    domain: str
    product: str
    owner: str
    contract_version: str
    rows: int | None
    published_ms: int | None
    checks: str
    sla_s: float | None = None  # the contract's freshness SLA (latency), if any

    @property
    def fresh(self) -> bool | None:
        """Published within its SLA; None when it has no SLA or was never published."""
        if self.sla_s is None or self.published_ms is None:
            return None
        return time.time() - self.published_ms / 1000 <= self.sla_s

    @property
    def freshness(self) -> str:
        if self.sla_s is None:
            return "no SLA"
        sla = f"SLA {_hours(self.sla_s)}"
        if self.published_ms is None:
            return f"never published ({sla})"
        age = _hours(time.time() - self.published_ms / 1000)
        return f"fresh ({age} old, {sla})" if self.fresh else f"OVERDUE ({age} old, {sla})"

    def as_dict(self) -> dict:
        published = (datetime.fromtimestamp(self.published_ms / 1000, timezone.utc).isoformat()
                     if self.published_ms else None)
        return {**asdict(self), "published": published, "fresh": self.fresh}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m"


def product_status(settings: Settings) -> list[ProductStatus]:
    out = []
    for loc in locations().values():
        try:
            contracts = [e.contract for e in location_entries(loc.path.parent, loc.name).values()]
        except (ContractError, OSError) as exc:  # a broken location must not hide the others
            out.append(ProductStatus(loc.name, "?", "?", "?", None, None, f"load error: {exc}"))
            continue
        for contract in contracts:
            try:
                snapshot = _current(contract, settings)
            except (ValueError, CloudError) as exc:  # its place is not configured or reachable here
                out.append(ProductStatus(contract.domain, contract.name, contract.owner, contract.version, None, None,
                                         f"not readable here: {exc}"))
                continue
            version, rows, published_ms = snapshot or (contract.version, None, None)
            out.append(ProductStatus(
                domain=contract.domain, product=contract.name, owner=contract.owner, contract_version=version,
                rows=rows, published_ms=published_ms, checks=last_audit.summary(settings.home, contract.key),
                sla_s=contract.freshness.total_seconds() if contract.freshness else None,
            ))
    return out


def _current(contract: Contract, settings: Settings) -> tuple[str, int, int] | None:
    """(contract version, rows, published at in ms) of the current snapshot, or None."""
    if contract.server(settings.env).type == "bigquery":
        return None  # a view: no snapshot to show
    head = table(contract, settings.env, settings.home, settings.catalog_uri).head()
    if head is None:
        return None
    return head.summary.get("mesh.contract_version", "?"), int(head.summary.get("total-records", 0)), head.timestamp_ms
