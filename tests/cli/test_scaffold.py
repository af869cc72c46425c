"""`mesh new product` and `mesh new domain` in a copy of the checkout: what they write loads,
passes the policies (`mesh check`), and its generated test materializes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import ROOT

from mesh_platform.storage import Catalog

MESH = str(Path(sys.executable).with_name("mesh"))


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The project's workspace files and locations, as a second checkout would have them."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "domains", copy / "domains", ignore=ignore)
    shutil.copytree(ROOT / "mesh_platform/federation", copy / "mesh_platform/federation", ignore=ignore)
    for name in ("workspace.yaml", "workspace-team.yaml"):
        shutil.copy(ROOT / name, copy / name)
    return copy


def run(cwd: Path, *argv: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "DAGSTER_"))}
    env["MESH_HOME"] = str(home or cwd / ".mesh")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_product_from_a_source_and_one_from_inputs(checkout):
    done = run(checkout / "domains/orders", MESH, "new", "product", "orders/order_copy", "--from-source", "orders")
    assert done.returncode == 0, done.stderr
    folder = checkout / "domains/orders"
    written = [folder / "contracts/order_copy.odcs.yaml", folder / "products/order_copy.py",
               folder / "tests/test_order_copy.py"]
    assert done.stdout.splitlines()[:3] == [f"  wrote {p}" for p in written]
    done = run(checkout, MESH, "new", "product", "customer/vip", "--inputs", "orders/history")
    assert done.returncode == 0, done.stderr
    assert "ask for read access" not in done.stdout  # history grants customer already

    # Both pass every policy and load with the workspace, and their own tests pass.
    check = run(checkout, MESH, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "orders: ok" in check.stdout and "customer: ok" in check.stdout
    tests = run(checkout, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "domains/orders/tests/test_order_copy.py", "domains/customer/tests/test_vip.py")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout

    # What order_copy publishes: every row of the landing extract, as the source contract types it.
    home = checkout / "home"
    assert run(checkout, MESH, "seed", "--customers", "50", home=home).returncode == 0
    done = run(checkout, MESH, "materialize", "--select", "orders/order_copy", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    landing = duckdb.sql(f"SELECT count(*) FROM read_parquet('{home}/landing/orders/orders/*.parquet')").fetchall()[0][0]
    published = Catalog(home).current("orders", "order_copy")
    assert int(published.summary["total-records"]) == landing > 0


def test_an_input_not_granted_says_who_to_ask(checkout):
    done = run(checkout, MESH, "new", "product", "preferences/with_profiles", "--inputs", "customer/profiles")
    assert done.returncode == 0, done.stderr
    profiles = checkout / "domains/customer/contracts/profiles.odcs.yaml"
    assert (f"next: ask for read access: {profiles}: roles: - {{role: preferences, access: read}}  "
            "(ask customer-team)") in done.stdout
    # Until the grant is added, the location says the same when it loads.
    check = run(checkout, MESH, "check")
    assert check.returncode == 1
    assert f"'customer/profiles' is not granted to 'preferences' by {profiles}" in check.stderr


def test_bad_requests_are_one_line(checkout):
    assert run(checkout, MESH, "new", "product", "orders/history", "--from-source", "orders").stderr.strip() == (
        f"mesh new: {checkout / 'domains/orders/contracts/history.odcs.yaml'} exists already: "
        "orders/history is a product of orders")
    assert run(checkout, MESH, "new", "product", "orders/Bad-Name", "--from-source", "orders").stderr.strip() == (
        "mesh new: 'Bad-Name': a product name is snake_case (letters, digits, _), e.g. orders/daily_summary")
    assert run(checkout, MESH, "new", "product", "orders/x", "--from-source", "order").stderr.strip() == (
        f"mesh new: no source 'order' in {checkout / 'domains/orders/sources'}; did you mean 'orders'?")
    assert run(checkout, MESH, "new", "product", "orders/x", "--inputs", "orders/histroy").stderr.strip() == (
        "mesh new: no product 'orders/histroy' in the workspace; did you mean 'orders/history'?")


def test_a_new_domain_is_a_code_location(checkout):
    done = run(checkout, MESH, "new", "domain", "loyalty")
    assert done.returncode == 0, done.stderr
    workspace = yaml.safe_load((checkout / "workspace.yaml").read_text())["load_from"]
    assert workspace[-1] == {"python_file": {"relative_path": "domains/loyalty/definitions.py",
                                             "location_name": "loyalty", "working_directory": "."}}
    team = yaml.safe_load((checkout / "workspace-team.yaml").read_text())["load_from"]
    assert team[-1] == {"grpc_server": {"host": "127.0.0.1", "port": 4105, "location_name": "loyalty"}}
    assert (checkout / "workspace.yaml").read_text().startswith("# One Dagster deployment")  # comments kept
    check = run(checkout, MESH, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "loyalty: ok" in check.stdout
    again = run(checkout, MESH, "new", "domain", "loyalty")
    assert again.returncode == 2
    assert again.stderr.strip() == f"mesh new: 'loyalty' is a code location of {checkout / 'workspace.yaml'} already"
