"""Governance tried as an adversarial domain team would: every attack fails safely, with a
clear message and an audit entry.

Hostile product code and contracts run as real Dagster runs of a copied code location (the
folder name is the domain), on a test instance, over the hand-written landing set.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import ROOT, error_chain, materialize, step_failure_messages

from mesh_platform.access import AccessDenied, mask_key
from mesh_platform.audit import AuditLog
from mesh_platform.contracts import ContractError, load_contract
from mesh_platform.governance import apply_grants
from mesh_platform.grants import GrantStore
from mesh_platform.location import location_definitions
from mesh_platform.storage import Catalog

PROFILES = "customer/profiles"


pytestmark = pytest.mark.usefixtures("restore_product_modules")  # copied locations load here


def copy_location(tmp_path: Path, name: str) -> Path:
    source = ROOT / ("mesh_platform/federation" if name == "federation" else f"domains/{name}")
    folder = tmp_path / "locations" / name
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__", "definitions.py"))
    return folder


def run(folder: Path, instance) -> dg.ExecuteInProcessResult:
    defs = location_definitions(folder)
    return defs.resolve_job_def(f"{folder.name}_products").execute_in_process(instance=instance, raise_on_error=False)


def published(home: Path, key: str = PROFILES):
    domain, name = key.split("/")
    return Catalog(home).current(domain, name)


def rows(snapshot) -> list[tuple]:
    return sorted(duckdb.read_parquet(list(snapshot.files)).fetchall())


def audit(home: Path, action: str, product: str | None = None) -> list:
    return AuditLog(home).entries(action=action, product=product)


@pytest.fixture
def mesh(mesh_home, instance):
    """The three domains published, as the federation will read them (customer last: its
    insights read orders and preferences)."""
    for location in ("orders", "preferences", "customer"):
        result = materialize(location, instance)
        assert result.success, step_failure_messages(result)
    return mesh_home


# --- contract SQL ---------------------------------------------------------------------------

HOSTILE_RULES = {
    # A rule exporting another product's PII: refused before it runs (one SELECT only).
    "copy-out": "COPY (SELECT * FROM read_parquet('{profiles}')) TO '{out}'; SELECT 0",
    # A rule overwriting profiles' current file in place.
    "overwrite": "COPY (SELECT 1 AS x) TO '{profiles}' (FORMAT parquet, USE_TMP_FILE false)",
    # A single SELECT that reads a file the step was not granted: DuckDB refuses the path.
    "read-other-domain": "SELECT count(*) FROM read_parquet('{profiles}')",
    "attach": "ATTACH '{out}' AS x",
    "set": "SET enable_external_access = true",
}


@pytest.mark.parametrize("attack", sorted(HOSTILE_RULES))
def test_a_hostile_contract_rule_fails_its_check_and_touches_nothing(mesh, instance, tmp_path, attack):
    before = published(mesh)
    profiles_file = before.files[0]
    out = tmp_path / "pwned.csv"
    folder = copy_location(tmp_path, "orders")
    contract = folder / "contracts/history.odcs.yaml"
    query = HOSTILE_RULES[attack].format(profiles=profiles_file, out=out).replace("'", "''")
    # A changed blocking rule is a breaking change: released as a new major version, so that
    # the version gate (against the published contract) lets the location load and run it.
    text = contract.read_text().replace(
        "query: SELECT count(*) FROM ${object} WHERE first_order_at > last_order_at",
        f"query: '{query}'",
    ).replace("version: 1.0.0\n", "version: 2.0.0\n")
    assert text != contract.read_text()
    contract.write_text(text)

    result = run(folder, instance)

    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = checks["first_before_last"]
    assert not failed.passed
    message = failed.description
    assert str(contract) in message and "quality rule 'first_before_last'" in message
    expected = "must be exactly one SELECT" if attack in ("copy-out", "overwrite", "attach", "set") else "Permission Error"
    assert expected in message
    # Nothing written, nothing overwritten: profiles is the same snapshot with the same rows.
    assert not out.exists()
    after = published(mesh)
    assert after.snapshot_id == before.snapshot_id and rows(after) == rows(before)
    assert [e.detail["failed_checks"] for e in audit(mesh, "publish_blocked", "orders/history")] == [["first_before_last"]]


# --- product code ---------------------------------------------------------------------------

def hostile_product(folder: Path, body: str) -> None:
    (folder / "products/history.py").write_text(
        "from mesh_platform import product\n\n\n"
        '@product(sources=["orders", "order_lines"])\n'
        "def history(ctx):\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())
    )


PRODUCT_ATTACKS = {
    # Reading another domain's data files directly.
    "read-files": ("return ctx.sql(\"SELECT * FROM read_parquet('{profiles}')\")", "Permission Error"),
    # A second statement smuggled into ctx.sql.
    "two-statements": ("return ctx.sql(\"SELECT 1; COPY (SELECT 1) TO '{out}'\")", "exactly one SELECT"),
    # Writing through the relation API.
    "to-parquet": ("ctx.sql('SELECT 1 AS x').to_parquet('{out}')", "Relation.to_parquet is not available"),
    "query": ("ctx.sql('SELECT 1 AS x').query('v', \"COPY (SELECT 1) TO '{out}'\")", "Relation.query is not available"),
    # Posing as the federation, or publishing over customer/profiles.
    "pose-as-federation": ("return ctx._catalog", "has no attribute '_catalog'"),
    "read-etc-passwd": ("return ctx.sql(\"SELECT * FROM read_csv('/etc/passwd')\")", "Permission Error"),
}


@pytest.mark.parametrize("attack", sorted(PRODUCT_ATTACKS))
def test_hostile_product_code_is_stopped_by_the_sandbox(mesh, instance, tmp_path, attack):
    before = published(mesh)
    out = tmp_path / "pwned.out"
    code, expected = PRODUCT_ATTACKS[attack]
    folder = copy_location(tmp_path, "orders")
    hostile_product(folder, code.format(profiles=before.files[0], out=out))

    result = run(folder, instance)

    assert not result.success
    message = error_chain(result)
    assert expected in message, message
    assert "root:x:0:0" not in message  # /etc/passwd's first line never reaches an error
    assert not out.exists()
    after = published(mesh)
    assert after.snapshot_id == before.snapshot_id and rows(after) == rows(before)
    assert published(mesh, "orders/history").snapshot_id is not None  # the real one, untouched


def test_product_code_gets_no_handle_to_publish_or_read_as_someone_else(mesh, instance, tmp_path):
    folder = copy_location(tmp_path, "orders")
    hostile_product(folder, """
