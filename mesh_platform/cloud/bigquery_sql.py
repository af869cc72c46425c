"""BigQuery from the mesh's own definitions, so that nothing about a product is written twice:

- column types from its contract (DuckDB types, as DuckDB itself parses them, mapped to BigQuery's);
- its SQL from its `@product` function, run in a capture mode that records the views and the query
  it builds instead of running them, then transpiled from DuckDB's dialect with sqlglot;
- its contract's checks as the platform's own audit code (quality.audit) states them: that code
  talks to an AuditConnection, which transpiles each statement and runs it in BigQuery against
  the candidate query.

No network here: whatever talks to BigQuery is handed in (see cloud/gcp.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField

    from mesh_platform.contracts import Contract
    from mesh_platform.spec import ProductSpec

OUTPUT = "mesh_output"  # the audited output, as quality.audit names it


class BigQuerySqlError(ValueError):
    """A product, type or statement that has no BigQuery form."""


# --- column types -------------------------------------------------------------------------

# DuckDB type id -> BigQuery type. DuckDB's TIMESTAMP has no time zone: BigQuery's DATETIME.
_SCALARS = {
    "varchar": "STRING", "uuid": "STRING", "boolean": "BOOL",
    "tinyint": "INT64", "smallint": "INT64", "integer": "INT64", "bigint": "INT64",
    "utinyint": "INT64", "usmallint": "INT64", "uinteger": "INT64",
    "float": "FLOAT64", "double": "FLOAT64", "date": "DATE", "time": "TIME",
    "timestamp": "DATETIME", "timestamp with time zone": "TIMESTAMP", "blob": "BYTES", "json": "JSON",
}
# How the API spells some types in schemas it returns (legacy names), as we spell them.
_ALIASES = {"INTEGER": "INT64", "BOOLEAN": "BOOL", "FLOAT": "FLOAT64", "RECORD": "STRUCT", "BIGDECIMAL": "BIGNUMERIC"}


def bigquery_field(name: str, duckdb_type: str, mode: str = "NULLABLE") -> SchemaField:
    """The BigQuery column for a contract column of DuckDB type `duckdb_type`."""
    import duckdb

    try:
        parsed = duckdb.sqltype(duckdb_type)
    except duckdb.Error as exc:
        raise BigQuerySqlError(f"column '{name}': '{duckdb_type}' is not a DuckDB type ({exc})") from None
    return _field(name, parsed, mode, duckdb_type)


def _field(name: str, t, mode: str, written: str) -> SchemaField:
    from google.cloud.bigquery import SchemaField

    kind = t.id
    if kind == "list":
        child = dict(t.children)["child"]
        if child.id == "list":
            raise BigQuerySqlError(f"column '{name}': {written}: BigQuery has no list of lists")
        return _field(name, child, "REPEATED", written)
    if kind == "struct":
        return SchemaField(name, "RECORD", mode, fields=[_field(n, c, "NULLABLE", written) for n, c in t.children])
    if kind == "decimal":
        precision, scale = (dict(t.children)[k] for k in ("precision", "scale"))
        numeric = "NUMERIC" if precision - scale <= 29 and scale <= 9 else "BIGNUMERIC"
        return SchemaField(name, numeric, mode, precision=precision, scale=scale)
    if kind not in _SCALARS:
        raise BigQuerySqlError(f"column '{name}': {written}: DuckDB type {str(t)} has no BigQuery equivalent here")
    return SchemaField(name, _SCALARS[kind], mode)


def table_schema(columns: list[tuple[str, str, bool]]) -> list[SchemaField]:
    """BigQuery columns for (name, DuckDB type, required) triples, in order."""
    return [bigquery_field(n, t, "REQUIRED" if required else "NULLABLE") for n, t, required in columns]


def signature(field: SchemaField) -> str:
    """A column's type as one comparable string, e.g. ARRAY<STRUCT<order_id STRING, amount NUMERIC>>.
    Parameters (NUMERIC(18, 2)) are left out: query results do not carry them."""
    base = _ALIASES.get(field.field_type, field.field_type)
    if base == "STRUCT":
        base = "STRUCT<" + ", ".join(f"{f.name} {signature(f)}" for f in field.fields) + ">"
    return f"ARRAY<{base}>" if field.mode == "REPEATED" else base


def actual_types(contract: Contract, fields: list[SchemaField]) -> dict[str, str]:
    """The output's columns as quality.audit takes them (name -> DuckDB type): a column whose
    BigQuery type is the one its contract type maps to is reported with the contract's type;
    any other with its BigQuery type, so the schema check names the difference."""
    from mesh_platform.sqltypes import duckdb_spelling

    wanted = {
        c.name: (duckdb_spelling(c.physical_type), signature(bigquery_field(c.name, c.physical_type)))
        for c in contract.columns
    }
    out = {}
    for f in fields:
        physical, expected = wanted.get(f.name, (None, None))
        got = signature(f)
        out[f.name] = physical if got == expected else f"{got} in BigQuery"
    return out


# --- the product's SQL, captured from its function ----------------------------------------


@dataclass(frozen=True)
class Captured:
    """What a product function builds, as DuckDB SQL."""

    inputs: dict[str, str]  # view name -> the input product it names
    views: tuple[tuple[str, str], ...]  # (view name, SELECT) the function made with ctx.sql(...).to_view(...)
    query: str  # the SELECT the function returns


class CaptureError(BigQuerySqlError):
    pass


class _Recorded:
    """A relation as the function holds it in capture mode: what it is, nothing to compute."""

    __slots__ = ("_capture", "_what")

    def __init__(self, capture: _CaptureContext, what: tuple[str, str]):
        object.__setattr__(self, "_capture", capture)
        object.__setattr__(self, "_what", what)

    def to_view(self, name: str, replace: bool = True) -> _Recorded:
        self._capture._name(name, self._what)
        return self

    def __getattr__(self, name: str):
        raise CaptureError(
            f"{self._capture.label}: Relation.{name} has no BigQuery form: a product that lives in BigQuery "
            "builds its output from ctx.product(...).to_view(...) and ctx.sql(...) only"
        )


class _CaptureContext:
    """A ProductContext stand-in that records instead of running (no data, no DuckDB)."""

    def __init__(self, contract: Contract, spec: ProductSpec):
        self.contract, self.spec = contract, spec
        self.label = contract.key
        self.log = logging.getLogger("mesh.bigquery.capture")
        self.inputs: dict[str, str] = {}
        self.views: dict[str, str] = {}

    def product(self, key: str) -> _Recorded:
        if key not in self.spec.inputs:
            raise CaptureError(f"{self.label}: '{key}' is not declared in @product(inputs=...)")
        return _Recorded(self, ("input", key))

    def source(self, name: str):
        raise CaptureError(f"{self.label}: reads landing source '{name}': only products built from other products run in BigQuery")

    def sql(self, query: str, **params) -> _Recorded:
        if params:
            raise CaptureError(f"{self.label}: ctx.sql with parameters {sorted(params)} has no BigQuery form here")
        return _Recorded(self, ("sql", query))

    @property
    def upstream_snapshots(self) -> dict:
        return {}

    def _name(self, name: str, what: tuple[str, str]) -> None:
        self.inputs.pop(name, None)
        self.views.pop(name, None)
        kind, value = what
        (self.inputs if kind == "input" else self.views)[name] = value


def capture(contract: Contract, spec: ProductSpec) -> Captured:
    """Run the product function in capture mode: the views it names and the query it returns."""
    ctx = _CaptureContext(contract, spec)
    out = spec.fn(ctx)
    if not isinstance(out, _Recorded) or out._what[0] != "sql":
        raise CaptureError(f"{contract.key}: the function must return ctx.sql(...) to run in BigQuery, got {type(out).__name__}")
    return Captured(dict(ctx.inputs), tuple(ctx.views.items()), out._what[1])


def upstream_view(key: str) -> str:
    return "upstream_" + key.replace("/", "_")


def to_bigquery(captured: Captured, tables: dict[str, str]) -> str:
    """The captured query in BigQuery's dialect, reading `tables` (input key -> project.dataset.table);
    the views it made become CTEs. Refuses what sqlglot cannot translate faithfully."""
    from sqlglot import exp

    names = {upstream_view(k): k for k in tables} | captured.inputs
    missing = sorted(set(names.values()) - set(tables))
    if missing:
        raise BigQuerySqlError(f"no BigQuery table for inputs {missing}")
    tree = _parse(captured.query)
    ctes = [exp.CTE(this=_parse(q), alias=exp.TableAlias(this=exp.to_identifier(n))) for n, q in captured.views]
    if ctes:
        _prepend_ctes(tree, ctes)
    tree = _qualify(tree, {n: tables[k] for n, k in names.items()}, {n for n, _ in captured.views})
    return _generate(tree)


def _parse(sql: str, dialect: str = "duckdb"):
    import sqlglot

    try:
        return sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError as exc:
        raise BigQuerySqlError(f"cannot parse SQL ({dialect}): {str(exc).splitlines()[0]}") from None


def _generate(tree) -> str:
    import sqlglot

    try:
        return tree.sql(dialect="bigquery", pretty=True, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise BigQuerySqlError(f"no BigQuery translation: {exc}") from None


def _prepend_ctes(tree, ctes: list) -> None:
    from sqlglot import exp

    existing = tree.args.get("with_")
    if existing is None:
        tree.set("with_", exp.With(expressions=ctes))
    else:
        existing.set("expressions", [*ctes, *existing.expressions])


def _qualify(tree, tables: dict[str, str], local: set[str]):
    """Unqualified table names in `tables` become their BigQuery tables (aliased by the old name,
    so `name.column` still resolves); a name that is neither a table nor a CTE is an error."""
    from sqlglot import exp

    ctes = local | {c.alias_or_name for c in tree.find_all(exp.CTE)}
    unknown = set()

    def swap(node):
        if not isinstance(node, exp.Table) or node.args.get("db") or not node.name:
            return node
        if node.name in ctes:
            return node
        if node.name not in tables:
            unknown.add(node.name)
            return node
        project, dataset, table = tables[node.name].split(".")
        return exp.table_(table, db=dataset, catalog=project, alias=node.alias or node.name)

    tree = tree.transform(swap)
    if unknown:
        raise BigQuerySqlError(f"reads {sorted(unknown)}, which are neither inputs nor views of the product")
    return tree


# --- the contract's checks, run in BigQuery -----------------------------------------------


class QueryFailed(Exception):
    """A check's statement failed in BigQuery (quality.audit reports the rule as broken)."""


