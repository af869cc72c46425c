"""The benchmark's systems compute the same products: the mesh, the hand-written DuckDB limit
(also held to a memory bound), the usual pandas way and dbt, on the same small seeded landing
data (the benchmark runs the same comparison at 100k and 1M customers). Also: the comparison
does catch a difference, and the limit's SQL checks and dbt's tests do stop them on bad data.

dbt runs from its own environment (bench/dbt/.venv); the module builds it with
`make bench-dbt-env` when it is missing (about 10 s with uv), so nothing is skipped."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from bench import dbt_peer
from bench.compare import Mismatch, compare
from bench.measure import clean_env
from bench.systems import DBT, LIMIT, LIMIT_2GIB, PRODUCTS, ROOT, SYSTEMS, USUAL
from mesh_platform.contracts import load_contract
from mesh_platform.seed import generate_landing

CUSTOMERS = 1500


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=clean_env(**env), cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def dbt_env():
    """The dbt peer's environment, built as `make bench` builds it."""
    done = subprocess.run(["make", "bench-dbt-env"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"make bench-dbt-env:\n{done.stdout}\n{done.stderr}"
    assert dbt_peer.DBT.exists()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, dbt_env):
    """Each system's work folder after a full refresh of the same landing data."""
    root = tmp_path_factory.mktemp("crosscheck")
    landing = root / "landing"
    generate_landing(landing, CUSTOMERS, seed=11)
    works = {}
    for system, extra in [(SYSTEMS["mesh_in_process"], []), (LIMIT, []), (LIMIT_2GIB, []), (USUAL, ["--in-process"]),
                          (DBT, [])]:
        work = root / system.name
        work.mkdir()
        done = _run(system.command(landing, work) + extra, system.env(landing, work))
        assert done.returncode == 0, f"{system.name}:\n{done.stdout}\n{done.stderr}"
        works[system.name] = work
    return landing, works


def _tables(con: duckdb.DuckDBPyConnection, works: dict[str, Path], product: str) -> dict[str, str]:
    for name, work in works.items():
        if SYSTEMS[name].database and name not in {r[0] for r in con.execute("SHOW DATABASES").fetchall()}:
            con.execute(f"ATTACH '{SYSTEMS[name].database(work)}' AS {name} (READ_ONLY)")
    return {name: SYSTEMS[name].output(work, product) for name, work in works.items()}


def test_every_system_computes_the_same_products(outputs):
    landing, works = outputs
    with (landing / "customer" / "crm_export.csv").open() as f:
        customers = {row["customer_id"] for row in csv.DictReader(f)}
    ordering = set(ds.dataset(landing / "orders" / "orders").to_table(columns=["customer_id"])["customer_id"].to_pylist())
    with_preferences = set(
        duckdb.sql(f"SELECT DISTINCT customer_id FROM read_json('{landing}/preferences/events/*.jsonl')").fetchnumpy()["customer_id"]
    )
    expected_rows = {
        "profiles": len(customers),
        "history": len(ordering),
        "settings": len(with_preferences),
        "customer_360": len(customers),
    }
    con = duckdb.connect()
    for product, (_, contract_path) in PRODUCTS.items():
        tables = _tables(con, works, product)
        assert set(tables) == {"mesh_in_process", "limit", "limit_2gib", "usual", "dbt"}
        rows = compare(con, load_contract(contract_path), tables)
        assert rows == expected_rows[product], product


def test_the_comparison_catches_a_changed_row(outputs, tmp_path):
    _, works = outputs
    altered = tmp_path / "customer_360.parquet"
    duckdb.sql(
        f"COPY (SELECT * REPLACE (CASE WHEN customer_id = (SELECT min(customer_id) FROM '{works['limit']}/customer_360.parquet') "
        f"THEN struct_update(profile, email := 'changed@example.com') ELSE profile END AS profile) "
        f"FROM '{works['limit']}/customer_360.parquet') TO '{altered}'"
    )
    con = duckdb.connect()
    tables = _tables(con, works, "customer_360") | {"limit": f"read_parquet('{altered}')"}
    with pytest.raises(Mismatch, match=r"federation/customer_360: mesh_in_process .* and limit .* differ") as err:
        compare(con, load_contract(PRODUCTS["customer_360"][1]), tables)
    assert "changed@example.com" in str(err.value)


def test_the_limit_stops_on_a_failed_check(outputs, tmp_path):
    landing, _ = outputs
    bad = tmp_path / "landing"
    shutil.copytree(landing, bad)
    crm = bad / "customer" / "crm_export.csv"
    with crm.open(newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index("segment")] = "galactic"
    with crm.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    done = _run([sys.executable, "-m", "bench.limit", "--landing", str(bad), "--out", str(tmp_path / "out")], {})
    assert done.returncode == 1
    assert "step profiles failed" in done.stderr and '"segment_is_known":1' in done.stderr
    assert not (tmp_path / "out" / "profiles.parquet").exists()


def test_the_bounded_limit_is_held_to_its_memory(outputs, tmp_path):
    # The bound is DuckDB's own: within 1 MB the first step cannot hold its rows, and says so.
    landing, _ = outputs
    done = _run([sys.executable, "-m", "bench.limit", "--landing", str(landing), "--out", str(tmp_path / "out"),
                 "--memory-limit", "1MB"], {})
    assert done.returncode == 1
    assert "step profiles failed: Out of Memory Error" in done.stderr
    assert not (tmp_path / "out" / "profiles.parquet").exists()


def test_dbt_builds_every_model_and_runs_every_contract_test(outputs):
    _, works = outputs
    results = dbt_peer.results(dbt_peer.target(works["dbt"]))["results"]
    kinds = [r["unique_id"].split(".")[0] for r in results]
    assert all(r["status"] in ("success", "pass") for r in results), [r for r in results if r["status"] not in ("success", "pass")]
    assert kinds.count("model") == 4 and kinds.count("test") == 34
    assert set(dbt_peer.steps(works["dbt"])) == {*PRODUCTS, "data tests (sum)"}


def test_dbt_stops_on_a_failed_test(outputs, tmp_path):
    """A failed data test fails `dbt build` and skips everything downstream of its model."""
    landing, _ = outputs
    bad = tmp_path / "landing"
    shutil.copytree(landing, bad)
    crm = bad / "customer" / "crm_export.csv"
    with crm.open(newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index("segment")] = "galactic"
    with crm.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    work = tmp_path / "dbt"
    work.mkdir()
    done = _run(DBT.command(bad, work), DBT.env(bad, work))
    assert done.returncode == 1, done.stdout
    assert "Failure in test profiles_segment_is_known" in done.stdout
    # unique_id: model.<project>.<name>, test.<project>.<name>.<hash>
    statuses = {r["unique_id"].split(".")[2]: r["status"] for r in dbt_peer.results(dbt_peer.target(work))["results"]}
    assert statuses["profiles_segment_is_known"] == "fail" and statuses["profiles"] == "success"
    assert statuses["customer_360"] == "skipped"
    assert not (work / "customer_360.parquet").exists()


def test_dbt_enforces_the_models_contracts(outputs, tmp_path):
    """A model whose SQL drifts from its contract's types is stopped before anything is written."""
    landing, _ = outputs
    project = tmp_path / "project"
    shutil.copytree(dbt_peer.PROJECT, project, ignore=shutil.ignore_patterns(".venv", "target", "logs"))
    model = project / "models" / "products" / "history.sql"
    sql = model.read_text()
    assert "count(*)::bigint as order_count," in sql
    model.write_text(sql.replace("count(*)::bigint as order_count,", "count(*)::integer as order_count,"))
    work = tmp_path / "dbt"
    work.mkdir()
    argv = [str(project) if a == str(dbt_peer.PROJECT) else a for a in DBT.command(landing, work)]
    done = _run(argv, DBT.env(landing, work))
    assert done.returncode == 1, done.stdout
    assert "contract" in done.stdout.lower() and "order_count" in done.stdout, done.stdout[-3000:]
    assert not (work / "history.parquet").exists() and not (work / "customer_360.parquet").exists()
