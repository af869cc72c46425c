"""The landing-data generator, checked on real files read back with DuckDB against the
source contracts."""

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
import yaml

from mesh_platform import seed
from mesh_platform.seed import generate_landing

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = {
    "crm_export": "domains/customer/sources/crm_export.odcs.yaml",
    "orders": "domains/orders/sources/orders.odcs.yaml",
    "order_lines": "domains/orders/sources/order_lines.odcs.yaml",
    "preference_events": "domains/preferences/sources/preference_events.odcs.yaml",
}
N = 2_000
CHUNK = 800  # several chunks, so ids must stay unique across part files


def contract(name: str) -> tuple[str, str, dict[str, str]]:
    """(format, landing path glob, {column: physicalType}) from the source contract."""
    doc = yaml.safe_load((REPO / CONTRACTS[name]).read_text())
    server = next(s for s in doc["servers"] if s["server"] == "landing")
    columns = {p["name"]: p["physicalType"] for p in doc["schema"][0]["properties"]}
    return server["format"], server["path"], columns


def read_sql(root: Path, name: str, typed: bool = True) -> str:
    """A DuckDB table function reading the dataset; typed=True passes the contract's types."""
    fmt, path, columns = contract(name)
    path = f"'{root / path}'"
    if fmt == "parquet":
        return f"read_parquet({path})"
    hint = f", columns={columns!r}" if typed else ""
    if fmt == "csv":
        return f"read_csv({path}, header=true{hint})"
    return f"read_json({path}, format='newline_delimited'{hint})"


def generate(root: Path, customers: int, chunk: int = CHUNK, **kwargs) -> dict[str, int]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(seed, "CHUNK", chunk)
        return generate_landing(root, customers, **kwargs)


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("landing")
    return root, generate(root, N)


@pytest.fixture(scope="module")
def db(landing):
    root, _ = landing
    con = duckdb.connect()
    for name in CONTRACTS:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {read_sql(root, name)}")
    yield con
    con.close()


def scalar(db, sql: str):
    return db.execute(sql).fetchone()[0]


def test_same_seed_same_bytes_other_seed_other_data(landing, tmp_path):
    root, _ = landing
    generate(tmp_path / "again", N)
    generate(tmp_path / "other", N, seed=8)
    assert digest(tmp_path / "again") == digest(root)
    assert digest(tmp_path / "other") != digest(root)


