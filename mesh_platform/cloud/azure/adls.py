"""ADLS Gen2 storage for products whose prod place is an ODCS `azure` server:

    servers:
      - {server: azure, type: azure, environment: prod, format: iceberg,
         location: "abfss://<filesystem>@<account>.dfs.core.windows.net/<path>"}

The product is an Iceberg table whose data and metadata live under that location. Its catalog
is the platform's SQL catalog: a second pyiceberg SqlCatalog, named `mesh_adls`, in the same
SQLite database as the local catalog (MESH_HOME/catalog.db; PostgreSQL when the platform scales
out), whose FileIO is fsspec's (adlfs) rather than the local one. Being a catalog of its own
keeps these tables out of the local catalog's listing (which local maintenance walks with the
local filesystem) and gives them a FileIO that speaks abfss://; pyiceberg's PyArrowFileIO cannot
(it fails on Azurite, and needs the DFS endpoint).

Write-audit-publish is the local one (storage.Catalog.publish), as for Glue: DuckDB writes the
new version to a local staging file, the audit reads it there, only an audited file is uploaded
into the table's data folder, then one atomic Iceberg commit names it. Nothing is deleted once a
commit was attempted; maintenance removes orphans (filesystem() serves it and the readers).

How the account is reached (deployment.azure_settings): AZURE_STORAGE_CONNECTION_STRING when set
(a key or SAS; Azurite's in tests), otherwise https://<account>.blob.core.windows.net with
DefaultAzureCredential. Each use first asks the account for its information, with no client
retries: a storage endpoint that is down or refuses the credentials fails at once with an error
naming the account and the product, instead of after the SDK's minute of retries.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mesh_platform.cloud import CloudError
from mesh_platform.contracts import Contract, ContractError, Server
from mesh_platform.storage import Catalog, DataFile, Snapshot, retry

if TYPE_CHECKING:
    from mesh_platform.places import Table

ADLS_CATALOG = "mesh_adls"  # the SqlCatalog's name in the shared catalog database
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_LOCATION = re.compile(
    r"^abfss://(?P<filesystem>[^@/]+)@(?P<account>[^./]+)\.dfs\.(?P<suffix>core\.[a-z.]+[a-z])/(?P<path>[^?#]*?)/?$"
)
_FILESYSTEM = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")  # Azure's container name rules
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
PROBE_ATTEMPTS = 3


class AzureStorageError(CloudError):
    """An Azure storage call failed; the message names the account, filesystem and product."""


@dataclass(frozen=True)
class AdlsLocation:
    """An ADLS Gen2 location: abfss://<filesystem>@<account>.dfs.<suffix>/<path>."""

    account: str
    filesystem: str
    path: str  # inside the filesystem, no leading or trailing slash
    suffix: str = "core.windows.net"

    @classmethod
    def parse(cls, location: str, where: str = "location") -> AdlsLocation:
        m = _LOCATION.match(location or "")
        if not m or not m["path"]:
            raise ValueError(
                f"{where}: '{location}' is not an ADLS Gen2 table location "
                "(abfss://<filesystem>@<account>.dfs.core.windows.net/<path>)"
            )
        if not _FILESYSTEM.match(m["filesystem"]):
            raise ValueError(f"{where}: '{m['filesystem']}' is not a valid filesystem (container) name: "
                             "3-63 lower-case letters, digits and single hyphens")
        if not _ACCOUNT.match(m["account"]):
            raise ValueError(f"{where}: '{m['account']}' is not a valid storage account name: 3-24 lower-case letters and digits")
        return cls(m["account"], m["filesystem"], m["path"].strip("/"), m["suffix"])

    @property
    def uri(self) -> str:
        return f"abfss://{self.filesystem}@{self.account}.dfs.{self.suffix}/{self.path}"

    @property
    def dfs_url(self) -> str:
        """The account's Data Lake endpoint, as Synapse names its default storage."""
        return f"https://{self.account}.dfs.{self.suffix}"

    @property
    def fs_path(self) -> str:
        """The location as adlfs (and the pyarrow filesystem over it) names it."""
        return f"{self.filesystem}/{self.path}"


def server_location(contract: Contract, server: Server) -> AdlsLocation:
    try:
        return AdlsLocation.parse(server.get("location"), "location")
    except ValueError as exc:
        raise ContractError(contract.path, f"servers ({server.name}).location", str(exc)) from None


def server_property(server: Server, name: str):
    """A customProperty of the server entry (e.g. synapseWorkspace)."""
    for prop in server.get("customProperties") or []:
        if prop.get("property") == name:
            return prop.get("value")
    return None


