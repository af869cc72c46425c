"""Audit a product's output against its contract, before anything is published.

The output is a table or view (OUTPUT) in the step's DuckDB. First the schema (columns, types, required,
unique) in SQL. Then the contract's quality rules: expectations with a SQL form and sql rules
in DuckDB; only expectations without one go to Great Expectations, on a pandas frame of the
columns they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from mesh_platform.contracts import ALLOW_DROP_TAG, VOLUME_CHECK, Contract, QualityRule, rule_columns
from mesh_platform.expectations import compile_expectation, evaluate
from mesh_platform.sandbox import SandboxViolation, check_select
from mesh_platform.sqltypes import duckdb_spelling

SAMPLE_ROWS = 5
OUTPUT = "mesh_output"  # the table the output is audited in, and the sql rules' ${object}

_MASK = "***"


@dataclass
class Outcome:
    name: str
    passed: bool
    blocking: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sample: list[dict] = field(default_factory=list)


def schema_problems(contract: Contract, actual: dict[str, str]) -> list[str]:
    """What is wrong with the output's columns and types (`actual`: name -> DuckDB type),
    known from the query before it runs."""
    expected = {c.name: duckdb_spelling(c.physical_type) for c in contract.columns}
    problems = []
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"columns not in the contract {extra}")
    wrong = {n: f"{actual[n]} (contract: {t})" for n, t in expected.items() if n in actual and actual[n] != t}
    if wrong:
        problems.append(f"wrong types {wrong}")
    return problems


def parquet_null_counts(con: duckdb.DuckDBPyConnection, path: str) -> dict[str, int]:
    """Null counts of top-level columns that a Parquet file's statistics prove, without reading
    its data: a flat column's is its statistic; a struct has none when one of its scalar fields
    has none (a null struct makes every field null). Columns not listed need a scan."""
    rows = con.execute(
        """SELECT path_in_schema, sum(stats_null_count)::BIGINT,
                  count(*) = count(stats_null_count) AND bool_and(num_values = row_group_num_rows)
           FROM parquet_metadata($path) GROUP BY ALL""",
        {"path": path},
    ).fetchall()
    known: dict[str, int] = {}
    for leaf, nulls, exact in rows:
        parts = leaf.split(", ")
        if exact and len(parts) == 1:
            known[parts[0]] = nulls
        elif exact and len(parts) == 2 and nulls == 0:
            known[parts[0]] = 0
    return known


def audit(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    actual: dict[str, str],
    known_nulls: dict[str, int] | None = None,
) -> list[Outcome]:
    """One outcome per check that ran. `actual` are the output's column types; the data checks
    run on the OUTPUT table only when they match the contract, and the quality rules only on
    output whose whole schema check passed. `known_nulls` (column -> null count) spares the
    required-column checks a scan where the count is already known."""
    schema = _schema_outcome(con, contract, actual, known_nulls or {})
    if not schema.passed:
        return [schema]
    outcomes = {"schema": schema}
    compiled = {
        r.name: c
        for r in contract.rules
        if r.engine == "great_expectations"
        and (c := compile_expectation(r.expectation, dict(r.kwargs), OUTPUT)) is not None
    }
    by_name = {r.name: r for r in contract.rules}
    if compiled:
        try:
            results = dict(zip(compiled, evaluate(con, OUTPUT, list(compiled.values())), strict=True))
        except duckdb.Error:
            # One cannot be evaluated on this output (a length of a DATE, say): each alone, to
            # say which; it fails, the others report as usual.
            results = {}
            for name, sql in compiled.items():
                try:
                    [results[name]] = evaluate(con, OUTPUT, [sql])
                except duckdb.Error as exc:
                    outcomes[name] = _broken(by_name[name], f"{contract.path}: quality rule '{name}': cannot be "
                                                            f"evaluated on the output: {_failure(exc)}")
        for name, result in results.items():
            rule, sql = by_name[name], compiled[name]
            sample = [] if result.success or sql.column is None else _sample(
                con, contract, sql.unexpected, [sql.column], sql.params
            )
            outcomes[name] = _expectation_outcome(rule, result.success, result.metadata, sample)
    gx_rules = [r for r in contract.rules if r.engine == "great_expectations" and r.name not in compiled]
    if gx_rules:
        outcomes |= {o.name: o for o in _great_expectations(con, contract, gx_rules)}
    outcomes |= {r.name: _sql_outcome(con, contract, r) for r in contract.rules if r.engine == "sql"}
    # Contract order, so that the checks read the same in every run.
    return [outcomes["schema"]] + [outcomes[r.name] for r in contract.rules]


def _expectation_outcome(rule: QualityRule, success: bool, metadata: dict, sample: list[dict]) -> Outcome:
    return Outcome(
        name=rule.name,
        passed=success,
        blocking=rule.blocking,
        description=rule.description + ("" if success else f": failed {metadata}"),
        metadata=metadata,
        sample=sample,
    )


def _schema_outcome(con, contract: Contract, actual: dict[str, str], known_nulls: dict[str, int]) -> Outcome:
    problems = schema_problems(contract, actual)
    sample: list[dict] = []
    counts: dict[str, int] = {}
    if not problems:
        # (label, the count of offending rows: known already or a SQL aggregate, their predicate)
        tests: list[tuple[str, int | str, str]] = [
            (f"{c.name} is required", known_nulls.get(c.name, f'count(*) FILTER (WHERE "{c.name}" IS NULL)'),
             f'"{c.name}" IS NULL')
            for c in contract.columns if c.required
        ]
        # Unique as Great Expectations means it: nulls are not values, so never duplicates.
        # A primary key's columns are required, so there is no null to skip.
        keys = [[c.name] for c in contract.columns if c.unique and not c.primary_key]
        if contract.primary_key:
            keys.append(list(contract.primary_key))
        for key in keys:
            cols = ", ".join(f'"{k}"' for k in key)
            counted = f'count("{key[0]}")' if len(key) == 1 else "count(*)"
            tests.append((
                f"({', '.join(key)}) is unique",
                f"{counted} - count(DISTINCT ({cols}))",
                f"({cols}) IN (SELECT ({cols}) FROM {OUTPUT} WHERE ({cols}) IS NOT NULL GROUP BY ALL HAVING count(*) > 1)",
            ))
        queries = [count for _, count, _ in tests if isinstance(count, str)]
        if queries:
            scanned = iter(con.execute(f"SELECT {', '.join(queries)} FROM {OUTPUT}").fetchall()[0])
            tests = [(label, next(scanned) if isinstance(c, str) else c, where) for label, c, where in tests]
        for label, bad, where in tests:
            counts[label] = int(bad)
            if bad:
                problems.append(f"{label}: {bad} offending rows")
                sample = sample or _sample(con, contract, where, [])
    return Outcome(
        name="schema",
        passed=not problems,
        blocking=True,
        description="; ".join(problems) or "schema matches the contract",
        metadata={"columns": len(actual), "violations": counts},
        sample=sample,
    )


def _great_expectations(con, contract: Contract, rules: list[QualityRule]) -> list[Outcome]:
    import great_expectations as gx  # seconds to import: only for expectations SQL cannot run

    expectations = []
    for rule in rules:
        cls = getattr(gx.expectations, _camel(rule.expectation), None)
        if cls is None:
            raise ValueError(
                f"{contract.path}: quality rule '{rule.name}': unknown Great Expectations "
                f"expectation '{rule.expectation}'"
            )
        try:
            expectations.append(cls(**dict(rule.kwargs), meta={"mesh_rule": rule.name}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{contract.path}: quality rule '{rule.name}': {exc}") from exc
    needed = {c for r in rules for c in rule_columns(r)} | set(contract.primary_key)
    needed = [c.name for c in contract.columns if c.name in needed] or [contract.columns[0].name]
    frame = con.table(OUTPUT).select(", ".join(f'"{c}"' for c in needed)).df()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(name="mesh")
        .add_dataframe_asset(name=contract.name)
        .add_batch_definition_whole_dataframe("output")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=contract.name, expectations=expectations)
    result = batch.validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS}
    )
    by_rule = {r.name: r for r in rules}
    outcomes = []
    for res in result.results:
        rule = by_rule[res.expectation_config.meta["mesh_rule"]]
        detail = res.result or {}
        unexpected = detail.get("partial_unexpected_list") or []
        metadata = {
            k: _plain_result(detail[k])
            for k in ("observed_value", "element_count", "unexpected_count", "unexpected_percent")
            if detail.get(k) is not None
        }
        sample = []
        # Only per-row expectations have offending rows; an aggregate one (a mean, a distinct
        # count) is wrong as a whole, and no row illustrates it.
        if not res.success and rule.column and detail.get("unexpected_count"):
            sample = _unexpected_rows(con, contract, rule.column, unexpected)
        outcomes.append(_expectation_outcome(rule, bool(res.success), metadata, sample))
    return outcomes


def _plain_result(value):
    """A GX result value as plain Python: an aggregate's observed value is a numpy scalar (a
    column's mean is a numpy.float64, which Dagster's metadata cannot hold), or a list or dict
    of them (quantiles)."""
    if isinstance(value, dict):
        return {str(k): _plain_result(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_result(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


def _sql_outcome(con, contract: Contract, rule: QualityRule) -> Outcome:
    """A sql rule: exactly one SELECT, on the sandboxed connection, returning one number. A rule
    that cannot be evaluated fails, saying why; it never passes by accident."""
    query = rule.query.replace("${object}", OUTPUT).replace("${property}", f'"{rule.column}"')
    where = f"{contract.path}: quality rule '{rule.name}'"
    try:
        check_select(con, query, where)
        rows = con.execute(query).fetchmany(2)
    except SandboxViolation as exc:
        return _broken(rule, str(exc))
    except duckdb.Error as exc:
        return _broken(rule, f"{where}: the query failed: {_failure(exc)}")
    if len(rows) != 1 or len(rows[0]) != 1:
        got = "no rows" if not rows else f"{'more than one row' if len(rows) > 1 else f'{len(rows[0])} columns'}"
        return _broken(rule, f"{where}: the query returned {got}; a sql rule returns one row with one number")
    value = rows[0][0]
    if not _is_number(value) or not all(_is_number(b) for _, bound in rule.bounds for b in _as_list(bound)):
        got = "null" if value is None else f"a {type(value).__name__} (not shown: it may be data)"
        return _broken(rule, f"{where}: returned {got} where a number is expected, to compare with "
                             f"{dict(rule.bounds)}; a sql rule returns a number, compared with numbers")
    passed = all(_holds(op, value, bound) for op, bound in rule.bounds)
    return Outcome(
        name=rule.name,
        passed=passed,
        blocking=rule.blocking,
        description=rule.description + ("" if passed else f": got {value}, expected {dict(rule.bounds)}"),
        metadata={"observed_value": float(value) if isinstance(value, Decimal) else value},
    )


def _failure(exc: duckdb.Error) -> str:
    """A DuckDB error of a rule's query, said without data: errors about the query itself
    (parser, binder, catalog) quote only the query; the others (a conversion, say) may quote a
    value of the output."""
    kind = type(exc).__name__.removesuffix("Exception")
    if kind in ("Parser", "Binder", "Catalog"):
        return f"{kind}: {str(exc).strip().splitlines()[0]}"
    if kind == "Permission":  # names only a path: the sandbox refused a file the rule may not read
        return f"{str(exc).strip().splitlines()[0]} (a rule reads only the product's output)"
    return f"{kind} error (DuckDB's message is withheld: it may quote the data)"


def _broken(rule: QualityRule, message: str) -> Outcome:
    return Outcome(name=rule.name, passed=False, blocking=rule.blocking, description=message,
                   metadata={"error": message})


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _as_list(bound) -> list:
    return list(bound) if isinstance(bound, (list, tuple)) else [bound]


def volume_outcome(contract: Contract, rows: int, previous_rows: int | None, allowed: bool) -> Outcome:
    """The row count may not fall by more than the contract's percent against the published
    version: a cut export must not replace a whole one. A run tagged to accept a drop passes."""
    limit = contract.volume_max_drop
    metadata = {"rows": rows, "previous_rows": previous_rows, "max_drop_percent": limit}
    if not previous_rows:
        return Outcome(VOLUME_CHECK, True, True, f"{rows:,} rows; nothing published before to compare with", metadata)
    drop = 100.0 * (previous_rows - rows) / previous_rows
    metadata["drop_percent"] = round(drop, 2)
    change = f"{rows:,} rows against {previous_rows:,} published ({-drop:+.1f}%)"
    if drop <= limit:
        return Outcome(VOLUME_CHECK, True, True, f"{change}; a drop of at most {limit:g}% is allowed", metadata)
    if allowed:
        return Outcome(VOLUME_CHECK, True, True, f"{change}: over the {limit:g}% limit, accepted by the run's "
                       f"{ALLOW_DROP_TAG} tag", {**metadata, "accepted_by_tag": True})
    return Outcome(
        VOLUME_CHECK, False, True,
        f"{change}: more than the {limit:g}% the contract allows. If the drop is intended, run again with "
        f"the tag {ALLOW_DROP_TAG}=true (mesh materialize --allow-volume-drop)",
        metadata,
    )


def _holds(op: str, value, bound) -> bool:
    return {
        "mustBe": lambda: value == bound,
        "mustNotBe": lambda: value != bound,
        "mustBeGreaterThan": lambda: value > bound,
        "mustBeGreaterOrEqualTo": lambda: value >= bound,
        "mustBeLessThan": lambda: value < bound,
        "mustBeLessOrEqualTo": lambda: value <= bound,
        "mustBeBetween": lambda: bound[0] <= value <= bound[1],
        "mustNotBeBetween": lambda: not bound[0] <= value <= bound[1],
    }[op]()


def _unexpected_rows(con, contract: Contract, column: str, values: list) -> list[dict]:
    values = [v for v in values if v is not None]
    where = f'"{column}" IS NULL'
    if values:
        where += f' OR list_contains($unexpected, "{column}")'
    return _sample(con, contract, where, [column], {"unexpected": values} if values else {})


def _sample(con, contract: Contract, where: str, columns: list[str], params: dict | None = None) -> list[dict]:
    """A few offending rows: the key and the columns at fault, PII masked."""
    wanted = list(dict.fromkeys([*contract.primary_key, *columns])) or [c.name for c in contract.columns]
    select = ", ".join(
        f"'{_MASK}' AS \"{c}\"" if contract.column(c).classification else f'"{c}"' for c in wanted
    )
    cursor = con.execute(f"SELECT {select} FROM {OUTPUT} WHERE {where} LIMIT {SAMPLE_ROWS}", params or None)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, map(_plain, row), strict=True)) for row in cursor.fetchall()]


def _plain(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
