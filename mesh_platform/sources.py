"""Landing data read strictly to its source contract: nothing converted with loss, nothing
dropped, nothing of the data in any message.

Every value the product reads is checked where DuckDB converts it, inside the same scan (no
second pass over the data): a value that does not convert to the contract's type without loss,
a null in a required column or a NUL byte in text fails the run with a message naming the
source, its contract, the file, the column and both types, never the value. A column the
product does not read is not converted, so it is not checked either.

Formats:
- CSV: UTF-8 (a byte-order mark is allowed), comma-separated, `"` quotes and escapes a quote
  by doubling it, one header line that names the contract's columns in order. An empty field
  is null. Every field is read as text and converted here (DuckDB's own casts round 2.50 to 3
  and drop a timestamp's offset).
- JSON lines: one object per line; a missing key or `null` is null. A value must have the
  JSON type of its column: a string for VARCHAR (3691 is not "000003691"), an integer for
  integers, a number for decimals and doubles, true/false for BOOLEAN, anything for JSON.
- Parquet: each file's stored column types must convert to the contract's without loss
  (widening such as INT32 to BIGINT is fine; BIGINT to VARCHAR or DECIMAL to INTEGER is not).
- Dates are ISO 8601 `YYYY-MM-DD`. Timestamps are ISO 8601 `YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`
  (or `T` between), with an optional offset (`Z`, `+02`, `+02:00`) converted to UTC; without an
  offset a timestamp is taken as UTC. Parquet timestamps with a time zone are converted to UTC.

Source paths in contracts are relative to the landing root and stay inside it; an operator's
MESH_SOURCE_<DOMAIN>_<SOURCE> override is the only way to read from elsewhere.
"""

from __future__ import annotations

import csv
import glob
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mesh_platform.contracts import Column, Contract, ContractError

if TYPE_CHECKING:
    import duckdb

MARK = "mesh-source:"  # prefix of the errors raised inside DuckDB, so the platform finds them
_INTS = {"TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 39,
         "UTINYINT": 3, "USMALLINT": 5, "UINTEGER": 10, "UBIGINT": 20, "UHUGEINT": 39}
_INT_RANK = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"]
_UNSIGNED_FITS = {"UTINYINT": "SMALLINT", "USMALLINT": "INTEGER", "UINTEGER": "BIGINT", "UBIGINT": "HUGEINT"}
_TIMESTAMP = (r"\s*\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?"
              r"\s*(Z|[+-]\d{2}(:?\d{2})?)?\s*")
_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")


class SourceError(ValueError):
    """Landing data that does not match its source contract."""


@dataclass(frozen=True)
class Landing:
    """A source's files for one run, resolved before the step's DuckDB is locked to them."""

    name: str
    contract: Contract
    pattern: str
    files: tuple[str, ...]


def check_landing_path(contract: Contract) -> None:
    """A source contract's path must be relative and stay inside the landing root."""
    path = contract.server_path or ""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ContractError(
            contract.path, "servers[0].path",
            f"'{path}' must be a relative path inside the landing root (no '..', not absolute); "
            f"an operator points elsewhere with MESH_SOURCE_{contract.domain.upper()}_{contract.name.upper()}",
        )


def resolve(contract: Contract, landing_root: Path | str, override: str | None) -> Landing:
    root = Path(landing_root).resolve()
    pattern = override or str(root / (contract.server_path or ""))
    files = sorted(glob.glob(pattern))
    where = f"source '{contract.name}' ({contract.path})"
    if not files:
        raise SourceError(f"{where}: no file matches {pattern}")
    if not override:
        # A symlink in the landing zone must not lead out of it.
        outside = [f for f in files if not Path(f).resolve().is_relative_to(root)]
        if outside:
            raise SourceError(f"{where}: {outside[0]} leads outside the landing root {root}")
    return Landing(contract.name, contract, pattern, tuple(str(Path(f).resolve()) for f in files))


def read(con: duckdb.DuckDBPyConnection, landing: Landing) -> duckdb.DuckDBPyRelation:
    """The source as a relation typed as its contract says, every value checked as it is read."""
    fmt = landing.contract.server_format
    if fmt == "csv":
        return _csv(con, landing)
    if fmt == "json":
        return _json(con, landing)
    if fmt == "parquet":
        return _parquet(con, landing)
    raise SourceError(f"{landing.contract.path}: servers[0].format '{fmt}' is not readable (csv, json, parquet)")


