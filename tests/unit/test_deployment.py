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


@pytest.mark.parametrize("limit, mib", [("1GB", 953.6), ("1700MB", 1536), ("2GiB", 2048), (" 512 mb ", 488.2)])
def test_the_bucket_budget_is_a_third_of_duckdbs_memory_limit_unless_set(tmp_path, limit, mib):
    from mesh_platform.engine import DuckDBEngine

    engine = DuckDBEngine(memory_limit=limit, temp_directory=str(tmp_path))
    with engine.get_connection() as con:
        assert engine.bucket_budget(con) == pytest.approx(mib * 2**20 / 3, rel=1e-3)
        s = Settings.from_env({"MESH_HOME": str(tmp_path), "MESH_BUCKET_BYTES": "123456"})
        assert s.bucket_bytes == 123456
        set_ = DuckDBEngine(memory_limit=limit, temp_directory=str(tmp_path), bucket_bytes=s.bucket_bytes)
        assert set_.bucket_budget(con) == 123456


def test_a_bad_bucket_budget_or_memory_size_is_named():
    from mesh_platform.engine import memory_bytes

    with pytest.raises(ValueError, match="MESH_BUCKET_BYTES='0': a whole number of bytes, at least 1"):
        Settings.from_env({"MESH_BUCKET_BYTES": "0"})
    with pytest.raises(ValueError, match="'lots' is not a memory size"):
        memory_bytes("lots")
    assert memory_bytes("953.6 MiB") == int(953.6 * 2**20) and memory_bytes("1.5GB") == 1_500_000_000
