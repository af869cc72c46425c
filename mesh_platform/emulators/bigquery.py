"""GCP BigQuery: bqemulator (DuckDB-backed) from its own environment, emulators/bigquery/.venv.

bqemulator pins duckdb 1.5.5, which the platform's environment (duckdb 2.x) cannot share, so it
runs from a side environment built by `make setup`. At start it runs `INSTALL spatial` (and,
best effort, `INSTALL avro`), which would download; the packaged extension files are put in the
extension folder of a private HOME given to the emulator, so nothing is downloaded.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from ._process import HOST, ProcessService, SideEnvironmentMissing, free_port, http_status, repo_root

BUILD_HINT = "run `make setup` (it builds emulators/bigquery/.venv with `uv sync --frozen`)"


def side_env() -> Path:
    """emulators/bigquery/.venv, or a clear error saying how to build it."""
    venv = repo_root() / "emulators" / "bigquery" / ".venv"
    if not (venv / "bin" / "bqemulator").exists():
        raise SideEnvironmentMissing(f"the BigQuery emulator's environment {venv} is missing: {BUILD_HINT}")
    return venv


def packaged_extensions(venv: Path) -> list[Path]:
    """The DuckDB extension files the side environment ships (duckdb-extension-* wheels)."""
    found = sorted(venv.glob("lib/python*/site-packages/duckdb_extension_*/extensions/v*/*.duckdb_extension"))
    if not any(p.name == "spatial.duckdb_extension" for p in found):
        raise SideEnvironmentMissing(f"no packaged spatial.duckdb_extension in {venv}: {BUILD_HINT}")
    return found


def duckdb_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"linux_{arch}"


def install_extensions(venv: Path, home: Path) -> Path:
    """Put the packaged extensions where DuckDB looks for installed ones under `home`
    (~/.duckdb/extensions/vX.Y.Z/PLATFORM/); a hard link when possible, else a copy."""
    target = None
    for src in packaged_extensions(venv):
        version = src.parent.name  # v1.5.5
        target = home / ".duckdb" / "extensions" / version / duckdb_platform()
        target.mkdir(parents=True, exist_ok=True)
        dest = target / src.name
        if dest.exists() and dest.stat().st_size == src.stat().st_size:
            continue
        dest.unlink(missing_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
    return target


class BigQueryEmulator(ProcessService):
    """`bqemulator start` on 127.0.0.1 (REST on `port`, gRPC on `grpc_port`), in memory."""

    name = "bigquery"
    ready_timeout = 90.0

    def __init__(self, state_dir=None, port=None, project: str = "mesh-local", grpc_port: int | None = None):
        super().__init__(state_dir, port)
        self.project = project
        self.grpc_port = grpc_port

    @property
    def home(self) -> Path:
        return self.state_dir / "home"

    def command(self) -> list[str]:
        venv = side_env()
        install_extensions(venv, self.home)
        if self.grpc_port is None:
            self.grpc_port = free_port()
        return [
            str(venv / "bin" / "bqemulator"),
            "start",
            "--rest-host", HOST,
            "--rest-port", str(self.port),
            "--grpc-host", HOST,
            "--grpc-port", str(self.grpc_port),
            "--project", self.project,
            "--ephemeral",
            "--log-level", "info",
            "--log-format", "json",
        ]  # fmt: skip

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env["HOME"] = str(self.home)
        return env

    def is_ready(self) -> bool:
        return http_status(f"{self.endpoint}/readyz") == 200

    def env(self) -> dict[str, str]:
        return {"BIGQUERY_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": self.project}

    def client(self, **kwargs):
        """A google-cloud-bigquery client on this emulator, with anonymous credentials."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
            **kwargs,
        )

    def reset(self) -> None:
        """Delete every dataset (with its tables) in the emulator's project."""
        from google.api_core.retry import Retry

        client = self.client()
        try:
            for dataset in client.list_datasets(retry=Retry(timeout=10)):
                client.delete_dataset(dataset.reference, delete_contents=True, retry=Retry(timeout=10))
        finally:
            client.close()