def _csv(con, landing: Landing):
    columns = [c.name for c in landing.contract.columns]
    for f in landing.files:
        _check_header(f, columns, landing)
    rel = con.read_csv(
        list(landing.files), header=True, columns={c: "VARCHAR" for c in columns}, delimiter=",",
        quotechar='"', escapechar='"', filename=True, encoding="utf-8",
    )
    rel.to_view(_raw_view(landing))
    return con.sql(
        f"SELECT {', '.join(_from_text(landing, c) for c in landing.contract.columns)} "
        f"FROM {_converted(landing, _raw_view(landing), _quoted, _csv_cast)}"
    )


def _json(con, landing: Landing):
    rel = con.read_json(
        list(landing.files), format="newline_delimited", columns={c.name: "JSON" for c in landing.contract.columns},
        filename=True,
    )
    rel.to_view(_raw_view(landing))
    # Each value's text, and its JSON type where the column allows more than one, computed once:
    # the checks and the conversion read them several times.
    parsed = ", ".join(f'("{c.name}" ->> \'$\') AS {_json_text(c)}'
                       + (f', json_type("{c.name}") AS {_json_type(c)}' if _json_kinds(c) else "")
                       for c in landing.contract.columns)
    return con.sql(
        f"SELECT {', '.join(_from_json(landing, c) for c in landing.contract.columns)} "
        f"FROM {_converted(landing, f'(SELECT *, {parsed} FROM {_raw_view(landing)})', _json_text, _json_cast)}"
    )


def _converted(landing: Landing, rows: str, text, cast) -> str:
    """`rows` with each value's conversion `cast(column)` computed once, as a column of its own:
    the check and the result both read it. A timestamp's text `text(column)` is first parsed in
    the usual shape alone (see `_text_cast`)."""
    columns = landing.contract.columns
    parses = "".join(f", try_strptime({text(c)}, '{_USUAL_TIMESTAMP}') AS {_parsed(c)}"
                     for c in columns if _target(c) in _TIMESTAMPS)
    casts = "".join(f", {conversion} AS {_cast(c)}" for c in columns if (conversion := cast(c)))
    return f"(SELECT *{casts} FROM (SELECT *{parses} FROM {rows}))"


def _parquet(con, landing: Landing):
    from mesh_platform.sqltypes import duckdb_spelling

    import duckdb

    wanted = {c.name: duckdb_spelling(c.physical_type) for c in landing.contract.columns}
    for f in landing.files:
        try:
            described = con.execute("DESCRIBE SELECT * FROM read_parquet($f)", {"f": f}).fetchall()
        except duckdb.Error:
            raise SourceError(f"{_where(landing)}: {f}: not a readable Parquet file (its footer and schema "
                              "cannot be read)") from None
        stored = {name: str(t) for name, t, *_ in described}
        missing = [c for c in wanted if c not in stored]
        if missing:
            raise SourceError(f"{_where(landing)}: {f}: missing columns {missing}")
        for name, target in wanted.items():
            if not lossless(stored[name], target):
                raise SourceError(
                    f"{_where(landing)}: {f}: column '{name}' is stored as {stored[name]}, which does not "
                    f"convert to the contract's {target} without loss"
                )
    rel = con.read_parquet(list(landing.files), union_by_name=True, filename=True)
    rel.to_view(_raw_view(landing))
    types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
    return con.sql(
        f"SELECT {', '.join(_from_parquet(landing, c, types[c.name], wanted[c.name]) for c in landing.contract.columns)} "
        f"FROM {_raw_view(landing)}"
    )


def lossless(stored: str, target: str) -> bool:
    """Whether every value of DuckDB type `stored` converts to `target` exactly."""
    if stored == target:
        return True
    if stored in _INTS and target in _INT_RANK:
        if stored in _UNSIGNED_FITS:
            return _INT_RANK.index(_UNSIGNED_FITS[stored]) <= _INT_RANK.index(target)
        return _INT_RANK.index(stored) <= _INT_RANK.index(target)
    if stored in _INTS and (m := _DECIMAL.match(target)):
        return _INTS[stored] <= int(m[1]) - int(m[2])
    if (a := _DECIMAL.match(stored)) and (b := _DECIMAL.match(target)):
        return int(b[2]) >= int(a[2]) and int(b[1]) - int(b[2]) >= int(a[1]) - int(a[2])
    if target == "DOUBLE":
        return stored in ("FLOAT", "TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER")
    if target == "TIMESTAMP":
        # TIMESTAMP_NS: checked per value (no nanoseconds); WITH TIME ZONE: converted to UTC.
        return stored in ("DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE")
    if target == "TIMESTAMP WITH TIME ZONE":
        return stored in ("TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP", "TIMESTAMP_NS")
    if target == "JSON":
        return stored == "VARCHAR"  # each value must then be valid JSON
    return False


