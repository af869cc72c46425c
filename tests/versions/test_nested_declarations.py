"""Nested columns declared the ODCS way (`items`, `properties`) agree with their physicalType in
the shipped contracts; a disagreeing declaration is a load error naming the file and the field.
And the type trees they are compared with (mesh_platform/typetree.py) against DuckDB itself."""

from __future__ import annotations

import shutil
import sys

import duckdb
import pytest
import yaml
from conftest import ROOT

from mesh_platform import typetree
from mesh_platform.contracts import ContractError, load_contract
from mesh_platform.location import location_definitions

HISTORY = ROOT / "domains/orders/contracts/history.odcs.yaml"
SETTINGS = ROOT / "domains/preferences/contracts/settings.odcs.yaml"
C360 = ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml"

# (contract, column) -> what its nested declaration lists
DECLARED = {
    (HISTORY, "recent_orders"): ("items", ["order_id", "ordered_at", "status", "amount"]),
    (SETTINGS, "interests"): ("items", None),
    (C360, "profile"): ("properties", ["first_name", "last_name", "email", "country", "segment", "signup_date", "updated_at"]),
    (C360, "order_history"): ("properties", ["order_count", "completed_order_count", "lifetime_value", "first_order_at",
                                             "last_order_at", "recent_orders"]),
    (C360, "preferences"): ("properties", ["channel", "language", "marketing_opt_in", "interests", "updated_at"]),
}


def _declaration(path, column):
    doc = yaml.safe_load(path.read_text())
    return next(p for p in doc["schema"][0]["properties"] if p["name"] == column)


@pytest.mark.parametrize("path, column", list(DECLARED), ids=[f"{p.stem}.{c}" for p, c in DECLARED])
def test_shipped_nested_declarations_agree_with_the_physical_type(path, column):
    load_contract(path)  # the load-time check passes
    prop = _declaration(path, column)
    kind, names = DECLARED[(path, column)]
    tree = typetree.parse(prop["physicalType"])
    if kind == "items":
        assert tree.nested is not None and "items" in prop
        declared = prop["items"]
        tree = tree.nested
    else:
        declared = prop
    if names is not None:
        assert [p["name"] for p in declared["properties"]] == names == [n for n, _ in tree.fields]
        for p in declared["properties"]:
            if "physicalType" in p:
                assert typetree.parse(p["physicalType"]) == tree.field(p["name"])
    # customer_360's order_history declares recent_orders' items too, and their fields.
    if column == "order_history":
        recent = declared["properties"][-1]
        assert [p["name"] for p in recent["items"]["properties"]] == ["order_id", "ordered_at", "status", "amount"]


AMOUNT = "            - name: amount\n              logicalType: number\n              physicalType: DECIMAL(18,2)\n"
# id -> (contract, old text, new text, field named, words in the message)
DISAGREE = {
    "field-renamed-in-declaration-only": (
        HISTORY, AMOUNT, AMOUNT.replace("name: amount", "name: total"),
        "schema[0].properties[6].items.properties", ["'total'", "['order_id', 'ordered_at', 'status', 'amount']"],
    ),
    "nested-physical-type": (
        HISTORY, AMOUNT, AMOUNT.replace("DECIMAL(18,2)", "DECIMAL(10,2)"),
        "schema[0].properties[6].items.properties[3].physicalType", ["DECIMAL(10,2)", "recent_orders[].amount", "DECIMAL(18,2)"],
    ),
    "nested-logical-type": (
        HISTORY, AMOUNT, AMOUNT.replace("logicalType: number", "logicalType: string"),
        "schema[0].properties[6].items.properties[3].logicalType", ["'string'", "recent_orders[].amount"],
    ),
    "field-missing-from-declaration": (
        C360, '          - {name: segment, logicalType: string, physicalType: VARCHAR, description: "Lower-cased: consumer, smb or enterprise."}\n', "",
        "schema[0].properties[1].properties", ["missing ['segment']"],
    ),
    "items-of-a-list-of-strings": (
        SETTINGS, "        items: {logicalType: string, physicalType: VARCHAR}\n", "        items: {logicalType: string, physicalType: INTEGER}\n",
        "schema[0].properties[4].items.physicalType", ["INTEGER", "VARCHAR"],
    ),
    "type-changed-declaration-not": (
        C360, "preferences\n        logicalType: object\n        physicalType: \"STRUCT(channel VARCHAR,",
        "preferences\n        logicalType: object\n        physicalType: \"STRUCT(channel INTEGER,",
        "schema[0].properties[3].properties[0].physicalType", ["'VARCHAR' for 'preferences.channel'", "INTEGER"],
    ),
}


