"""Column types as contracts write them (DuckDB types): checked when a code location loads,
spelled DuckDB's way when an output is compared against them.

Asking DuckDB at load would open its default database in every code-location process (about
0.1 s), so the usual grammar is recognized here: DuckDB's scalar type names, DECIMAL(w,s),
VARCHAR(n), lists T[] and arrays T[n], STRUCT(...) and MAP(K, V). A type this grammar does
not know goes to DuckDB, which accepts or rejects it; the grammar never accepts what DuckDB
rejects (tests/unit/test_sqltypes.py holds it to that).
"""

from __future__ import annotations

import functools
import re

_SCALARS = frozenset("""
    BOOLEAN BOOL LOGICAL TINYINT INT1 SMALLINT INT2 SHORT INTEGER INT INT4 SIGNED BIGINT INT8 LONG
    HUGEINT INT128 UTINYINT USMALLINT UINTEGER UBIGINT UHUGEINT FLOAT FLOAT4 REAL DOUBLE FLOAT8
    DATE TIME TIMETZ TIMESTAMP DATETIME TIMESTAMPTZ TIMESTAMP_S TIMESTAMP_MS TIMESTAMP_NS INTERVAL
    BLOB BYTEA BINARY VARBINARY UUID JSON BIT BITSTRING
""".split())
_STRINGS = frozenset({"VARCHAR", "CHAR", "BPCHAR", "STRING", "TEXT", "NVARCHAR"})  # may take (n)
_DECIMALS = frozenset({"DECIMAL", "NUMERIC"})
# Keywords DuckDB refuses as an unquoted STRUCT field name.
_RESERVED = frozenset("""
    all analyse analyze and anti any array as asc asof asymmetric at authorization binary both by
    case cast check collate collation column concurrently constraint create cross default deferrable
    desc describe distinct do else end except false fetch for foreign freeze from full glob group
    having ilike in initially inner intersect into is isnull join lambda lateral leading left like
    limit natural not notnull null offset on only or order outer overlaps pivot pivot_longer
    pivot_wider placing positional primary qualify references returning right select semi show
    similar some summarize symmetric table tablesample then to trailing true union unique unpack
    unpivot using variadic verbose when where window with
""".split())
_TOKEN = re.compile(r'\s*(?:([A-Za-z_][A-Za-z0-9_]*)|"([^"]+)"|(\d+)|([()\[\],]))')


class UnknownType(ValueError):
    pass


def check(text: str) -> None:
    """Raise UnknownType unless `text` is a DuckDB column type."""
    if not recognized(text):
        import duckdb  # only for what the grammar does not cover

        try:
            duckdb.sqltype(text)
        except duckdb.Error:
            raise UnknownType(text) from None


@functools.cache
def duckdb_spelling(text: str) -> str:
    """The type as DuckDB prints it (INT -> INTEGER, NUMERIC(9,2) -> DECIMAL(9,2), ...)."""
    import duckdb

    return str(duckdb.sqltype(text))


def recognized(text: str) -> bool:
    """Whether the grammar above accepts `text` (without asking DuckDB)."""
    tokens = _tokens(text)
    if tokens is None:
        return False
    try:
        end = _type(tokens, 0)
    except (IndexError, ValueError):
        return False
    return end == len(tokens)


def _tokens(text: str) -> list[tuple[str, str]] | None:
    tokens, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return None
        ident, quoted, number, punct = m.groups()
        if ident is not None:
            tokens.append(("ident", ident))
        elif quoted is not None:
            tokens.append(("quoted", quoted))
        elif number is not None:
            tokens.append(("number", number))
        else:
            tokens.append(("punct", punct))
        pos = m.end()
    return tokens


def _type(t: list[tuple[str, str]], i: int) -> int:
    """Parse one type from t[i]; return the index after it, or raise ValueError."""
    kind, word = t[i]
    if kind != "ident":
        raise ValueError(word)
    name = word.upper()
    i += 1
    if name in _SCALARS:
        pass
    elif name in _STRINGS:
        if _at(t, i, "("):
            if _number(t, i + 1) > 2**31:
                raise ValueError("length")
            i = _expect(t, i + 2, ")")
    elif name in _DECIMALS:
        if _at(t, i, "("):
            width, scale = _number(t, i + 1), 0
            i += 2
            if _at(t, i, ","):
                scale = _number(t, i + 1)
                i += 2
            i = _expect(t, i, ")")
            if not 1 <= width <= 38 or scale > width:
                raise ValueError("decimal bounds")
    elif name == "STRUCT":
        i, seen = _expect(t, i, "("), set()
        while True:
            kind, field = t[i]
            if kind not in ("ident", "quoted") or (kind == "ident" and field.lower() in _RESERVED):
                raise ValueError(field)
            if field.lower() in seen:
                raise ValueError(f"duplicate field {field}")
            seen.add(field.lower())
            i = _type(t, i + 1)
            if not _at(t, i, ","):
                break
            i += 1
        i = _expect(t, i, ")")
    elif name == "MAP":
        i = _type(t, _expect(t, i, "("))
        i = _type(t, _expect(t, i, ","))
        i = _expect(t, i, ")")
    else:
        raise ValueError(word)
    while _at(t, i, "["):
        if _at(t, i + 1, "]"):
            i += 2
        else:
            if not 1 <= _number(t, i + 1) <= 100_000:
                raise ValueError("array size")
            i = _expect(t, i + 2, "]")
    return i


def _at(t: list[tuple[str, str]], i: int, punct: str) -> bool:
    return i < len(t) and t[i] == ("punct", punct)


def _expect(t: list[tuple[str, str]], i: int, punct: str) -> int:
    if not _at(t, i, punct):
        raise ValueError(f"expected {punct}")
    return i + 1


def _number(t: list[tuple[str, str]], i: int) -> int:
    kind, value = t[i]
    if kind != "number":
        raise ValueError(value)
    return int(value)
