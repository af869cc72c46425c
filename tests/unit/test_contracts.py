"""Contract files -> what the platform builds from them."""

from datetime import timedelta
from pathlib import Path

import pytest

from mesh_platform.contracts import ContractError, load_contract
from mesh_platform.quality import schema_problems

ROOT = Path(__file__).resolve().parents[2]


def test_profiles_contract_is_read_as_written():
    c = load_contract(ROOT / "domains/customer/contracts/profiles.odcs.yaml")
    assert (c.domain, c.name, c.version, c.owner) == ("customer", "profiles", "1.0.0", "team:customer-team")
    assert c.primary_key == ("customer_id",)
    assert [col.name for col in c.columns if col.classification] == ["first_name", "last_name", "email"]
    assert c.freshness == timedelta(hours=26)
    assert c.readers == ("federation",)
    rules = {r.name: r for r in c.rules}
    assert set(rules) == {"has_customers", "email_is_normalized", "country_is_iso_code", "segment_is_known"}
    assert rules["segment_is_known"].expectation == "expect_column_values_to_be_in_set"
    assert dict(rules["segment_is_known"].kwargs) == {
        "column": "segment", "value_set": ["consumer", "smb", "enterprise"]
    }
    assert dict(rules["has_customers"].kwargs) == {"min_value": 1, "max_value": None}
    assert all(r.blocking for r in c.rules)


def test_output_types_are_compared_in_duckdb_spelling(tmp_path):
    c = load_contract(_write(tmp_path, BASE.replace("physicalType: BIGINT", "physicalType: 'struct(n int8, v numeric(9,2))[]'")))
    assert c.column("a").physical_type == "struct(n int8, v numeric(9,2))[]"  # as written
    assert schema_problems(c, {"a": "STRUCT(n BIGINT, v DECIMAL(9,2))[]"}) == []
    assert schema_problems(c, {"a": "STRUCT(n BIGINT, v DECIMAL(9,3))[]"}) == [
        "wrong types {'a': 'STRUCT(n BIGINT, v DECIMAL(9,3))[] (contract: STRUCT(n BIGINT, v DECIMAL(9,2))[])'}"
    ]


def test_history_sql_rules_are_read():
    c = load_contract(ROOT / "domains/orders/contracts/history.odcs.yaml")
    sql_rules = [r for r in c.rules if r.engine == "sql"]
    assert {r.name: r.bounds for r in sql_rules} == {
        "lifetime_value_not_negative": (("mustBe", 0),),
        "first_before_last": (("mustBe", 0),),
    }


def _write(tmp_path, text) -> Path:
    path = tmp_path / "x.odcs.yaml"
    path.write_text(text)
    return path


BASE = """
apiVersion: v3.1.0
kind: DataContract
id: x
version: 2.1.0
domain: d
team: {name: t}
schema:
  - name: x
    properties:
      - {name: a, logicalType: integer, physicalType: BIGINT}
"""


@pytest.mark.parametrize(
    ("column", "field", "message"),
    [
        ("{name: b, logicalType: number, physicalType: FLOATY}", "schema[0].properties[1].physicalType", "unknown column type 'FLOATY'"),
        ("{name: b, logicalType: money, physicalType: DOUBLE}", "schema[0].properties[1].logicalType", "not valid ODCS"),
        ("{name: b, logicalType: string, physicalType: VARCHAR, quality: [{metric: nullValues, mustBe: 3}]}", "schema[0].properties[1].quality[0]", "nullValues supports mustBe: 0"),
        ("{name: b, logicalType: string, physicalType: VARCHAR, quality: [{type: custom, engine: soda, name: s, implementation: checks}]}", "schema[0].properties[1].quality[0].engine", "unsupported engine 'soda'"),
        ("{name: b, logicalType: string, physicalType: VARCHAR, quality: [{type: sql, name: s, query: SELECT 1}]}", "schema[0].properties[1].quality[0]", "not valid ODCS"),
    ],
)
def test_invalid_columns_and_rules_name_the_field(tmp_path, column, field, message):
    with pytest.raises(ContractError) as err:
        load_contract(_write(tmp_path, BASE + f"      - {column}\n"))
    assert err.value.field == field
    assert str(tmp_path / "x.odcs.yaml") in str(err.value)
    assert message in str(err.value)


def test_latency_sla_units(tmp_path):
    text = BASE + "slaProperties: [{property: latency, value: 90, unit: min}]\n"
    assert load_contract(_write(tmp_path, text)).freshness == timedelta(minutes=90)
    bad = BASE + "slaProperties: [{property: latency, value: 3, unit: fortnights}]\n"
    with pytest.raises(ContractError, match=r"slaProperties\[0\]"):
        load_contract(_write(tmp_path, bad))


def test_warning_severity_makes_a_rule_non_blocking(tmp_path):
    text = BASE.replace(
        "physicalType: BIGINT}",
        "physicalType: BIGINT, quality: [{metric: nullValues, mustBeLessOrEqualTo: 5, unit: percent, severity: warning}]}",
    )
    (rule,) = load_contract(_write(tmp_path, text)).rules
    assert not rule.blocking
    assert dict(rule.kwargs) == {"column": "a", "mostly": 0.95}


def test_an_edited_contract_is_read_again_and_a_broken_edit_is_refused_every_time(tmp_path):
    path = _write(tmp_path, BASE)
    assert load_contract(path).version == "2.1.0"
    path.write_text(BASE.replace("version: 2.1.0", "version: 2.2.0"))
    assert load_contract(path).version == "2.2.0"  # the same file, parsed again: its text changed
    path.write_text(BASE.replace("version: 2.1.0", "version: [2"))
    for _ in range(2):  # a refusal is not remembered as a contract
        with pytest.raises(ContractError, match="x.odcs.yaml"):
            load_contract(path)
    path.write_text(BASE)
    assert load_contract(path).version == "2.1.0"
