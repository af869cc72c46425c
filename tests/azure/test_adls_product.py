"""customer/insights in prod: an Iceberg table whose data and metadata live in an ADLS Gen2
filesystem, here Azurite's Blob API (no hierarchical namespace: see README, what is not
verified). Every publish is a real Dagster run of the customer location with MESH_ENV=prod; its
inputs live on AWS (moto), as their contracts' prod servers say.
"""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from azure_support import prod  # noqa: F401 (a fixture)
from conftest import error_chain, materialize, step_failure_messages
from landing import EXPECTED_INSIGHTS, ORDERS, write_landing

from mesh_platform.access import AccessDenied
from mesh_platform.audit import AuditLog
from mesh_platform.cloud.azure import AzureStorageError
from mesh_platform.cloud import infra
from mesh_platform.cloud.infra import product_contracts, provisioner
from mesh_platform.deployment import Settings
from mesh_platform.emulators import free_port
from mesh_platform.governance import apply_grants
from mesh_platform.maintenance import maintain
from mesh_platform.places import table
from mesh_platform.registry import product_contract
from mesh_platform.resource import MeshResource

LOCATION = "abfss://customer-insights@meshcustomerinsights.dfs.core.windows.net/insights"
SEED_TAGS = {"DataProduct": "CustomerInsights", "Domain": "Customer", "Owner": "customer-analytics"}
INPUT_LOCATIONS = ["orders", "preferences", "customer"]  # in dependency order: customer/insights last


def insights_table(home):
    return table(product_contract("customer/insights"), "prod", home)


def rows(t, snapshot=None) -> list[dict]:
    """A snapshot's rows, read back from ADLS the way the platform's reader reads them."""
    snapshot = snapshot or t.current()
    fs, path = t.catalog.filesystem()
    data = ds.dataset([path(f) for f in snapshot.files], filesystem=fs, format="parquet").to_table()
    return sorted(data.to_pylist(), key=lambda r: r["customer_id"])


def blobs(azure, prefix: str = "insights/") -> list[str]:
    with azure.client() as service:
        return sorted(b.name for b in service.get_container_client("customer-insights").list_blobs(name_starts_with=prefix))


def apply_azure() -> list:
    p = provisioner("azure", Settings.from_env(), product_contracts())
    changes = p.plan()
    p.apply(changes)
    return changes


def publish_prod(instance) -> dg.ExecuteInProcessResult:
    for location in INPUT_LOCATIONS:
        result = materialize(location, instance)
        assert result.success, step_failure_messages(result)
    return result


@pytest.fixture
def prod_mesh(mesh_home, aws, azure, arm, prod, monkeypatch):  # noqa: F811
    """The prod environment on the emulators: AWS for the inputs (provisioned by the platform),
    the Azure infrastructure applied (filesystem, tags, ACL, resource group, workspace) by the platform's provisioner."""
    infra.apply(Settings.from_env(), ["aws"])  # the inputs' buckets, databases and grants
    apply_azure()
    return mesh_home


def test_insights_publish_to_adls_in_prod_equal_to_dev(mesh_home, instance, aws, azure, arm, monkeypatch):  # noqa: F811
    # dev first, on the same landing data: the local catalog.
    for location in INPUT_LOCATIONS:
        assert materialize(location, instance).success, location
    local = table(product_contract("customer/insights"), "dev", mesh_home).current()
    dev_rows = sorted(duckdb.read_parquet(list(local.files)).to_arrow_table().to_pylist(), key=lambda r: r["customer_id"])

    monkeypatch.setenv("MESH_ENV", "prod")
    infra.apply(Settings.from_env(), ["aws"])  # the inputs' buckets, databases and grants
    apply_azure()
    result = publish_prod(instance)

    t = insights_table(mesh_home)
    snapshot = t.current()
    assert t.kind == "azure" and snapshot.location == LOCATION
    assert all(f.startswith(f"{LOCATION}/data/mesh-") for f in snapshot.files)
    assert t.catalog.load_table("customer", "insights").metadata_location.startswith(f"{LOCATION}/metadata/")
    assert rows(t) == dev_rows
    assert {r["customer_id"]: {k: v for k, v in r.items() if k != "customer_id"} for r in rows(t)} == EXPECTED_INSIGHTS

    # In the filesystem: the one data file the snapshot names, and the table's metadata; the
    # staged copy DuckDB wrote locally is gone.
    names = blobs(azure)
    assert [n for n in names if n.startswith("insights/data/")] == [
        t.catalog.fs_path(f).removeprefix("customer-insights/") for f in snapshot.files
    ]
    assert {n.split("/")[1] for n in names} == {"data", "metadata"}
    assert not list((mesh_home / "tmp" / "staging").glob("*.parquet"))
    # The dev table is untouched: the ADLS table has a catalog of its own (mesh_adls) in the same
    # database, so the same namespace and name are two tables.
    assert table(product_contract("customer/insights"), "dev", mesh_home).current().snapshot_id == local.snapshot_id
    assert local.location == "mesh:///warehouse/customer/insights"

    # What the run recorded: the ADLS location, and the Great Expectations rule's own result.
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["customer", "insights"]]
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["table_location"].value == LOCATION
    assert metadata["snapshot_id"].value == str(snapshot.snapshot_id)
    gx = {e.check_name: e for e in result.get_asset_check_evaluations()}["mean_recency_within_a_year"]
    assert gx.passed and gx.metadata["observed_value"].value == 66.0

    # The filesystem carries the seed's tags (as container metadata) and the compiled ACL record.
    with azure.client() as service:
        tags = service.get_container_client("customer-insights").get_container_properties().metadata
    assert {k: v for k, v in tags.items() if not k.startswith("mesh_acl_")} == SEED_TAGS

    # A granted reader (federation) reads it through the platform: the ACL allows it, the read
    # is audited, and it reads exactly what was published.
    reader = MeshResource(env="prod", home=str(mesh_home), landing=str(mesh_home / "landing"),
                          consumer="federation").reader("test-run")
    granted = reader.read("customer/insights")
    assert granted.snapshot.snapshot_id == snapshot.snapshot_id
    with duckdb.connect() as con:
        read = sorted(granted.relation(con).to_arrow_table().to_pylist(), key=lambda r: r["customer_id"])
    assert read == dev_rows
    [entry] = AuditLog(mesh_home).entries(action="read", product="customer/insights", actor="federation")
    assert entry.detail["snapshot_id"] == str(snapshot.snapshot_id)