def _parse_connection_string(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


@dataclass(frozen=True)
class Connection:
    """How the platform reaches one storage account: the standard connection string when set,
    else the account's public endpoint with DefaultAzureCredential."""

    account: str  # as the contract's location names it
    connection_string: str | None = None

    @classmethod
    def for_account(cls, account: str) -> Connection:
        from mesh_platform.deployment import azure_settings

        conn = cls(account, azure_settings().get("connection-string"))
        named = conn._fields.get("AccountName")
        if conn.connection_string and named != account and not conn.emulated:
            raise AzureStorageError(
                f"AZURE_STORAGE_CONNECTION_STRING is for the storage account '{named}', but the product lives "
                f"in '{account}' (its contract's azure server): set the connection string of '{account}', or "
                "unset it to use DefaultAzureCredential"
            )
        return conn

    @functools.cached_property
    def _fields(self) -> dict[str, str]:
        return _parse_connection_string(self.connection_string or "")

    @property
    def blob_url(self) -> str:
        f = self._fields
        if f.get("BlobEndpoint"):
            return f["BlobEndpoint"].rstrip("/")
        protocol = f.get("DefaultEndpointsProtocol", "https")
        return f"{protocol}://{f.get('AccountName', self.account)}.blob.{f.get('EndpointSuffix', 'core.windows.net')}"

    @property
    def emulated(self) -> bool:
        """An emulator on loopback (Azurite): one account, whatever name a location gives."""
        return urlparse(self.blob_url).hostname in LOOPBACK

    def blob_resource(self):
        """dagster-azure's Blob Storage resource for the account (it reaches an emulator too)."""
        from dagster_azure.blob import (
            AzureBlobStorageDefaultCredential,
            AzureBlobStorageKeyCredential,
            AzureBlobStorageResource,
            AzureBlobStorageSASTokenCredential,
        )

        f = self._fields
        if f.get("AccountKey"):
            credential = AzureBlobStorageKeyCredential(key=f["AccountKey"])
        elif f.get("SharedAccessSignature"):
            credential = AzureBlobStorageSASTokenCredential(token=f["SharedAccessSignature"])
        else:
            credential = AzureBlobStorageDefaultCredential()
        return AzureBlobStorageResource(account_url=self.blob_url, credential=credential)

    def adls2_resource(self):
        """dagster-azure's ADLS Gen2 resource (DFS endpoint: real Azure only, no emulator has one)."""
        from dagster_azure.adls2 import ADLS2DefaultAzureCredential, ADLS2Key, ADLS2Resource

        key = self._fields.get("AccountKey")
        credential = ADLS2Key(key=key) if key else ADLS2DefaultAzureCredential(kwargs={})
        return ADLS2Resource(storage_account=self.account, credential=credential)

    def filesystem(self):
        """adlfs on the account (what pyiceberg's FsspecFileIO uses too)."""
        from adlfs import AzureBlobFileSystem

        if self.connection_string:
            return AzureBlobFileSystem(connection_string=self.connection_string)
        return AzureBlobFileSystem(account_name=self.account, anon=False)

    def fileio_properties(self) -> dict[str, str]:
        if self.connection_string:
            return {"adls.connection-string": self.connection_string}
        return {"adls.account-name": self.account}

    def check(self, what: str) -> dict:
        """The account's information (hierarchical namespace or not), or AzureStorageError
        saying why `what` cannot be done: endpoint down, credentials refused."""
        from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError

        for attempt in range(PROBE_ATTEMPTS):
            try:
                with self.blob_resource().get_client() as service:
                    return service.get_account_information(retry_total=0)
            except ServiceRequestError as exc:
                if attempt + 1 == PROBE_ATTEMPTS:
                    raise AzureStorageError(
                        f"{what}: the Azure storage account '{self.account}' does not answer at {self.blob_url} "
                        f"({PROBE_ATTEMPTS} attempts): {first_line(exc)}"
                    ) from None
                time.sleep(0.5)
            except HttpResponseError as exc:
                raise AzureStorageError(explain(exc, f"{what}: the Azure storage account '{self.account}'")) from None
            except AzureError as exc:  # e.g. DefaultAzureCredential found no identity
                raise AzureStorageError(f"{what}: the Azure storage account '{self.account}': {first_line(exc)}") from None
        raise AssertionError("unreachable")

    def hierarchical_namespace(self, what: str) -> bool:
        return bool(self.check(what).get("is_hns_enabled"))


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def explain(exc, subject: str) -> str:
    """An Azure HTTP error as a sentence about `subject`, with what to check."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None) or getattr(getattr(exc, "error", None), "code", None)
    code = getattr(code, "value", code)
    hint = ""
    if status == 403:
        hint = (": the credentials were refused (check the account key of AZURE_STORAGE_CONNECTION_STRING, or "
                "that the platform's identity holds Storage Blob Data Owner on the account)")
    elif status == 404:
        hint = ": not found"
    return f"{subject} answered HTTP {status} {code or ''}".rstrip() + (hint or f": {first_line(exc)}")


@functools.cache
def _adls_handler_class():
    from pyarrow.fs import FSSpecHandler

    class AdlsHandler(FSSpecHandler):
        """adlfs reports a blob's modification time as `last_modified`, pyarrow's handler reads
        `mtime`: without this, every file would look infinitely old to maintenance, which keeps
        young orphans (a publish in progress) only by their age."""

        @staticmethod
        def _create_file_info(path, info):
            if info.get("mtime") is None and info.get("last_modified") is not None:
                info = {**info, "mtime": info["last_modified"]}
            return FSSpecHandler._create_file_info(path, info)

    return AdlsHandler


class AdlsCatalog(Catalog):
    """The `mesh_adls` SQL catalog (same database as the local one), tables on ADLS Gen2."""

    remote = True

    def __init__(self, home: Path | str, connection: Connection, env: str):
        super().__init__(home)
        self.connection, self.env = connection, env

    @functools.cached_property
    def _catalog(self):
        from pyiceberg.catalog.sql import SqlCatalog

        self.home.mkdir(parents=True, exist_ok=True)
        try:  # WAL, as storage.Catalog sets it: readers go on while another process commits
            with sqlite3.connect(self.db_path, timeout=30) as con:
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass
        return retry(lambda: SqlCatalog(
            ADLS_CATALOG, uri=f"sqlite:///{self.db_path}",
            **{"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO", **self.connection.fileio_properties()},
        ))

    def quick_metadata(self, namespace: str, name: str) -> dict | None:
        return None  # the metadata files are in ADLS: ask through pyiceberg

    def table_location(self, namespace: str, name: str) -> str:
        raise ValueError(f"{namespace}.{name}: an ADLS table's location comes from its contract's azure server")

    def new_data_file(self, namespace: str, name: str, location: str | None = None) -> DataFile:
        """Written locally (DuckDB cannot write to ADLS), audited there, uploaded at publish."""
        folder = self.home / "tmp" / "staging"
        folder.mkdir(parents=True, exist_ok=True)
        file = f"mesh-{uuid.uuid4()}.parquet"
        return DataFile(folder / file, f"{location.rstrip('/')}/data/{file}")

    def filesystem(self):
        """A pyarrow filesystem over adlfs, for readers and maintenance; locations map to
        '<filesystem>/<path>' in it."""
        from pyarrow.fs import PyFileSystem

        self.connection.check("reading ADLS")
        return PyFileSystem(_adls_handler_class()(self.connection.filesystem())), self.fs_path

    def fs_path(self, uri: str) -> str:
        location = AdlsLocation.parse(uri, "file location")
        if location.account != self.connection.account:
            raise AzureStorageError(f"{uri}: not in the storage account '{self.connection.account}'")
        return location.fs_path

    def local_path(self, location: str) -> str:
        return location  # files stay in ADLS: read through filesystem()

    def _upload(self, files: list[DataFile]) -> None:
        """Each audited file to its ADLS location, then the local copy goes: no commit names it."""
        fs = self.connection.filesystem()
        for f in files:
            try:
                fs.put_file(str(f.path), self.fs_path(f.uri))
            except Exception as exc:  # adlfs raises the SDK's errors and OSErrors alike
                raise AzureStorageError(f"uploading {f.uri}: {first_line(exc)}") from exc
            f.path.unlink()

    # Every entry point first checks the account answers: the SDK would retry for a minute.
    def publish(self, namespace: str, name: str, *args, **kwargs) -> Snapshot:
        self.connection.check(f"publishing {namespace}/{name}")
        return super().publish(namespace, name, *args, **kwargs)

    def current(self, namespace: str, name: str, snapshot_id: int | None = None) -> Snapshot | None:
        self.connection.check(f"reading {namespace}/{name}")
        return super().current(namespace, name, snapshot_id)

    def load_table(self, namespace: str, name: str):
        self.connection.check(f"loading {namespace}/{name}")
        return super().load_table(namespace, name)


@functools.cache
def _catalog(home: str, account: str, connection_string: str | None, env: str) -> AdlsCatalog:
    # Keyed on the settings too: a process whose settings change gets a catalog that uses them.
    return AdlsCatalog(home, Connection(account, connection_string), env)


def adls_table(contract: Contract, server: Server, env: str, home: Path | str) -> Table:
    """The product's Iceberg table on ADLS Gen2, from its contract's azure server."""
    from mesh_platform.deployment import deployment_file
    from mesh_platform.places import Table

    location = server_location(contract, server)
    if server.get("format") != "iceberg":
        raise ContractError(contract.path, f"servers ({server.name}).format",
                            f"'{server.get('format')}': an ADLS product is an Iceberg table (format: iceberg)")
    account = (deployment_file(env).get("azure") or {}).get("storage_account")
    if account != location.account:
        raise ContractError(
            contract.path, f"servers ({server.name}).location",
            f"storage account '{location.account}' is not the {env} deployment's ({account!r} in "
            f"mesh_platform/deployments/{env}.yaml azure.storage_account)",
        )
    connection = Connection.for_account(location.account)
    catalog = _catalog(str(home), location.account, connection.connection_string, env)
    return Table(contract.key, "azure", catalog, contract.domain, contract.name, location.uri)
