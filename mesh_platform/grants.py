"""Read grants, compiled from the producers' contracts into the catalog.

The producer's current contract is the authority: its `roles` with `access: read` name the code
locations that may read the product, and per reader the columns masked or excluded. `apply`
makes the catalog's grants for a product exactly what its contract says (adding, changing and
revoking), without touching the data, and records each change in the audit log. Readers check
the catalog at every read, so a change takes effect at the next read.

Locally the grants are a table in the Iceberg catalog's SQLite database; in the cloud the same
grants are compiled into the cloud's own access control.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mesh_platform.contracts import Contract

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mesh_grants (
    product TEXT NOT NULL, reader TEXT NOT NULL, mask TEXT NOT NULL, exclude TEXT NOT NULL,
    contract_version TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (product, reader)
);
"""


@dataclass(frozen=True)
class Grant:
    product: str  # "domain/name"
    reader: str  # a code location
    mask: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def describe(self) -> str:
        hidden = [f"mask {list(self.mask)}"] * bool(self.mask) + [f"exclude {list(self.exclude)}"] * bool(self.exclude)
        return f"{self.reader} reads {self.product}" + (f" ({', '.join(hidden)})" if hidden else "")


@dataclass(frozen=True)
class Change:
    action: str  # "grant" (new or changed) or "revoke"
    grant: Grant
    before: Grant | None = None


def compile_grants(contract: Contract) -> list[Grant]:
    return [Grant(contract.key, g.reader, tuple(g.mask), tuple(g.exclude)) for g in contract.grants]


class GrantStore:
    def __init__(self, db_path: Path | str):
        self.db_path = Path(db_path)

    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        con.executescript(_SCHEMA)
        return con

    def lookup(self, product: str, reader: str) -> Grant | None:
        with closing(self._connect()) as con:
            row = con.execute(
                "SELECT mask, exclude FROM mesh_grants WHERE product = ? AND reader = ?", (product, reader)
            ).fetchone()
        return Grant(product, reader, tuple(json.loads(row[0])), tuple(json.loads(row[1]))) if row else None

    def for_product(self, product: str) -> dict[str, Grant]:
        with closing(self._connect()) as con:
            rows = con.execute("SELECT reader, mask, exclude FROM mesh_grants WHERE product = ?", (product,)).fetchall()
        return {r: Grant(product, r, tuple(json.loads(m)), tuple(json.loads(e))) for r, m, e in rows}

    def all(self) -> list[Grant]:
        with closing(self._connect()) as con:
            rows = con.execute("SELECT product, reader, mask, exclude FROM mesh_grants ORDER BY 1, 2").fetchall()
        return [Grant(p, r, tuple(json.loads(m)), tuple(json.loads(e))) for p, r, m, e in rows]

    def apply(self, contract: Contract) -> list[Change]:
        """Make the product's grants those of `contract`; returns what changed."""
        wanted = {g.reader: g for g in compile_grants(contract)}
        now = datetime.now(timezone.utc).isoformat()
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")  # one writer at a time: read and write the same state
            try:
                rows = con.execute(
                    "SELECT reader, mask, exclude FROM mesh_grants WHERE product = ?", (contract.key,)
                ).fetchall()
                have = {r: Grant(contract.key, r, tuple(json.loads(m)), tuple(json.loads(e))) for r, m, e in rows}
                changes = [Change("revoke", g) for r, g in sorted(have.items()) if r not in wanted]
                changes += [Change("grant", g, have.get(r)) for r, g in sorted(wanted.items()) if have.get(r) != g]
                for change in changes:
                    g = change.grant
                    con.execute("DELETE FROM mesh_grants WHERE product = ? AND reader = ?", (g.product, g.reader))
                    if change.action == "grant":
                        con.execute(
                            "INSERT INTO mesh_grants VALUES (?, ?, ?, ?, ?, ?)",
                            (g.product, g.reader, json.dumps(g.mask), json.dumps(g.exclude), contract.version, now),
                        )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return changes
