"""Landing sources: read through their source contracts, movable by configuration, and
refused with an error naming the source and file when they do not fit."""

import duckdb
from conftest import materialize_daily, step_failure_messages
from landing import CRM_CSV

from mesh_platform.storage import Catalog


def _emails(home):
    snap = Catalog(home).current("customer", "profiles")
    return sorted(r["email"] for r in duckdb.read_parquet(list(snap.files)).to_arrow_table().to_pylist())


def test_a_source_can_point_at_another_export_of_the_same_shape(mesh_home, instance, tmp_path, monkeypatch):
    other = tmp_path / "exports" / "crm-2026-11-25.csv"
    other.parent.mkdir()
    other.write_text(
        "customer_id,first_name,last_name,email,country,segment,signup_date,updated_at\n"
        "C777,Zoe,Quinn, ZOE@EXAMPLE.COM,NL,smb,2025-01-01,2025-01-02 03:04:05\n"
    )
    monkeypatch.setenv("MESH_SOURCE_CUSTOMER_CRM_EXPORT", str(other))
    assert materialize_daily("customer", instance).success
    assert _emails(mesh_home) == ["zoe@example.com"]


def test_a_missing_column_names_the_file_and_nothing_is_published(mesh_home, instance):
    assert materialize_daily("customer", instance).success
    before = _emails(mesh_home)
    crm = mesh_home / "landing" / "customer" / "crm_export.csv"
    crm.write_text(CRM_CSV.replace(",segment,", ",tier,", 1))
    result = materialize_daily("customer", instance)
    assert not result.success
    message = step_failure_messages(result)
    assert str(crm) in message and "crm_export.odcs.yaml" in message and "missing ['segment']" in message
    assert _emails(mesh_home) == before


def test_no_landing_file_names_the_source_and_the_path(mesh_home, instance):
    crm = mesh_home / "landing" / "customer" / "crm_export.csv"
    crm.unlink()
    result = materialize_daily("customer", instance)
    assert not result.success
    assert "source 'crm_export'" in step_failure_messages(result)
    assert f"no file matches {crm}" in step_failure_messages(result)
    assert Catalog(mesh_home).current("customer", "profiles") is None
