"""Side-by-side major versions, on real runs of the workspace: orders releases history 2.0.0
(lifetime_value renamed total_spent) while 1.x stays published as orders/history_v1 until its
retirement date; consumers pinned to `orders/history@1` keep reading 1.x, unpinned ones are
held by the gate, a retired major fails its consumers' load."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT
from corpus.harness import Workspace, run

from mesh_platform.contract_versions import VersionError
from mesh_platform.contracts import ContractError
from mesh_platform.storage import Catalog

HISTORY = (ROOT / "domains/orders/contracts/history.odcs.yaml").read_text()
HISTORY_CODE = (ROOT / "domains/orders/products/history.py").read_text()
LOCATIONS = ["orders", "preferences", "customer", "federation"]


pytestmark = pytest.mark.usefixtures("restore_product_modules")  # loads copied locations


def v1_contract(retires: date, version: str = "1.0.0") -> str:
    """History 1.x as shipped, kept as its own product beside 2.0.0 until `retires`."""
    text = (HISTORY.replace("id: urn:mesh:orders:history\n", "id: urn:mesh:orders:history:v1\n")
            .replace("path: warehouse/orders/history\n", "path: warehouse/orders/history_v1\n")
            .replace("location: s3://mesh-orders-domain/history\n", "location: s3://mesh-orders-domain/history_v1\n")
            .replace("version: 1.0.0\n", f"version: {version}\n"))
    assert text.count("history_v1") == 2 and ":history:v1" in text, "the shipped history contract changed: update this test"
    return text.replace("\nschema:\n", f"\ncustomProperties:\n  - {{property: deprecationDate, value: '{retires}'}}\nschema:\n")


V2_CONTRACT = HISTORY.replace("version: 1.0.0\n", "version: 2.0.0\n").replace(
    "      - name: lifetime_value\n", "      - name: total_spent\n")
V2_CODE = HISTORY_CODE.replace(") AS lifetime_value,", ") AS total_spent,")
V1_CODE = HISTORY_CODE.replace("def history(ctx):", "def history_v1(ctx):")


def pinned(text: str) -> str:
    return text.replace('"orders/history"', '"orders/history@1"')


def release(retires: date, pin: bool = True, pin_to: str = "@1") -> dict:
    """The edits of the release: orders' two majors, and (if `pin`) both consumers pinned."""
    edits = {"orders": {
        "contracts/history.odcs.yaml": V2_CONTRACT,
        "products/history.py": V2_CODE,
        "contracts/history_v1.odcs.yaml": v1_contract(retires),
        "products/history_v1.py": V1_CODE,
    }}
    if pin:
        repin = (lambda t: pinned(t).replace("@1", pin_to))
        edits["federation"] = {"products/customer_360.py": repin}
        edits["customer"] = {"products/insights.py": repin}
    return edits


def rows(home: Path, domain: str, name: str) -> list[tuple]:
    files = list(Catalog(home).current(domain, name).files)
    return duckdb.sql(f"SELECT * FROM read_parquet({files!r}) ORDER BY ALL").fetchall()


