"""BigQuery from the mesh's own definitions, without BigQuery: contract types mapped, the product's
SQL captured from its function and transpiled, the audit's statements translated."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_platform.cloud import bigquery_sql as bqsql
from mesh_platform.contracts import load_contract
from mesh_platform.location import _functions
from mesh_platform.spec import ProductSpec, product

ROOT = Path(__file__).resolve().parents[2]
FEDERATION = ROOT / "mesh_platform" / "federation"
TABLES = {
    "customer/profiles": "mesh-federation.customer_domain.profiles",
    "orders/history": "mesh-federation.orders_domain.history",
    "preferences/settings": "mesh-federation.preferences_domain.settings",
}


def customer_360() -> tuple:
    contract = load_contract(FEDERATION / "contracts" / "customer_360.odcs.yaml")
    return contract, _functions(FEDERATION / "products", "federation")["customer_360"][0]


def test_contract_types_become_bigquery_columns():
    contract, _ = customer_360()
    fields = {c.name: bqsql.bigquery_field(c.name, c.physical_type) for c in contract.columns}
    assert {n: bqsql.signature(f) for n, f in fields.items()} == {
        "customer_id": "STRING",
        "profile": "STRUCT<first_name STRING, last_name STRING, email STRING, country STRING, segment STRING, "
                   "signup_date DATE, updated_at DATETIME>",
        "order_history": "STRUCT<order_count INT64, completed_order_count INT64, lifetime_value NUMERIC, "
                         "first_order_at DATETIME, last_order_at DATETIME, recent_orders ARRAY<STRUCT<order_id STRING, "
                         "ordered_at DATETIME, status STRING, amount NUMERIC>>>",
        "preferences": "STRUCT<channel STRING, language STRING, marketing_opt_in BOOL, interests ARRAY<STRING>, "
                       "updated_at DATETIME>",
    }
    amount = fields["order_history"].fields[-1].fields[-1]
    assert (amount.field_type, amount.precision, amount.scale) == ("NUMERIC", 18, 2)
    assert bqsql.bigquery_field("x", "DECIMAL(38,10)").field_type == "BIGNUMERIC"
    assert bqsql.bigquery_field("x", "TIMESTAMPTZ").field_type == "TIMESTAMP"
    assert bqsql.table_schema([("id", "VARCHAR", True)])[0].mode == "REQUIRED"
    with pytest.raises(bqsql.BigQuerySqlError, match=r"column 'x': INTEGER\[\]\[\]: BigQuery has no list of lists"):
        bqsql.bigquery_field("x", "INTEGER[][]")
    with pytest.raises(bqsql.BigQuerySqlError, match="column 'm': MAP.*has no BigQuery equivalent"):
        bqsql.bigquery_field("m", "MAP(VARCHAR, INTEGER)")


def test_customer_360_is_captured_from_its_function_and_transpiled():
    contract, spec = customer_360()
    captured = bqsql.capture(contract, spec)
    assert captured.inputs == {"profiles": "customer/profiles", "history": "orders/history", "settings": "preferences/settings"}
    assert captured.views == ()
    assert "LEFT JOIN history h USING (customer_id)" in captured.query  # the function's own text
    sql = bqsql.to_bigquery(captured, TABLES)
    assert "FROM `mesh-federation`.customer_domain.profiles AS p" in sql
    assert "LEFT JOIN `mesh-federation`.orders_domain.history AS h\n  USING (customer_id)" in sql
    assert "STRUCT(\n    p.first_name AS first_name," in sql  # DuckDB's {'k': v} struct literal
    assert "COALESCE(h.recent_orders, []) AS recent_orders" in sql
    assert "CAST(COALESCE(h.lifetime_value, 0) AS NUMERIC) AS lifetime_value" in sql


def test_views_become_ctes_and_anything_else_is_refused():
    contract, _ = customer_360()

    @product(inputs=["customer/profiles"])
    def two_steps(ctx):
        ctx.product("customer/profiles").to_view("p")
        ctx.sql("SELECT customer_id FROM p WHERE segment = 'smb'").to_view("smb")
        return ctx.sql("SELECT count(*) AS n FROM smb JOIN upstream_customer_profiles USING (customer_id)")

    sql = bqsql.to_bigquery(bqsql.capture(contract, two_steps.mesh_product), TABLES)
    assert sql.startswith("WITH smb AS (\n  SELECT\n    customer_id\n  FROM `mesh-federation`.customer_domain.profiles AS p")
    assert "JOIN `mesh-federation`.customer_domain.profiles AS upstream_customer_profiles" in sql

    def spec(fn, inputs=("customer/profiles",)) -> ProductSpec:
        return ProductSpec(fn=fn, sources=(), inputs=tuple(inputs))

    with pytest.raises(bqsql.CaptureError, match=r"Relation.filter has no BigQuery form"):
        bqsql.capture(contract, spec(lambda ctx: ctx.product("customer/profiles").filter("true")))
    with pytest.raises(bqsql.CaptureError, match="reads landing source 'crm_export'"):
        bqsql.capture(contract, spec(lambda ctx: ctx.source("crm_export")))
    with pytest.raises(bqsql.CaptureError, match="'orders/history' is not declared"):
        bqsql.capture(contract, spec(lambda ctx: ctx.product("orders/history")))
    with pytest.raises(bqsql.CaptureError, match="must return ctx.sql"):
        bqsql.capture(contract, spec(lambda ctx: ctx.product("customer/profiles")))
    with pytest.raises(bqsql.BigQuerySqlError, match=r"reads \['elsewhere'\], which are neither inputs nor views"):
        bqsql.to_bigquery(bqsql.capture(contract, spec(lambda ctx: ctx.sql("SELECT * FROM elsewhere"))), TABLES)
    with pytest.raises(bqsql.BigQuerySqlError, match="no BigQuery translation"):
        bqsql.to_bigquery(bqsql.capture(contract, spec(lambda ctx: ctx.sql("SELECT list_sort([3, 1]) AS l"))), TABLES)


def test_the_audit_statements_run_against_the_candidate_with_inputs_as_tables():
    ran = []

    def run(sql):
        ran.append(sql)
        return ["n"], [(0,)]

    con = bqsql.AuditConnection(run, "SELECT 'C1' AS customer_id", {"customer/profiles": TABLES["customer/profiles"]})
    # A contract rule, as quality.audit sends it (DuckDB SQL, the upstream view by its name).
    rows = con.execute(
        "SELECT count(*) - (SELECT count(*) FROM upstream_customer_profiles) FROM mesh_output"
    ).fetchmany(2)
    assert rows == [(0,)] and con.description == [("n",)]
    assert ran[-1] == (
        "WITH mesh_output AS (\n  SELECT\n    'C1' AS customer_id\n)\nSELECT\n  COUNT(*) - (\n    SELECT\n      COUNT(*)\n"
        "    FROM `mesh-federation`.customer_domain.profiles AS upstream_customer_profiles\n  )\nFROM mesh_output"
    )
    # Expectations compiled to SQL, their parameters inlined.
    con.execute('SELECT count(*) FILTER (WHERE "c" IS NOT NULL AND NOT (list_contains($v_set, "c"))) FROM mesh_output',
                {"v_set": ["a", "b"]})
    assert "COUNTIF( NOT `c` IS NULL AND NOT ( EXISTS( SELECT 1 FROM UNNEST(['a', 'b'])" in " ".join(ran[-1].split())
    assert [s.type.name for s in con.extract_statements("SELECT 1")] == ["SELECT"]
    with pytest.raises(bqsql.BigQuerySqlError, match="Great Expectations rule without a SQL form"):
        con.table("mesh_output")
    con.close()


def test_a_failed_statement_is_a_duckdb_error_for_the_audit():
    import duckdb

    def run(sql):
        raise bqsql.QueryFailed("Unrecognized name: nope")

    con = bqsql.AuditConnection(run, "SELECT 1 AS x", {})
    with pytest.raises(duckdb.Error, match="BigQuery: Unrecognized name: nope"):
        con.execute("SELECT nope FROM mesh_output")