def test_a_blocked_publish_leaves_the_previous_adls_snapshot_current(prod_mesh, instance, azure):
    publish_prod(instance)
    t = insights_table(prod_mesh)
    before = t.current()
    published_rows, published_blobs = rows(t), blobs(azure)

    # An order far in the future: orders/history passes its checks, but the reference date moves
    # to 2030 and the mean recency of the others to years: the rule only Great Expectations
    # evaluates (mean_recency_within_a_year, blocking) stops customer/insights.
    orders = [*ORDERS, ("O10", "C003", "2030-01-01 10:00:00", "completed", [(1, "5.00")])]
    write_landing(prod_mesh / "landing", orders=orders)
    assert materialize("orders", instance).success
    result = materialize("customer", instance)

    assert not result.success
    message = step_failure_messages(result)
    assert "customer/insights: not published" in message and "rule 'mean_recency_within_a_year'" in message
    gx = {e.check_name: e for e in result.get_asset_check_evaluations()}["mean_recency_within_a_year"]
    assert not gx.passed and gx.metadata["observed_value"].value > 365
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == ["customer/profiles"]

    after = t.current()
    assert after.snapshot_id == before.snapshot_id
    assert t.history() == [before.snapshot_id]
    assert rows(t, after) == published_rows
    assert blobs(azure) == published_blobs  # the blocked version never reached ADLS
    assert not list((prod_mesh / "tmp" / "staging").glob("*.parquet"))  # nor stays staged locally
    [blocked] = AuditLog(prod_mesh).entries(action="publish_blocked", product="customer/insights")
    assert blocked.detail["failed_checks"] == ["mean_recency_within_a_year"]


def tiny_publish(t, run: str, ids: list[str]):
    staged = t.new_data_file()
    pq.write_table(pa.table({"customer_id": ids}), staged.path)
    return t.publish([staged], {"mesh.owner": "team:customer-analytics"}, {"mesh.run_id": run})


def test_the_reader_enforces_the_adls_acl_compiled_from_the_contract(mesh_home, azure, arm, prod):  # noqa: F811
    apply_azure()
    contract = product_contract("customer/insights")
    t = insights_table(mesh_home)
    snapshot = tiny_publish(t, "r1", ["C1"])
    audit = AuditLog(mesh_home)
    reader = MeshResource(env="prod", home=str(mesh_home), landing=str(mesh_home / "landing"),
                          consumer="federation").reader("test-run")
    with pytest.raises(AccessDenied, match="its contract grants read access"):
        reader.read("customer/insights")  # the catalog's grant comes first: not applied yet
    apply_grants(reader.grants, audit, "customer", contract)
    assert reader.read("customer/insights").snapshot.snapshot_id == snapshot.snapshot_id

    # Someone removes the ACL record from the filesystem: the catalog still grants federation,
    # ADLS no longer does, and the platform's reader refuses and audits it.
    with azure.client() as service:
        fs = service.get_container_client("customer-insights")
        fs.set_container_metadata(SEED_TAGS)
    with pytest.raises(AccessDenied) as denied:
        reader.read("customer/insights")
    assert "ADLS: the ACL the platform recorded on filesystem 'customer-insights' gives federation" in str(denied.value)
    assert "22222222-2222-2222-2222-222222222222" in str(denied.value) and LOCATION in str(denied.value)
    first, entry = audit.entries(action="read_denied", product="customer/insights")
    assert first.detail["reason"] == "no grant"
    assert entry.actor == "federation" and entry.detail["reason"].startswith("ADLS:")

    # Drift: the plan grants it again; once applied the read passes.
    changes = provisioner("azure", Settings.from_env(), product_contracts()).plan()
    assert [(c.action, c.resource) for c in changes] == [
        ("grant", "adls acl customer-insights/insights customer-analytics"),
        ("grant", "adls acl customer-insights/insights federation"),
    ]
    apply_azure()
    assert reader.read("customer/insights").snapshot.snapshot_id == snapshot.snapshot_id

    # A reader the catalog does not grant never reaches ADLS's check.
    other = MeshResource(env="prod", home=str(mesh_home), landing=str(mesh_home / "landing"),
                         consumer="orders").reader("test-run")
    with pytest.raises(AccessDenied, match="orders may not read customer/insights"):
        other.read("customer/insights")


