"""Local stand-ins for the clouds and services the platform talks to, for tests and `make dev-cloud`.

Each runs on 127.0.0.1 on a free port, is polled until it answers, and is stopped by its own pid
(nothing left behind). Each has `start()`, `stop()`, `with`, `endpoint`/`port`, and `env()`: the
standard SDK settings (AWS_ENDPOINT_URL, BIGQUERY_EMULATOR_HOST, AZURE_STORAGE_CONNECTION_STRING,
PGHOST...) that point unchanged client code at it.

    MotoServer        AWS (moto server: S3, Glue, Lake Formation, ...)
    BigQueryEmulator  GCP BigQuery (bqemulator, from emulators/bigquery/.venv)
    Azurite           Azure Blob Storage (Azurite, from emulators/azurite/node_modules)
    Postgres          PostgreSQL 15 (Debian server binaries)
    chromium()        Playwright on the system Chromium, for UI tests

`python -m mesh_platform.emulators up` starts the cloud emulators and prints their settings.
Importing this package is cheap: client libraries load inside the methods that use them.
"""

from ._process import EmulatorError, Service, SideEnvironmentMissing, free_port, repo_root
from .aws import MotoServer
from .azure import Azurite
from .bigquery import BigQueryEmulator
from .browser import CHROMIUM_ARGS, chromium
from .postgres import Postgres

CLOUD_EMULATORS = {"aws": MotoServer, "gcp": BigQueryEmulator, "azure": Azurite}

__all__ = [
    "CHROMIUM_ARGS",
    "CLOUD_EMULATORS",
    "Azurite",
    "BigQueryEmulator",
    "EmulatorError",
    "MotoServer",
    "Postgres",
    "Service",
    "SideEnvironmentMissing",
    "chromium",
    "free_port",
    "repo_root",
]