@pytest.mark.parametrize("case", list(DISAGREE))
def test_a_disagreeing_declaration_is_a_load_error(tmp_path, case):
    path, old, new, field, words = DISAGREE[case]
    text = path.read_text()
    assert text.count(old) == 1, old
    broken = tmp_path / path.name
    broken.write_text(text.replace(old, new))
    with pytest.raises(ContractError) as info:
        load_contract(broken)
    assert (info.value.path, info.value.field) == (str(broken), field)
    for word in words:
        assert word in str(info.value)


def test_the_location_does_not_load(tmp_path):
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mesh_products.")}
    folder = tmp_path / "orders"
    shutil.copytree(ROOT / "domains/orders", folder, ignore=shutil.ignore_patterns("__pycache__"))
    contract = folder / "contracts/history.odcs.yaml"
    contract.write_text(contract.read_text().replace(AMOUNT, AMOUNT.replace("DECIMAL(18,2)", "DOUBLE")))
    try:
        with pytest.raises(ContractError) as info:
            location_definitions(folder)
    finally:
        for k in [k for k in sys.modules if k.startswith("mesh_products.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert str(info.value).startswith(f"{contract}: schema[0].properties[6].items.properties[3].physicalType: 'DOUBLE'")


TYPES = [
    "INTEGER", "int", "BIGINT[]", "DECIMAL(18,2)", "numeric(9)", "DECIMAL", "VARCHAR", "VARCHAR(10)", "STRUCT(a INT, b VARCHAR[])[]",
    "MAP(VARCHAR, STRUCT(x DOUBLE))", "INTEGER[3]", 'STRUCT("select" INTEGER, "a b" DATE)', "TIMESTAMP WITH TIME ZONE",
    "UNION(a INT, b VARCHAR)", "ENUM('a', 'b')", "TIMESTAMP_NS", "UUID", "JSON",
]


@pytest.mark.parametrize("text", TYPES)
def test_a_type_tree_prints_the_type_duckdb_reads(text):
    tree = typetree.parse(text)
    assert duckdb.sqltype(str(tree)) == duckdb.sqltype(text)


@pytest.mark.parametrize("old, new, widens", [
    ("INTEGER", "BIGINT", True), ("BIGINT", "INTEGER", False), ("UINTEGER", "BIGINT", True), ("UBIGINT", "BIGINT", False),
    ("INTEGER", "DECIMAL(10,0)", True), ("BIGINT", "DECIMAL(18,0)", False), ("INTEGER", "DOUBLE", True),
    ("BIGINT", "DOUBLE", False), ("FLOAT", "DOUBLE", True), ("DECIMAL(10,2)", "DECIMAL(18,2)", True),
    ("DECIMAL(10,2)", "DECIMAL(10,3)", False), ("DECIMAL(10,2)", "DECIMAL(11,3)", True), ("VARCHAR(2)", "VARCHAR", True),
    ("VARCHAR", "VARCHAR(2)", False), ("VARCHAR(2)", "VARCHAR(3)", True), ("DATE", "TIMESTAMP", False),
    ("STRUCT(a INT)", "STRUCT(a BIGINT, b VARCHAR)", True), ("STRUCT(a INT, b VARCHAR)", "STRUCT(a INT)", False),
    ("INT[]", "BIGINT[]", True), ("INT[3]", "INT[]", False), ("MAP(VARCHAR, INT)", "MAP(VARCHAR, BIGINT)", True),
])
def test_widening(old, new, widens):
    assert typetree.widens(typetree.parse(old), typetree.parse(new)) is widens