def test_maintenance_removes_adls_orphans_and_keeps_young_ones(mesh_home, azure, arm, prod):  # noqa: F811
    apply_azure()
    t = insights_table(mesh_home)
    for i in range(3):
        tiny_publish(t, f"r{i}", [f"C{i}"])
    with azure.client() as service:  # what an interrupted upload would leave
        service.get_container_client("customer-insights").upload_blob("insights/data/orphan.parquet", b"PAR1")
    current = t.current()

    young = maintain(t.catalog, tables=[("customer", "insights")], keep_versions=1, min_age=timedelta(0),
                     orphan_age=timedelta(hours=1))
    assert "insights/data/orphan.parquet" in blobs(azure)  # younger than the window: kept
    assert len(young.tables[0].expired_snapshots) == 4  # an append, then 2 x (delete, append); 1 kept
    time.sleep(1.1)
    report = maintain(t.catalog, tables=[("customer", "insights")], keep_versions=1, min_age=timedelta(0),
                      orphan_age=timedelta(seconds=1))
    assert "data/orphan.parquet" in report.tables[0].removed_files  # relative to the table
    data = [n for n in blobs(azure) if n.startswith("insights/data/")]
    assert data == [t.catalog.fs_path(f).removeprefix("customer-insights/") for f in current.files]
    assert rows(t) == [{"customer_id": "C2"}]


# -- failures: each names the account, the filesystem or the product -----------------------------

def test_storage_endpoint_down(mesh_home, azure, arm, prod, monkeypatch):  # noqa: F811
    down = azure.connection_string.replace(f":{azure.port}/", f":{free_port()}/")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", down)
    start = time.monotonic()
    with pytest.raises(AzureStorageError) as err:
        insights_table(mesh_home).current()
    assert time.monotonic() - start < 10  # not the SDK's minute of retries
    message = str(err.value)
    assert message.startswith("reading customer/insights: the Azure storage account 'meshcustomerinsights' does not answer at http://127.0.0.1:")
    with pytest.raises(AzureStorageError, match="planning customer/insights: the Azure storage account 'meshcustomerinsights' does not answer"):
        provisioner("azure", Settings.from_env(), product_contracts()).plan()


def test_wrong_storage_key(mesh_home, azure, arm, prod, monkeypatch):  # noqa: F811
    wrong = azure.connection_string.replace(azure.account_key, "d3Jvbmcta2V5" * 8)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    with pytest.raises(AzureStorageError) as err:
        insights_table(mesh_home).current()
    assert str(err.value).startswith("reading customer/insights: the Azure storage account 'meshcustomerinsights' answered HTTP 403")
    assert "credentials were refused" in str(err.value) and "AZURE_STORAGE_CONNECTION_STRING" in str(err.value)


def test_a_connection_string_for_another_account_is_refused(mesh_home, prod, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       "DefaultEndpointsProtocol=https;AccountName=someoneelse;AccountKey=a2V5;EndpointSuffix=core.windows.net")
    with pytest.raises(AzureStorageError, match="is for the storage account 'someoneelse', but the product lives in 'meshcustomerinsights'"):
        insights_table(mesh_home)


def test_a_prod_run_with_the_storage_down_fails_naming_the_account(prod_mesh, instance, azure, monkeypatch):
    for location in ("orders", "preferences"):
        assert materialize(location, instance).success
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.connection_string.replace(f":{azure.port}/", f":{free_port()}/"))
    result = materialize("customer", instance)
    assert not result.success
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == ["customer/profiles"]
    # The step's error (its cause, as the UI shows it) names the product and the account.
    assert "reading customer/insights: the Azure storage account 'meshcustomerinsights' does not answer" in error_chain(result)
