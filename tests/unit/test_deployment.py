from pathlib import Path

import pytest

from mesh_platform.deployment import Settings


def test_defaults_live_under_mesh_home(tmp_path):
    s = Settings.from_env({"MESH_HOME": str(tmp_path)})
    assert (s.profile, s.home, s.landing, s.dagster_home) == (
        "local", tmp_path, tmp_path / "landing", tmp_path / "dagster"
    )
    assert s.source_overrides == {}
    assert s.duckdb_memory_limit == "768MB"


def test_source_override_and_unknown_profile(tmp_path):
    s = Settings.from_env({"MESH_HOME": str(tmp_path), "MESH_SOURCE_CUSTOMER_CRM_EXPORT": "/x/crm.csv"})
    assert s.source_overrides == {"customer_crm_export": "/x/crm.csv"}
    assert Settings.from_env({}).home == Path(".mesh").resolve()
    with pytest.raises(ValueError, match="MESH_PROFILE='aws'"):
        Settings.from_env({"MESH_PROFILE": "aws"})
