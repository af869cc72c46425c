"""The one place that reads the environment and decides the deployment.

MESH_ENV      the environment: `dev` (default: embedded DuckDB and Iceberg on local files) or
              `prod` (the clouds of mesh_platform/deployments/prod.yaml). Each product's place in
              it is its contract's `servers` entry for that environment.
MESH_HOME     where the mesh keeps its catalog, local tables, audit log and landing data
              (default: `.mesh` in the working directory).
MESH_LANDING  where the domains' source systems drop their exports (default: MESH_HOME/landing).
MESH_DUCKDB_MEMORY_LIMIT  DuckDB's memory limit per step (default 1GB; beyond it, it spills).
DAGSTER_HOME  the Dagster instance (runs, events, schedules) (default: MESH_HOME/dagster).
MESH_INSTANCE where the shared state lives: `local` (default: Dagster's storage in SQLite under
              DAGSTER_HOME, the Iceberg catalog and grants in SQLite under MESH_HOME: one machine)
              or `postgres` (both on the PostgreSQL database of MESH_POSTGRES_URL, so that a
              webserver, a daemon and code servers on different machines share one state; the
              table files stay under MESH_HOME, which they must then share, or in a cloud).
MESH_POSTGRES_URL  with MESH_INSTANCE=postgres: `postgresql+psycopg2://user:password@host:port/db`.
              Written to no file: the instance config and the resources name the variable, and
              each process reads it when it connects.
MESH_MAX_CONCURRENT_RUNS  runs in progress at once in the instance (default 4); more wait queued.
MESH_DOMAIN_RUN_LIMIT  runs in progress at once per domain (the `mesh/domain` run tag; default 1).
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

from mesh_platform.checkout import find_root


ENVIRONMENTS = ("dev", "prod")
INSTANCES = ("local", "postgres")
SOURCE_PREFIX = "MESH_SOURCE_"
POSTGRES_URL = "MESH_POSTGRES_URL"  # the variable's name: the instance config and resources name it
PSYCOPG2 = "postgresql+psycopg2://"


def override_key(location: str, source: str) -> str:
    """The key of a source's landing override in Settings.source_overrides: MESH_SOURCE_<LOCATION>_<SOURCE>
    without its prefix, lower case."""
    return f"{location}_{source}"


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
    instance: str = "local"  # MESH_INSTANCE
    postgres_url: str | None = None  # MESH_POSTGRES_URL, with MESH_INSTANCE=postgres
    max_concurrent_runs: int = 4
    domain_run_limit: int = 1
    bucket_bytes: int = 0  # MESH_BUCKET_BYTES; 0: a third of the memory limit

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        if "MESH_PROFILE" in env:
            raise ValueError("MESH_PROFILE is gone: set MESH_ENV=dev (embedded, the default) or MESH_ENV=prod")
        name = env.get("MESH_ENV", "dev")
        if name not in ENVIRONMENTS:
            raise ValueError(f"MESH_ENV={name!r}: the environments are {list(ENVIRONMENTS)}")
        # The checkout's state folder, wherever in it `mesh` is started (mesh_platform.checkout).
        home = Path(env.get("MESH_HOME") or find_root() / ".mesh").resolve()
        landing = Path(env.get("MESH_LANDING", home / "landing")).resolve()
        overrides = {
            k.removeprefix(SOURCE_PREFIX).lower(): v
            for k, v in env.items()
            if k.startswith(SOURCE_PREFIX)
        }
        dagster_home = Path(env.get("DAGSTER_HOME", home / "dagster")).resolve()
        memory_limit = env.get("MESH_DUCKDB_MEMORY_LIMIT", "1GB")
        instance = env.get("MESH_INSTANCE", "local")
        if instance not in INSTANCES:
            raise ValueError(f"MESH_INSTANCE={instance!r}: the instances are {list(INSTANCES)}")
        postgres_url = None
        if instance == "postgres":
            postgres_url = postgres_sqlalchemy_url(env.get(POSTGRES_URL, ""))
        return cls(
            name, home, landing, dagster_home, memory_limit, overrides, instance, postgres_url,
            _positive(env, "MESH_MAX_CONCURRENT_RUNS", 4), _positive(env, "MESH_DOMAIN_RUN_LIMIT", 1),
            _positive(env, "MESH_BUCKET_BYTES", 0, unit="bytes") if "MESH_BUCKET_BYTES" in env else 0,
        )

    @property
    def catalog_uri(self) -> str | None:
        """The SQLAlchemy URL of the Iceberg SQL catalog (and the grants); None: SQLite under home."""
        return self.postgres_url

    @property
    def deployment(self) -> dict:
        return deployment_file(self.env)


def _positive(env, name: str, default: int, unit: str = "runs") -> int:
    value = env.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: a whole number of {unit}, at least 1")
    return int(value)


def postgres_sqlalchemy_url(url: str) -> str:
    """MESH_POSTGRES_URL, checked: it must name the psycopg2 driver. SQLAlchemy 2.1 takes a bare
    `postgresql://` for psycopg 3, which is not installed (and Dagster's Postgres storage fails on
    it); the value is used as it is, by every process, so it is not rewritten here."""
    if not url:
        raise ValueError(f"MESH_INSTANCE=postgres needs {POSTGRES_URL}={PSYCOPG2}user:password@host:port/db")
    if not url.startswith(PSYCOPG2):
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        raise ValueError(
            f"{POSTGRES_URL} must start with {PSYCOPG2} (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, "
            f"which the mesh does not use); got a {scheme}:// URL"
        )
    return url


def redacted(url: str) -> str:
    """A database URL fit for a message: without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown by its scheme only
        return url.split("://", 1)[0] + "://..."


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
    import dagster as dg

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
            # Read by each run when it starts, not at load: the UI shows the variable, not the secret.
            catalog_url=dg.EnvVar(POSTGRES_URL) if s.instance == "postgres" else "",
        ),
        "duckdb": DuckDBEngine(memory_limit=s.duckdb_memory_limit, temp_directory=str(s.home / "tmp"),
                               bucket_bytes=s.bucket_bytes),
    }
