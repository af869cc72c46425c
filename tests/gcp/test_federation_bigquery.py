"""The federation layer on BigQuery (MESH_ENV=prod), end to end on the BigQuery emulator and moto:
the datasets reconciled from the contracts, the domains' output ports following their publishes,
customer_360 as a routine-built view audited in BigQuery, equal row by row to the mesh's DuckDB
product on the same snapshots."""

from __future__ import annotations

import dataclasses
import shutil

import dagster as dg
import pytest
from conftest import step_failure_messages
from gcp_prod import (
    CUSTOMER_360, DOMAINS, PORTS, PROJECT, assert_same_rows, duckdb_customer_360, location_job,
    provision_gcp, reset_bigquery, run, view_rows,
)
from google.api_core.retry import Retry
from google.cloud import bigquery as bq
from landing import CRM_CSV, EVENTS, EXPECTED_360, write_landing
from merged import deployment

from mesh_platform.audit import AuditLog
from mesh_platform.follow import follows_inputs
from mesh_platform.cloud import bigquery_sql, infra
from mesh_platform.cloud.gcp import GcpError, GcpProvisioner, pinned_table, port_table
from mesh_platform.contracts import ALLOW_DROP_TAG
from mesh_platform.deployment import Settings
from mesh_platform.emulators._process import free_port
from mesh_platform.places import table
from mesh_platform.registry import location_order, product_contract
from mesh_platform.workspace import locations

R = Retry(timeout=10)
FEDERATION_SA = "mesh-federation@mesh-federation.iam.gserviceaccount.com"
VIEW = f"{PROJECT}.customer_federation.customer_360"
ROUTINE = f"{PROJECT}.customer_federation.customer_contract"


@pytest.fixture
def prod(mesh_home, aws, bigquery, azure, arm, monkeypatch) -> Settings:
    """The whole prod environment on the emulators: the domains on AWS, customer/insights on
    Azure (both provisioned by the platform), the federation's datasets emptied."""
    monkeypatch.setenv("MESH_ENV", "prod")
    settings = Settings.from_env()
    infra.apply(settings, clouds=["aws", "azure"])
    reset_bigquery(bigquery)
    return settings


@pytest.fixture
def client(bigquery):
    c = bigquery.client()
    yield c
    c.close()


def refresh(instance) -> dict[str, dg.Definitions]:
    """A full prod refresh: each domain's run, then the federation's (ports, then the view)."""
    defs = {name: location_job(name) for name in location_order([*DOMAINS, "federation"])}
    for name, d in defs.items():
        result = run(d, instance)
        assert result.success, f"{name}: {step_failure_messages(result)}"
    return defs


def entries(dataset) -> set[tuple]:
    out = set()
    for a in dataset.access_entries:
        entity = a.entity_id if isinstance(a.entity_id, str) else tuple(sorted(a.entity_id.items()))
        out.add((a.role, a.entity_type, entity))
    return out


def snapshot_of(settings: Settings, key: str) -> str:
    return str(table(product_contract(key), settings.env, settings.home).current().snapshot_id)


def view_definition(client) -> str:
    """What the view is (get_table(view).view_query is empty on the emulator: INFORMATION_SCHEMA)."""
    rows = client.query(
        f"SELECT view_definition FROM `{PROJECT}.customer_federation.INFORMATION_SCHEMA.VIEWS` "
        "WHERE table_name = 'customer_360'", retry=R, job_retry=None,
    ).result(retry=R)
    [(definition,)] = [tuple(r.values()) for r in rows]
    return definition


