"""The audit trail as operators use it (`mesh audit`, `mesh audit verify`), and the governance
asset that applies a contract's changed grants by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from conftest import ROOT, materialize, step_failure_messages

from mesh_platform.governance import grants_asset
from mesh_platform.grants import GrantStore
from mesh_platform.contracts import load_contract
from mesh_platform.deployment import resources
from mesh_platform.storage import Catalog

MESH = str(Path(sys.executable).with_name("mesh"))


def mesh(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")} | {"MESH_HOME": str(home)}
    return subprocess.run([MESH, *args], env=env, capture_output=True, text=True)


def test_mesh_audit_lists_filters_and_detects_tampering(mesh_home, instance):
    for location in ("orders", "preferences", "customer", "federation"):
        result = materialize(location, instance)
        assert result.success, step_failure_messages(result)

    listed = json.loads(mesh(mesh_home, "audit", "--json").stdout)
    # Each product: its grants (one per reader), its publish; customer/insights and customer_360
    # read their inputs first, customer_360 after its grant (to domain-team).
    assert [(e["action"], e["actor"], e["product"]) for e in listed] == [
        ("grant", "orders", "orders/history"), ("grant", "orders", "orders/history"),
        ("publish", "orders", "orders/history"),
        ("grant", "preferences", "preferences/settings"), ("grant", "preferences", "preferences/settings"),
        ("publish", "preferences", "preferences/settings"),
        ("grant", "customer", "customer/profiles"), ("publish", "customer", "customer/profiles"),
        ("grant", "customer", "customer/insights"),
        ("read", "customer", "customer/profiles"), ("read", "customer", "orders/history"),
        ("read", "customer", "preferences/settings"), ("publish", "customer", "customer/insights"),
        ("grant", "federation", "federation/customer_360"),
        ("read", "federation", "customer/profiles"), ("read", "federation", "orders/history"),
        ("read", "federation", "preferences/settings"), ("publish", "federation", "federation/customer_360"),
    ]
    assert [e["detail"]["reader"] for e in listed if e["action"] == "grant"] == [
        "customer", "federation", "customer", "federation", "federation", "federation", "domain-team",
    ]
    reads = json.loads(mesh(mesh_home, "audit", "--json", "--location", "federation", "--action", "read").stdout)
    snapshot = Catalog(mesh_home).current("customer", "profiles").snapshot_id
    assert reads[0]["detail"]["snapshot_id"] == str(snapshot)
    assert len(json.loads(mesh(mesh_home, "audit", "--json", "--product", "orders/history").stdout)) == 5
    assert mesh(mesh_home, "audit", "verify").returncode == 0

    # Someone hides that the federation read customer/profiles (the 15th entry).
    log = mesh_home / "audit/log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert json.loads(lines[14])["action"] == "read" and json.loads(lines[14])["actor"] == "federation"
    log.write_text("".join(lines[:14] + lines[15:]))
    done = mesh(mesh_home, "audit", "verify")
    assert done.returncode == 1
    assert "deleted" in done.stdout and "seq 15" in done.stdout


def test_a_changed_grant_is_applied_by_automation_without_a_publish(mesh_home, instance, tmp_path):
    store = GrantStore(Catalog(mesh_home).db_path)
    contract = load_contract(ROOT / "domains/customer/contracts/profiles.odcs.yaml")
    widened = tmp_path / "profiles.odcs.yaml"
    widened.write_text(contract.path.read_text().replace(
        "  - {role: federation, access: read, description: The platform's federated products.}\n",
        "  - {role: federation, access: read, description: The platform's federated products.}\n"
        "  - role: orders\n    access: read\n    customProperties:\n"
        "      - {property: exclude, value: [first_name, last_name, email]}\n",
    ))

    def deployment(c) -> dg.Definitions:
        asset = grants_asset("customer", "platform-team", [c])
        return dg.Definitions(assets=[asset], resources=resources(consumer="customer"))

    key = dg.AssetKey(["customer", "governance", "grants"])

    def tick(defs, cursor):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor, asset_selection=dg.AssetSelection.assets(key))
        return result.total_requested, result.cursor

    defs = deployment(contract)
    requested, cursor = tick(defs, None)
    assert requested == 1  # never applied: missing
    assert dg.materialize(defs.assets, instance=instance, resources=defs.resources).success
    assert sorted(store.for_product("customer/profiles")) == ["federation"]
    requested, cursor = tick(defs, cursor)
    assert requested == 0  # applied, unchanged

    # The owners grant orders a reduced view: the location reloads with a new code version.
    defs = deployment(load_contract(widened))
    requested, cursor = tick(defs, cursor)
    assert requested == 1
    assert dg.materialize(defs.assets, instance=instance, resources=defs.resources, selection=[key]).success
    assert store.lookup("customer/profiles", "orders").exclude == ("first_name", "last_name", "email")
    assert tick(defs, cursor)[0] == 0
