"""The DuckDB a product's code and its contract's rules run on: it reads only what the step may
read and writes only the step's output and its own scratch folder.

DuckDB enforces the file boundary: `allowed_paths` lists the step's landing files, the files of
the snapshots it was granted and the platform's own output file, `allowed_directories` the step's
scratch folder (ctx.stage writes there, nothing else does); external access is off and the
configuration locked, so no ATTACH, INSTALL, LOAD or SET can undo it. SQL from product code and
contracts must be exactly one SELECT (checked on DuckDB's parse, not by pattern), and product
code holds relations through `Relation`, which offers no method that writes or runs other SQL.
Python replacement scans are off, so SQL cannot reach the step's Python objects either.

The boundary is DuckDB's, within a Python process: Python code in a product can still do what
any Python can. In the cloud the same grants are enforced by the cloud itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

# Names product code may not take for its views: the platform's own.
RESERVED_VIEW = re.compile(r"^(mesh_|upstream_)", re.IGNORECASE)
_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SandboxViolation(ValueError):
    pass


class NotAllowed(SandboxViolation, AttributeError):
    """A relation method product code may not use (an AttributeError, as Python expects)."""


def lock(con: duckdb.DuckDBPyConnection, readable: Iterable[str | Path], writable: Iterable[str | Path] = (),
         scratch: Path | None = None) -> None:
    """Restrict `con` to reading `readable` and writing `writable` (DuckDB writes through a
    `tmp_` sibling that it renames, so that one is allowed too), and to the step's own `scratch`
    folder, for good."""
    paths = {str(Path(p).resolve()) for p in readable}
    for p in writable:
        p = Path(p).resolve()
        paths |= {str(p), str(p.with_name(f"tmp_{p.name}"))}
    con.execute(f"SET allowed_paths = [{_sql_list(sorted(paths))}]")
    if scratch is not None:
        con.execute(f"SET allowed_directories = [{_sql_list([f'{Path(scratch).resolve()}/'])}]")
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps in and out are UTC
    con.execute("SET python_enable_replacements = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _sql_list(items: list[str]) -> str:
    return ", ".join("'" + p.replace("'", "''") + "'" for p in items)


def check_view_name(name: str) -> None:
    if not _VIEW_NAME.match(name) or RESERVED_VIEW.match(name):
        raise SandboxViolation(f"view name '{name}': a plain identifier not starting with mesh_ or upstream_")


def check_select(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    """Raise SandboxViolation unless `sql` is exactly one SELECT statement."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SandboxViolation(f"{what}: not valid SQL: {_first_line(exc)}") from None
    kinds = [s.type.name for s in statements]
    if kinds != ["SELECT"]:
        raise SandboxViolation(f"{what}: must be exactly one SELECT statement, got {kinds or 'nothing'}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


class Relation:
    """A DuckDB relation as product code holds it: it can be shaped, joined, named as a view and
    fetched, but not written anywhere and not used to run other SQL."""

    __slots__ = ("_rel",)
    # Methods returning a relation, wrapped again.
    _SHAPING = frozenset({
        "aggregate", "count", "describe", "distinct", "except_", "filter", "intersect", "join", "limit",
        "order", "project", "select", "set_alias", "sort", "union", "cross", "max", "min", "sum", "avg",
    })
    # Methods returning plain Python values or frames.
    _READING = frozenset({
        "alias", "columns", "types", "dtypes", "shape", "fetchall", "df", "fetchdf",
        "arrow", "fetch_arrow_table", "to_arrow_table", "pl", "show", "sql_query", "explain",
    })

    def __init__(self, rel: duckdb.DuckDBPyRelation):
        object.__setattr__(self, "_rel", rel)

    def to_view(self, name: str, replace: bool = True) -> Relation:
        check_view_name(name)
        return Relation(self._rel.to_view(name, replace=replace))

    def __getattr__(self, name: str):
        if name in self._READING:
            return getattr(self._rel, name)
        if name in self._SHAPING:
            method = getattr(self._rel, name)

            def shaped(*args, **kwargs):
                args = [a._rel if isinstance(a, Relation) else a for a in args]
                kwargs = {k: v._rel if isinstance(v, Relation) else v for k, v in kwargs.items()}
                out = method(*args, **kwargs)
                return Relation(out) if _is_relation(out) else out

            return shaped
        raise NotAllowed(
            f"Relation.{name} is not available to product code: a product returns its output and "
            "the platform writes it (allowed: to_view and the shaping and fetching methods)"
        )

    def __setattr__(self, name, value):
        raise AttributeError("Relation is read-only")

    def __len__(self) -> int:
        return len(self._rel)

    def __repr__(self) -> str:
        return repr(self._rel)


def _is_relation(value) -> bool:
    import duckdb

    return isinstance(value, duckdb.DuckDBPyRelation)


def unwrap(value):
    """The DuckDB relation behind a product's output, for the platform."""
    return object.__getattribute__(value, "_rel") if isinstance(value, Relation) else value
