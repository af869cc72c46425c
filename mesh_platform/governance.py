"""Governance as assets the platform adds to every code location.

`<location>/governance/grants` compiles the location's contracts' read grants into the catalog.
Its code version is a hash of those grants, so when an owner edits `roles` in a contract and
the location reloads, automation applies the change within a sensor tick: grants follow the
contract, not the next publish of the data.
"""


import hashlib
import json

import dagster as dg

from mesh_platform.contracts import Contract
from mesh_platform.resource import MeshResource


def grants_key(location: str) -> dg.AssetKey:
    return dg.AssetKey([location, "governance", "grants"])


def apply_grants(store, audit, actor: str, contract: Contract) -> list:
    """Make the catalog's grants on `contract`'s product what the contract says, and audit each
    change as done by `actor`; returns the changes."""
    changes = store.apply(contract)
    for change in changes:
        audit.append(change.action, actor, contract.key, reader=change.grant.reader,
                     mask=list(change.grant.mask), exclude=list(change.grant.exclude))
    return changes


def grants_asset(location: str, team: str, contracts: list[Contract]) -> dg.AssetsDefinition:
    compiled = {c.key: [[g.reader, list(g.mask), list(g.exclude)] for g in c.grants] for c in contracts}
    version = hashlib.sha256(json.dumps(compiled, sort_keys=True).encode()).hexdigest()[:16]

    @dg.asset(
        key=grants_key(location),
        group_name=location,
        owners=[f"team:{team}"],
        kinds={"governance"},
        code_version=version,
        description=(
            "Who may read this location's products, compiled from their contracts' roles into the "
            "catalog. Applied again automatically whenever a contract's grants change."
        ),
        metadata={"grants": dg.MetadataValue.json(compiled)},
        automation_condition=(
            (dg.AutomationCondition.code_version_changed() | dg.AutomationCondition.missing())
            & ~dg.AutomationCondition.in_progress()
        ),
    )
    def _grants(context: dg.AssetExecutionContext, mesh: MeshResource) -> dg.MaterializeResult:
        store, audit = mesh.grants(), mesh.audit_log()
        changes = [change for contract in contracts for change in apply_grants(store, audit, mesh.consumer, contract)]
        for change in changes:
            context.log.info(f"{change.action}: {change.grant.describe()}")
        return dg.MaterializeResult(metadata={
            "changes": dg.MetadataValue.json([f"{c.action}: {c.grant.describe()}" for c in changes]),
            "grants": dg.MetadataValue.json(compiled),
        })

    return _grants
