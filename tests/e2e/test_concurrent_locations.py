"""The four code locations materialized at the same time, each in its own process, as four
deployments would: none fails, and customer_360 matches the upstream snapshots it records. On
both set-ups: the laptop's (SQLite) and the team's (instance and catalog on PostgreSQL)."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
from conftest import materialize

from mesh_platform.registry import location_order
from mesh_platform.seed import generate_landing

ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = ["customer", "orders", "preferences", "federation"]


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(MESH_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    return env


def test_four_locations_in_parallel_publish_consistently(mesh_home, backend):
    home, instance = mesh_home, backend.instance
    env = {**_env(home), **backend.env}
    generate_landing(home / "landing", customers=3_000, seed=1)
    for loc in location_order(LOCATIONS):  # a first version of every product, in this process
        assert materialize(loc, instance).success, loc

    # New landing data, so that old and new upstream snapshots differ while all four run.
    generate_landing(home / "landing", customers=3_500, seed=2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mesh_platform.cli", "run", loc],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for loc in LOCATIONS
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for loc, proc, out in zip(LOCATIONS, procs, outputs):
        assert proc.returncode == 0, f"{loc} failed:\n{out}"

    catalog = backend.catalog
    for domain, name in [("customer", "profiles"), ("orders", "history"), ("preferences", "settings")]:
        assert len(catalog.history(domain, name)) == 2, f"{domain}/{name}: one snapshot per run"
    c360 = catalog.current("federation", "customer_360")
    con = duckdb.connect()
    con.read_parquet(list(c360.files)).to_view("c360")
    for key, view in [("customer/profiles", "profiles"), ("orders/history", "history"),
                      ("preferences/settings", "settings")]:
        domain, name = key.split("/")
        pinned = catalog.current(domain, name, int(c360.summary[f"mesh.upstream.{key}"]))
        con.read_parquet(list(pinned.files)).to_view(view)

    # Recomputed here, independently of the product's SQL: same customers, same figures.
    mismatches = con.sql(
        """
        SELECT p.customer_id
        FROM profiles p FULL JOIN c360 c USING (customer_id)
        LEFT JOIN history h USING (customer_id)
        LEFT JOIN settings s USING (customer_id)
        WHERE c.customer_id IS NULL OR p.customer_id IS NULL
           OR c.profile.email IS DISTINCT FROM p.email
           OR c.order_history.order_count != coalesce(h.order_count, 0)
           OR c.order_history.lifetime_value != coalesce(h.lifetime_value, 0)
           OR (c.preferences IS NULL) != (s.customer_id IS NULL)
           OR c.preferences.interests IS DISTINCT FROM s.interests
        """
    ).to_arrow_table()
    assert mismatches.num_rows == 0, mismatches.to_pylist()[:5]
    assert con.sql("SELECT count(*) FROM c360").to_arrow_table()[0][0].as_py() == (
        con.sql("SELECT count(*) FROM profiles").to_arrow_table()[0][0].as_py()
    )
