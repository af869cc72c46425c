"""Reading another product: its published snapshot, for the reading code location only if the
producer's grants allow it, with the columns the grant hides masked or left out, and every read
and denial in the audit log.

Who reads is the code location, fixed by the platform's resource, not something product code
chooses. A masked or reduced input is a copy the platform writes to the step's scratch folder,
and only that copy is open to the step's sandboxed DuckDB, so hidden values are out of reach.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mesh_platform.audit import AuditLog
from mesh_platform.grants import Grant, GrantStore
from mesh_platform.storage import Snapshot


class AccessDenied(PermissionError):
    def __init__(self, product: str, message: str):
        self.product = product
        super().__init__(message)


@dataclass(frozen=True)
class Granted:
    key: str
    snapshot: Snapshot
    files: tuple[str, ...]  # what the step may read: the snapshot's own files or a masked copy
    grant: Grant | None  # None when the reader is the product's own domain
    filesystem: object = None  # a pyarrow filesystem when the files are in a cloud, else None

    def relation(self, con):
        """The input as a relation on `con`: local files through DuckDB (its sandbox lists them),
        cloud files as an Arrow dataset the platform opened."""
        if self.filesystem is None:
            return con.read_parquet(list(self.files), union_by_name=True)
        import pyarrow.dataset as ds

        return con.from_arrow(ds.dataset(list(self.files), filesystem=self.filesystem, format="parquet"))


class Reader:
    def __init__(self, table_of: Callable, grants: GrantStore, audit: AuditLog, consumer: str, run_id: str, home: Path):
        self.table_of, self.grants, self.audit = table_of, grants, audit
        self.consumer, self.run_id = consumer, run_id
        self.home = home
        self.scratch = home / "tmp" / "inputs"

    def read(self, key: str, snapshot_id: int | None = None) -> Granted:
        domain = key.split("/")[0]
        table = self.table_of(key)
        snapshot = table.current(snapshot_id)
        if snapshot is None or snapshot.snapshot_id is None:
            raise LookupError(f"product {key} has not been published yet")
        grant = None
        if self.consumer != domain:
            grant = self.grants.lookup(key, self.consumer)
            denial = None if grant else "no grant"
            if grant and table.kind != "local":
                denial = _cloud_denial(table, self.consumer)  # the cloud's own grants must agree
            if denial:
                readers = sorted(self.grants.for_product(key))
                self.audit.append("read_denied", self.consumer, key, snapshot_id=str(snapshot.snapshot_id),
                                  run_id=self.run_id, reason=denial)
                raise AccessDenied(
                    key, f"{self.consumer} may not read {key}: "
                    + (f"its contract grants read access to {readers or 'its own domain only'}" if not grant else denial)
                )
        files, filesystem = snapshot.files, None
        if table.catalog.remote:
            filesystem, to_path = table.catalog.filesystem()
            files = tuple(to_path(f) for f in files)
        granted = Granted(key, snapshot, files, grant, filesystem)
        if grant and (grant.mask or grant.exclude) and files:
            granted = Granted(key, snapshot, (self._hidden_copy(granted, grant),), grant)
        self.audit.append(
            "read", self.consumer, key, snapshot_id=str(snapshot.snapshot_id), run_id=self.run_id,
            **({"masked": list(grant.mask), "excluded": list(grant.exclude)} if grant else {}),
        )
        return granted

    def _hidden_copy(self, granted: Granted, grant: Grant) -> str:
        """The snapshot with masked columns as keyed SHA-256 hashes (the same value always hashes
        the same, so joins on it still work) and excluded columns dropped."""
        import duckdb

        self.scratch.mkdir(parents=True, exist_ok=True)
        out = self.scratch / f"{self.run_id}-{grant.product.replace('/', '.')}-{uuid.uuid4().hex[:8]}.parquet"
        columns = []
        for name in granted.snapshot.arrow_schema.names:
            if name in grant.exclude:
                continue
            if name in grant.mask:
                columns.append(f"sha256($key || CAST(\"{name}\" AS VARCHAR)) AS \"{name}\"")
            else:
                columns.append(f'"{name}"')
        with duckdb.connect() as con:
            granted.relation(con).to_view("mesh_input")
            con.execute(
                f"COPY (SELECT {', '.join(columns)} FROM mesh_input) TO '{out}' (FORMAT parquet)",
                {"key": mask_key(self.home)},
            )
        return str(out)


def _cloud_denial(table, consumer: str) -> str | None:
    """Why the cloud where the product lives would refuse `consumer` (None: it allows)."""
    if table.kind == "glue":
        from mesh_platform.cloud.aws import lake_formation_denial

        return lake_formation_denial(table, consumer)
    if table.kind == "azure":
        from mesh_platform.cloud.azure import adls_denial

        return adls_denial(table, consumer)
    return None


def mask_key(home: Path) -> str:
    """The home's secret for masking: unknown to readers, so a hash cannot be reversed by hashing
    guesses. Created once; every reader of this home masks with it."""
    path = home / "secrets" / "mask.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under another name, then linked in: a reader never sees it half written,
        # and of two processes creating it at once, one link wins and both use that key.
        tmp = path.with_name(f".mask.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
