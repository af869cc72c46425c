"""The gate on contract versions: a breaking change against the published contract (recorded on
the table, read from a real local catalog) or against a git ref needs a new major version, and a
major version may not break a consumer still reading the old one. At location load and in
`mesh check`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from versions.published import record_published_contract

from mesh_platform import contract_versions
from mesh_platform.contract_versions import CONTRACT_PROPERTY, VersionError, published_text
from mesh_platform.location import location_definitions
from mesh_platform.storage import Catalog

HISTORY = ROOT / "domains/orders/contracts/history.odcs.yaml"
LIFETIME = """      - name: lifetime_value
        logicalType: number
        physicalType: DECIMAL(18,2)
        required: true
        description: Sum of completed orders' line totals.
        quality:
          - name: lifetime_value_not_negative
            type: sql
            query: SELECT count(*) FROM ${object} WHERE ${property} < 0
            mustBe: 0
"""
LAST_ORDER = "      - {name: last_order_at, logicalType: timestamp, physicalType: TIMESTAMP, required: true}\n"
# A published version that had a column nobody reads any more (the shipped one removes it).
WITH_LOYALTY = HISTORY.read_text().replace(
    LAST_ORDER, LAST_ORDER + "      - {name: loyalty_tier, logicalType: string, physicalType: VARCHAR}\n"
)


pytestmark = pytest.mark.usefixtures("restore_product_modules")  # copied locations load here


def orders_copy(tmp_path: Path, text: str | None = None) -> Path:
    folder = tmp_path / "orders"
    shutil.copytree(ROOT / "domains/orders", folder, ignore=shutil.ignore_patterns("__pycache__"))
    if text is not None:
        (folder / "contracts/history.odcs.yaml").write_text(text)
    return folder


def test_the_published_contract_is_read_from_the_catalog(mesh_home):
    catalog = Catalog(mesh_home)
    assert published_text(catalog, "orders", "history") is None  # no catalog yet
    record_published_contract(mesh_home, HISTORY, WITH_LOYALTY)
    assert published_text(catalog, "orders", "history") == WITH_LOYALTY
    # The quick read (SQLite and the metadata file) says what pyiceberg says.
    assert catalog.load_table("orders", "history").properties[CONTRACT_PROPERTY] == WITH_LOYALTY
    assert published_text(catalog, "orders", "nothing") is None
    assert published_text(catalog, "nowhere", "history") is None
    record_published_contract(mesh_home, HISTORY)  # the next publish records its own text
    assert published_text(catalog, "orders", "history") == HISTORY.read_text()


def test_the_publish_hook_records_the_contract_text():
    from mesh_platform.contracts import load_contract

    assert contract_versions.contract_properties(load_contract(HISTORY)) == {CONTRACT_PROPERTY: HISTORY.read_text()}


def test_a_breaking_change_without_a_major_bump_stops_the_location(mesh_home, tmp_path):
    record_published_contract(mesh_home, HISTORY)
    folder = orders_copy(tmp_path, HISTORY.read_text().replace(LIFETIME, "").replace("version: 1.0.0", "version: 1.1.0"))
    with pytest.raises(VersionError) as info:
        location_definitions(folder)
    error = info.value
    assert error.path == str(folder / "contracts/history.odcs.yaml")
    assert error.field == "version"
    assert "1.0.0 -> 1.1.0 removes column lifetime_value: breaking; release it as 2.0.0" in str(error)
    assert "schema[0].properties[3]: column-removed" in str(error)
    assert "(published)" in str(error)


def test_a_major_bump_that_breaks_a_consumer_stops_the_location(mesh_home, tmp_path):
    record_published_contract(mesh_home, HISTORY)
    folder = orders_copy(tmp_path, HISTORY.read_text().replace(LIFETIME, "").replace("version: 1.0.0", "version: 2.0.0"))
    with pytest.raises(VersionError) as info:
        location_definitions(folder)
    message = str(info.value)
    assert "1.0.0 -> 2.0.0 breaks consumers that have not moved to 2.x" in message
    assert "federation/customer_360 (owner platform-team, location federation) reads lifetime_value" in message


def test_removing_a_column_no_consumer_reads(mesh_home, tmp_path):
    record_published_contract(mesh_home, HISTORY, WITH_LOYALTY)
    # Breaking, so 1.0.0 again is refused ...
    with pytest.raises(VersionError, match=r"1\.0\.0 -> 1\.0\.0 removes column loyalty_tier: breaking; release it as 2\.0\.0"):
        location_definitions(orders_copy(tmp_path / "a"))
    # ... but as 2.0.0 it breaks no consumer: the location loads.
    assert location_definitions(orders_copy(tmp_path / "b", HISTORY.read_text().replace("version: 1.0.0", "version: 2.0.0")))


def test_an_added_column_needs_a_major_version_only_when_required(mesh_home, tmp_path):
    record_published_contract(mesh_home, HISTORY, HISTORY.read_text().replace(LAST_ORDER, ""))
    with pytest.raises(VersionError, match="adds required column last_order_at"):
        location_definitions(orders_copy(tmp_path / "a"))
    optional = LAST_ORDER.replace(", required: true", "")
    assert location_definitions(orders_copy(tmp_path / "b", HISTORY.read_text().replace(LAST_ORDER, optional)))


def test_a_published_contract_the_platform_no_longer_accepts_is_no_base(mesh_home, tmp_path):
    record_published_contract(mesh_home, HISTORY, HISTORY.read_text().replace("physicalType: DECIMAL(18,2)\n", "physicalType: MONEY\n"))
    assert location_definitions(orders_copy(tmp_path))


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MESH_")} | {"MESH_HOME": str(home)} | extra


def test_mesh_check_fails_with_the_suggested_version(tmp_path):
    home = tmp_path / "home"
    record_published_contract(home, HISTORY, WITH_LOYALTY)
    done = subprocess.run([str(Path(sys.executable).with_name("mesh")), "check"], env=_env(home),
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["customer: ok", "preferences: ok", "federation: ok"]
    assert "orders: does not load" in done.stderr
    assert (f"{HISTORY}: version: 1.0.0 -> 1.0.0 removes column loyalty_tier: breaking; release it as 2.0.0"
            in done.stderr)


def test_mesh_check_base_compares_with_git(tmp_path):
    """`mesh check --base HEAD` in a temporary git repository holding a copy of the project,
    with orders' history contract changed in the working tree."""
    repo = tmp_path / "repo"
    for part in ("mesh_platform", "domains"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "workspace.yaml", repo)
    env = _env(tmp_path / "home", PYTHONPATH=str(repo), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
    contract = repo / "domains/orders/contracts/history.odcs.yaml"

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mesh_platform.cli", "check", "--base", "HEAD"], cwd=repo, env=env,
                              capture_output=True, text=True)

    unchanged = check()
    assert unchanged.returncode == 0, unchanged.stderr
    contract.write_text(HISTORY.read_text().replace(LIFETIME, "").replace("version: 1.0.0", "version: 1.1.0"))
    done = check()
    assert done.returncode == 1, done.stdout
    assert "orders: ok" in done.stdout  # nothing published: the location itself loads
    assert (f"{contract}: version: 1.0.0 -> 1.1.0 removes column lifetime_value: breaking; release it as 2.0.0"
            in done.stderr)
    assert "removes column lifetime_value: consumer federation/customer_360 (owner platform-team" in done.stderr
    contract.write_text(HISTORY.read_text().replace(LIFETIME, "").replace("version: 1.0.0", "version: 2.0.0"))
    done = check()
    assert done.returncode == 1
    assert "1.0.0 -> 2.0.0 breaks consumers that have not moved to 2.x" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "mesh_platform.cli", "check", "--base", "no-such-ref"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "not a git revision" in bad.stderr


def test_a_major_bump_for_a_tightened_rule_stops_no_consumer(mesh_home, tmp_path):
    record_published_contract(mesh_home, HISTORY)
    text = HISTORY.read_text().replace("kwargs: {min_value: 1}", "kwargs: {min_value: 2}")
    with pytest.raises(VersionError, match=r"tightens rule order_count_positive \(min_value 1 -> 2\): breaking; release it as 2\.0\.0"):
        location_definitions(orders_copy(tmp_path / "a", text))
    # customer_360 reads orders/history, but a stricter rule leaves what it reads readable.
    assert location_definitions(orders_copy(tmp_path / "b", text.replace("version: 1.0.0", "version: 2.0.0")))
