"""Column types (DuckDB types, as contracts write them) as trees: what a STRUCT holds, what a list
holds, and whether one type can stand in for another.

Built on the load-time grammar of `sqltypes` (no DuckDB at load); a type that grammar does not
know is parsed by DuckDB (`duckdb.sqltype`), imported only then. Names are canonical (INT is
INTEGER, NUMERIC(9,2) is DECIMAL(9,2), STRING is VARCHAR); a VARCHAR keeps the length the contract
declares (DuckDB ignores it, a contract reader does not).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mesh_platform import sqltypes

_ALIASES = {
    "BOOL": "BOOLEAN", "LOGICAL": "BOOLEAN",
    "INT1": "TINYINT", "INT2": "SMALLINT", "SHORT": "SMALLINT",
    "INT": "INTEGER", "INT4": "INTEGER", "SIGNED": "INTEGER",
    "INT8": "BIGINT", "LONG": "BIGINT", "INT128": "HUGEINT",
    "FLOAT4": "FLOAT", "REAL": "FLOAT", "FLOAT8": "DOUBLE",
    "DATETIME": "TIMESTAMP", "TIMESTAMP_US": "TIMESTAMP",
    "BYTEA": "BLOB", "BINARY": "BLOB", "VARBINARY": "BLOB", "BITSTRING": "BIT",
    "CHAR": "VARCHAR", "BPCHAR": "VARCHAR", "STRING": "VARCHAR", "TEXT": "VARCHAR", "NVARCHAR": "VARCHAR",
    "NUMERIC": "DECIMAL",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "TIME WITH TIME ZONE": "TIMETZ",
}
# Integer types: (signed, bits, decimal digits needed for any value).
INTEGERS = {
    "TINYINT": (True, 8, 3), "SMALLINT": (True, 16, 5), "INTEGER": (True, 32, 10),
    "BIGINT": (True, 64, 19), "HUGEINT": (True, 128, 39),
    "UTINYINT": (False, 8, 3), "USMALLINT": (False, 16, 5), "UINTEGER": (False, 32, 10),
    "UBIGINT": (False, 64, 20), "UHUGEINT": (False, 128, 39),
}
FLOATS = {"FLOAT": 24, "DOUBLE": 53}  # significand bits: integers up to 2**n are exact
TIMESTAMPS = frozenset({"TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"})


@dataclass(frozen=True)
class SqlType:
    kind: str  # "scalar", "struct", "list", "array" (fixed size), "map"
    name: str  # canonical: INTEGER, VARCHAR, DECIMAL, STRUCT, LIST, ARRAY, MAP, ...
    params: tuple[int, ...] = ()  # DECIMAL (width, scale), VARCHAR (length,), ARRAY (size,)
    fields: tuple[tuple[str, SqlType], ...] = ()  # struct fields; a map's ("key", K), ("value", V)
    element: SqlType | None = None  # list and array element

    def __str__(self) -> str:
        if self.kind == "struct":
            return "STRUCT(" + ", ".join(f"{_quote(n)} {t}" for n, t in self.fields) + ")"
        if self.kind == "map":
            return f"MAP({self.fields[0][1]}, {self.fields[1][1]})"
        if self.kind == "list":
            return f"{self.element}[]"
        if self.kind == "array":
            return f"{self.element}[{self.params[0]}]"
        return f"{self.name}({','.join(map(str, self.params))})" if self.params else self.name

    def field(self, name: str) -> SqlType | None:
        return next((t for n, t in self.fields if n == name), None) if self.kind == "struct" else None

    @property
    def nested(self) -> SqlType | None:
        """What a list or array holds; None for any other type."""
        return self.element if self.kind in ("list", "array") else None


def _quote(name: str) -> str:
    plain = name.isidentifier() and name.lower() == name and name not in sqltypes._RESERVED
    return name if plain else '"' + name.replace('"', '""') + '"'


@functools.cache
def parse(text: str) -> SqlType:
    """The type tree of a DuckDB type; raise sqltypes.UnknownType if it is not one."""
    tokens = sqltypes._tokens(text)
    if tokens is not None and sqltypes.recognized(text):
        t, end = _parse(tokens, 0)
        assert end == len(tokens)
        return t
    return _from_duckdb(text)


def same(a: str, b: str) -> bool:
    """Whether two spellings name the same type (INT and integer, NUMERIC(9,2) and DECIMAL(9, 2))."""
    return parse(a) == parse(b)


def _parse(t: list[tuple[str, str]], i: int) -> tuple[SqlType, int]:
    word = t[i][1].upper()
    i += 1
    name = _ALIASES.get(word, word)
    if name == "STRUCT":
        i += 1  # (
        fields = []
        while True:
            field = t[i][1]
            ftype, i = _parse(t, i + 1)
            fields.append((field, ftype))
            if t[i] != ("punct", ","):
                break
            i += 1
        out, i = SqlType("struct", "STRUCT", fields=tuple(fields)), i + 1
    elif name == "MAP":
        key, i = _parse(t, i + 1)
        value, i = _parse(t, i + 1)
        out, i = SqlType("map", "MAP", fields=(("key", key), ("value", value))), i + 1
    elif name == "DECIMAL":
        width, scale = 18, 3
        if i < len(t) and t[i] == ("punct", "("):
            width, scale, i = int(t[i + 1][1]), 0, i + 2
            if t[i] == ("punct", ","):
                scale, i = int(t[i + 1][1]), i + 2
            i += 1
        out = SqlType("scalar", "DECIMAL", (width, scale))
    elif name == "VARCHAR":
        params = ()
        if i < len(t) and t[i] == ("punct", "("):
            params, i = (int(t[i + 1][1]),), i + 3
        out = SqlType("scalar", "VARCHAR", params)
    else:
        out = SqlType("scalar", name)
    while i < len(t) and t[i] == ("punct", "["):
        if t[i + 1] == ("punct", "]"):
            out, i = SqlType("list", "LIST", element=out), i + 2
        else:
            out, i = SqlType("array", "ARRAY", (int(t[i + 1][1]),), element=out), i + 3
    return out, i


def _from_duckdb(text: str) -> SqlType:
    import duckdb

    try:
        parsed = duckdb.sqltype(text)
    except duckdb.Error:
        raise sqltypes.UnknownType(text) from None
    return _tree(parsed)


def _tree(d) -> SqlType:
    kind, children = d.id, None
    if kind in ("struct", "list", "array", "map", "decimal"):
        children = dict(d.children) if kind != "struct" else d.children
    if kind == "struct":
        return SqlType("struct", "STRUCT", fields=tuple((n, _tree(c)) for n, c in children))
    if kind == "list":
        return SqlType("list", "LIST", element=_tree(children["child"]))
    if kind == "array":
        return SqlType("array", "ARRAY", (int(children["size"]),), element=_tree(children["child"]))
    if kind == "map":
        return SqlType("map", "MAP", fields=(("key", _tree(children["key"])), ("value", _tree(children["value"]))))
    if kind == "decimal":
        return SqlType("scalar", "DECIMAL", (int(children["precision"]), int(children["scale"])))
    name = str(d)  # ENUM('a', 'b') keeps its values' case; plain names are upper-cased
    upper = name.upper()
    return SqlType("scalar", _ALIASES.get(upper, upper if upper.replace(" ", "_").isidentifier() else name))


def widens(old: SqlType, new: SqlType) -> bool:
    """Whether `new` holds every value of `old`, read the same way (INTEGER -> BIGINT,
    DECIMAL(10,2) -> DECIMAL(18,2), VARCHAR(10) -> VARCHAR; a struct may gain fields). Equal
    types widen too."""
    if old == new:
        return True
    if old.kind != new.kind:
        return False
    if old.kind == "list":
        return widens(old.element, new.element)
    if old.kind == "array":
        return old.params == new.params and widens(old.element, new.element)
    if old.kind == "map":
        return old.fields[0][1] == new.fields[0][1] and widens(old.fields[1][1], new.fields[1][1])
    if old.kind == "struct":
        return all(new.field(n) is not None and widens(t, new.field(n)) for n, t in old.fields)
    return _scalar_widens(old, new)


def _scalar_widens(old: SqlType, new: SqlType) -> bool:
    o, n = old.name, new.name
    if o == "VARCHAR" and n == "VARCHAR":
        return not new.params or (bool(old.params) and new.params[0] >= old.params[0])
    if o in INTEGERS:
        signed, bits, digits = INTEGERS[o]
        if n in INTEGERS:
            nsigned, nbits, _ = INTEGERS[n]
            return nbits > bits if nsigned and not signed else (signed == nsigned and nbits >= bits)
        if n == "DECIMAL":
            return new.params[0] - new.params[1] >= digits
        if n in FLOATS:
            return bits < FLOATS[n]
        return False
    if o == "DECIMAL" and n == "DECIMAL":
        (w, s), (nw, ns) = old.params, new.params
        return ns >= s and nw - ns >= w - s
    if o == "FLOAT" and n == "DOUBLE":
        return True
    return False


# ODCS logical types, and the DuckDB types each may describe. JSON may hold any of them; a type
# not listed here (INTERVAL, BLOB, UNION, ENUM, ...) is not judged.
_LOGICAL = {
    "string": lambda t: t.name in ("VARCHAR", "UUID", "JSON") or t.name.startswith("ENUM"),
    "integer": lambda t: t.name in INTEGERS or t.name == "JSON",
    "number": lambda t: t.name in INTEGERS or t.name in FLOATS or t.name in ("DECIMAL", "JSON"),
    "boolean": lambda t: t.name in ("BOOLEAN", "JSON"),
    "date": lambda t: t.name in ("DATE", "JSON"),
    "timestamp": lambda t: t.name in TIMESTAMPS or t.name == "JSON",
    "time": lambda t: t.name in ("TIME", "TIMETZ", "JSON"),
    "object": lambda t: t.kind in ("struct", "map") or t.name == "JSON",
    "array": lambda t: t.kind in ("list", "array") or t.name == "JSON",
    "map": lambda t: t.kind == "map" or t.name == "JSON",
    "vector": lambda t: t.kind in ("list", "array"),
}
_JUDGED = (
    frozenset(INTEGERS) | frozenset(FLOATS) | TIMESTAMPS
    | {"VARCHAR", "UUID", "JSON", "DECIMAL", "BOOLEAN", "DATE", "TIME", "TIMETZ"}
)


def logical_agrees(logical: str, t: SqlType) -> bool:
    """Whether an ODCS logicalType can describe DuckDB type `t`."""
    check = _LOGICAL.get(logical)
    if check is None:
        return True  # the ODCS schema validation reports an unknown logicalType
    if t.kind == "scalar" and t.name not in _JUDGED and not t.name.startswith("ENUM"):
        return True
    return check(t)
