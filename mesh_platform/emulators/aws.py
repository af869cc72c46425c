"""AWS: a moto server process (`moto_server`, moto 5.x from the dev dependencies)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._process import HOST, EmulatorError, ProcessService, SideEnvironmentMissing, http_status, repo_root


class MotoServer(ProcessService):
    """`moto_server -H 127.0.0.1 -p PORT`: every AWS API moto emulates, on one endpoint.

    moto accepts any credentials and stores Lake Formation grants without enforcing them.
    `reset()` clears all its state (between tests).
    """

    name = "moto"
    ready_timeout = 60.0

    def __init__(self, state_dir=None, port=None, region: str = "us-east-1"):
        super().__init__(state_dir, port)
        self.region = region
        self.access_key_id = "testing"
        self.secret_access_key = "testing"
        self.account_id = "123456789012"  # moto's default account

    def executable(self) -> Path:
        for folder in (Path(sys.executable).parent, repo_root() / ".venv" / "bin"):
            if (folder / "moto_server").exists():
                return folder / "moto_server"
        raise SideEnvironmentMissing(
            "moto_server is not installed (moto[server] is in the dev dependency group): run `make setup`"
        )

    def command(self) -> list[str]:
        return [str(self.executable()), "-H", HOST, "-p", str(self.port)]

    def is_ready(self) -> bool:
        return http_status(f"{self.endpoint}/moto-api/config") is not None

    def reset(self) -> None:
        """Forget every resource moto holds (POST /moto-api/reset)."""
        status = http_status(f"{self.endpoint}/moto-api/reset", method="POST", timeout=30)
        if status != 200:
            raise EmulatorError(f"moto reset answered {status}")

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str, **kwargs):
        """A boto3 client for `service` on this server (boto3 is imported here)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            **kwargs,
        )