# --- the per-column expressions -------------------------------------------------------------

def _where(landing: Landing) -> str:
    return f"source '{landing.name}' ({landing.contract.path})"


def _raw_view(landing: Landing) -> str:
    return f"mesh_landing_{landing.name}"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fail(landing: Landing, column: Column, problem: str) -> str:
    """An SQL expression raising our error, naming the file of the row at fault."""
    head = _lit(f"{MARK} {_where(landing)}: ")
    tail = _lit(f": column '{column.name}' {problem}")
    return f"error({head} || filename || {tail})"


def _checked(landing: Landing, column: Column, value: str, valid: str, converted: str, problem: str,
             wrong_kind: tuple[str, str] | None = None) -> str:
    """`converted` when `value` is present and `valid`; null when it is absent (an error when the
    column is required); else an error naming the file, `wrong_kind`'s (condition, error) first.
    The valid case is the first branch, one condition: it is nearly every row, and DuckDB evaluates
    a CASE's later branches only on the rows the earlier ones left."""
    null = _fail(landing, column, "is required but a row has no value") if column.required else "NULL"
    wrong = f"WHEN {wrong_kind[0]} THEN {wrong_kind[1]} " if wrong_kind else ""
    return (
        f"CASE WHEN {value} IS NOT NULL AND ({valid}) THEN {converted} WHEN {value} IS NULL THEN {null} "
        f'{wrong}ELSE {_fail(landing, column, problem)} END AS "{column.name}"'
    )


def _target(column: Column) -> str:
    from mesh_platform.sqltypes import duckdb_spelling

    return duckdb_spelling(column.physical_type)


def _cast(column: Column) -> str:
    """The column of the inner projection holding the value's conversion, computed once."""
    return f'"{column.name}#cast"'


def _from_text(landing: Landing, column: Column) -> str:
    target = _target(column)
    v = _quoted(column)
    valid, converted = _text_rule(v, target, _cast(column))
    problem = "holds a NUL byte" if target == "VARCHAR" else f"holds a value that is not a {target}"
    return _checked(landing, column, v, valid, converted, f"{problem} (no value is shown: it may be personal data)")


def _text_cast(v: str, target: str, parsed: str) -> str | None:
    """The conversion of text `v` to `target` that `_text_rule` checks and returns (None: it needs
    none), `parsed` naming `v` parsed in the usual timestamp shape."""
    if target in ("VARCHAR", "JSON"):
        return None
    if target in _TIMESTAMPS:
        # Most exports write the one shape YYYY-MM-DD HH:MM:SS: parsing it with its format costs a
        # third of DuckDB's general cast and shape check. strptime alone is lax (it skips spaces
        # anywhere, takes one-digit fields), so its result counts only when printing it back gives
        # the text exactly; any other text takes the general way. The session is UTC: a
        # TIMESTAMPTZ becomes the TIMESTAMP of the same instant in UTC.
        usual = f"CASE WHEN length({v}) = 19 AND strftime({parsed}, '{_USUAL_TIMESTAMP}') = {v} THEN {parsed} END"
        general = (f"CASE WHEN regexp_full_match({v}, '{_TIMESTAMP}') "
                   f"THEN CAST(TRY_CAST({v} AS TIMESTAMPTZ) AS TIMESTAMP) END")
        return f"coalesce({usual}, {general})"
    return f"TRY_CAST({v} AS {target})"


