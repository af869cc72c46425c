"""Write, audit, publish: a product run.

The product's function computes its output in DuckDB; the output is audited against the
contract; only when every blocking check passed is it committed as the Iceberg table's new
snapshot. A failed blocking check fails the run and leaves the previous snapshot current.
"""

from __future__ import annotations

import json
import re
import time

import dagster as dg
import duckdb
import pyarrow as pa

from mesh_platform.contracts import Contract
from mesh_platform.engine import DuckDBEngine
from mesh_platform.product_context import ProductContext, SourceError
from mesh_platform.products import ProductSpec
from mesh_platform.quality import OUTPUT, Outcome, audit, parquet_null_counts, schema_problems
from mesh_platform.resource import MeshResource


class PublishBlocked(dg.Failure):
    pass


def run_product(
    context: dg.AssetExecutionContext,
    contract: Contract,
    spec: ProductSpec,
    sources: dict[str, Contract],
    mesh: MeshResource,
    engine: DuckDBEngine,
):
    catalog = mesh.catalog()
    label = f"{contract.domain}/{contract.name}"
    timings = {}
    staged = catalog.staging_file(contract.domain, contract.name)
    published = False
    try:
        with engine.get_connection() as con:
            ctx = ProductContext(con, contract, spec, sources, mesh, catalog, context.log)
            start = time.perf_counter()
            try:
                rel = _as_relation(con, spec.fn(ctx), label)
                actual = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
                if not schema_problems(contract, actual):
                    # DuckDB writes the new version's Parquet file itself, in parallel and within
                    # its memory limit; no reader sees the file until a commit names it.
                    rel.select(", ".join(f'"{c.name}"' for c in contract.columns)).to_parquet(str(staged))
                    con.execute(f"CREATE VIEW {OUTPUT} AS SELECT * FROM read_parquet('{staged}')")
            except duckdb.Error as exc:
                # Typically landing data that does not fit its source contract's types.
                raise dg.Failure(
                    description=f"{label}: computing the output failed, nothing published: {_without_rows(exc)}",
                    metadata={"sources": [str(sources[s].path) for s in spec.sources]},
                ) from None  # the chained DuckDB error would put the raw row in the event log
            except (SourceError, LookupError, PermissionError) as exc:
                # Landing data not matching its source contract; an input not published or not granted.
                raise dg.Failure(description=f"{label}: nothing published: {exc}") from None
            timings["compute_s"] = time.perf_counter() - start
            start = time.perf_counter()
            written = staged.exists()  # not when the schema is wrong: the audit then says why
            outcomes = audit(con, contract, actual, parquet_null_counts(con, str(staged)) if written else None)
            timings["audit_s"] = time.perf_counter() - start

            for outcome in outcomes:
                yield _check_result(outcome)
            blocked = [o for o in outcomes if o.blocking and not o.passed]
            if blocked:
                raise PublishBlocked(
                    description=f"{label}: not published, blocking checks failed; the previous snapshot "
                    "stays current.\n" + "\n".join(_explain(o) for o in blocked),
                    metadata={"failed_checks": [o.name for o in blocked]},
                )
            rows = con.execute(f"SELECT count(*) FROM {OUTPUT}").fetchall()[0][0]

        start = time.perf_counter()
        snapshot = catalog.publish(
            contract.domain,
            contract.name,
            [staged],
            properties=_governance_properties(contract),
            snapshot_properties={
                "mesh.contract_version": contract.version,
                "mesh.run_id": context.run.run_id,
                **{f"mesh.upstream.{k}": str(v) for k, v in ctx.upstream_snapshots.items()},
            },
        )
        published = True
    finally:
        if not published:  # failed, blocked or interrupted: the staged file goes
            staged.unlink(missing_ok=True)
    timings["publish_s"] = time.perf_counter() - start
    context.log.info(f"{label}: published snapshot {snapshot.snapshot_id} ({rows} rows)")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "snapshot_id": str(snapshot.snapshot_id),
            "table_location": dg.MetadataValue.path(snapshot.location),
            "contract_version": contract.version,
            **(
                {"upstream_snapshots": dg.MetadataValue.json(ctx.upstream_snapshots)}
                if ctx.upstream_snapshots
                else {}
            ),
            **{k: round(v, 3) for k, v in timings.items()},
        }
    )


def _as_relation(con: duckdb.DuckDBPyConnection, out, label: str) -> duckdb.DuckDBPyRelation:
    if isinstance(out, duckdb.DuckDBPyRelation):
        return out
    if isinstance(out, pa.Table):
        return con.from_arrow(out)
    raise TypeError(f"{label}: the product function must return a DuckDB relation or an Arrow table, got {type(out).__name__}")


def _without_rows(exc: Exception) -> str:
    """DuckDB's CSV errors quote the offending line whole, PII columns included."""
    return re.sub(r"(?m)^Original Line: .*$", "Original Line: (withheld: it may hold PII)", str(exc))


def _check_result(o: Outcome) -> dg.AssetCheckResult:
    metadata = {k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in o.metadata.items()}
    if o.sample:
        metadata["sample"] = dg.MetadataValue.json(o.sample)
    return dg.AssetCheckResult(
        check_name=o.name,
        passed=o.passed,
        severity=dg.AssetCheckSeverity.ERROR if o.blocking else dg.AssetCheckSeverity.WARN,
        description=o.description,
        metadata=metadata,
    )


def _explain(o: Outcome) -> str:
    sample = f"\n  sample: {json.dumps(o.sample, default=str)}" if o.sample else ""
    return f"- rule '{o.name}': {o.description}{sample}"


def _governance_properties(contract: Contract) -> dict[str, str]:
    """Recorded on the table, so any reader (in any location) can enforce the grants."""
    return {
        "mesh.owner": contract.owner,
        "mesh.domain": contract.domain,
        "mesh.contract_version": contract.version,
        "mesh.readers": ",".join(contract.readers),
        "mesh.pii_columns": ",".join(c.name for c in contract.columns if c.classification),
    }
