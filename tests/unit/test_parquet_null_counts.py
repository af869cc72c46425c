"""Null counts read from a Parquet file's statistics stand in for a scan in the schema check,
so every count they claim must equal the scan's, and columns they cannot prove are left out."""

from __future__ import annotations

import duckdb
import pytest

from mesh_platform.contracts import load_contract
from mesh_platform.quality import OUTPUT, audit, parquet_null_counts

ROWS = 250_000


def test_counts_claimed_from_statistics_equal_a_scan(tmp_path):
    path = tmp_path / "out.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (
            SELECT i::VARCHAR AS id,
                   CASE WHEN i % 7 = 0 THEN NULL ELSE i END AS flat,
                   CASE WHEN i % 3 = 0 THEN NULL ELSE {{'a': i, 'b': 'x'}} END AS sometimes_null,
                   {{'a': CASE WHEN i % 2 = 0 THEN NULL ELSE i END, 'b': 'x'}} AS never_null,
                   {{'a': CASE WHEN i % 2 = 0 THEN NULL ELSE i END}} AS unprovable,
                   CASE WHEN i % 5 = 0 THEN NULL ELSE [i] END AS list
            FROM range({ROWS}) t(i)
        ) TO '{path}' (ROW_GROUP_SIZE 100000)"""
    )

    known = parquet_null_counts(con, str(path))

    # A null struct makes its fields null, so `sometimes_null` has nulls in every field and
    # `unprovable` in its only one: neither can be proven null-free; lists are not read at all.
    assert known == {"id": 0, "flat": sum(1 for i in range(ROWS) if i % 7 == 0), "never_null": 0}
    for column, nulls in known.items():
        scanned = con.execute(
            f'SELECT count(*) FILTER (WHERE "{column}" IS NULL) FROM read_parquet(?)', [str(path)]
        ).fetchone()[0]
        assert nulls == scanned, column


def test_an_empty_file_proves_nothing(tmp_path):
    path = tmp_path / "empty.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1 AS a WHERE false) TO '{path}'")
    assert parquet_null_counts(con, str(path)) == {}


CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
id: x
version: 1.0.0
domain: d
team: {name: t}
schema:
  - name: x
    properties:
      - {name: a, logicalType: integer, physicalType: BIGINT, required: true}
"""


@pytest.mark.parametrize(("rows", "nulls"), [(0, 0), (10, 0), (10, 3)])
def test_schema_check_takes_the_proven_counts(tmp_path, rows, nulls):
    # No key to check: where the counts are proven the schema check runs no query; an empty
    # file proves nothing, and the scan answers.
    contract_path = tmp_path / "x.odcs.yaml"
    contract_path.write_text(CONTRACT)
    contract = load_contract(contract_path)
    path = tmp_path / "out.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT CASE WHEN i < {nulls} THEN NULL ELSE i END AS a FROM range({rows}) t(i)) TO '{path}'")
    con.execute(f"CREATE VIEW {OUTPUT} AS SELECT * FROM read_parquet('{path}')")

    known = parquet_null_counts(con, str(path))
    [schema] = audit(con, contract, {"a": "BIGINT"}, known)

    assert schema.metadata["violations"] == {"a is required": nulls}
    assert schema.passed is (nulls == 0)