def _text_rule(v: str, target: str, cast: str) -> tuple[str, str]:
    """(a predicate true when text `v` converts to `target` without loss, the conversion), `cast`
    naming `_text_cast`'s conversion."""
    if target == "VARCHAR":
        return f"NOT contains({v}, chr(0))", v
    if target in _INTS:
        return f"regexp_full_match({v}, '\\s*[+-]?[0-9]+\\s*') AND {cast} IS NOT NULL", cast
    if m := _DECIMAL.match(target):
        scale = int(m[2])
        fraction = f"(\\.[0-9]{{0,{scale}}})?" if scale else "(\\.0*)?"
        return f"regexp_full_match({v}, '\\s*[+-]?[0-9]+{fraction}\\s*') AND {cast} IS NOT NULL", cast
    if target == "DATE":
        return f"regexp_full_match({v}, '\\s*[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}\\s*') AND {cast} IS NOT NULL", cast
    if target in _TIMESTAMPS:
        return f"{cast} IS NOT NULL", f"CAST({cast} AS {target})"  # the shape is checked in the cast
    if target == "JSON":
        return f"json_valid({v})", f"CAST({v} AS JSON)"
    return f"{cast} IS NOT NULL", cast


_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")
_USUAL_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
_JSON_TYPES = {"VARCHAR": ("VARCHAR",), "BOOLEAN": ("BOOLEAN",), "DATE": ("VARCHAR",),
               "TIMESTAMP": ("VARCHAR",), "TIMESTAMP WITH TIME ZONE": ("VARCHAR",),
               "DOUBLE": ("BIGINT", "UBIGINT", "DOUBLE"), "FLOAT": ("BIGINT", "UBIGINT", "DOUBLE")}


def _quoted(column: Column) -> str:
    return f'"{column.name}"'


def _parsed(column: Column) -> str:
    """The column of the innermost projection holding a timestamp's text parsed in the usual shape."""
    return f'"{column.name}#parsed"'


def _csv_cast(column: Column) -> str | None:
    return _text_cast(_quoted(column), _target(column), _parsed(column))


def _json_string(target: str) -> bool:
    """Whether a JSON value converts to `target` only from a string (text, dates, timestamps)."""
    return _JSON_TYPES.get(target) == ("VARCHAR",)


def _json_kinds(column: Column) -> tuple[str, ...] | None:
    """The JSON types a column's values may have, checked with json_type (None: none is: a
    string is told by its first character, and a JSON column takes any)."""
    target = _target(column)
    if target in _INTS:
        return ("BIGINT", "UBIGINT")
    if _DECIMAL.match(target):
        return ("BIGINT", "UBIGINT", "DOUBLE")
    return None if _json_string(target) else _JSON_TYPES.get(target)


def _json_cast(column: Column) -> str | None:
    """The conversion `_from_json` checks and returns, of the value or of its text."""
    target, j, text = _target(column), _quoted(column), _json_text(column)
    if _DECIMAL.match(target):
        return f"TRY_CAST({text} AS {target})"
    if _json_string(target):
        return _text_cast(text, target, _parsed(column))
    if target == "JSON" or target in _JSON_TYPES:
        return None
    return f"TRY_CAST({j} AS {target})"


def _from_json(landing: Landing, column: Column) -> str:
    target = _target(column)
    j, text, cast = _quoted(column), _json_text(column), _cast(column)
    # DuckDB's reader hands a JSON column back minified: a JSON null is the text null, and a
    # string (only a string) starts with a quote. Cheaper than json_type, which parses the value.
    present = f"(CASE WHEN {j}::VARCHAR = 'null' THEN NULL ELSE {j} END)"
    if target == "JSON":
        return _checked(landing, column, present, "true", j, "")
    if _json_string(target):
        of_kind = f"prefix({j}::VARCHAR, '\"')"
        valid, converted = _text_rule(text, target, cast)
    else:
        kinds = _json_kinds(column)
        of_kind = f"{_json_type(column)} IN ({', '.join(_lit(k) for k in kinds)})" if kinds else None
        if _DECIMAL.match(target):
            valid, converted = f"{cast} IS NOT NULL AND CAST({cast} AS DOUBLE) = TRY_CAST({j} AS DOUBLE)", cast
        elif target in _JSON_TYPES:
            valid, converted = "true", f"CAST({j} AS {target})"
        else:
            valid, converted = f"{cast} IS NOT NULL", cast
    wrong_kind = None
    if of_kind:
        valid = f"{of_kind} AND {valid}"
        wrong_kind = (f"NOT ({of_kind})", _fail_typed(landing, column, f"json_type({j})", target))
    # A JSON string is a VARCHAR: the only way it fails to be one is a NUL byte.
    problem = "holds a NUL byte" if target == "VARCHAR" else f"holds a value that is not a {target}"
    return _checked(landing, column, present, valid, converted,
                    f"{problem} (no value is shown: it may be personal data)", wrong_kind)


