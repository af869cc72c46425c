"""Every product's state, as a platform team asks for it: published where, by whom, checked how."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import dagster as dg

from mesh_platform.cloud import CloudError
from mesh_platform.deployment import Settings
from mesh_platform.location import location_contracts
from mesh_platform.products import SCHEMA_CHECK
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


def product_status(settings: Settings, instance: dg.DagsterInstance) -> list[ProductStatus]:
    from mesh_platform.places import table

    out = []
    for loc in locations().values():
        try:
            contracts = location_contracts(loc.path.parent)
        except ValueError as exc:  # a broken location must not hide the others
            out.append(ProductStatus(loc.name, "?", "?", "?", None, None, f"load error: {exc}"))
            continue
        for contract in contracts.values():
            in_bigquery = contract.server(settings.env).type == "bigquery"  # a view: no snapshot to show
            try:
                snap = None if in_bigquery else table(contract, settings.env, settings.home, settings.catalog_uri).current()
            except (ValueError, CloudError) as exc:  # its place is not configured or reachable here
                out.append(ProductStatus(contract.domain, contract.name, contract.owner, contract.version, None, None,
                                         f"not readable here: {exc}"))
                continue
            published = snap is not None and snap.snapshot_id is not None
            out.append(ProductStatus(
                domain=contract.domain,
                product=contract.name,
                owner=contract.owner,
                contract_version=snap.summary.get("mesh.contract_version", "?") if published else contract.version,
                rows=int(snap.summary.get("total-records", 0)) if published else None,
                published_ms=snap.timestamp_ms if published else None,
                checks=_checks(instance, contract),
                sla_s=contract.freshness.total_seconds() if contract.freshness else None,
            ))
    return out


def _checks(instance: dg.DagsterInstance, contract) -> str:
    """Each check's latest evaluation: `5/5 passed`, or the names of those that failed."""
    key = dg.AssetKey([contract.domain, contract.name])
    names = [SCHEMA_CHECK, *(r.name for r in contract.rules)]
    failed, evaluated = [], 0
    for name in names:
        record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(key, name))
        if record is None or record.status.value == "PLANNED":
            continue
        evaluated += 1
        if record.status.value != "SUCCEEDED":
            failed.append(name)
    if not evaluated:
        return "not evaluated"
    passed = f"{evaluated - len(failed)}/{len(names)} passed"
    return passed + (f", failed: {', '.join(failed)}" if failed else "")
