"""Publishing is atomic and checked: a product whose new output breaks its contract is not
published, the failure says which product and rule and shows a few offending rows (PII masked),
and the previously published snapshot stays current, untouched.

Every run here is a real Dagster run of the customer location's daily job (customer/profiles,
built from the CRM export) on a test instance, over the hand-written landing set
(tests/landing.py) or a copy of it with one row made bad.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
from conftest import ROOT, error_chain, materialize_daily, step_failure_messages
from landing import CRM_CSV, write_landing

from mesh_platform.location import location_definitions
from mesh_platform.storage import Catalog

PROFILES = dg.AssetKey(["customer", "profiles"])
# The CRM row the bad variants below change; C003 is exported once, so it reaches the output.
C003 = "C003,Cleo,Park,cleo.park@example.com,FR,consumer,2024-03-05,2024-03-05 08:30:00"
assert C003 in CRM_CSV


def crm_with(row: str) -> str:
    """The hand-written CRM export with C003's row replaced by `row`."""
    return CRM_CSV.replace(C003, row)


def rows(snapshot) -> list[dict]:
    """A snapshot's rows read back from its data files, the way a consumer reads them."""
    table = duckdb.read_parquet(list(snapshot.files)).to_arrow_table()
    return sorted(table.to_pylist(), key=lambda r: r["customer_id"])


def publish_good(home: Path, instance) -> tuple[int, list[dict]]:
    """One good publish of customer/profiles; returns its snapshot id and its rows."""
    result = materialize_daily("customer", instance)
    assert result.success, step_failure_messages(result)
    snapshot = Catalog(home).current("customer", "profiles")
    assert snapshot is not None and snapshot.snapshot_id is not None
    published = rows(snapshot)
    assert [r["customer_id"] for r in published] == ["C001", "C002", "C003"]
    return snapshot.snapshot_id, published


def assert_still_published(home: Path, snapshot_id: int, before: list[dict]) -> None:
    """The blocked run changed nothing: same current snapshot, same rows, no new snapshot."""
    catalog = Catalog(home)
    current = catalog.current("customer", "profiles")
    assert current.snapshot_id == snapshot_id
    assert rows(current) == before
    assert catalog.history("customer", "profiles") == [snapshot_id]
    # The blocked version's staged Parquet file is gone: the table's folder holds only what was published.
    assert sorted((home / "warehouse/customer/profiles/data").glob("*.parquet")) == sorted(map(Path, current.files))


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_successful_publish_records_its_snapshot_in_the_materialization(mesh_home, instance):
    result = materialize_daily("customer", instance)
    assert result.success, step_failure_messages(result)

    current = Catalog(mesh_home).current("customer", "profiles")
    [event] = result.get_asset_materialization_events()
    assert event.asset_key == PROFILES
    metadata = event.materialization.metadata
    # C001 is exported twice in the CRM landing file and published once: 3 customers.
    assert metadata["dagster/row_count"].value == 3
    assert len(rows(current)) == 3
    assert metadata["snapshot_id"].value == str(current.snapshot_id)
    assert metadata["table_location"].value == str(mesh_home / "warehouse/customer/profiles")
    assert metadata["contract_version"].value == "1.0.0"
    # The snapshot itself says which contract version and which run wrote it.
    assert current.summary["mesh.contract_version"] == "1.0.0"
    assert current.summary["mesh.run_id"] == result.run_id
    # And every blocking check passed before that commit.
    assert {name: e.passed for name, e in evaluations(result).items()} == {
        "schema": True,
        "email_is_normalized": True,
        "country_is_iso_code": True,
        "segment_is_known": True,
        "has_customers": True,
        "volume": True,
    }


def test_contract_rule_violation_blocks_the_publish(mesh_home, instance):
    snapshot_id, before = publish_good(mesh_home, instance)

    # segment_is_known (ODCS invalidValues): consumer, smb or enterprise only.
    write_landing(
        mesh_home / "landing",
        crm_csv=crm_with("C003,Cleo,Park,cleo.park@example.com,FR,vip,2024-03-05,2024-03-05 08:30:00"),
    )
    result = materialize_daily("customer", instance)

    assert not result.success
    message = step_failure_messages(result)
    assert "customer/profiles" in message
    assert "not published" in message
    assert "rule 'segment_is_known'" in message
    sample = json.loads(message.split("sample: ", 1)[1].splitlines()[0])
    assert sample == [{"customer_id": "C003", "segment": "vip"}]
    assert result.get_asset_materialization_events() == []

    # The failed check is recorded, on the run's events and in the instance.
    failed = evaluations(result)["segment_is_known"]
    assert failed.asset_key == PROFILES
    assert failed.passed is False
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["sample"].value == [{"customer_id": "C003", "segment": "vip"}]
    assert evaluations(result)["schema"].passed is True
    record = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(PROFILES, "segment_is_known")
    )
    assert record.run_id == result.run_id
    assert record.status.value == "FAILED"

    assert_still_published(mesh_home, snapshot_id, before)


