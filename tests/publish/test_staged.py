"""Work staged a bucket at a time (ctx.stage, ctx.buckets): orders/history's staged plan, the one
it takes when its sources outgrow the step's memory budget, publishes exactly the rows of its
one-query plan; the step's scratch folder is gone afterwards, whether the step passed or failed, and
what a killed step left there goes to maintenance."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT, error_chain, materialize, step_failure_messages

from mesh_platform import sources
from mesh_platform.contracts import load_contract
from mesh_platform.location import location_definitions
from mesh_platform.maintenance import maintain
from mesh_platform.product_context import ProductContext
from mesh_platform.seed import generate_landing
from mesh_platform.spec import ProductSpec
from mesh_platform.storage import Catalog

pytestmark = pytest.mark.usefixtures("restore_product_modules")


def history_rows(home: Path) -> list[tuple]:
    return sorted(duckdb.read_parquet(list(Catalog(home).current("orders", "history").files)).fetchall())


def landing_bytes(landing: Path) -> int:
    return sum(f.stat().st_size for f in (landing / "orders").rglob("*") if f.is_file())


@pytest.fixture
def seeded(mesh_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    landing = mesh_home.parent / "seeded"
    generate_landing(landing, 1_500, 11)
    monkeypatch.setenv("MESH_LANDING", str(landing))
    return landing


def scratch_left(home: Path) -> list[Path]:
    return list((home / "tmp").glob("stage-*")) if (home / "tmp").exists() else []


def test_sources_that_outgrow_the_budget_split_into_buckets_of_half_of_it(seeded):
    folder = ROOT / "domains/orders"
    landings = {name: sources.resolve(load_contract(folder / f"sources/{name}.odcs.yaml"), seeded, None)
                for name in ("orders", "order_lines")}
    size = landing_bytes(seeded)
    assert size == sum(os.path.getsize(f) for landing in landings.values() for f in landing.files) > 10_000

    def buckets(budget: int) -> int:
        spec = ProductSpec(fn=lambda ctx: None, sources=("orders", "order_lines"), inputs=())
        with duckdb.connect() as con:
            ctx = ProductContext(con, load_contract(folder / "contracts/history.odcs.yaml"), spec, landings, {},
                                 None, bucket_budget=budget)
            return ctx.buckets("orders", "order_lines")

    assert buckets(0) == 1  # no budget: the step's whole memory
    assert buckets(size) == 1  # fits whole
    assert buckets(size - 1) == 3  # half of just under the size: a little over 2 buckets' worth
    assert buckets(size // 4 + 1) == 8
    assert buckets(size // 10 + 1) == 20


def test_staged_history_publishes_the_rows_of_the_one_query_plan(seeded, mesh_home, instance, monkeypatch):
    result = materialize("orders", instance)
    assert result.success, step_failure_messages(result)
    whole = history_rows(mesh_home)
    assert len(whole) > 1_000

    # A budget of a quarter of the orders' landing bytes: history takes its staged plan in 8 buckets.
    budget = landing_bytes(seeded) // 4 + 1
    monkeypatch.setenv("MESH_BUCKET_BYTES", str(budget))
    monkeypatch.setenv("MESH_HOME", str(mesh_home.parent / "staged"))
    staged_home = mesh_home.parent / "staged"
    result = materialize("orders", instance)
    assert result.success, step_failure_messages(result)

    assert history_rows(staged_home) == whole
    assert scratch_left(staged_home) == []  # each step's scratch removed as it ended


def test_a_failing_staged_step_publishes_nothing_and_leaves_no_scratch(seeded, mesh_home, instance, monkeypatch,
                                                                      tmp_path):
    folder = tmp_path / "locations" / "orders"
    shutil.copytree(ROOT / "domains/orders", folder, ignore=shutil.ignore_patterns("__pycache__", "definitions.py"))
    # The staged plan, failing after its first stage was written.
    code = (folder / "products/history.py").read_text()
    code = code.replace('    for b in range(buckets):\n        ctx.stage("priced"',
                        '    ctx.sql("SELECT error(\'broken on purpose\')").fetchall()\n'
                        '    for b in range(buckets):\n        ctx.stage("priced"')
    assert "broken on purpose" in code
    (folder / "products/history.py").write_text(code)
    monkeypatch.setenv("MESH_BUCKET_BYTES", "1000")

    defs = location_definitions(folder)
    result = defs.resolve_job_def("orders_products").execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    # DuckDB's own message is withheld (it may quote landing data); the error's kind is named.
    assert "computing the output failed, nothing published: InvalidInput" in error_chain(result)
    assert Catalog(mesh_home).current("orders", "history") is None
    assert scratch_left(mesh_home) == []


STAGE_MISUSES = {
    "two-statements": ("ctx.stage('x', \"SELECT 1 AS a; COPY (SELECT 1) TO '{out}'\")", "exactly one SELECT"),
    "reads-another-product": ("ctx.stage('x', \"SELECT * FROM read_csv('{landing}/customer/crm_export.csv')\")",
                              "Permission Error"),
    "climbs-out-of-scratch": ("ctx.stage('x', 'SELECT 1 AS a')\n"
                              "return ctx.sql(\"SELECT * FROM read_csv('\" + str(ctx._scratch) + "
                              "\"/../../landing/customer/crm_export.csv')\")", "Permission Error"),
    "platform-name": ("ctx.stage('mesh_x', 'SELECT 1 AS a')", "not starting with mesh_"),
    "bucket-column-injection": ("ctx.stage('x', 'SELECT 1 AS a', bucket_by='a\") % 2, (SELECT 1', buckets=2)",
                                "is not a column of the query"),
    "buckets-without-column": ("ctx.stage('x', 'SELECT 1 AS a', buckets=3)", "more than 1 needs bucket_by"),
    "own-bucket-column": ("ctx.stage('x', 'SELECT 1 AS mesh_bucket')", "mesh_bucket is the platform's column"),
}


@pytest.mark.parametrize("misuse", sorted(STAGE_MISUSES))
def test_stage_refuses_what_would_leave_the_step_or_confuse_it(mesh_home, instance, tmp_path, misuse):
    folder = tmp_path / "locations" / "orders"
    shutil.copytree(ROOT / "domains/orders", folder, ignore=shutil.ignore_patterns("__pycache__", "definitions.py"))
    code, expected = STAGE_MISUSES[misuse]
    out = tmp_path / "pwned.out"
    body = code.format(out=out, landing=mesh_home / "landing")
    (folder / "products/history.py").write_text(
        "from mesh_platform import product\n\n\n"
        '@product(sources=["orders", "order_lines"])\n'
        "def history(ctx):\n" + "".join(f"    {line}\n" for line in body.splitlines())
        + "    return ctx.sql('SELECT 1 AS a')\n"
    )
    defs = location_definitions(folder)
    result = defs.resolve_job_def("orders_products").execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    message = error_chain(result)
    assert expected in message, message
    assert "C001" not in message  # no landing row reaches an error
    assert not out.exists()
    assert Catalog(mesh_home).current("orders", "history") is None
    assert scratch_left(mesh_home) == []


def test_what_a_killed_step_staged_is_removed_by_maintenance_once_old(mesh_home):
    # A step killed mid-stage leaves its folder; one still running has a young one.
    dead = mesh_home / "tmp/stage-deadbeef-x/priced/mesh_bucket=3/data_0.parquet"
    alive = mesh_home / "tmp/stage-cafe0000-y/priced/mesh_bucket=1/data_0.parquet"
    for f in (dead, alive):
        f.parent.mkdir(parents=True)
        duckdb.sql("SELECT 1 AS a").write_parquet(str(f))
    two_days_ago = dead.stat().st_mtime - 2 * 86400
    os.utime(dead, (two_days_ago, two_days_ago))

    report = maintain(Catalog(mesh_home), orphan_age=timedelta(days=1))

    assert not (mesh_home / "tmp/stage-deadbeef-x").exists()
    assert alive.exists()
    assert [t.removed_files for t in report.tables if t.table.startswith("tmp/")] == [
        ["stage-deadbeef-x/priced/mesh_bucket=3/data_0.parquet"]]
