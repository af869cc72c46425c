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
from dataclasses import dataclass
from pathlib import Path

from mesh_platform.audit import AuditLog
from mesh_platform.grants import Grant, GrantStore
from mesh_platform.storage import Catalog, Snapshot


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


class Reader:
    def __init__(self, catalog: Catalog, grants: GrantStore, audit: AuditLog, consumer: str, run_id: str):
        self.catalog, self.grants, self.audit = catalog, grants, audit
        self.consumer, self.run_id = consumer, run_id
        self.scratch = catalog.home / "tmp" / "inputs"

    def read(self, key: str, snapshot_id: int | None = None) -> Granted:
        domain, name = key.split("/")
        snapshot = self.catalog.current(domain, name, snapshot_id)
        if snapshot is None or snapshot.snapshot_id is None:
            raise LookupError(f"product {key} has not been published yet")
        grant = None
        if self.consumer != domain:
            grant = self.grants.lookup(key, self.consumer)
            if grant is None:
                readers = sorted(self.grants.for_product(key))
                self.audit.append("read_denied", self.consumer, key, snapshot_id=str(snapshot.snapshot_id),
                                  run_id=self.run_id, reason="no grant")
                raise AccessDenied(
                    key, f"{self.consumer} may not read {key}: its contract grants read access to "
                    f"{readers or 'its own domain only'}"
                )
        files = snapshot.files
        if grant and (grant.mask or grant.exclude) and files:
            files = (self._hidden_copy(snapshot, grant),)
        self.audit.append(
            "read", self.consumer, key, snapshot_id=str(snapshot.snapshot_id), run_id=self.run_id,
            **({"masked": list(grant.mask), "excluded": list(grant.exclude)} if grant else {}),
        )
        return Granted(key, snapshot, files, grant)

    def _hidden_copy(self, snapshot: Snapshot, grant: Grant) -> str:
        """The snapshot with masked columns as keyed SHA-256 hashes (the same value always hashes
        the same, so joins on it still work) and excluded columns dropped."""
        import duckdb

        self.scratch.mkdir(parents=True, exist_ok=True)
        out = self.scratch / f"{self.run_id}-{grant.product.replace('/', '.')}-{uuid.uuid4().hex[:8]}.parquet"
        columns = []
        for name in snapshot.arrow_schema.names:
            if name in grant.exclude:
                continue
            if name in grant.mask:
                columns.append(f"sha256($key || CAST(\"{name}\" AS VARCHAR)) AS \"{name}\"")
            else:
                columns.append(f'"{name}"')
        with duckdb.connect() as con:
            con.execute(
                f"COPY (SELECT {', '.join(columns)} FROM read_parquet($files, union_by_name = true)) "
                f"TO '{out}' (FORMAT parquet)",
                {"files": list(snapshot.files), "key": mask_key(self.catalog.home)},
            )
        return str(out)


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
