from pathlib import Path

import pytest

from mesh_platform.deployment import Settings


def test_defaults_live_under_mesh_home(tmp_path):
    s = Settings.from_env({"MESH_HOME": str(tmp_path)})
    assert (s.env, s.home, s.landing, s.dagster_home) == ("dev", tmp_path, tmp_path / "landing", tmp_path / "dagster")
    assert s.source_overrides == {}
    assert s.duckdb_memory_limit == "1GB"
    assert s.deployment["environment"] == "dev"


def test_source_override_and_environments(tmp_path):
    s = Settings.from_env({"MESH_HOME": str(tmp_path), "MESH_SOURCE_CUSTOMER_CRM_EXPORT": "/x/crm.csv"})
    assert s.source_overrides == {"customer_crm_export": "/x/crm.csv"}
    assert Settings.from_env({}).home == Path(".mesh").resolve()
    prod = Settings.from_env({"MESH_ENV": "prod"})
    assert prod.deployment["aws"]["principals"]["federation"] == "arn:aws:iam::123456789012:role/mesh-location-federation"
    with pytest.raises(ValueError, match="MESH_ENV='aws': the environments are \\['dev', 'prod'\\]"):
        Settings.from_env({"MESH_ENV": "aws"})
    with pytest.raises(ValueError, match="MESH_PROFILE is gone"):
        Settings.from_env({"MESH_PROFILE": "local"})