def columns(home: Path, domain: str, name: str) -> list[str]:
    files = list(Catalog(home).current(domain, name).files)
    return [c[0] for c in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet({files!r})").fetchall()]


def test_v2_beside_v1_consumers_pinned_to_v1_keep_reading_it(mesh_home, instance, tmp_path, monkeypatch):
    real = Workspace.real()
    for location in LOCATIONS:
        assert run(real.definitions(location), location, instance, {}).success, location
    before = rows(mesh_home, "federation", "customer_360")
    insights_before = rows(mesh_home, "customer", "insights")

    # Released without pinning the consumers first: the gate names them, nothing is published.
    with monkeypatch.context() as m:
        ws = Workspace(tmp_path / "unpinned", release(date.today() + timedelta(days=90), pin=False)).install(m)
        with pytest.raises(VersionError) as info:
            ws.definitions("orders")
    message = str(info.value)
    assert "1.0.0 -> 2.0.0 breaks consumers that have not moved to 2.x" in message
    assert "federation/customer_360 (owner platform-team, location federation) reads lifetime_value" in message
    assert "customer/insights" in message

    # Consumers pinned to @1: the release loads and publishes both majors, each checked.
    soon = date.today() + timedelta(days=10)
    ws = Workspace(tmp_path / "pinned", release(soon)).install(monkeypatch)
    orders = run(ws.definitions("orders"), "orders", instance, {})
    assert orders.success
    checked = {e.asset_key.to_user_string() for e in orders.get_asset_check_evaluations()}
    assert checked == {"orders/history", "orders/history_v1"}
    assert all(e.passed for e in orders.get_asset_check_evaluations())
    assert "total_spent" in columns(mesh_home, "orders", "history")
    assert "lifetime_value" not in columns(mesh_home, "orders", "history")
    assert "lifetime_value" in columns(mesh_home, "orders", "history_v1")
    # Same data, one column renamed: the two majors hold the same rows.
    assert rows(mesh_home, "orders", "history") == rows(mesh_home, "orders", "history_v1")

    # The pinned consumers read 1.x: their products are what they were, with a warning that
    # 1.x retires in 10 days, on the asset and in the run's log.
    federation = ws.definitions("federation")
    node = federation.get_repository_def().asset_graph.get(
        next(k for k in federation.get_repository_def().asset_graph.get_all_asset_keys()
             if k.to_user_string() == "federation/customer_360"))
    notice = node.metadata["input_retirements"].value
    assert notice == [f"'orders/history@1' is retired after {soon} (10 days left; "
                      f"{ws.folders['orders'] / 'contracts/history_v1.odcs.yaml'}: customProperties.deprecationDate): "
                      "move to 'orders/history'"]
    result = run(federation, "federation", instance, {})
    assert result.success
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.level == 30]  # WARNING
    assert notice[0] in logged
    assert rows(mesh_home, "federation", "customer_360") == before
    assert run(ws.definitions("customer"), "customer", instance, {}).success
    assert rows(mesh_home, "customer", "insights") == insights_before


def test_a_retired_major_fails_its_consumers_load(mesh_home, tmp_path, monkeypatch):
    yesterday = date.today() - timedelta(days=1)
    ws = Workspace(tmp_path / "ws", release(yesterday)).install(monkeypatch)
    with pytest.raises(ContractError) as info:
        ws.definitions("federation")
    assert info.value.path == str(ws.folders["federation"] / "products/customer_360.py")
    assert info.value.field == "@product customer_360: inputs"
    assert str(info.value).endswith(
        f"'orders/history@1' was retired after {yesterday} ({ws.folders['orders'] / 'contracts/history_v1.odcs.yaml'}: "
        "customProperties.deprecationDate): read 'orders/history', the latest major version, and adapt to its changes")
    # The producer still loads: retiring is the consumers' deadline.
    assert ws.definitions("orders")


def test_a_major_that_is_not_served_is_a_load_error(mesh_home, tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "ws", release(date.today() + timedelta(days=90), pin_to="@3")).install(monkeypatch)
    with pytest.raises(ContractError, match=r"'orders/history@3': no major version 3 of 'orders/history' is served "
                                            r"\(versions served: 1\.0\.0, 2\.0\.0\)"):
        ws.definitions("federation")


@pytest.mark.parametrize(("text", "field", "message"), [
    (v1_contract(date(2027, 1, 31), version="2.1.0"), "version",
     "'2.1.0' in the file of major version 1 of 'history' (a side-by-side major keeps its major: 1.x.y)"),
    (v1_contract(date(2027, 1, 31)).replace("value: '2027-01-31'", "value: 'soon'"),
     "customProperties.deprecationDate", "'soon' is not a date"),
    (HISTORY.replace("id: urn:mesh:orders:history\n", "id: urn:mesh:orders:history:v1\n"),
     "customProperties.deprecationDate", "missing: an older major version served side by side names the last day"),
])
def test_a_side_by_side_contract_states_its_major_and_retirement(tmp_path, text, field, message):
    from mesh_platform.contracts import load_contract

    path = tmp_path / "history_v1.odcs.yaml"
    path.write_text(text)
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert (info.value.path, info.value.field) == (str(path), field)
    assert message in str(info.value)