def test_in_prod_the_federation_owns_the_ports_and_customer_360_follows_them(mesh_home, monkeypatch):
    monkeypatch.setenv("MESH_ENV", "prod")
    defs = location_job("federation")
    graph = defs.resolve_asset_graph()
    eager = follows_inputs()
    for key, port in PORTS.items():
        node = graph.get(port)
        assert node.parent_keys == {dg.AssetKey(key.split("/"))}  # follows the domain's product
        assert node.automation_condition == eager
        assert node.owners == ["team:platform-team"] and node.group_name == "federation"
        assert node.kinds == {"bigquery"}
        assert node.metadata["dagster/table_name"] == port_table(key, "prod")
        assert [c.name for c in node.check_keys] == ["in_step"]
    view = graph.get(CUSTOMER_360)
    assert view.parent_keys == set(PORTS.values())  # the view reads the ports, not the Glue tables
    assert view.automation_condition == eager and view.kinds == {"bigquery"}
    sensor = defs.resolve_sensor_def("federation_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection.resolve(graph) == {
        *PORTS.values(), CUSTOMER_360, dg.AssetKey(["federation", "governance", "grants"])}
    job = next(j for j in defs.jobs if j.name == "federation_products")  # `mesh materialize federation`
    assert job.selection.resolve(graph) == {*PORTS.values(), CUSTOMER_360}
    # dev is unchanged: no ports, customer_360 an Iceberg table built from the domains' tables.
    monkeypatch.setenv("MESH_ENV", "dev")
    dev = location_job("federation").resolve_asset_graph()
    assert not any(k.path[1:2] == ["bigquery"] for k in dev.get_all_asset_keys())
    assert dev.get(CUSTOMER_360).parent_keys == {dg.AssetKey(k.split("/")) for k in PORTS}