def _json_type(column: Column) -> str:
    return f'"{column.name}#json_type"'


def _json_text(column: Column) -> str:
    return f'"{column.name}#text"'


def _fail_typed(landing: Landing, column: Column, kind: str, target: str) -> str:
    head = _lit(f"{MARK} {_where(landing)}: ")
    mid = _lit(f": column '{column.name}' is stored as JSON ")
    tail = _lit(f", which does not convert to the contract's {target} without loss")
    return f"error({head} || filename || {mid} || {kind} || {tail})"


def _from_parquet(landing: Landing, column: Column, stored: str, target: str) -> str:
    v = _quoted(column)
    if stored == target:
        return _checked(landing, column, v, "true", v, "")
    if stored == "TIMESTAMP WITH TIME ZONE" and target == "TIMESTAMP":
        return _checked(landing, column, v, "true", f"CAST({v} AS TIMESTAMP)", "")  # the session is UTC
    if stored == "TIMESTAMP_NS" and target == "TIMESTAMP":
        return _checked(landing, column, v, f"epoch_ns({v}) % 1000 = 0", f"CAST({v} AS TIMESTAMP)",
                        "holds nanoseconds, which TIMESTAMP (microseconds) cannot keep")
    if target == "JSON":
        return _checked(landing, column, v, f"json_valid({v})", f"CAST({v} AS JSON)", "holds text that is not JSON")
    return _checked(landing, column, v, "true", f"CAST({v} AS {target})", "")


def _check_header(path: str, expected: list[str], landing: Landing) -> None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError as exc:
        raise SourceError(f"{_where(landing)}: {path}: not UTF-8 text ({exc.reason}); export it as UTF-8") from None
    if header != expected:
        # The header's own fields are not quoted: in a file without a header line they are the
        # first row of data. Only the contract's names, counts and positions are.
        missing = [c for c in expected if c not in header]
        unknown = [f for f in header if f not in expected]
        details = [f"missing {missing}"] if missing else []
        if len(header) != len(expected):
            details.append(f"{len(header)} field{'s' * (len(header) != 1)} where the contract has {len(expected)} columns")
        if unknown:
            details.append(f"{len(unknown)} fields that are no contract column")
        if not missing and not unknown and len(header) == len(expected):
            first = next(i for i, (h, e) in enumerate(zip(header, expected, strict=True)) if h != e)
            details.append(f"the same columns in another order: field {first + 1} should be '{expected[first]}'")
        raise SourceError(
            f"{_where(landing)}: {path}: the header line does not match the contract's columns {expected}: "
            f"{'; '.join(details)} (the line is not shown: without a header it is a row of data)"
        )


def explain(exc: Exception, landings: list[Landing]) -> str:
    """One clear line for a DuckDB error raised while computing a product, never quoting data.

    Our own checks raise with MARK and say everything. Errors in the product's SQL (parser,
    binder, catalog) quote only code and are shown. Anything else may quote a landing row
    (DuckDB's CSV and JSON readers do): a CSV or JSON lines file is asked again where it breaks,
    otherwise only the kind of error, the file and the line are kept."""
    text = str(exc)
    if MARK in text:
        return text[text.index(MARK) + len(MARK):].strip().splitlines()[0]
    kind = type(exc).__name__.removesuffix("Exception")
    if kind in ("Parser", "Binder", "Catalog", "NotImplemented"):
        return f"{kind} error in the product's SQL: {text.strip().splitlines()[0]}"
    if kind == "Permission":  # names only a path: the sandbox refused a file the step was not given
        return (f"{text.strip().splitlines()[0]} (the step reads only its declared landing files and the "
                "snapshots it was granted)")
    if kind == "Conversion":
        return _conversion(text)
    for landing in landings:
        found = diagnose_csv(landing) or diagnose_json(landing)
        if found:
            return found
    place = re.search(r"(?:in file|file =?)\s*\"?([^\s\",]+)", text)
    line = re.search(r"[Ll]ine:? (\d+)", text)
    where = (f" in {place[1]}" if place else "") + (f" at line {line[1]}" if line else "")
    return f"{kind} error{where} (DuckDB's message is withheld: it may quote landing data)"