def test_missing_required_value_fails_the_schema_check(mesh_home, instance):
    snapshot_id, before = publish_good(mesh_home, instance)

    # segment is required; an empty CSV field reads as null (the count comes from the staged
    # file's Parquet statistics, not a scan, so this also holds them to the truth).
    write_landing(
        mesh_home / "landing",
        crm_csv=crm_with("C003,Cleo,Park,cleo.park@example.com,FR,,2024-03-05,2024-03-05 08:30:00"),
    )
    result = materialize_daily("customer", instance)

    assert not result.success
    message = step_failure_messages(result)
    assert "rule 'schema'" in message
    assert "segment is required: 1 offending rows" in message
    schema = evaluations(result)["schema"]
    assert schema.passed is False
    assert schema.metadata["sample"].value == [{"customer_id": "C003"}]
    assert result.get_asset_materialization_events() == []

    assert_still_published(mesh_home, snapshot_id, before)


def test_duplicate_keys_fail_the_schema_check(mesh_home, instance, tmp_path):
    snapshot_id, before = publish_good(mesh_home, instance)

    # The same domain, with a product that forgot to keep only the latest CRM record.
    domain = tmp_path / "customer"
    shutil.copytree(ROOT / "domains" / "customer", domain)
    (domain / "products" / "profiles.py").write_text(
        '''from mesh_platform import product


@product(sources=["crm_export"])
def profiles(ctx):
    ctx.source("crm_export").to_view("crm_export")
    return ctx.sql(
        """
        SELECT customer_id,
               trim(first_name) AS first_name,
               trim(last_name) AS last_name,
               lower(trim(email)) AS email,
               nullif(upper(trim(country)), '') AS country,
               lower(trim(segment)) AS segment,
               signup_date,
               updated_at
        FROM crm_export
        """
    )
'''
    )
    job = location_definitions(domain).resolve_job_def("customer_products")
    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    message = step_failure_messages(result)
    assert "customer/profiles" in message
    assert "rule 'schema'" in message
    assert "(customer_id) is unique: 1 offending rows" in message
    assert '"customer_id": "C001"' in message.split("sample: ", 1)[1]
    schema = evaluations(result)["schema"]
    assert schema.passed is False
    assert schema.metadata["sample"].value == [{"customer_id": "C001"}, {"customer_id": "C001"}]
    assert result.get_asset_materialization_events() == []

    assert_still_published(mesh_home, snapshot_id, before)


def test_landing_value_of_the_wrong_type_fails_the_run(mesh_home, instance):
    snapshot_id, before = publish_good(mesh_home, instance)

    write_landing(
        mesh_home / "landing",
        crm_csv=crm_with("C003,Cleo,Park,cleo.park@example.com,FR,consumer,not-a-date,2024-03-05 08:30:00"),
    )
    result = materialize_daily("customer", instance)

    assert not result.success
    message = step_failure_messages(result)
    assert "customer/profiles" in message
    assert "nothing published" in message
    assert "column 'signup_date' holds a value that is not a DATE" in message
    assert "crm_export.csv" in message and "crm_export.odcs.yaml" in message
    assert "not-a-date" not in message  # no landing value, whichever column it is in
    assert result.get_asset_materialization_events() == []

    assert_still_published(mesh_home, snapshot_id, before)


def test_wrong_type_failure_does_not_expose_pii(mesh_home, instance):
    """What a failed run records is readable by anyone with access to Dagster: the PII of the
    landing row at fault (first_name, last_name, email are classified PII) must not be in it,
    just as quality samples mask it."""
    write_landing(
        mesh_home / "landing",
        crm_csv=crm_with("C003,Cleo,Park,cleo.park@example.com,FR,consumer,not-a-date,2024-03-05 08:30:00"),
    )
    result = materialize_daily("customer", instance)

    assert not result.success
    recorded = error_chain(result)
    assert "signup_date" in recorded
    for pii in ("Cleo", "Park", "cleo.park@example.com", "not-a-date"):
        assert pii not in recorded, f"{pii!r} (PII) is in the recorded failure"


def test_pii_is_masked_in_the_sample_of_a_failed_rule(mesh_home, instance):
    snapshot_id, before = publish_good(mesh_home, instance)

    # email_is_normalized: the product lower-cases and trims, which leaves "not an email" invalid.
    write_landing(
        mesh_home / "landing",
        crm_csv=crm_with("C003,Cleo,Park, NOT AN EMAIL ,FR,consumer,2024-03-05,2024-03-05 08:30:00"),
    )
    result = materialize_daily("customer", instance)

    assert not result.success
    message = step_failure_messages(result)
    assert "customer/profiles" in message
    assert "rule 'email_is_normalized'" in message
    sample = json.loads(message.split("sample: ", 1)[1].splitlines()[0])
    assert sample == [{"customer_id": "C003", "email": "***"}]
    assert "not an email" not in message.lower()

    failed = evaluations(result)["email_is_normalized"]
    assert failed.passed is False
    assert failed.metadata["sample"].value == [{"customer_id": "C003", "email": "***"}]
    recorded = json.dumps(
        {k: str(v.value) for e in result.get_asset_check_evaluations() for k, v in e.metadata.items()}
    )
    assert "not an email" not in recorded.lower()

    assert_still_published(mesh_home, snapshot_id, before)