def test_federation_on_bigquery_follows_the_domains_row_by_row(prod, instance, client):
    # --- the datasets, reconciled from the contracts and the deployment file -------------------
    applied = infra.apply(prod, clouds=["gcp"])
    assert {c.action for c in applied} == {"create", "grant"}
    assert infra.plan(prod, clouds=["gcp"]) == []  # idempotent
    grants = AuditLog(prod.home).entries(action="grant")
    assert any(e.detail.get("resource", "").endswith("READER userByEmail:domain-team@example.com") for e in grants)

    federation = client.get_dataset(f"{PROJECT}.customer_federation", retry=R)
    assert federation.location == "US"
    assert federation.labels == {
        "environment": "production", "federation": "true", "customer": "", "federated": "", "pii": "",
    }
    assert entries(federation) == {
        ("READER", "userByEmail", "domain-team@example.com"),  # customer_360's contract grants it
        ("WRITER", "userByEmail", FEDERATION_SA),  # the federation location builds the routine and the view
    }
    view_entry = (None, "view", (("datasetId", "customer_federation"), ("projectId", PROJECT), ("tableId", "customer_360")))
    for key, tags in {"customer/profiles": {"customer": "", "pii": ""}, "orders/history": {"orders": ""},
                      "preferences/settings": {"preferences": ""}}.items():
        domain = key.split("/")[0]
        port = client.get_dataset(f"{PROJECT}.{domain}_domain", retry=R)
        assert port.location == "US"
        assert port.labels == {"environment": "production", "domain": domain, "output_port": "true", **tags}
        # The view reads the port as an authorized view: its readers need no access to the port.
        assert entries(port) == {("WRITER", "userByEmail", FEDERATION_SA), view_entry}, key

    # --- a full prod refresh: domains on AWS, then the ports and the view ----------------------
    defs = refresh(instance)
    snapshots = {key: snapshot_of(prod, key) for key in PORTS}
    pins = {key: pinned_table(port_table(key, "prod"), snapshots[key]) for key in PORTS}
    for key in PORTS:
        port = client.get_table(port_table(key, "prod"), retry=R)
        assert port.labels["mesh_snapshot"] == snapshots[key], key
        assert port.description.startswith(f"{key} snapshot {snapshots[key]} ")
        # ... and kept as a table snapshot, which the view reads.
        pin = client.get_table(pins[key], retry=R)
        assert (pin.table_type, pin.labels["mesh_snapshot"], pin.num_rows) == ("SNAPSHOT", snapshots[key], port.num_rows)
    assert client.get_table(port_table("orders/history", "prod"), retry=R).num_rows == 3  # C999 too

    routine = client.get_routine(ROUTINE, retry=R)
    assert (routine.type_, routine.language) == ("PROCEDURE", "SQL")
    # The body is the product's own SQL, captured from its function and transpiled.
    contract = product_contract("federation/customer_360")
    spec = _spec()
    candidate = bigquery_sql.to_bigquery(bigquery_sql.capture(contract, spec), pins)
    assert routine.body == f"CREATE OR REPLACE VIEW `{VIEW}` AS\n{candidate}"
    assert f"LEFT JOIN `mesh-federation`.orders_domain.history__s{snapshots['orders/history']} AS h" in routine.body
    assert f"LEFT JOIN `mesh-federation`.preferences_domain.settings__s{snapshots['preferences/settings']} AS s" in routine.body
    assert _same_sql(view_definition(client), candidate)

    view = client.get_table(VIEW, retry=R)
    assert view.table_type == "VIEW"
    assert [f.name for f in view.schema] == ["customer_id", "profile", "order_history", "preferences"]
    nested = {f.name: [(s.name, s.field_type, s.mode) for s in f.fields] for f in view.schema if f.fields}
    assert [n for n, *_ in nested["profile"]] == [
        "first_name", "last_name", "email", "country", "segment", "signup_date", "updated_at"]
    assert ("recent_orders", "RECORD", "REPEATED") in nested["order_history"]
    assert ("interests", "STRING", "REPEATED") in nested["preferences"]
    assert view.labels == {
        "mesh_customer_profiles": snapshots["customer/profiles"], "mesh_orders_history": snapshots["orders/history"],
        "mesh_preferences_settings": snapshots["preferences/settings"], "mesh_contract_version": "1_0_0",
    }

    # Row by row: the hand-worked expectation, and the DuckDB product on the same snapshots.
    rows = view_rows(client)
    assert_same_rows(rows, EXPECTED_360)
    assert_same_rows(rows, duckdb_customer_360(prod))

    event = instance.get_latest_materialization_event(CUSTOMER_360).asset_materialization
    assert event.metadata["upstream_snapshots"].value == snapshots
    assert event.metadata["view"].value == VIEW and event.metadata["routine"].value == ROUTINE
    assert event.metadata["dagster/row_count"].value == 3
    for name in ("schema", "one_row_per_profile", "volume"):
        record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(CUSTOMER_360, name))
        assert record.status.value == "SUCCEEDED", name

    # Grants enforced and audited: the ports read the snapshots as federation.
    log = AuditLog(prod.home)
    reads = {(e.actor, e.product, e.detail["snapshot_id"]) for e in log.entries(action="read")}
    assert reads >= {("federation", key, snapshots[key]) for key in PORTS}
    ports = {e.product: e.detail["port"] for e in log.entries(action="publish") if "port" in e.detail}
    assert ports == {key: f"bigquery:{port_table(key, 'prod')}" for key in PORTS}

    # --- one domain republishes: its port follows, then the view, through automation ------------
    everything = deployment(defs)
    selection = defs["federation"].resolve_sensor_def("federation_automation").asset_selection
    cursor = None

    def tick() -> set[dg.AssetKey]:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(
            defs=everything, instance=instance, asset_selection=selection, cursor=cursor
        )
        cursor = result.cursor
        return {k for k in [*PORTS.values(), CUSTOMER_360] if result.get_num_requested(k)}

    assert tick() == set()  # everything published before automation first looked is handled
    write_landing(prod.landing, events=[*EVENTS, ("E9", "C002", "2024-08-01 08:00:00", "channel", "email")])
    result = run(defs["preferences"], instance)
    assert result.success, step_failure_messages(result)
    # The port of what was republished (not the others), and the view after it, in one run.
    requested = tick()
    assert requested == {PORTS["preferences/settings"], CUSTOMER_360}
    result = run(defs["federation"], instance, requested)
    assert result.success, step_failure_messages(result)
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [PORTS["preferences/settings"], CUSTOMER_360]
    assert tick() == set()

    new = snapshot_of(prod, "preferences/settings")
    assert new != snapshots["preferences/settings"]
    assert client.get_table(port_table("preferences/settings", "prod"), retry=R).labels["mesh_snapshot"] == new
    assert f"preferences_domain.settings__s{new} AS s" in client.get_routine(ROUTINE, retry=R).body
    rows = view_rows(client)
    assert rows["C002"]["preferences"]["channel"] == "email"  # the new data, in the view
    assert_same_rows(rows, duckdb_customer_360(prod))
    event = instance.get_latest_materialization_event(CUSTOMER_360).asset_materialization
    assert event.metadata["upstream_snapshots"].value == {**snapshots, "preferences/settings": new}
    assert event.metadata["routine_changed"].value is True  # pinned to the new snapshot

    # A port keeps the table snapshots a view reads and its newest two (a view's audit may be
    # reading one), no more: one more republish, and the first snapshot is gone.
    write_landing(prod.landing, events=[*EVENTS, ("E9", "C002", "2024-08-02 08:00:00", "channel", "push")])
    assert run(defs["preferences"], instance).success
    assert run(defs["federation"], instance, tick()).success
    assert view_rows(client)["C002"]["preferences"]["channel"] == "push"
    kept = {t.table_id for t in client.list_tables(f"{PROJECT}.preferences_domain", retry=R)}
    assert kept == {"settings", f"settings__s{snapshot_of(prod, 'preferences/settings')}", f"settings__s{new}"}


