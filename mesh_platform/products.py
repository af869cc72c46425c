"""What a domain writes (a contract and a `@product` function) turned into a Dagster asset.

The platform derives everything Dagster shows from the contract: description, owner, group,
tags, kinds, column schema, code version, freshness policy and one asset check per rule.
"""

from datetime import timedelta

import dagster as dg

from mesh_platform.contracts import VOLUME_CHECK, Contract
from mesh_platform.engine import DuckDBEngine
from mesh_platform.follow import follows_inputs
from mesh_platform.resource import MeshResource
from mesh_platform.spec import ProductSpec

SCHEMA_CHECK = "schema"
KINDS = {"duckdb", "iceberg"}


def product_key(contract: Contract) -> dg.AssetKey:
    return dg.AssetKey([contract.domain, contract.name])


def source_key(domain: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([domain, "landing", name])


def table_schema(contract: Contract) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.physical_type,
                description=c.description or None,
                constraints=dg.TableColumnConstraints(nullable=not c.required, unique=c.unique),
                tags={"classification": c.classification.lower()} if c.classification else None,
            )
            for c in contract.columns
        ]
    )


# A landing source without a latency SLA of its own is a nightly export: overdue after 26 hours.
SOURCE_FRESHNESS = timedelta(hours=26)


def source_spec(contract: Contract) -> dg.AssetSpec:
    """A landing source as an external asset, so lineage starts at the source system; observed
    by its location's landing sensor (mesh_platform.landing_watch), which keeps its freshness."""
    return dg.AssetSpec(
        key=source_key(contract.domain, contract.name),
        description=contract.description,
        group_name=contract.domain,
        owners=[contract.owner],
        kinds={contract.server_format or "file"},
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=contract.freshness or SOURCE_FRESHNESS),
        metadata={
            "dagster/column_schema": table_schema(contract),
            "contract": dg.MetadataValue.path(str(contract.path)),
            "landing_path": contract.server_path or "",
        },
    )


def product_asset(
    contract: Contract, spec: ProductSpec, sources: dict[str, Contract], policy_warnings: list[str] = (),
    env: str = "dev", input_notices: list[str] = (),
) -> dg.AssetsDefinition:
    key = product_key(contract)
    in_bigquery = contract.server(env).type == "bigquery"  # a view in BigQuery (prod customer_360): cloud/gcp.py
    check_specs = [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=key,
            blocking=True,
            description="Columns, types, required and unique columns as the contract states.",
        ),
        *(
            dg.AssetCheckSpec(rule.name, asset=key, blocking=rule.blocking, description=rule.description)
            for rule in contract.rules
        ),
    ]
    if contract.volume_max_drop is not None:
        check_specs.append(dg.AssetCheckSpec(
            VOLUME_CHECK, asset=key, blocking=True,
            description=f"The row count falls by at most {contract.volume_max_drop:g}% against the published version.",
        ))
    inputs = [dg.AssetKey(i.split("/")) for i in spec.inputs]
    if in_bigquery:  # the view reads its inputs' BigQuery output ports, so it follows them
        from mesh_platform.cloud.gcp import port_key

        inputs = [port_key(contract.domain, i, env) for i in spec.inputs]
    # A product built from other products follows them: it runs when any of them publishes,
    # and only once every one of them passed its blocking checks.
    automation = follows_inputs() if inputs else None

    @dg.asset(
        key=key,
        deps=[*inputs, *(source_key(contract.domain, s) for s in spec.sources)],
        description=(f"Major version {contract.major} of {contract.series_key}, served beside the latest until "
                     f"{contract.retires.isoformat()}. " if contract.series else "") + contract.description,
        group_name=contract.domain,
        owners=[contract.owner],
        # The contract's own tags become labels, so the catalog can be searched by them.
        tags={
            **{tag: "" for tag in contract.tags},
            "Domain": contract.domain,
            "Owner": contract.team,
            "DataProduct": contract.name,
        },
        kinds={"bigquery"} if in_bigquery else KINDS,
        code_version=contract.version,
        metadata={
            "dagster/column_schema": table_schema(contract),
            "dagster/table_name": f"{contract.domain}.{contract.name}",
            "contract": dg.MetadataValue.path(str(contract.path)),
            "contract_version": contract.version,
            "contract_status": contract.status,
            "readers": ", ".join(contract.readers) or "(owner only)",
            **({"policy_warnings": dg.MetadataValue.json(list(policy_warnings))} if policy_warnings else {}),
            **({"serves": f"major version {contract.major} of {contract.series_key}, until "
                          f"{contract.retires.isoformat()} (then retired)"} if contract.series else {}),
            **({"input_retirements": dg.MetadataValue.json(list(input_notices))} if input_notices else {}),
        },
        check_specs=check_specs,
        freshness_policy=(
            dg.FreshnessPolicy.time_window(fail_window=contract.freshness)
            if contract.freshness
            else None
        ),
        automation_condition=automation,
    )
    def _product(context: dg.AssetExecutionContext, mesh: MeshResource, duckdb: DuckDBEngine):
        for notice in input_notices:
            context.log.warning(notice)
        if contract.server(mesh.env).type == "bigquery":
            from mesh_platform.cloud.gcp import run_view_product

            yield from run_view_product(context, contract, spec, mesh)
            return
        from mesh_platform.publish import run_product  # pyarrow and the engine: only when it runs

        yield from run_product(context, contract, spec, sources, mesh, duckdb)

    return _product
