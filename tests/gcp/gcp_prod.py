"""The prod environment on the emulators, for the federation's BigQuery tests: the domains' AWS
side on moto, the federation's datasets on the BigQuery emulator, runs on a test instance."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import dagster as dg

from mesh_platform.cloud import infra
from mesh_platform.cloud.gcp import GcpProvisioner
from mesh_platform.deployment import Settings
from mesh_platform.workspace import locations

DOMAINS = ("customer", "orders", "preferences")
CUSTOMER_360 = dg.AssetKey(["federation", "customer_360"])
PORTS = {
    "customer/profiles": dg.AssetKey(["federation", "bigquery", "customer_domain", "profiles"]),
    "orders/history": dg.AssetKey(["federation", "bigquery", "orders_domain", "history"]),
    "preferences/settings": dg.AssetKey(["federation", "bigquery", "preferences_domain", "settings"]),
}
PROJECT = "mesh-federation"


def reset_bigquery(emulator) -> None:
    """Drop the federation project's datasets (the emulator fixture resets its own project only)."""
    from google.api_core.retry import Retry

    client = emulator.client()
    try:
        for dataset in client.list_datasets(project=PROJECT, retry=Retry(timeout=10)):
            client.delete_dataset(dataset.reference, delete_contents=True, retry=Retry(timeout=10))
    finally:
        client.close()


def provision_gcp(settings: Settings, contracts=None) -> GcpProvisioner:
    provisioner = GcpProvisioner(settings, contracts if contracts is not None else infra.product_contracts())
    provisioner.apply(provisioner.plan())
    return provisioner


def location_job(location: str, folder: Path | None = None) -> dg.Definitions:
    if folder is None:
        return locations()[location].definitions()
    from mesh_platform.location import location_definitions

    return location_definitions(folder, location)


def run(defs: dg.Definitions, instance, keys=None, tags=None) -> dg.ExecuteInProcessResult:
    """A real run of `keys` (default: the location's products job), in process."""
    if keys is None:
        job = next(j for j in defs.jobs if j.name.endswith("_products"))
        return defs.resolve_job_def(job.name).execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=list(keys), raise_on_error=False, tags=tags
    )


def duckdb_customer_360(settings: Settings) -> dict[str, dict]:
    """customer_360 as the mesh's DuckDB product computes it (the same function, the platform's
    ProductContext) on the domains' current snapshots, read through the Reader as federation."""
    import duckdb

    from mesh_platform.location import _functions
    from mesh_platform.product_context import ProductContext
    from mesh_platform.registry import product_contract
    from mesh_platform.resource import MeshResource
    from mesh_platform.sandbox import unwrap

    folder = locations()["federation"].path.parent
    spec = _functions(folder / "products", "federation")["customer_360"][0]
    mesh = MeshResource(env=settings.env, home=str(settings.home), landing=str(settings.landing), consumer="federation")
    reader = mesh.reader("test-duckdb-customer-360")
    inputs = {key: reader.read(key) for key in spec.inputs}
    with duckdb.connect() as con:
        ctx = ProductContext(con, product_contract("federation/customer_360"), spec, {}, inputs, logging.getLogger())
        rows = unwrap(spec.fn(ctx)).to_arrow_table().to_pylist()
    return by_customer(rows)


def by_customer(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for row in rows:
        row = dict(row)
        out[row.pop("customer_id")] = row
    assert len(out) == len(rows), "customer_id is not unique"
    return out


def view_rows(client, ref: str = f"{PROJECT}.customer_federation.customer_360") -> dict[str, dict]:
    from google.api_core.retry import Retry

    job = client.query(f"SELECT * FROM `{ref}`", retry=Retry(timeout=10), job_retry=None)
    return by_customer(job.result(retry=Retry(timeout=10)).to_arrow(create_bqstorage_client=False).to_pylist())


def assert_same(got, want, path: str = "") -> None:
    """Field by field, nested structs and lists included: same keys in the same order, same
    Python types, equal values (decimals by value: BigQuery's NUMERIC has scale 9)."""
    if want is None or got is None:
        assert got is None and want is None, f"{path}: {got!r} != {want!r}"
    elif isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: {type(got).__name__}, expected a struct"
        assert list(got) == list(want), f"{path}: fields {list(got)} != {list(want)}"
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{path}: {type(got).__name__}, expected a list"
        assert len(got) == len(want), f"{path}: {len(got)} elements != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    else:
        assert type(got) is type(want), f"{path}: {type(got).__name__} {got!r} != {type(want).__name__} {want!r}"
        if isinstance(want, Decimal):
            assert got.compare(want) == 0, f"{path}: {got} != {want}"
        else:
            assert got == want, f"{path}: {got!r} != {want!r}"


def assert_same_rows(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert sorted(got) == sorted(want)
    for customer in want:
        assert_same(got[customer], want[customer], customer)
