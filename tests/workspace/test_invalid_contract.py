"""A broken contract stops its own code location, with an error naming the file and the field,
and nothing else: the real webserver still serves the other three locations."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from workspace.server import DagsterServer

from mesh_platform.contracts import ContractError
from mesh_platform.location import location_definitions

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER = ROOT / "domains" / "customer"
CONTRACT = "contracts/profiles.odcs.yaml"


@pytest.fixture(autouse=True)
def _keep_product_modules():
    """Loading a copied location registers its product modules as mesh_products.customer.*:
    put the real ones back afterwards, so other tests see the modules they loaded."""
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mesh_products.")}
    yield
    for k in [k for k in sys.modules if k.startswith("mesh_products.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def _copy_customer(dest: Path) -> Path:
    folder = dest / "customer"  # the folder name is the domain: it must stay "customer"
    shutil.copytree(CUSTOMER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _replace(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the contract changed: {old!r} is not in it exactly once"
    return text.replace(old, new)


def _line_of(text: str, line: str) -> int:
    return text.splitlines().index(line) + 1


ORIGINAL = (CUSTOMER / CONTRACT).read_text()

# id -> (how to break the contract, expected ContractError.field, texts the message must hold)
BREAKAGES = {
    "not-odcs-kind": (
        lambda t: _replace(t, "kind: DataContract", "kind: Something"),
        "kind",
        ["Something", "DataContract"],
    ),
    "not-odcs-no-api-version": (
        lambda t: _replace(t, "apiVersion: v3.1.0\n", ""),
        "(document)",
        ["'apiVersion' is a required property"],
    ),
    "not-a-mapping": (
        lambda t: "just a sentence, not a contract\n",
        "(document)",
        ["not an ODCS contract"],
    ),
    "unknown-column-type": (
        lambda t: _replace(
            t,
            "- name: email\n        logicalType: string\n        physicalType: VARCHAR",
            "- name: email\n        logicalType: string\n        physicalType: NOTATYPE",
        ),
        "schema[0].properties[3].physicalType",
        ["NOTATYPE", "email"],
    ),
    "missing-owner": (
        lambda t: _replace(
            t,
            "team:\n  name: customer-team\n  members:\n    - {username: customer-lead, role: owner}\n",
            "",
        ),
        "team.name",
        ["owner"],
    ),
    # segment's only quality rule: schema[0].properties[5].quality[0].
    "unknown-library-metric": (
        lambda t: _replace(t, "metric: invalidValues", "metric: notAMetric"),
        "schema[0].properties[5].quality[0].metric",
        ["notAMetric"],
    ),
    "yaml-syntax-error": (
        lambda t: _replace(t, "team:\n  name: customer-team\n", "team:\n  name: [customer-team\n"),
        "(yaml)",
        ["not valid YAML", f"line {_line_of(ORIGINAL, '  name: customer-team')}"],
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_broken_contract_names_file_and_field(tmp_path, case):
    breakage, field, texts = BREAKAGES[case]
    folder = _copy_customer(tmp_path)
    contract = folder / CONTRACT
    contract.write_text(breakage(ORIGINAL))

    with pytest.raises(ContractError) as info:
        location_definitions(folder)

    error = info.value
    assert error.path == str(contract)
    assert error.field == field
    message = str(error)
    assert str(contract) in message
    assert field in message
    for text in texts:
        assert text in message


def test_contract_without_product_function(tmp_path):
    folder = _copy_customer(tmp_path)
    (folder / "products" / "profiles.py").unlink()

    with pytest.raises(ContractError) as info:
        location_definitions(folder)

    assert info.value.path == str(folder / CONTRACT)
    assert info.value.field == "schema[0].name"
    message = str(info.value)
    assert str(folder / CONTRACT) in message
    assert "no @product function 'profiles'" in message
    assert str(folder / "products") in message


def test_product_function_without_contract(tmp_path):
    folder = _copy_customer(tmp_path)
    orphan = folder / "products" / "loyalty.py"
    orphan.write_text(
        "from mesh_platform import product\n\n\n"
        "@product(sources=['crm_export'])\n"
        "def loyalty(ctx):\n"
        "    return ctx.sql('SELECT 1 AS customer_id')\n"
    )

    with pytest.raises(ContractError) as info:
        location_definitions(folder)

    assert info.value.path == str(orphan)
    assert info.value.field == "loyalty"
    message = str(info.value)
    assert str(orphan) in message
    assert str(folder / "contracts" / "loyalty.odcs.yaml") in message


def test_the_real_customer_location_still_loads():
    """The copies above are broken, the original is not (so the failures are the breakages)."""
    defs = location_definitions(CUSTOMER)
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} == {
        "customer/profiles", "customer/insights", "customer/landing/crm_export", "customer/governance/grants",
        "orders/history", "preferences/settings",  # insights' inputs, drawn from their own locations
    }


def test_webserver_serves_the_other_locations(tmp_path):
    folder = _copy_customer(tmp_path / "broken")
    contract = folder / CONTRACT
    contract.write_text(BREAKAGES["unknown-column-type"][0](ORIGINAL))
    workspace = tmp_path / "workspace.yaml"
    entries = [
        ("customer", folder / "definitions.py"),
        ("orders", ROOT / "domains/orders/definitions.py"),
        ("preferences", ROOT / "domains/preferences/definitions.py"),
        ("federation", ROOT / "mesh_platform/federation/definitions.py"),
    ]
    workspace.write_text(
        "load_from:\n"
        + "".join(
            f"  - python_file:\n"
            f"      relative_path: {path}\n"
            f"      location_name: {name}\n"
            f"      working_directory: {ROOT}\n"
            for name, path in entries
        )
    )

    server = DagsterServer(["-w", str(workspace)], home=tmp_path / "mesh").start()
    try:
        server.wait_ready(timeout=180)
        locations = server.location_entries(timeout=180)
    finally:
        code = server.stop()

    assert sorted(locations) == ["customer", "federation", "orders", "preferences"]
    assert {n: e["__typename"] for n, e in locations.items()} == {
        "customer": "PythonError",
        "orders": "RepositoryLocation",
        "preferences": "RepositoryLocation",
        "federation": "RepositoryLocation",
    }, locations
    error = locations["customer"]
    # Dagster wraps the load failure; the UI shows the chain of causes under it.
    assert error["className"] == "DagsterUserCodeLoadError"
    assert str(folder / "definitions.py") in error["message"]
    causes = {c["className"]: c["message"] for c in error["causes"]}
    assert "ContractError" in causes, error
    assert str(contract) in causes["ContractError"]
    assert "schema[0].properties[3].physicalType" in causes["ContractError"]
    assert "NOTATYPE" in causes["ContractError"]
    assert not server.killed, f"needed SIGKILL to stop:\n{server.log()}"
    assert code == 0, server.log()
