"""Iceberg tables through pyiceberg: one table per product, in the catalog its contract names
for the active environment (see places).

Locally the catalog is a SQLite file and the data Parquet files under MESH_HOME, so any number of
processes read while one writes; with MESH_INSTANCE=postgres the same SQL catalog lives in
PostgreSQL (its URL given), so that processes on several machines share it, the files staying
under a home they share; locations are relative to the home (see fileio), so a home can
be copied or moved. On AWS the catalog is the domain's Glue database and the data live in S3:
DuckDB writes each new version locally, the audit reads it there, and only an audited file is
uploaded (multipart, by boto3's managed transfer) and committed. Commits are optimistic; a
conflicting commit (two locations publishing at once) is retried on a freshly loaded table.

A writer never deletes a file a commit may name: once a commit has been attempted, the catalog
may name any file it was given, and a writer interrupted at the wrong moment cannot know. What an
interrupted or failed publish leaves behind is an orphan, removed by maintenance
(mesh_platform.maintenance) once it is older than a safety window.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mesh_platform import faults, fileio

if TYPE_CHECKING:
    import pyarrow as pa  # a second on import: loaded by the functions that need it

COMMIT_ATTEMPTS = 12
UNREACHABLE_SECONDS = 10.0  # a database server restarting is waited for this long
WAREHOUSE = "warehouse"
CATALOG_NAME = "mesh"  # the local SQL catalog's name in its database (ADLS tables share the file)
# Each commit writes a new metadata file; the table keeps this many earlier ones in its log
# (time travel to them). Maintenance removes those that dropped out of the log.
METADATA_VERSIONS_KEPT = 10
TABLE_PROPERTIES = {"write.metadata.previous-versions-max": str(METADATA_VERSIONS_KEPT)}
GLUE_ATTEMPTS = 3


@dataclass(frozen=True)
class Snapshot:
    """A published version of a product: what a reader pins and what metadata records."""

    snapshot_id: int | None
    location: str
    files: tuple[str, ...]  # local paths, for DuckDB
    properties: dict[str, str]
    summary: dict[str, str]
    arrow_schema: pa.Schema
    timestamp_ms: int | None


class Head(NamedTuple):
    """A product's current snapshot as a step and `mesh status` need it, without its files."""

    snapshot_id: int
    summary: dict[str, str]
    timestamp_ms: int


@dataclass(frozen=True)
class DataFile:
    """A new data file: where DuckDB writes it, and the location a commit records."""

    path: Path
    uri: str


