"""Azure Storage (Blob API): Azurite from npm, pinned in emulators/azurite/ (package-lock.json).

Blob API only: Azurite has no ADLS Gen2 DFS endpoint (no hierarchical namespace).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ._process import HOST, ProcessService, SideEnvironmentMissing, http_status, repo_root

# Azurite's well-known development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_blob() -> Path:
    """emulators/azurite/node_modules/.bin/azurite-blob, or a clear error saying how to build it."""
    folder = repo_root() / "emulators" / "azurite"
    exe = folder / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        raise SideEnvironmentMissing(
            f"Azurite is not installed in {folder}: run `make setup` (it runs `npm ci` there)"
        )
    if shutil.which("node") is None:
        raise SideEnvironmentMissing("Azurite needs Node.js (`node` is not on PATH): run `make setup`")
    return exe


class Azurite(ProcessService):
    """`azurite-blob` on 127.0.0.1, in memory, any API version accepted, telemetry off."""

    name = "azurite"
    ready_timeout = 60.0

    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def command(self) -> list[str]:
        return [
            str(azurite_blob()),
            "--blobHost", HOST,
            "--blobPort", str(self.port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        # Any HTTP answer (403 without credentials) means the blob service listens.
        return http_status(f"{self.endpoint}/") is not None

    @property
    def blob_endpoint(self) -> str:
        return f"{self.endpoint}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def client(self, **kwargs):
        """An azure-storage-blob BlobServiceClient on this Azurite."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)

    def reset(self) -> None:
        """Delete every container."""
        with self.client() as service:
            for container in service.list_containers():
                service.delete_container(container.name)
