"""The settings of the team set-up (MESH_INSTANCE, MESH_POSTGRES_URL, the run limits) and the
instance config the mesh writes from them: the queue with its per-domain limit on every set-up,
PostgreSQL storage named by its variable (never its value) on the team's."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from mesh_platform.deployment import Settings, redacted
from mesh_platform.runs import DOMAIN_TAG, instance_yaml, write_instance_config

URL = "postgresql+psycopg2://mesh:s3cret@db.internal:5432/mesh"


def test_laptop_is_the_default(tmp_path):
    s = Settings.from_env({"MESH_HOME": str(tmp_path)})
    assert (s.instance, s.postgres_url, s.catalog_uri) == ("local", None, None)
    assert (s.max_concurrent_runs, s.domain_run_limit) == (4, 1)


def test_postgres_needs_a_psycopg2_url(tmp_path):
    s = Settings.from_env({"MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": URL, "MESH_DOMAIN_RUN_LIMIT": "2"})
    assert (s.instance, s.catalog_uri, s.domain_run_limit) == ("postgres", URL, 2)
    with pytest.raises(ValueError, match="MESH_INSTANCE=postgres needs MESH_POSTGRES_URL"):
        Settings.from_env({"MESH_INSTANCE": "postgres"})
    with pytest.raises(ValueError, match=r"must start with postgresql\+psycopg2://.*got a postgresql:// URL"):
        Settings.from_env({"MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": "postgresql://mesh@db/mesh"})
    with pytest.raises(ValueError, match="MESH_INSTANCE='mysql': the instances are"):
        Settings.from_env({"MESH_INSTANCE": "mysql"})
    with pytest.raises(ValueError, match="MESH_MAX_CONCURRENT_RUNS='0'"):
        Settings.from_env({"MESH_MAX_CONCURRENT_RUNS": "0"})
    assert "s3cret" not in redacted(URL) and "db.internal:5432/mesh" in redacted(URL)


def test_the_instance_config_queues_with_per_domain_limits(tmp_path):
    local = yaml.safe_load(instance_yaml(Settings.from_env({"MESH_HOME": str(tmp_path)})))
    assert local["concurrency"]["runs"] == {
        "max_concurrent_runs": 4,
        "tag_concurrency_limits": [{"key": DOMAIN_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}],
    }
    assert local["run_queue"]["max_user_code_failure_retries"] > 0
    assert "storage" not in local  # SQLite under DAGSTER_HOME

    team = instance_yaml(Settings.from_env({"MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": URL}))
    assert yaml.safe_load(team)["storage"] == {"postgres": {"postgres_url": {"env": "MESH_POSTGRES_URL"}}}
    assert "s3cret" not in team


def test_the_laptop_instance_loads_with_the_queue(tmp_path, monkeypatch):
    monkeypatch.delenv("MESH_INSTANCE", raising=False)
    write_instance_config(tmp_path, Settings.from_env({"MESH_HOME": str(tmp_path)}))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        limits = instance.get_concurrency_config().run_queue_config
        assert limits.max_concurrent_runs == 4
        assert limits.tag_concurrency_limits == [
            {"key": DOMAIN_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]


def test_a_self_managed_instance_config_is_left_alone(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_config(tmp_path, Settings.from_env({"MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": URL}))
    assert (tmp_path / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
