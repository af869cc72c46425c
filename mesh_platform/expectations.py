"""Great Expectations' vocabulary, evaluated in DuckDB SQL where the output already is.

Contracts name their checks as GX expectations (the ODCS library metrics map to them too).
The common ones have exact SQL equivalents and run here, all in one pass over the output;
Great Expectations itself (seconds to import, plus a pandas copy of the columns) runs only
what is not listed here. tests/unit/test_expectations.py holds both engines to the same
results, GX's semantics included: column values ignore nulls, `mostly` is the share of
non-null values that must pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# expectation -> the kwargs it may take here; any other kwarg sends the rule to GX itself.
_MAP = {
    "expect_column_values_to_not_be_null": set(),
    "expect_column_values_to_be_unique": set(),
    "expect_column_values_to_be_in_set": {"value_set"},
    "expect_column_values_to_not_be_in_set": {"value_set"},
    "expect_column_values_to_be_between": {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_values_to_match_regex": {"regex"},
    "expect_column_values_to_not_match_regex": {"regex"},
    "expect_column_value_lengths_to_equal": {"value"},
    "expect_column_value_lengths_to_be_between": {"min_value", "max_value", "strict_min", "strict_max"},
}
_TABLE = {"expect_table_row_count_to_be_between": {"min_value", "max_value", "strict_min", "strict_max"},
          "expect_table_row_count_to_equal": {"value"}}


@dataclass(frozen=True)
class Compiled:
    column: str | None  # None: a table-level expectation
    unexpected: str  # SQL predicate of an unexpected row (map) or of a failing row count (table)
    params: dict[str, Any]
    mostly: float
    over_all_rows: bool  # not_be_null counts nulls against all rows, the others against non-nulls


def compile_expectation(expectation: str, kwargs: dict[str, Any], table: str) -> Compiled | None:
    """The SQL form of one expectation over `table`, or None when only GX can run it."""
    kwargs = dict(kwargs)
    mostly = float(kwargs.pop("mostly", 1.0))
    if expectation in _TABLE:
        if set(kwargs) - _TABLE[expectation]:
            return None
        ok = _bounds("count(*)", kwargs, "v") if expectation.endswith("between") else "count(*) = $v_value"
        params = {f"v_{k}": kwargs[k] for k in ("min_value", "max_value", "value") if kwargs.get(k) is not None}
        return Compiled(None, f"NOT ({ok})", params, 1.0, True)
    column = kwargs.pop("column", None)
    if expectation not in _MAP or column is None or set(kwargs) - _MAP[expectation]:
        return None
    col = f'"{column}"'
    params = {f"v_{k}": v for k, v in kwargs.items() if k in ("value_set", "regex", "value", "min_value", "max_value")
              and v is not None}
    if expectation == "expect_column_values_to_not_be_null":
        return Compiled(column, f"{col} IS NULL", {}, mostly, True)
    ok = {
        "expect_column_values_to_be_unique": (
            f"{col} NOT IN (SELECT {col} FROM {table} WHERE {col} IS NOT NULL GROUP BY ALL HAVING count(*) > 1)"
        ),
        "expect_column_values_to_be_in_set": f"list_contains($v_value_set, {col})",
        "expect_column_values_to_not_be_in_set": f"NOT list_contains($v_value_set, {col})",
        "expect_column_values_to_be_between": _bounds(col, kwargs, "v"),
        "expect_column_values_to_match_regex": f"regexp_matches({col}, $v_regex)",
        "expect_column_values_to_not_match_regex": f"NOT regexp_matches({col}, $v_regex)",
        "expect_column_value_lengths_to_equal": f"length({col}) = $v_value",
        "expect_column_value_lengths_to_be_between": _bounds(f"length({col})", kwargs, "v"),
    }[expectation]
    if ok is None:
        return None
    return Compiled(column, f"{col} IS NOT NULL AND NOT ({ok})", params, mostly, False)


def _bounds(expr: str, kwargs: dict, prefix: str) -> str | None:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        return None  # GX refuses this; let it say so
    parts = []
    if low is not None:
        parts.append(f"{expr} {'>' if kwargs.get('strict_min') else '>='} ${prefix}_min_value")
    if high is not None:
        parts.append(f"{expr} {'<' if kwargs.get('strict_max') else '<='} ${prefix}_max_value")
    return " AND ".join(parts)


@dataclass(frozen=True)
class Result:
    success: bool
    metadata: dict[str, Any]


def evaluate(con, table: str, rules: list[Compiled]) -> list[Result]:
    """All the compiled expectations in one scan of `table`, with GX's result fields."""
    selects, params = ["count(*)"], {}
    for i, rule in enumerate(rules):
        renamed = re.sub(r"\$(v_\w+)", rf"$r{i}_\1", rule.unexpected)
        params |= {f"r{i}_{key}": value for key, value in rule.params.items()}
        if rule.column is None:
            selects += [f"({renamed})::INT", "0"]
        else:
            selects += [f"count(*) FILTER (WHERE {renamed})", f'count("{rule.column}")']
    row = con.execute(f"SELECT {', '.join(selects)} FROM {table}", params or None).fetchall()[0]
    total, results = row[0], []
    for i, rule in enumerate(rules):
        unexpected, nonnull = row[1 + 2 * i], row[2 + 2 * i]
        if rule.column is None:
            results.append(Result(not unexpected, {"observed_value": total}))
            continue
        base = total if rule.over_all_rows else nonnull
        share_ok = 1.0 if base == 0 else (base - unexpected) / base
        metadata = {"element_count": total, "unexpected_count": unexpected}
        if base:
            metadata["unexpected_percent"] = 100.0 * unexpected / base
        results.append(Result(share_ok >= rule.mostly, metadata))
    return results
