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
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mesh_platform.contracts import Contract

TABLE = "mesh_grants"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    product TEXT NOT NULL, reader TEXT NOT NULL, mask TEXT NOT NULL, exclude TEXT NOT NULL,
    contract_version TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (product, reader)
)
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
    """The grants table in the catalog's database: `db` is its SQLAlchemy URL (SQLite or
    PostgreSQL, see Catalog.url) or the path of a SQLite file."""

    def __init__(self, db: Path | str):
        self.url = db if isinstance(db, str) and "://" in db else f"sqlite:///{Path(db)}"
        if self.url.startswith("sqlite:///"):
            self.db_path: Path | None = Path(self.url.removeprefix("sqlite:///"))
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.db_path = None

    @property
    def _engine(self):
        return _engine(self.url)

    def _retry(self, fn):
        from mesh_platform.deployment import redacted
        from mesh_platform.storage import retry

        return retry(fn, what=f"the grants table at {redacted(self.url) if self.db_path is None else self.db_path}")

    def _rows(self, sql: str, **params) -> list:
        from sqlalchemy import text

        def query():
            with self._engine.connect() as con:
                return con.execute(text(sql), params).all()

        return self._retry(query)

    def lookup(self, product: str, reader: str) -> Grant | None:
        rows = self._rows(
            f"SELECT mask, exclude FROM {TABLE} WHERE product = :product AND reader = :reader",
            product=product, reader=reader,
        )
        return Grant(product, reader, tuple(json.loads(rows[0][0])), tuple(json.loads(rows[0][1]))) if rows else None

    def for_product(self, product: str) -> dict[str, Grant]:
        rows = self._rows(f"SELECT reader, mask, exclude FROM {TABLE} WHERE product = :product", product=product)
        return {r: Grant(product, r, tuple(json.loads(m)), tuple(json.loads(e))) for r, m, e in rows}

    def all(self) -> list[Grant]:
        rows = self._rows(f"SELECT product, reader, mask, exclude FROM {TABLE} ORDER BY 1, 2")
        return [Grant(p, r, tuple(json.loads(m)), tuple(json.loads(e))) for p, r, m, e in rows]

    def apply(self, contract: Contract) -> list[Change]:
        """Make the product's grants those of `contract`; returns what changed."""
        wanted = {g.reader: g for g in compile_grants(contract)}
        now = datetime.now(timezone.utc).isoformat()
        return self._retry(lambda: self._apply(contract, wanted, now))

    def _apply(self, contract: Contract, wanted: dict[str, Grant], now: str) -> list[Change]:
        from sqlalchemy import text

        # One writer at a time, reading and writing the same state: SQLite's BEGIN IMMEDIATE
        # (see _engine), PostgreSQL's table lock (readers go on).
        with self._engine.execution_options(mesh_write=True).begin() as con:
            if con.dialect.name == "postgresql":
                con.execute(text(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE"))
            rows = con.execute(
                text(f"SELECT reader, mask, exclude FROM {TABLE} WHERE product = :product"), {"product": contract.key}
            ).all()
            have = {r: Grant(contract.key, r, tuple(json.loads(m)), tuple(json.loads(e))) for r, m, e in rows}
            changes = [Change("revoke", g) for r, g in sorted(have.items()) if r not in wanted]
            changes += [Change("grant", g, have.get(r)) for r, g in sorted(wanted.items()) if have.get(r) != g]
            for change in changes:
                g = change.grant
                con.execute(
                    text(f"DELETE FROM {TABLE} WHERE product = :product AND reader = :reader"),
                    {"product": g.product, "reader": g.reader},
                )
                if change.action == "grant":
                    con.execute(
                        text(f"INSERT INTO {TABLE} VALUES (:product, :reader, :mask, :exclude, :version, :at)"),
                        {"product": g.product, "reader": g.reader, "mask": json.dumps(g.mask),
                         "exclude": json.dumps(g.exclude), "version": contract.version, "at": now},
                    )
        return changes


_ENGINES: dict = {}


def _engine(url: str):
    """One engine per database and process, its table created on first use."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = _create_engine(url)
    return engine


def _create_engine(url: str):
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        # pysqlite's own transaction handling begins lazily and deferred. The recipe from
        # SQLAlchemy's SQLite notes: the driver in autocommit, our own BEGIN; a writer's is
        # IMMEDIATE, so it holds the write lock from its first read.
        @event.listens_for(engine, "connect")
        def _autocommit(dbapi_connection, _record):
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("mesh_write") else "BEGIN")
    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    for attempt in range(5):
        try:
            with engine.begin() as con:
                con.execute(text(_SCHEMA))
            break
        except (IntegrityError, ProgrammingError):  # created at the same moment by another process
            if attempt == 4:
                raise
    return engine


def _forget_inherited_connections() -> None:
    """A forked process (a run's step) must not use its parent's pooled connections."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)
