"""Write, audit, publish: a product run.

1. Resolve what the step may read: its landing files, and the current snapshots of its inputs
   (grants checked, reads audited).
2. Compute the output on a DuckDB locked to exactly those files, and write it as a new
   Parquet file in the table's folder that no reader sees yet.
3. Audit it against the contract: schema, rules, volume. A failed blocking check deletes the new
   file (no commit was attempted, so nothing can name it) and fails the run; the previous
   snapshot stays current.
4. Commit it as the table's new snapshot in one atomic Iceberg commit.

From the commit on, nothing is deleted here, whatever happens: a commit interrupted by a
signal may still have landed. What an interrupted run leaves is removed by maintenance.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from mesh_platform import faults, last_audit, meanwhile, sandbox, sources, stops
from mesh_platform.access import AccessDenied
from mesh_platform.cloud import CloudError, infra
from mesh_platform.contract_versions import contract_properties
from mesh_platform.contracts import ALLOW_DROP_TAG, Contract
from mesh_platform.deployment import Settings
from mesh_platform.engine import DuckDBEngine
from mesh_platform.governance import apply_grants
from mesh_platform.landing_watch import VERSIONS_METADATA, fingerprint
from mesh_platform.product_context import ProductContext, UsageError
from mesh_platform.quality import OUTPUT, Outcome, audit, parquet_null_counts, schema_problems, volume_outcome
from mesh_platform.resource import MeshResource
from mesh_platform.runs import HOST_TAG, this_host
from mesh_platform.spec import ProductSpec
from mesh_platform.storage import CatalogUnavailable


class PublishBlocked(dg.Failure):
    pass


# How long a step whose catalog database is down waits for it to answer again before it fails:
# Dagster records the failure in the instance's database, on the same server in the team set-up.
OUTAGE_REPORT_WAIT_SECONDS = 600


def run_product(
    context: dg.AssetExecutionContext,
    contract: Contract,
    spec: ProductSpec,
    source_contracts: dict[str, Contract],
    mesh: MeshResource,
    engine: DuckDBEngine,
):
    try:
        yield from _run_product(context, contract, spec, source_contracts, mesh, engine)
    except CatalogUnavailable as exc:
        # Nothing was committed: the previous snapshot stays current. The run's failure can be
        # recorded only once the database answers again (a failure event written now would be
        # lost, and the run left STARTED): wait for it, then fail with the reason.
        back = mesh.catalog().wait_reachable(OUTAGE_REPORT_WAIT_SECONDS)
        raise dg.Failure(
            description=f"{contract.key}: nothing published: {exc}. The previous snapshot stays current"
            + ("; the database answers again, run it again." if back else "."),
        ) from None


def _run_product(
    context: dg.AssetExecutionContext,
    contract: Contract,
    spec: ProductSpec,
    source_contracts: dict[str, Contract],
    mesh: MeshResource,
    engine: DuckDBEngine,
):
    label = contract.key
    run_id = context.run.run_id
    if context.run.tags.get(HOST_TAG) is None:  # launched from the UI: say where its worker runs
        context.instance.add_run_tags(run_id, {HOST_TAG: this_host()})
    table, audit_log = mesh.table(contract), mesh.audit_log()
    timings = {}
    apply_grants(mesh.grants(), audit_log, mesh.consumer, contract)  # the contract is the authority on who reads, from the first publish
    try:
        previous = table.head()
    except CloudError as exc:  # names the endpoint
        raise dg.Failure(description=f"{label}: nothing published: {exc}") from None
    previous_rows = int(previous.summary.get("total-records", 0)) if previous else None

    try:
        landings = {
            s: sources.resolve(source_contracts[s], mesh.landing_root, mesh.source_override(contract.domain, s))
            for s in spec.sources
        }
        reader = mesh.reader(run_id)
        inputs = {key: reader.read(key) for key in spec.inputs}
    except AccessDenied as exc:
        # Shown on the producer's asset too, where its owners look.
        context.log_event(dg.AssetObservation(
            asset_key=dg.AssetKey(exc.product.split("/")),
            metadata={"denied_read": str(exc), "reader": mesh.consumer, "run_id": run_id},
        ))
        raise dg.Failure(description=f"{label}: nothing published: {exc}") from None
    except (sources.SourceError, LookupError, CloudError) as exc:
        raise dg.Failure(description=f"{label}: nothing published: {exc}") from None

    staged = table.new_data_file()
    readable = [f for landing in landings.values() for f in landing.files]
    readable += [f for granted in inputs.values() if granted.filesystem is None for f in granted.files]
    # The commit's modules load meanwhile (mesh_platform.meanwhile): joined before the commit. A
    # stop ends the query at once, as a stop (mesh_platform.stops).
    with (_scratch_folder(engine, run_id) as scratch, engine.get_connection() as con, stops.stoppable(con),
          meanwhile.importing()):
        sandbox.lock(con, readable, writable=[staged.path], scratch=scratch)
        ctx = ProductContext(con, contract, spec, landings, inputs, context.log, scratch,
                             engine.bucket_budget(con))
        start = time.perf_counter()
        try:
            faults.point("compute", label)
            rel = _as_relation(con, spec.fn(ctx), label)
            twice = sorted({c for c in rel.columns if rel.columns.count(c) > 1})
            if twice:
                # The schema check would see one of them and the written file hold another.
                raise UsageError(f"{label}: the output has more than one column named {twice}")
            actual = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
            if not schema_problems(contract, actual):
                # DuckDB writes the new version's Parquet file itself, in parallel and within
                # its memory limit; no reader sees the file until a commit names it.
                rel.select(", ".join(f'"{c.name}"' for c in contract.columns)).to_parquet(str(staged.path))
                con.execute(f"CREATE VIEW {OUTPUT} AS SELECT * FROM read_parquet('{staged.path}')")
        except duckdb.Error as exc:
            if stops.is_stop(exc):
                raise  # not a failure to explain (which reads the landing files again): a stop
            # The chained DuckDB error is dropped: it may quote a landing row (PII).
            raise dg.Failure(
                description=f"{label}: computing the output failed, nothing published: "
                f"{sources.explain(exc, list(landings.values()))}",
            ) from None
        except (sources.SourceError, sandbox.SandboxViolation, UsageError) as exc:
            raise dg.Failure(description=f"{label}: nothing published: {exc}") from None
        timings["compute_s"] = time.perf_counter() - start
        faults.point("write", label)

        start = time.perf_counter()
        written = staged.path.exists()  # not when the schema is wrong: the audit then says why
        outcomes = audit(con, contract, actual, parquet_null_counts(con, str(staged.path)) if written else None)
        rows = con.execute(f"SELECT count(*) FROM {OUTPUT}").fetchall()[0][0] if written else None
        if written and contract.volume_max_drop is not None:
            allowed = context.run.tags.get(ALLOW_DROP_TAG, "").lower() == "true"
            outcomes.append(volume_outcome(contract, rows, previous_rows, allowed))
        timings["audit_s"] = time.perf_counter() - start
        faults.point("audit", label)

    for outcome in outcomes:
        yield _check_result(outcome)
    blocked = [o for o in outcomes if o.blocking and not o.passed]
    if blocked:
        last_audit.record(mesh.home, label, outcomes, published=False)
        # No commit was attempted, so no snapshot can name this file: it goes now.
        staged.path.unlink(missing_ok=True)
        audit_log.append("publish_blocked", mesh.consumer, label, run_id=run_id,
                         failed_checks=[o.name for o in blocked])
        raise PublishBlocked(
            description=f"{label}: not published, blocking checks failed; the previous snapshot "
            "stays current.\n" + "\n".join(_explain(o) for o in blocked),
            metadata={"failed_checks": [o.name for o in blocked]},
        )

    start = time.perf_counter()
    try:
        snapshot = table.publish(
            [staged],
            properties=_table_properties(contract),
            snapshot_properties={
                "mesh.contract_version": contract.version,
                "mesh.run_id": run_id,
                **{f"mesh.upstream.{k}": str(v) for k, v in ctx.upstream_snapshots.items()},
            },
        )
    except CloudError as exc:  # names the endpoint, and what became of the publish
        raise dg.Failure(description=f"{label}: {exc}") from None
    if previous is None:  # the table is new: its readers' cloud grants
        try:
            granted = infra.grant_first_publish(Settings.from_env(), contract, mesh.consumer)
        except (CloudError, ValueError) as exc:
            context.log.warning(f"{label}: published; its readers' grants wait for `mesh infra apply`: {exc}")
        else:
            for change in granted:
                context.log.info(f"{label}: {change}")
    timings["publish_s"] = time.perf_counter() - start
    last_audit.record(mesh.home, label, outcomes, published=True)
    audit_log.append("publish", mesh.consumer, label, run_id=run_id, snapshot_id=str(snapshot.snapshot_id),
                     rows=rows, contract_version=contract.version)
    context.log.info(f"{label}: published snapshot {snapshot.snapshot_id} ({rows} rows)")
    faults.point("event", label)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "snapshot_id": str(snapshot.snapshot_id),
            "table_location": dg.MetadataValue.path(table.catalog.local_path(snapshot.location)),
            "contract_version": contract.version,
            **(
                # Ids as strings: a browser rounds integers past 2**53 in JSON.
                {"upstream_snapshots": dg.MetadataValue.json({k: str(v) for k, v in ctx.upstream_snapshots.items()})}
                if ctx.upstream_snapshots
                else {}
            ),
            **{k: round(v, 3) for k, v in timings.items()},
            **({VERSIONS_METADATA: dg.MetadataValue.json({s: fingerprint(l.files)[0] for s, l in landings.items()})}
               if landings else {}),
        }
    )


@contextlib.contextmanager
def _scratch_folder(engine: DuckDBEngine, run_id: str) -> Iterator[Path]:
    """The step's own folder for ctx.stage, removed when the step ends (what a killed step
    leaves, maintenance removes)."""
    Path(engine.temp_directory).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"stage-{run_id[:8]}-", dir=engine.temp_directory))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_relation(con: duckdb.DuckDBPyConnection, out, label: str) -> duckdb.DuckDBPyRelation:
    out = sandbox.unwrap(out)
    if isinstance(out, duckdb.DuckDBPyRelation):
        return out
    if isinstance(out, pa.Table):
        return con.from_arrow(out)
    raise UsageError(f"{label}: the product function must return a relation or an Arrow table, got {type(out).__name__}")


def _check_result(o: Outcome) -> dg.AssetCheckResult:
    metadata = {k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                for k, v in o.metadata.items() if v is not None}
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


def _table_properties(contract: Contract) -> dict[str, str]:
    """Descriptive properties on the table, for anyone browsing the catalog, and the contract's
    text (the base the next version is held to, see contract_versions). Who may read it is not
    among them: that is the catalog's grants (see grants)."""
    return {
        **contract_properties(contract),
        "mesh.owner": contract.owner,
        "mesh.domain": contract.domain,
        "mesh.contract_version": contract.version,
        "mesh.pii_columns": ",".join(c.name for c in contract.columns if c.classification),
    }