def test_a_failing_check_on_the_view_fails_the_run_and_consumers_keep_the_previous_view(
    prod, instance, client, tmp_path, restore_product_modules,
):
    provision_gcp(prod)
    refresh(instance)
    before = (client.get_routine(ROUTINE, retry=R).body, view_definition(client), view_rows(client))

    # The seed's inner joins: customers without orders or preferences drop out of the candidate.
    folder = shutil.copytree(locations()["federation"].path.parent, tmp_path / "federation")
    code = folder / "products" / "customer_360.py"
    code.write_text(code.read_text().replace("LEFT JOIN", "JOIN"))
    result = run(location_job("federation", folder), instance, [CUSTOMER_360])

    assert not result.success
    message = step_failure_messages(result)
    assert (
        "PublishBlocked: federation/customer_360: not published, blocking checks failed on the candidate view in BigQuery; "
        f"the view {VIEW} and the routine {ROUTINE} stay as they were.\n"
    ) in message
    assert "- rule 'one_row_per_profile': Every customer of customer/profiles, once.: got -2, expected {'mustBe': 0}" in message
    assert "- rule 'volume': 1 rows against 3 published (-66.7%)" in message
    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(CUSTOMER_360, "one_row_per_profile"))
    assert record.status.value == "FAILED"
    # What consumers read is what it was: the routine, the view and its rows.
    assert (client.get_routine(ROUTINE, retry=R).body, view_definition(client), view_rows(client)) == before
    assert_same_rows(view_rows(client), EXPECTED_360)
    [blocked] = AuditLog(prod.home).entries(action="publish_blocked")
    assert blocked.product == "federation/customer_360" and blocked.detail["view"] == VIEW

    # New data that fails the view's checks: the CRM exports one customer of three, which
    # customer/profiles publishes (its own volume check accepted by the run's tag). The port
    # follows; the view's volume check blocks; consumers still read the audited rows, since the
    # view reads the table snapshots it was audited on, not the port.
    write_landing(prod.landing, crm_csv="".join(l for l in CRM_CSV.splitlines(keepends=True) if not l.startswith(("C002", "C003"))))
    assert run(location_job("customer"), instance, tags={ALLOW_DROP_TAG: "true"}).success
    result = run(location_job("federation"), instance, [PORTS["customer/profiles"], CUSTOMER_360])
    assert not result.success
    message = step_failure_messages(result)
    assert "- rule 'volume': 1 rows against 3 published (-66.7%)" in message
    assert "one_row_per_profile" not in message  # 1 customer, once: that rule holds
    port = client.get_table(port_table("customer/profiles", "prod"), retry=R)
    assert (port.labels["mesh_snapshot"], port.num_rows) == (snapshot_of(prod, "customer/profiles"), 1)  # in step
    assert (client.get_routine(ROUTINE, retry=R).body, view_definition(client), view_rows(client)) == before