class Catalog:
    """The local catalog: an Iceberg SQL catalog (SQLite under the home, or the PostgreSQL
    database `url` names) and Parquet files under the home."""

    remote = False

    def __init__(self, home: Path | str, url: str | None = None):
        self.home = Path(home)
        self._url = url or None

    @functools.cached_property
    def _catalog(self):
        from pyiceberg.catalog.sql import SqlCatalog

        self.home.mkdir(parents=True, exist_ok=True)
        extra = {}
        if self._url is None:
            # WAL lets readers go on while another process commits. The mode is stored in the
            # file: whoever sets it first wins, and a busy database means someone already did.
            try:
                with sqlite3.connect(self.db_path, timeout=30) as con:
                    if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        con.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass
        else:
            extra["pool_pre_ping"] = "true"  # a pooled connection may predate a server restart
        (self.home / WAREHOUSE).mkdir(exist_ok=True)
        return retry(
            lambda: SqlCatalog(
                CATALOG_NAME,
                uri=self.url,
                warehouse=fileio.uri(WAREHOUSE),
                **extra,
                **{"py-io-impl": "mesh_platform.fileio.MeshFileIO", fileio.HOME_PROPERTY: str(self.home)},
            ),
            # Two processes creating the catalog's tables at once on PostgreSQL: one of them gets
            # a duplicate-table (or duplicate type) error, and the tables exist on its next try.
            also=_creation_races(),
            what=f"the Iceberg catalog at {self.describe()}",
        )

    @property
    def db_path(self) -> Path:
        """The SQLite file of the local catalog (not used when the catalog is in PostgreSQL)."""
        return self.home / "catalog.db"

    @property
    def url(self) -> str:
        """The catalog database's SQLAlchemy URL: where the grants live too."""
        return self._url or f"sqlite:///{self.db_path}"

    def describe(self) -> str:
        from mesh_platform.deployment import redacted

        return redacted(self._url) if self._url else str(self.db_path)

    def _retry(self, fn):
        return retry(fn, what=f"the Iceberg catalog at {self.describe()}")

    def wait_reachable(self, timeout: float) -> bool:
        """Until the catalog's database answers again (True), or `timeout` seconds (False)."""
        from sqlalchemy import text

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._catalog.engine.connect() as con:
                    con.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - whatever the driver says, it does not answer yet
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.5)

    def table_location(self, namespace: str, name: str) -> str:
        return fileio.uri(f"{WAREHOUSE}/{namespace}/{name}")

    def new_data_file(self, namespace: str, name: str, location: str | None = None) -> DataFile:
        """Where a new version's data file is written before it is audited and committed.
        Until a commit names it, no reader sees it."""
        folder = self.home / WAREHOUSE / namespace / name / "data"
        folder.mkdir(parents=True, exist_ok=True)
        file = f"mesh-{uuid.uuid4()}.parquet"
        return DataFile(folder / file, fileio.uri(f"{WAREHOUSE}/{namespace}/{name}/data/{file}"))

    def filesystem(self):
        """The pyarrow filesystem of the table files, and how a location maps to a path in it."""
        from pyarrow import fs

        return fs.LocalFileSystem(), self.local_path

    def _upload(self, files: list[DataFile]) -> None:
        """Local files are committed where DuckDB wrote them."""

    def unfinished_uploads(self, location: str, older_than: float, abort: bool) -> list[tuple[str, int]]:
        """Uploads under `location` begun before `older_than` (epoch seconds) and never finished:
        (path as `filesystem()` names it, bytes stored), aborted with `abort`. Local files are
        written in place: none."""
        return []

    def publish(
        self,
        namespace: str,
        name: str,
        files: list[DataFile],
        properties: dict[str, str],
        snapshot_properties: dict[str, str],
        location: str | None = None,
    ) -> Snapshot:
        """Commit `files` as the table's whole new current snapshot, atomically. The files are
        registered where they are, not copied, and never deleted here (see the module doc)."""
        import pyarrow.parquet as pq
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
        from pyiceberg.expressions import AlwaysTrue
        from sqlalchemy.exc import IntegrityError

        catalog = self._catalog
        ident = f"{namespace}.{name}"
        uris = [f.uri for f in files]
        # Every column optional in the table: a later version may hold nulls this one lacks.
        schema = _nullable(pq.read_schema(files[0].path))
        # Created on first publish only: creating writes a metadata file even when the table
        # exists. Two processes may both see it missing: the loser gets the catalog's unique-key
        # violation rather than "already exists"; either way it exists.
        if not self._retry(lambda: catalog.namespace_exists(namespace)):
            try:
                self._retry(lambda: catalog.create_namespace(namespace))
            except (NamespaceAlreadyExistsError, IntegrityError):
                pass
        if not self._retry(lambda: catalog.table_exists(ident)):
            try:
                self._retry(lambda: catalog.create_table(
                    ident, schema=schema, location=location or self.table_location(namespace, name),
                    properties={**TABLE_PROPERTIES, **properties},
                ))
            except (TableAlreadyExistsError, IntegrityError):
                pass
        self._upload(files)  # into the table's location, which exists from here on

        attempted = False

        def commit():
            nonlocal attempted
            table = catalog.load_table(ident)
            # A commit whose answer was lost (the database server went away while committing) may
            # have landed: then this run's version is current, and committing it again would fail.
            if attempted and _landed(table, snapshot_properties.get("mesh.run_id"), uris):
                return
            attempted = True
            with table.transaction() as tx:
                # Schema evolution: columns a new contract version adds are added here.
                with tx.update_schema() as update:
                    update.union_by_name(schema)
                tx.set_properties({**TABLE_PROPERTIES, **properties})
                if table.current_snapshot() is not None:
                    tx.delete(AlwaysTrue(), snapshot_properties=snapshot_properties)
                tx.add_files(uris, snapshot_properties=snapshot_properties)
                faults.point("commit")  # manifests written, the catalog not yet pointed at them

        self._retry(commit)
        faults.point("read-back")  # committed: readers see the new version from here on
        return self.current(namespace, name)

    def current(self, namespace: str, name: str, snapshot_id: int | None = None) -> Snapshot | None:
        """The current (or a given) snapshot of a product; None if it was never published."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        ident = f"{namespace}.{name}"
        try:
            table = self._retry(lambda: self._catalog.load_table(ident))
        except (NoSuchTableError, NoSuchNamespaceError):
            return None
        snap = table.snapshot_by_id(snapshot_id) if snapshot_id else table.current_snapshot()
        if snapshot_id and snap is None:
            raise LookupError(f"{ident} has no snapshot {snapshot_id}")
        files: list[str] = []
        if snap is not None:
            for task in table.scan(snapshot_id=snap.snapshot_id).plan_files():
                if task.delete_files:
                    raise NotImplementedError(f"{ident}: delete files are not expected")
                files.append(self.local_path(task.file.file_path))
        schema = table.schemas()[snap.schema_id] if snap and snap.schema_id is not None else table.schema()
        return Snapshot(
            snapshot_id=snap.snapshot_id if snap else None,
            location=table.location(),
            files=tuple(files),
            properties=dict(table.properties),
            summary=dict(snap.summary.additional_properties) if snap and snap.summary else {},
            arrow_schema=schema.as_arrow(),
            timestamp_ms=snap.timestamp_ms if snap else None,
        )

    def local_path(self, location: str) -> str:
        return fileio.local_path(location, str(self.home))

    def head(self, namespace: str, name: str) -> Head | None:
        """The current snapshot; None if it was never published. From the quick read where it
        answers: a step asks before its query, so pyiceberg can load while the query runs
        (mesh_platform.meanwhile), and `mesh status` never loads it."""
        meta = self.quick_metadata(namespace, name)
        if meta is None:
            snap = self.current(namespace, name)
            if snap is None or snap.snapshot_id is None or snap.timestamp_ms is None:
                return None
            return Head(snap.snapshot_id, snap.summary, snap.timestamp_ms)
        current = meta.get("current-snapshot-id")
        snap = next((s for s in meta.get("snapshots", []) if s["snapshot-id"] == current), None)
        if snap is None:
            return None
        return Head(current, {k: v for k, v in snap.get("summary", {}).items() if k != "operation"}, snap["timestamp-ms"])

    def quick_metadata(self, namespace: str, name: str) -> dict | None:
        """A table's current Iceberg metadata, read straight from the SQLite catalog and the
        metadata file, without pyiceberg (half a second to import: `mesh status` and every code
        location's load ask). {} when there is no such table; None when this cannot answer (a
        PostgreSQL catalog, or anything unexpected): ask pyiceberg then."""
        if self._url is not None:
            return None
        if not self.db_path.exists():
            return {}
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as con:
                if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'iceberg_tables'").fetchone():
                    return {}
                row = con.execute(
                    "SELECT metadata_location FROM iceberg_tables"
                    " WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
                    (CATALOG_NAME, namespace, name),
                ).fetchone()
            if row is None:
                return {}
            path = self.local_path(row[0])
            raw = Path(path).read_bytes()
            return json.loads(gzip.decompress(raw) if path.endswith(".gz.metadata.json") else raw)
        except (sqlite3.Error, OSError, ValueError):
            return None

    def load_table(self, namespace: str, name: str):
        return self._retry(lambda: self._catalog.load_table(f"{namespace}.{name}"))

    def tables(self) -> list[tuple[str, str]]:
        """Every (namespace, table) in the catalog."""
        catalog = self._catalog
        return sorted(
            (ns[0], ident[-1])
            for ns in self._retry(catalog.list_namespaces)
            for ident in self._retry(lambda ns=ns: catalog.list_tables(ns))
        )

    def history(self, namespace: str, name: str) -> list[int]:
        """The published versions, oldest first. An overwrite commits a delete and an append
        snapshot atomically; only the last snapshot of each publish was ever current."""
        return [s.snapshot_id for s in published_snapshots(self.load_table(namespace, name))]


def _landed(table, run_id: str | None, uris: list[str]) -> bool:
    """Whether the table's current snapshot is this run's, holding these files."""
    current = table.current_snapshot()
    if run_id is None or current is None or not current.summary:
        return False
    if current.summary.additional_properties.get("mesh.run_id") != run_id:
        return False
    return set(uris) <= {task.file.file_path for task in table.scan().plan_files()}


def published_snapshots(table) -> list:
    """The snapshots that were current after a publish, oldest first (see Catalog.history)."""
    snapshots = table.snapshots()
    run = [s.summary.additional_properties.get("mesh.run_id") if s.summary else None for s in snapshots]
    return [
        s
        for i, s in enumerate(snapshots)
        if i + 1 == len(snapshots) or run[i] is None or run[i] != run[i + 1]
    ]


def _nullable(schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    def field(f: pa.Field) -> pa.Field:
        t = f.type
        if pa.types.is_struct(t):
            t = pa.struct([field(c) for c in t])
        elif pa.types.is_list(t):
            t = pa.list_(field(t.value_field))
        return f.with_type(t).with_nullable(True)

    return pa.schema([field(f) for f in schema])


class CatalogUnavailable(RuntimeError):
    """The catalog's database could not be reached: nothing was read or committed."""