def test_files_are_where_the_contracts_say(landing):
    root, _ = landing
    assert (root / "customer/crm_export.csv").is_file()
    assert sorted(p.name for p in (root / "orders/orders").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert len(list((root / "orders/order_lines").glob("part-*.parquet"))) == 3
    assert len(list((root / "preferences/events").glob("part-*.jsonl"))) == 3


@pytest.mark.parametrize("name", CONTRACTS)
def test_columns_and_types_match_contract(db, landing, name):
    _, _, expected = contract(name)
    described = db.execute(f"DESCRIBE {name}").fetchall()
    assert {row[0]: row[1] for row in described} == expected
    assert [row[0] for row in described] == list(expected)
    # Readers that let DuckDB sniff (no type hints) get the contract types too.
    root, _ = landing
    sniffed = db.execute(f"DESCRIBE SELECT * FROM {read_sql(root, name, typed=False)}").fetchall()
    assert {row[0]: row[1] for row in sniffed} == expected


def test_csv_header_and_json_keys_match_contract(landing):
    root, _ = landing
    header = (root / "customer/crm_export.csv").read_text().splitlines()[0]
    assert header.replace('"', "").split(",") == list(contract("crm_export")[2])
    keys = list(contract("preference_events")[2])
    for path in (root / "preferences/events").glob("*.jsonl"):
        assert all(list(json.loads(line)) == keys for line in path.read_text().splitlines())


def test_returned_counts_equal_rows_in_files(db, landing):
    _, counts = landing
    assert counts == {name: scalar(db, f"SELECT count(*) FROM {name}") for name in CONTRACTS}


def test_crm_is_dirty_like_a_real_export(db, landing):
    dups = db.execute("""
        SELECT count(*), count(DISTINCT updated_at),
               count(DISTINCT segment) > 1 OR count(DISTINCT lower(trim(email))) > 1
        FROM crm_export GROUP BY customer_id HAVING count(*) > 1""").fetchall()
    assert 0.01 * N < len(dups) < 0.06 * N
    assert all(rows == distinct_updates and changed for rows, distinct_updates, changed in dups)
    assert scalar(db, "SELECT count(DISTINCT customer_id) FROM crm_export") == N
    assert scalar(db, "SELECT bool_and(regexp_full_match(customer_id, 'C[0-9]{8}')) FROM crm_export")

    messy = scalar(db, """SELECT avg((email <> lower(email) OR email <> trim(email))::int)
                          FROM crm_export""")
    assert 0.05 < messy < 0.2
    assert scalar(db, "SELECT count(*) FROM crm_export WHERE email <> trim(email)") > 0
    assert scalar(db, "SELECT count(*) FROM crm_export WHERE email <> lower(email)") > 0
    empty = scalar(db, "SELECT avg((coalesce(country, '') = '')::int) FROM crm_export")
    assert 0.02 < empty < 0.1
    assert scalar(db, "SELECT bool_and(regexp_full_match(country, '[A-Z]{2}')) FROM crm_export")
    assert {r[0] for r in db.execute("SELECT DISTINCT segment FROM crm_export").fetchall()} == {
        "consumer", "smb", "enterprise"}
    assert scalar(db, """SELECT bool_and(signup_date BETWEEN DATE '2018-01-01' AND DATE '2025-12-31'
                                         AND updated_at >= signup_date) FROM crm_export""")
    # Shuffled within a chunk: the file is not in customer_id order.
    root, _ = landing
    rows = (root / "customer/crm_export.csv").read_text().splitlines()[1:]
    ids = [row.split(",")[0] for row in rows]
    assert ids != sorted(ids)


def test_orders_are_realistic(db):
    per_customer = scalar(db, """SELECT count(*) / (SELECT count(DISTINCT customer_id) FROM crm_export)
                                 FROM orders""")
    assert 8 <= per_customer <= 12
    assert scalar(db, """SELECT count(*) FROM crm_export c
                         WHERE NOT EXISTS (SELECT 1 FROM orders o
                                           WHERE o.customer_id = c.customer_id)""") > 0
    assert {r[0] for r in db.execute("SELECT DISTINCT status FROM orders").fetchall()} == {
        "completed", "shipped", "pending", "cancelled", "refunded"}
    assert scalar(db, "SELECT count(*) = count(DISTINCT order_id) FROM orders")
    assert scalar(db, "SELECT bool_and(regexp_full_match(order_id, 'O[0-9]{10}')) FROM orders")
    orphans = scalar(db, """SELECT avg((customer_id NOT IN (SELECT customer_id FROM crm_export))::int)
                            FROM orders""")
    assert 0 < orphans < 0.01
    assert scalar(db, """SELECT bool_and(o.order_ts >= c.signup_date
                                         AND o.order_ts <= TIMESTAMP '2026-06-30 23:59:59')
                         FROM orders o JOIN (SELECT DISTINCT customer_id, signup_date FROM crm_export) c
                         USING (customer_id)""")


def test_order_lines_are_realistic(db):
    assert scalar(db, """SELECT count(*) FROM order_lines
                         WHERE order_id NOT IN (SELECT order_id FROM orders)""") == 0
    # Every order has lines 1..k with k in 1..4, about 2 on average.
    per_order = db.execute("""
        SELECT bool_and(n BETWEEN 1 AND 4 AND max_no = n AND distinct_no = n), avg(n)
        FROM (SELECT count(*) n, max(line_no) max_no, count(DISTINCT line_no) distinct_no
              FROM order_lines GROUP BY order_id)""").fetchone()
    assert per_order[0] and 1.8 < per_order[1] < 2.2
    assert scalar(db, "SELECT count(DISTINCT order_id) FROM order_lines") == scalar(
        db, "SELECT count(*) FROM orders")
    assert scalar(db, """SELECT bool_and(regexp_full_match(sku, 'SKU-[0-9]{5}')
                                         AND quantity BETWEEN 1 AND 5
                                         AND unit_price BETWEEN 1.00 AND 500.00) FROM order_lines""")
    # Exact cents: the decimal text has exactly two digits after the point.
    assert scalar(db, """SELECT bool_and(regexp_full_match(unit_price::VARCHAR, '[0-9]+\\.[0-9]{2}'))
                         FROM order_lines""")


def test_preference_events_are_realistic(db, landing):
    assert {r[0] for r in db.execute("SELECT DISTINCT field FROM preference_events").fetchall()} == {
        "channel", "language", "marketing_opt_in", "interests"}
    types = dict(db.execute("""SELECT field, string_agg(DISTINCT json_type(value), ',')
                               FROM preference_events GROUP BY field""").fetchall())
    assert types == {"channel": "VARCHAR", "language": "VARCHAR",
                     "marketing_opt_in": "BOOLEAN", "interests": "ARRAY"}
    assert scalar(db, """SELECT bool_and(value->>'$' IN ('email', 'sms', 'push', 'none'))
                         FROM preference_events WHERE field = 'channel'""")
    assert scalar(db, """SELECT bool_and(value->>'$' IN ('en', 'de', 'fr', 'es', 'nl', 'it'))
                         FROM preference_events WHERE field = 'language'""")
    interests = [json.loads(r[0]) for r in db.execute(
        "SELECT value FROM preference_events WHERE field = 'interests'").fetchall()]
    assert all(1 <= len(i) <= 4 and len(set(i)) == len(i) and set(i) <= set(seed.INTERESTS)
               for i in interests)
    assert scalar(db, "SELECT count(*) = count(DISTINCT event_id) FROM preference_events")
    assert scalar(db, """SELECT bool_and(regexp_full_match(event_id, 'E[0-9]{12}'))
                         FROM preference_events""")
    with_events = scalar(db, "SELECT count(DISTINCT customer_id) FROM preference_events") / N
    assert 0.85 < with_events < 0.95
    assert scalar(db, """SELECT bool_and(e.event_ts >= c.signup_date) FROM preference_events e
                         JOIN (SELECT DISTINCT customer_id, signup_date FROM crm_export) c
                         USING (customer_id)""")
    # Events arrive out of order within a file.
    root, _ = landing
    for path in (root / "preferences/events").glob("*.jsonl"):
        ts = [json.loads(line)["event_ts"] for line in path.read_text().splitlines()]
        assert ts != sorted(ts)


def test_reseed_replaces_earlier_parts_and_reports_progress(tmp_path):
    generate(tmp_path, 2_000, chunk=500)
    calls = []
    counts = generate(tmp_path, 700, chunk=500, progress=lambda *call: calls.append(call))
    assert sorted(p.name for p in (tmp_path / "orders/order_lines").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet"]
    con = duckdb.connect()
    rows = {name: con.execute(f"SELECT count(*) FROM {read_sql(tmp_path, name)}").fetchone()[0]
            for name in CONTRACTS}
    assert counts == rows
    assert calls == [(name, done, 700) for done in (500, 700) for name in CONTRACTS]
