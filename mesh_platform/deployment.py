"""The one place that reads the environment and decides the deployment.

MESH_ENV      the environment: `dev` (default: embedded DuckDB and Iceberg on local files) or
              `prod` (the clouds of mesh_platform/deployments/prod.yaml). Each product's place in
              it is its contract's `servers` entry for that environment.
MESH_HOME     where the mesh keeps its catalog, local tables, audit log and landing data
              (default: `.mesh` in the working directory).
MESH_LANDING  where the domains' source systems drop their exports (default: MESH_HOME/landing).
MESH_DUCKDB_MEMORY_LIMIT  DuckDB's memory limit per step (default 768MB; beyond it, it spills).
DAGSTER_HOME  the Dagster instance (runs, events, schedules) (default: MESH_HOME/dagster).
MESH_SOURCE_<DOMAIN>_<SOURCE>  point one source at another export of the same shape,
              e.g. MESH_SOURCE_CUSTOMER_CRM_EXPORT=/data/crm/2026-11-25.csv.

Cloud credentials and endpoints are not read here: each SDK reads its own standard settings.
The exceptions are the settings some clients do not read themselves (see aws_settings and
azure_settings).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from importlib import resources as package_files
from pathlib import Path

ENVIRONMENTS = ("dev", "prod")
SOURCE_PREFIX = "MESH_SOURCE_"


@functools.cache
def deployment_file(env: str) -> dict:
    """mesh_platform/deployments/<env>.yaml: accounts, regions, principals."""
    from mesh_platform import strict_yaml

    return strict_yaml.load((package_files.files("mesh_platform") / "deployments" / f"{env}.yaml").read_text())


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    landing: Path
    dagster_home: Path
    duckdb_memory_limit: str
    source_overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        if "MESH_PROFILE" in env:
            raise ValueError("MESH_PROFILE is gone: set MESH_ENV=dev (embedded, the default) or MESH_ENV=prod")
        name = env.get("MESH_ENV", "dev")
        if name not in ENVIRONMENTS:
            raise ValueError(f"MESH_ENV={name!r}: the environments are {list(ENVIRONMENTS)}")
        home = Path(env.get("MESH_HOME", ".mesh")).resolve()
        landing = Path(env.get("MESH_LANDING", home / "landing")).resolve()
        overrides = {
            k.removeprefix(SOURCE_PREFIX).lower(): v
            for k, v in env.items()
            if k.startswith(SOURCE_PREFIX)
        }
        dagster_home = Path(env.get("DAGSTER_HOME", home / "dagster")).resolve()
        memory_limit = env.get("MESH_DUCKDB_MEMORY_LIMIT", "768MB")
        return cls(name, home, landing, dagster_home, memory_limit, overrides)

    @property
    def deployment(self) -> dict:
        return deployment_file(self.env)


def aws_settings(region: str) -> dict[str, str]:
    """The standard AWS settings (AWS_ENDPOINT_URL, keys) as pyiceberg and pyarrow name them:
    boto3 reads the environment itself, those two do not."""
    env = os.environ
    out = {"region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or region}
    for key, name in (("AWS_ENDPOINT_URL_S3", "endpoint"), ("AWS_ENDPOINT_URL", "endpoint"),
                      ("AWS_ACCESS_KEY_ID", "access-key-id"), ("AWS_SECRET_ACCESS_KEY", "secret-access-key"),
                      ("AWS_SESSION_TOKEN", "session-token")):
        if env.get(key) and name not in out:
            out[name] = env[key]
    return out


def gcp_settings() -> dict[str, str | None]:
    """The standard Google setting the platform must know of (the BigQuery SDK reads it itself):
    BIGQUERY_EMULATOR_HOST, a BigQuery emulator's endpoint, where anonymous credentials replace
    application default credentials."""
    return {"emulator_host": os.environ.get("BIGQUERY_EMULATOR_HOST") or None}


def azure_settings() -> dict[str, str]:
    """Where the Azure clients connect, when not to Azure's public endpoints (the set ones only):

    connection-string     AZURE_STORAGE_CONNECTION_STRING, the storage account's connection
                          string (Azure's standard setting; Azurite's in tests). Without it the
                          account a contract names is reached at https://<account>.blob.core.windows.net
                          with DefaultAzureCredential (managed identity, workload identity, az login).
    resource-manager-url  AZURE_RESOURCE_MANAGER_URL, the Azure Resource Manager endpoint (default
                          https://management.azure.com; another cloud's, or a test's endpoint on
                          loopback). The SDK's own cloud setting names only Azure's public,
                          China and US Government clouds."""
    env = os.environ
    return {
        name: env[key]
        for key, name in (("AZURE_STORAGE_CONNECTION_STRING", "connection-string"),
                          ("AZURE_RESOURCE_MANAGER_URL", "resource-manager-url"))
        if env.get(key)
    }


def resources(consumer: str, settings: Settings | None = None) -> dict:
    """The resources every code location gets; `consumer` is who reads other domains' products."""
    from mesh_platform.engine import DuckDBEngine
    from mesh_platform.resource import MeshResource

    s = settings or Settings.from_env()
    return {
        "mesh": MeshResource(
            env=s.env,
            home=str(s.home),
            landing=str(s.landing),
            consumer=consumer,
            source_overrides=s.source_overrides,
        ),
        "duckdb": DuckDBEngine(memory_limit=s.duckdb_memory_limit, temp_directory=str(s.home / "tmp")),
    }