@functools.cache
def _duckdb_error() -> type:
    """QueryFailed as a duckdb.Error too: quality.audit reports a rule whose query fails as broken."""
    import duckdb

    class BigQueryQueryFailed(QueryFailed, duckdb.Error):
        pass

    return BigQueryQueryFailed


class AuditConnection:
    """The part of a DuckDB connection quality.audit uses, answered by BigQuery.

    Each statement audit sends (DuckDB SQL over `mesh_output` and the `upstream_<input>` views)
    is transpiled with its parameters inlined, given the candidate query as the CTE `mesh_output`
    and the inputs' BigQuery tables for the upstream views, and run by `run(sql)`, which returns
    (column names, rows). The checks are thus the platform's own, not a BigQuery copy of them.
    """

    def __init__(self, run: Callable[[str], tuple[list[str], list[tuple]]], candidate: str, tables: dict[str, str]):
        self._run = run
        self._candidate = _parse(candidate, "bigquery")
        self._tables = {upstream_view(k): t for k, t in tables.items()}
        self._rows: list[tuple] = []
        self.description: list[tuple] | None = None
        self.statements: list[str] = []  # every statement run, for the record
        self._parser = None

    def extract_statements(self, sql: str):
        """DuckDB's own parse decides what a statement is (sandbox.check_select)."""
        import duckdb

        if self._parser is None:
            self._parser = duckdb.connect()
        return self._parser.extract_statements(sql)

    def translate(self, sql: str, params: dict | None = None) -> str:
        from sqlglot import exp

        tree = _parse(sql)
        if params:
            missing = []

            def inline(node):
                if isinstance(node, exp.Placeholder) and node.name:
                    if node.name not in params:
                        missing.append(node.name)
                        return node
                    return exp.convert(params[node.name])
                return node

            tree = tree.transform(inline)
            if missing:
                raise BigQuerySqlError(f"no value for parameters {missing}")
        tree = _qualify(tree, self._tables, {OUTPUT})
        _prepend_ctes(tree, [exp.CTE(this=self._candidate.copy(), alias=exp.TableAlias(this=exp.to_identifier(OUTPUT)))])
        return _generate(tree)

    def execute(self, sql: str, params: dict | None = None) -> AuditConnection:
        bq = self.translate(sql, params)
        self.statements.append(bq)
        try:
            names, rows = self._run(bq)
        except QueryFailed as exc:
            raise _duckdb_error()(f"BigQuery: {exc}") from None
        self.description = [(n,) for n in names]
        self._rows = rows
        return self

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def fetchmany(self, size: int = 1) -> list[tuple]:
        return list(self._rows[:size])

    def table(self, name: str):
        raise BigQuerySqlError(
            "a Great Expectations rule without a SQL form cannot run on a product that lives in BigQuery "
            "(the common expectations can: see mesh_platform/expectations.py)"
        )

    def close(self) -> None:
        if self._parser is not None:
            self._parser.close()