exposed = sorted(n for n in vars(ctx) if not n.startswith('__'))
raise RuntimeError(f'exposed: {exposed}')
""")
    message = error_chain(run(folder, instance))
    assert ("exposed: ['_bucket_budget', '_con', '_inputs', '_landings', '_read', '_scratch', '_spec', 'contract', "
            "'log']") in message


# --- source contracts -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["../warehouse/customer/profiles/data/*.parquet", "/etc/passwd"])
def test_a_source_path_outside_the_landing_root_is_a_load_error(tmp_path, path):
    folder = copy_location(tmp_path, "orders")
    source = folder / "sources/orders.odcs.yaml"
    source.write_text(source.read_text().replace("path: orders/orders/*.parquet", f"path: {path}"))
    with pytest.raises(ContractError) as info:
        location_definitions(folder)
    assert info.value.path == str(source) and info.value.field == "servers[0].path"
    assert "must be a relative path inside the landing root" in str(info.value)
    assert "MESH_SOURCE_ORDERS_ORDERS" in str(info.value)


def test_a_symlink_in_the_landing_zone_cannot_lead_out_of_it(mesh, instance, tmp_path):
    secret = tmp_path / "secret.parquet"
    shutil.copy(published(mesh).files[0], secret)
    (mesh / "landing/orders/orders/part-99999.parquet").symlink_to(secret)
    result = materialize("orders", instance)
    assert not result.success
    assert "leads outside the landing root" in step_failure_messages(result)


# --- grants come from the producer's current contract ---------------------------------------

def test_grants_follow_the_contract_without_republishing(mesh, instance, tmp_path):
    store = GrantStore(Catalog(mesh).db_path)
    contract_file = ROOT / "domains/customer/contracts/profiles.odcs.yaml"
    snapshot = published(mesh).snapshot_id

    # Revoked in the producer's contract and applied: the federation's next read is denied,
    # recorded in the audit log and on customer/profiles in the UI.
    revoked = tmp_path / "revoked/profiles.odcs.yaml"
    revoked.parent.mkdir()
    revoked.write_text(contract_file.read_text().replace(
        "  - {role: federation, access: read, description: The platform's federated products.}\n", ""
    ).replace("roles:\n", "roles: []\n"))
    changes = apply_grants(store, AuditLog(mesh), "customer", load_contract(revoked))
    assert [(c.action, c.grant.reader) for c in changes] == [("revoke", "federation")]
    result = materialize("federation", instance)
    assert not result.success
    assert "federation may not read customer/profiles" in step_failure_messages(result)
    [denied] = audit(mesh, "read_denied", PROFILES)
    assert (denied.actor, denied.detail["snapshot_id"], denied.detail["run_id"]) == ("federation", str(snapshot), result.run_id)
    records = instance.fetch_observations(dg.AssetKey(["customer", "profiles"]), limit=5).records
    assert [r.asset_observation.metadata["reader"].value for r in records] == ["federation"]

    # Granted again by the contract (the governance asset applies it): readable at once, the
    # same snapshot, no republish.
    grants = location_definitions(ROOT / "domains/customer").resolve_implicit_global_asset_job_def()
    applied = grants.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["customer", "governance", "grants"])], raise_on_error=False
    )
    assert applied.success, step_failure_messages(applied)
    result = materialize("federation", instance)
    assert result.success, step_failure_messages(result)
    assert published(mesh).snapshot_id == snapshot
    reads = [e for e in audit(mesh, "read", PROFILES) if e.actor == "federation"]
    assert reads[-1].detail == {"snapshot_id": str(snapshot), "run_id": result.run_id, "masked": [], "excluded": []}
    # (The first read is the customer location's own: customer/insights is built from profiles.)
    assert [(e.action, e.actor) for e in AuditLog(mesh).entries(product=PROFILES)] == [
        ("grant", "customer"), ("publish", "customer"), ("read", "customer"), ("revoke", "customer"),
        ("read_denied", "federation"), ("grant", "customer"), ("read", "federation"),
    ]


def test_a_masked_column_is_hashed_for_one_reader_and_clear_for_another(mesh, tmp_path):
    catalog = Catalog(mesh)
    store = GrantStore(catalog.db_path)
    log = AuditLog(mesh)
    contract_file = ROOT / "domains/customer/contracts/profiles.odcs.yaml"
    masked = tmp_path / "masked/profiles.odcs.yaml"
    masked.parent.mkdir()
    masked.write_text(contract_file.read_text().replace(
        "  - {role: federation, access: read, description: The platform's federated products.}\n",
        "  - {role: federation, access: read}\n"
        "  - role: preferences\n    access: read\n    customProperties:\n"
        "      - {property: mask, value: [email]}\n      - {property: exclude, value: [first_name, last_name]}\n",
    ))
    store.apply(load_contract(masked))
    from mesh_platform.access import Reader
    from mesh_platform.places import table
    from mesh_platform.registry import product_contract

    def reader(consumer: str, run_id: str) -> Reader:
        return Reader(lambda key: table(product_contract(key), "dev", mesh), store, log, consumer, run_id, mesh)

    clear = reader("federation", "run-a").read(PROFILES)
    hidden = reader("preferences", "run-b").read(PROFILES)
    clear_rows = {r[0]: r for r in duckdb.read_parquet(list(clear.files)).select("customer_id, email, first_name").fetchall()}
    hidden_rel = duckdb.read_parquet(list(hidden.files))
    assert "first_name" not in hidden_rel.columns and "last_name" not in hidden_rel.columns
    key = mask_key(mesh)
    for customer_id, email in hidden_rel.select("customer_id, email").fetchall():
        assert email == hashlib.sha256((key + clear_rows[customer_id][1]).encode()).hexdigest()
        assert email != clear_rows[customer_id][1]
    # Deterministic: a second read hashes the same way, so joins on the column still work.
    again = reader("preferences", "run-c").read(PROFILES)
    assert sorted(duckdb.read_parquet(list(again.files)).select("email").fetchall()) == sorted(
        hidden_rel.select("email").fetchall()
    )
    assert [e.detail["masked"] for e in log.entries(action="read", actor="preferences")] == [["email"], ["email"]]
    with pytest.raises(AccessDenied, match="orders may not read customer/profiles"):
        reader("orders", "run-d").read(PROFILES)


# --- load-time grants -----------------------------------------------------------------------

def test_an_input_the_producer_does_not_grant_is_a_load_error(tmp_path):
    folder = copy_location(tmp_path, "orders")
    (folder / "products/history.py").write_text(
        "from mesh_platform import product\n\n\n"
        '@product(sources=["orders", "order_lines"], inputs=["customer/profiles"])\n'
        "def history(ctx):\n    return ctx.sql('SELECT 1')\n"
    )
    with pytest.raises(ContractError) as info:
        location_definitions(folder)
    message = str(info.value)
    assert str(folder / "products/history.py") in message
    assert f"'customer/profiles' is not granted to 'orders' by {ROOT / 'domains/customer/contracts/profiles.odcs.yaml'}" in message
