"""All four locations materialized on the hand-written landing set; customer_360 and
customer/insights checked row by row against tests/landing.py's EXPECTED_360 and
EXPECTED_INSIGHTS, worked out by hand. On both set-ups: the laptop's (SQLite) and the
team's (instance and catalog on PostgreSQL)."""

import dagster as dg
import duckdb
from conftest import materialize
from landing import EXPECTED_360, EXPECTED_INSIGHTS, MEAN_RECENCY

from mesh_platform.storage import Catalog

# In dependency order (what `mesh materialize` runs): customer/insights reads orders and
# preferences, customer_360 reads all three domains.
PRODUCTS = {
    "orders": ["orders/history"],
    "preferences": ["preferences/settings"],
    "customer": ["customer/profiles", "customer/insights"],
    "federation": ["federation/customer_360"],
}


def test_full_materialization_builds_customer_360_row_by_row(mesh_home, backend):
    instance = backend.instance
    for location, keys in PRODUCTS.items():
        result = materialize(location, instance)
        assert result.success, location
        published = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
        assert published == keys

    catalog = backend.catalog
    snapshot = catalog.current("federation", "customer_360")
    rows = duckdb.read_parquet(list(snapshot.files)).to_arrow_table().to_pylist()
    got = {r.pop("customer_id"): r for r in rows}
    assert len(rows) == 3  # C001 exported twice counts once; C003 without orders is kept
    assert got == EXPECTED_360

    # The build records which upstream snapshots it read: the ones current now.
    event = instance.get_latest_materialization_event(dg.AssetKey(["federation", "customer_360"]))
    metadata = event.asset_materialization.metadata
    upstream = metadata["upstream_snapshots"].value
    for key in ("customer/profiles", "orders/history", "preferences/settings"):
        domain, name = key.split("/")
        assert upstream[key] == str(catalog.current(domain, name).snapshot_id)
        assert snapshot.summary[f"mesh.upstream.{key}"] == str(upstream[key])
    assert metadata["dagster/row_count"].value == 3
    assert metadata["snapshot_id"].value == str(snapshot.snapshot_id)
    assert metadata["contract_version"].value == "1.0.0"
    assert metadata["table_location"].value == str(mesh_home / "warehouse/federation/customer_360")

    # `mesh status` reports what was published and how it was checked.
    from mesh_platform.deployment import Settings
    from mesh_platform.status import product_status

    status = {(r.domain, r.product): r for r in product_status(Settings.from_env())}
    assert {k: (r.owner, r.contract_version, r.rows, r.checks) for k, r in status.items()} == {
        # checks: the schema, each rule of the contract, and the volume check
        ("customer", "profiles"): ("team:customer-team", "1.0.0", 3, "6/6 passed"),
        ("customer", "insights"): ("team:customer-analytics", "1.0.0", 3, "11/11 passed"),
        ("orders", "history"): ("team:orders-team", "1.0.0", 3, "6/6 passed"),  # C999: order, no CRM row
        ("preferences", "settings"): ("team:preferences-team", "1.0.0", 2, "4/4 passed"),
        ("federation", "customer_360"): ("team:platform-team", "1.0.0", 3, "3/3 passed"),
    }
    assert status[("federation", "customer_360")].published_ms == snapshot.timestamp_ms

    # Every check of every product was evaluated and passed.
    for key in [k for keys in PRODUCTS.values() for k in keys]:
        asset_key = dg.AssetKey(key.split("/"))
        checks = [
            spec.key
            for loc in PRODUCTS
            for spec in _check_specs(loc)
            if spec.asset_key == asset_key
        ]
        assert checks, key
        for check_key in checks:
            record = instance.get_latest_asset_check_evaluation_record(check_key)
            assert record is not None and record.status.value == "SUCCEEDED", check_key


def _check_specs(location):
    from mesh_platform.workspace import locations

    defs = locations()[location].definitions()
    return [spec for a in defs.assets if isinstance(a, dg.AssetsDefinition) for spec in a.check_specs]


def test_customer_insights_row_by_row_with_its_great_expectations_rule(mesh_home, instance):
    results = {location: materialize(location, instance) for location in PRODUCTS}
    assert all(r.success for r in results.values())

    catalog = Catalog(mesh_home)
    snapshot = catalog.current("customer", "insights")
    rows = duckdb.read_parquet(list(snapshot.files)).to_arrow_table().to_pylist()
    assert {r.pop("customer_id"): r for r in rows} == EXPECTED_INSIGHTS
    assert snapshot.properties["mesh.owner"] == "team:customer-analytics"
    assert snapshot.properties["mesh.pii_columns"] == "email"

    checks = {e.check_name: e for e in results["customer"].get_asset_check_evaluations()
              if e.asset_key == dg.AssetKey(["customer", "insights"])}
    assert all(c.passed for c in checks.values()) and len(checks) == 11  # schema, 9 rules, volume
    # The rule no SQL form covers (a column mean) ran in Great Expectations itself: its check
    # carries GX's own result fields, the observed mean among them.
    gx = checks["mean_recency_within_a_year"].metadata
    assert set(gx) == {"observed_value"} and gx["observed_value"].value == MEAN_RECENCY
    # A compiled rule on the same column ran in DuckDB: counts from SQL, no observed value.
    sql = checks["recency_not_negative"].metadata
    assert "observed_value" not in sql and sql["unexpected_count"].value == 0
