"""dagster-gcp's BigQueryResource, able to reach an emulator.

BigQueryResource has only project, location and credentials: the BigQuery SDK reads
BIGQUERY_EMULATOR_HOST itself, but would still look for application default credentials. With
an emulator configured (deployment.gcp_settings), the client gets anonymous credentials and
the emulator's endpoint; otherwise it is BigQueryResource's own client (application default
credentials). Importing google-cloud-bigquery takes about 1.7 s: this module is imported only
where a BigQuery resource is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster_gcp import BigQueryResource
from google.cloud import bigquery


class MeshBigQueryResource(BigQueryResource):
    """BigQuery for the platform: application default credentials, or an emulator's endpoint
    with anonymous credentials."""

    emulator_host: str | None = None  # BIGQUERY_EMULATOR_HOST; None in production
    retry_seconds: float = 60.0  # how long a call is retried on transient errors before it fails

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        if not self.emulator_host:
            with super().get_client() as client:
                yield client
            return
        from google.auth.credentials import AnonymousCredentials

        client = bigquery.Client(
            project=self.project,
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.emulator_host},
        )
        try:
            yield client
        finally:
            client.close()

    @property
    def where(self) -> str:
        """Which BigQuery, for error messages."""
        return f"the BigQuery emulator at {self.emulator_host}" if self.emulator_host else f"BigQuery (project {self.project})"
