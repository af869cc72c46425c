"""Iceberg tables through pyiceberg: one namespace per domain, one table per product.

Locally the catalog is a SQLite file and the data Parquet files under MESH_HOME, so any
number of processes read while one writes. Commits are optimistic; a conflicting commit
(two locations publishing at once) is retried on a freshly loaded table.
"""

from __future__ import annotations

import functools
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa

COMMIT_ATTEMPTS = 12


@dataclass(frozen=True)
class Snapshot:
    """A published version of a product: what a reader pins and what metadata records."""

    snapshot_id: int | None
    location: str
    files: tuple[str, ...]
    properties: dict[str, str]
    summary: dict[str, str]
    arrow_schema: pa.Schema
    timestamp_ms: int | None


class Catalog:
    def __init__(self, home: Path | str):
        self.home = Path(home)

    @functools.cached_property
    def _catalog(self):
        from pyiceberg.catalog.sql import SqlCatalog

        self.home.mkdir(parents=True, exist_ok=True)
        db = self.home / "catalog.db"
        # WAL lets readers go on while another process commits. The mode is stored in the file:
        # whoever sets it first wins, and a busy database means someone already did.
        try:
            with sqlite3.connect(db, timeout=30) as con:
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass
        warehouse = self.home / "warehouse"
        warehouse.mkdir(exist_ok=True)
        return _retry(
            lambda: SqlCatalog(
                "mesh", uri=f"sqlite:///{db}", warehouse=warehouse.as_uri()
            )
        )

    def publish(
        self,
        namespace: str,
        name: str,
        data: pa.Table,
        properties: dict[str, str],
        snapshot_properties: dict[str, str],
    ) -> Snapshot:
        """Commit `data` as the table's new current snapshot, in one atomic commit."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
        from sqlalchemy.exc import IntegrityError

        catalog = self._catalog
        ident = f"{namespace}.{name}"
        # Created on first publish. Two processes may both see it missing: the loser gets the
        # catalog's unique-key violation rather than "already exists"; either way it exists now.
        try:
            _retry(lambda: catalog.create_namespace(namespace))
        except (NamespaceAlreadyExistsError, IntegrityError):
            pass
        try:
            _retry(lambda: catalog.create_table(ident, schema=data.schema, properties=properties))
        except (TableAlreadyExistsError, IntegrityError):
            pass

        def commit():
            table = catalog.load_table(ident)
            with table.transaction() as tx:
                # Schema evolution: columns a new contract version adds are added here.
                with tx.update_schema() as update:
                    update.union_by_name(data.schema)
                tx.set_properties(properties)
                if table.current_snapshot() is None:
                    tx.append(data, snapshot_properties=snapshot_properties)
                else:
                    tx.overwrite(data, snapshot_properties=snapshot_properties)

        _retry(commit)
        return self.current(namespace, name)

    def current(self, namespace: str, name: str, snapshot_id: int | None = None) -> Snapshot | None:
        """The current (or a given) snapshot of a product; None if it was never published."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        ident = f"{namespace}.{name}"
        try:
            table = _retry(lambda: self._catalog.load_table(ident))
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
                files.append(_local_path(task.file.file_path))
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

    def history(self, namespace: str, name: str) -> list[int]:
        """The published versions, oldest first. An overwrite commits a delete and an append
        snapshot atomically; only the last snapshot of each publish was ever current."""
        table = self._catalog.load_table(f"{namespace}.{name}")
        snapshots = table.snapshots()
        run = [s.summary.additional_properties.get("mesh.run_id") if s.summary else None for s in snapshots]
        return [
            s.snapshot_id
            for i, s in enumerate(snapshots)
            if i + 1 == len(snapshots) or run[i] is None or run[i] != run[i + 1]
        ]


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme in ("file", "") else uri


def _retry(fn):
    """Retry commit conflicts and SQLite lock contention with jittered backoff. A publish
    replaces the whole table, so after a conflict the retry simply commits on the new head."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from sqlalchemy.exc import OperationalError

    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return fn()
        except (CommitFailedException, ValidationException, OperationalError):
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.05, 0.2) * 2 ** min(attempt, 4))