def _conversion(text: str) -> str:
    """A cast in the product's SQL failed on a value. DuckDB's first line quotes the value, so
    only the target type, the source column and the SQL at fault (after 'LINE n:', code with a
    caret, never data) are kept."""
    target = re.search(r" to (\w+) when casting from source column (\w+)", text)
    code = re.search(r"\nLINE \d+: (.*)", text)
    what = f" to {target[1]} from column '{target[2]}'" if target else ""
    at = f" at: {code[1].strip()}" if code else ""
    return (f"Conversion error: a value could not be cast{what}{at} "
            "(the value itself is withheld: it may be landing data)")


def diagnose_csv(landing: Landing) -> str | None:
    """Where a CSV file breaks the dialect (line and kind of problem, never the line itself),
    asked of DuckDB again with its rejects table, on a connection of its own."""
    import duckdb

    if landing.contract.server_format != "csv":
        return None
    columns = {c.name: "VARCHAR" for c in landing.contract.columns}
    with duckdb.connect() as con:
        for f in landing.files:
            try:
                # The dialect is given whole: DuckDB's sniffer would fail on a broken file before
                # saying where it breaks, or count its lines wrong.
                con.read_csv(f, header=True, columns=columns, delimiter=",", quotechar='"', escapechar='"',
                             encoding="utf-8", store_rejects=True, auto_detect=False).fetchall()
                rows = con.execute(
                    "SELECT line, column_name, error_type FROM reject_errors ORDER BY line LIMIT 3"
                ).fetchall()
            except duckdb.Error as exc:
                text = str(exc)
                line = re.search(r"Line: (\d+)", text)
                problem = next((p for key, p in _CSV_PROBLEMS.items() if key in text), "not readable as CSV")
                return f"{_where(landing)}: {f}:" + (f" line {line[1]}:" if line else "") + f" {problem}"
            if rows:
                where = "; ".join(f"line {line}: {_CSV_REJECTS.get(kind, kind.lower())}" + (f" (column '{col}')" if col else "")
                                  for line, col, kind in rows)
                return f"{_where(landing)}: {f}: {where}"
    return None


def diagnose_json(landing: Landing) -> str | None:
    """Where a JSON lines file breaks the format (line and kind of problem, never the line
    itself), read again line by line: DuckDB's message quotes the line, and it counts the lines
    of malformed JSON one too many."""
    import json

    if landing.contract.server_format != "json":
        return None
    columns = {c.name for c in landing.contract.columns}
    for f in landing.files:
        with open(f, "rb") as lines:
            for number, raw in enumerate(lines, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problem = f"not UTF-8 text ({exc.reason}); export it as UTF-8"
                else:
                    if not text.strip():
                        continue
                    try:
                        value = json.loads(text.rstrip("\r\n"), object_pairs_hook=_Pairs)
                    except json.JSONDecodeError as exc:  # its msg is fixed text, never the document
                        at = "" if exc.msg.endswith(" at") else " at"
                        problem = f"not valid JSON ({exc.msg}{at} column {exc.colno})"
                    else:
                        if not isinstance(value, _Pairs):
                            problem = f"not a JSON object but {_JSON_KINDS.get(type(value), 'a value')}"
                        elif (twice := _twice([k for k, _ in value], columns)) is not None:
                            problem = f"{twice} appears twice in one object"  # DuckDB refuses it
                        else:
                            continue
                return f"{_where(landing)}: {f}: line {number}: {problem}"
    return None


class _Pairs(list):
    """A JSON object as its (key, value) pairs, a key written twice kept twice."""


def _twice(keys: list[str], columns: set[str]) -> str | None:
    """The key that appears twice, named when it is a contract column (other keys may be data)."""
    from collections import Counter

    dupes = sorted(k for k, n in Counter(keys).items() if n > 1)
    if not dupes:
        return None
    named = [k for k in dupes if k in columns]
    return f"key '{named[0]}'" if named else "a key"


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}
_CSV_REJECTS = {  # DuckDB's names for what is wrong with a rejected line, said plainly
    "UNQUOTED VALUE": "a quoted field is never closed, or text follows its closing quote",
    "LINE SIZE OVER MAXIMUM": "a line is longer than DuckDB's 2,000,000-byte limit",
    "INVALID ENCODING": "not UTF-8 text; export it as UTF-8",
}
_CSV_PROBLEMS = {
    "Maximum line size": "a line is longer than DuckDB's 2,000,000-byte limit",
    "Invalid unicode": "not UTF-8 text; export it as UTF-8",
    "unterminated quotes": "a quoted field is never closed",
}