def test_reconcile_revokes_what_no_contract_grants_and_is_idempotent(prod, client):
    contracts = infra.product_contracts()
    provisioner = provision_gcp(prod, contracts)
    assert provisioner.plan() == []
    ref = f"{PROJECT}.customer_federation"

    # Added by hand: a reader, a label, and the project's own OWNER entry (not the platform's).
    ds = client.get_dataset(ref, retry=R)
    ds.access_entries = [*ds.access_entries, bq.AccessEntry("READER", "userByEmail", "intruder@example.com"),
                         bq.AccessEntry("OWNER", "specialGroup", "projectOwners")]
    ds.labels = {**ds.labels, "owner": "someone"}
    client.update_dataset(ds, ["access_entries", "labels"], retry=R)
    plan = provisioner.plan()
    assert [(c.action, c.resource) for c in plan] == [
        ("update", "bigquery dataset mesh-federation:customer_federation labels"),
        ("revoke", "bigquery dataset mesh-federation:customer_federation access READER userByEmail:intruder@example.com"),
    ]
    assert str(plan[1]) == ("- gcp: revoke bigquery dataset mesh-federation:customer_federation access "
                            "READER userByEmail:intruder@example.com (why=granted by no contract)")
    provisioner.apply(plan)
    assert provisioner.plan() == []
    ds = client.get_dataset(ref, retry=R)
    assert "owner" not in ds.labels
    assert entries(ds) == {("READER", "userByEmail", "domain-team@example.com"), ("WRITER", "userByEmail", FEDERATION_SA),
                           ("OWNER", "specialGroup", "projectOwners")}

    # domain-team removed from customer_360's contract: revoked on apply, and only that.
    without = [dataclasses.replace(c, grants=()) if c.key == "federation/customer_360" else c for c in contracts]
    narrower = GcpProvisioner(prod, without)
    plan = narrower.plan()
    assert [(c.action, c.resource) for c in plan] == [
        ("revoke", "bigquery dataset mesh-federation:customer_federation access READER userByEmail:domain-team@example.com"),
    ]
    narrower.apply(plan)
    narrower.apply(plan)  # applying the same plan again changes nothing
    assert narrower.plan() == []
    assert ("READER", "userByEmail", "domain-team@example.com") not in entries(client.get_dataset(ref, retry=R))
    # Granted again by the contract as it is.
    assert [(c.action, c.resource) for c in provisioner.plan()] == [
        ("grant", "bigquery dataset mesh-federation:customer_federation access READER userByEmail:domain-team@example.com"),
    ]


def test_errors_name_the_resource_and_where_bigquery_was(prod, client, bigquery, instance, monkeypatch):
    contracts = infra.product_contracts()

    # Nothing provisioned: the view's run fails naming the dataset, and how to provision it.
    result = run(location_job("federation"), instance, [CUSTOMER_360])
    assert not result.success
    assert (
        "federation/customer_360: nothing published: BigQuery dataset mesh-federation:customer_federation "
        f"does not exist in the BigQuery emulator at {bigquery.endpoint}: provision the federation first"
    ) in step_failure_messages(result)

    # The emulator down (nothing listens on the port): a bounded wait, then the resource named.
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", down)
    with pytest.raises(GcpError, match=(
        rf"^BigQuery dataset mesh-federation:customer_domain: the BigQuery emulator at {down} did not answer "
        r"within 5 s \(ConnectionError: ")):
        GcpProvisioner(prod, contracts).plan()
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery.endpoint)

    # A contract naming another project than the deployment file's.
    moved = [
        dataclasses.replace(c, servers=tuple(
            dataclasses.replace(s, fields={**s.fields, "project": "someone-elses"}) if s.type == "bigquery" else s
            for s in c.servers))
        for c in contracts
    ]
    with pytest.raises(GcpError, match=(
        r"customer_360.odcs.yaml: servers \(prod\): project 'someone-elses', but deployments/prod.yaml "
        r"gcp.project is 'mesh-federation'")):
        GcpProvisioner(prod, moved).plan()

    # A dataset that exists with other settings: BigQuery cannot move it; plan says so.
    other = bq.Dataset(f"{PROJECT}.customer_federation")
    other.location = "EU"
    client.create_dataset(other, retry=R)
    with pytest.raises(GcpError, match=(
        r"^bigquery dataset mesh-federation:customer_federation exists in location EU, but the deployment file "
        r"says US: BigQuery cannot move a dataset")):
        GcpProvisioner(prod, contracts).plan()


def _same_sql(a: str, b: str) -> bool:
    import sqlglot

    return sqlglot.parse_one(a, read="bigquery").sql("bigquery") == sqlglot.parse_one(b, read="bigquery").sql("bigquery")


def _spec():
    from mesh_platform.location import _functions

    return _functions(locations()["federation"].path.parent / "products", "federation")["customer_360"][0]