def retry(fn, also: tuple = (), what: str = "the catalog"):
    """Retry commit conflicts and SQLite lock contention with jittered backoff. A publish
    replaces the whole table, so after a conflict the retry simply commits on the new head.
    A database server that does not answer (a PostgreSQL catalog whose server is down or
    restarting) is retried for UNREACHABLE_SECONDS, then CatalogUnavailable names it: a commit
    that never reached it changed nothing."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from sqlalchemy.exc import OperationalError

    attempt, unreachable_since = 0, None
    while True:
        try:
            return fn()
        except OperationalError as exc:
            if _unreachable(exc):
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_SECONDS:
                    reason = str(exc.orig or exc).strip().splitlines()[0]
                    raise CatalogUnavailable(
                        f"{what} did not answer for {UNREACHABLE_SECONDS:.0f}s ({reason}); nothing was committed to it"
                    ) from exc
                time.sleep(0.5)
                continue
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
        except (CommitFailedException, ValidationException, *also):
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
        time.sleep(random.uniform(0.05, 0.2) * 2 ** min(attempt, 4))
        attempt += 1


def _unreachable(exc) -> bool:
    """An OperationalError that says the server is gone, not that SQLite is busy."""
    return bool(getattr(exc, "connection_invalidated", False)) or any(
        s in str(exc.orig or exc) for s in (
            "could not connect", "Connection refused", "server closed the connection", "terminating connection",
            "the database system is", "connection to server", "no connection to the server",
        )
    )


def _creation_races() -> tuple:
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    return (IntegrityError, ProgrammingError)


def _s3_path(uri: str) -> str:
    """An S3 location as pyarrow's S3 filesystem names it: bucket/key."""
    return uri.removeprefix("s3://").removeprefix("s3a://")


