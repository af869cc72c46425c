"""A mesh home can be copied, moved, and restored from a backup: nothing in it names where it
was, so each copy reads and writes only itself. Real `mesh` commands on real homes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import duckdb
from landing import CRM_CSV, write_landing

from mesh_platform.storage import Catalog

MESH = str(Path(sys.executable).with_name("mesh"))
NEWER = CRM_CSV.replace("example.com", "example.net")  # same customers, other emails


def mesh(home: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "DAGSTER_HOME"))}
    done = subprocess.run([MESH, *args], env=env | {"MESH_HOME": str(home)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def emails(home: Path) -> list[str]:
    snapshot = Catalog(home).current("customer", "profiles")
    assert all(f.startswith(str(home)) for f in snapshot.files), snapshot.files
    return sorted(r[0] for r in duckdb.read_parquet(list(snapshot.files)).select("email").fetchall())


def files_under(home: Path) -> dict[str, float]:
    return {str(p.relative_to(home)): p.stat().st_mtime for p in home.rglob("*") if p.is_file()}


def test_a_copied_home_writes_only_itself(tmp_path):
    original = tmp_path / "original"
    write_landing(original / "landing")
    mesh(original, "materialize", "customer", "orders", "preferences", "--in-process")  # insights reads all three
    before = files_under(original / "warehouse")
    old = emails(original)

    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    write_landing(copy / "landing", crm_csv=NEWER)
    mesh(copy, "materialize", "customer", "--in-process")

    assert emails(copy) != old and all(e.endswith("example.net") for e in emails(copy) if "@" in e)
    assert emails(original) == old
    assert files_under(original / "warehouse") == before  # not a byte written into the original


def test_a_moved_home_keeps_working(tmp_path):
    home = tmp_path / "here"
    write_landing(home / "landing")
    mesh(home, "materialize", "customer", "orders", "preferences", "federation", "--in-process")
    moved = tmp_path / "there"
    home.rename(moved)
    write_landing(moved / "landing", crm_csv=NEWER)
    mesh(moved, "materialize", "customer", "federation", "--in-process")
    assert all(e.endswith("example.net") for e in emails(moved) if "@" in e)
    customer_360 = Catalog(moved).current("federation", "customer_360")
    assert duckdb.read_parquet(list(customer_360.files)).count("*").fetchall() == [(3,)]


def test_a_home_restored_from_a_backup_is_the_backed_up_state(tmp_path):
    home = tmp_path / "home"
    write_landing(home / "landing")
    mesh(home, "materialize", "customer", "orders", "preferences", "--in-process")  # insights reads all three
    backed_up = emails(home)
    backup = tmp_path / "home.tar"
    with tarfile.open(backup, "w") as tar:
        tar.add(home, arcname="home")

    write_landing(home / "landing", crm_csv=NEWER)
    mesh(home, "materialize", "customer", "--in-process")
    assert emails(home) != backed_up

    # Restored elsewhere (and the damaged original removed): the backed-up version, publishable.
    shutil.rmtree(home)
    restored_root = tmp_path / "restored"
    with tarfile.open(backup) as tar:
        tar.extractall(restored_root, filter="data")
    restored = restored_root / "home"
    assert emails(restored) == backed_up
    write_landing(restored / "landing", crm_csv=NEWER)
    mesh(restored, "materialize", "customer", "--in-process")
    assert emails(restored) != backed_up