class GlueCatalog(Catalog):
    """AWS: the Glue Data Catalog, data in S3. Endpoint and credentials are the SDKs' standard
    settings, so the same code reaches moto's server in tests and AWS in production."""

    remote = True

    def __init__(self, home: Path | str, region: str):
        super().__init__(home)
        self.region = region
        self._loaded: tuple | None = None

    def quick_metadata(self, namespace: str, name: str) -> dict | None:
        return None  # only Glue knows: ask it through pyiceberg

    @property
    def _catalog(self):
        """The pyiceberg Glue catalog for the current standard settings (a new endpoint or new
        credentials give a new one)."""
        from pyiceberg.catalog import load_catalog

        from mesh_platform.deployment import aws_settings

        aws = aws_settings(self.region)
        key = tuple(sorted(aws.items()))
        if self._loaded is None or self._loaded[0] != key:
            props = {f"s3.{k}": v for k, v in aws.items()}
            props |= {f"glue.{k}": v for k, v in aws.items()}
            # As boto3's default: a dead endpoint fails in seconds (pyiceberg's 10 take half a minute).
            props["glue.max-retries"] = GLUE_ATTEMPTS
            self._loaded = (key, load_catalog("glue", type="glue", **props))
        return self._loaded[1]

    def publish(self, namespace: str, name: str, files: list[DataFile], properties: dict[str, str],
                snapshot_properties: dict[str, str], location: str | None = None) -> Snapshot:
        """As Catalog.publish; AWS unreachable or refusing gives one AwsError naming the endpoint
        and what became of the publish."""
        from mesh_platform.cloud.aws import AwsError, clear_errors

        try:
            with clear_errors(self.region, f"publishing {namespace}.{name}"):
                return super().publish(namespace, name, files, properties, snapshot_properties, location)
        except AwsError as exc:
            if exc.outcome:
                raise
            uploaded = not any(f.path.exists() for f in files)  # _upload removes each local copy it sent
            raise exc.with_outcome(
                "the commit did not complete; the previous snapshot stays current unless Glue received it "
                "before the connection failed (`mesh status` shows which)" if uploaded
                else "nothing was published; the previous snapshot stays current"
            ) from None

    def current(self, namespace: str, name: str, snapshot_id: int | None = None) -> Snapshot | None:
        from mesh_platform.cloud.aws import clear_errors

        with clear_errors(self.region, f"reading {namespace}.{name}"):
            return super().current(namespace, name, snapshot_id)

    def load_table(self, namespace: str, name: str):
        from mesh_platform.cloud.aws import clear_errors

        with clear_errors(self.region, f"loading {namespace}.{name}"):
            return super().load_table(namespace, name)

    def tables(self) -> list[tuple[str, str]]:
        from mesh_platform.cloud.aws import clear_errors

        with clear_errors(self.region, "listing the Glue tables"):
            return super().tables()

    def describe(self) -> str:
        return f"AWS Glue ({self.region})"

    def table_location(self, namespace: str, name: str) -> str:
        raise ValueError(f"{namespace}.{name}: a Glue table's location comes from its contract's server")

    def new_data_file(self, namespace: str, name: str, location: str | None = None) -> DataFile:
        """Written locally (DuckDB cannot write to S3 here), audited there, uploaded at publish."""
        folder = self.home / "tmp" / "staging"
        folder.mkdir(parents=True, exist_ok=True)
        file = f"mesh-{uuid.uuid4()}.parquet"
        return DataFile(folder / file, f"{location.rstrip('/')}/data/{file}")

    def filesystem(self):
        from pyarrow import fs

        from mesh_platform.deployment import aws_settings

        aws = aws_settings(self.region)
        endpoint = aws.get("endpoint")
        s3 = fs.S3FileSystem(
            region=aws["region"], access_key=aws.get("access-key-id"), secret_key=aws.get("secret-access-key"),
            session_token=aws.get("session-token"),
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme=endpoint.split("://", 1)[0] if endpoint else "https",
        )
        return s3, _s3_path

    def local_path(self, location: str) -> str:
        return location  # files stay in S3: read through filesystem()

    def _upload(self, files: list[DataFile]) -> None:
        """Each audited file to its S3 location, then the local copy goes: no commit names it.
        boto3's managed transfer sends large files in 8 MiB parts, several at once, read from the
        file as each request goes out: on moto, half the time of pyarrow's S3 filesystem, without
        the parts pyarrow holds in memory (BENCHMARKS.md). Its transfer manager, unlike
        `upload_file`, raises botocore's own errors, which clear_errors names."""
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        from mesh_platform.cloud.aws import AwsError, clear_errors, client

        try:
            with clear_errors(self.region, f"uploading {files[0].uri if files else 'nothing'}", service="s3"):
                with create_transfer_manager(client("s3", self.region), TransferConfig()) as transfers:
                    for f in files:
                        bucket, _, key = _s3_path(f.uri).partition("/")
                        transfers.upload(str(f.path), bucket, key).result()
                        f.path.unlink()
        except AwsError as exc:
            # No commit was attempted: no snapshot names these files. The local copies go; what
            # reached S3 (an object, or the parts of an unfinished upload) is an orphan that
            # maintenance removes.
            for f in files:
                f.path.unlink(missing_ok=True)
            raise exc.with_outcome("nothing was published; the previous snapshot stays current") from None

    def unfinished_uploads(self, location: str, older_than: float, abort: bool) -> list[tuple[str, int]]:
        """Multipart uploads cut off between two parts (the endpoint or this process went away,
        and so did the abort): S3 keeps and bills their parts, yet lists no object for them."""
        from mesh_platform.cloud.aws import clear_errors, client

        bucket, _, prefix = _s3_path(location).partition("/")
        s3 = client("s3", self.region)
        found = []
        with clear_errors(self.region, f"listing the unfinished uploads under {location}", service="s3"):
            pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
            for upload in (u for page in pages for u in page.get("Uploads", [])):
                if upload["Initiated"].timestamp() >= older_than:
                    continue  # maybe a publish in progress
                key, upload_id = upload["Key"], upload["UploadId"]
                parts = s3.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id)
                size = sum(part["Size"] for page in parts for part in page.get("Parts", []))
                if abort:
                    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                found.append((f"{bucket}/{key}", size))
        return found
