"""Open Data Contract Standard (v3) files, read into what the platform needs.

A contract is validated twice: against the standard's own JSON schema (so a file that is not
ODCS fails with the standard's field path), then for what the mesh needs to build a product
from it (an owner, a DuckDB physical type per column, quality rules it knows how to run).
Every error names the file and the field at fault.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from mesh_platform import nested, sqltypes, strict_yaml, typetree


class ContractError(ValueError):
    def __init__(self, path: Path | str, field: str, message: str):
        self.path, self.field = str(path), field
        super().__init__(f"{path}: {field}: {message}")


@dataclass(frozen=True)
class Column:
    name: str
    logical_type: str
    physical_type: str  # a DuckDB type, as written: what the product's SQL must produce
    description: str = ""
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    classification: str | None = None


@dataclass(frozen=True)
class QualityRule:
    """One contract quality rule, turned into one Dagster asset check."""

    name: str
    engine: str  # "great_expectations" (run on the output) or "sql" (run by DuckDB)
    column: str | None
    expectation: str | None  # GX expectation type, for engine great_expectations
    kwargs: tuple[tuple[str, Any], ...]
    query: str | None  # for engine sql: returns one number
    bounds: tuple[tuple[str, Any], ...]  # the ODCS mustBe... operators, for engine sql
    blocking: bool
    description: str


@dataclass(frozen=True)
class Server:
    """An ODCS `servers` entry: where the data lives in one environment."""

    name: str
    type: str  # local, glue, azure, bigquery, ...
    environment: str | None
    fields: dict[str, Any]  # the entry's other properties: path, format, account, database, location, ...

    def get(self, key: str) -> Any:
        return self.fields.get(key)


@dataclass(frozen=True)
class ReadGrant:
    """A reader the contract grants read access to (a code location), and what it may not see
    in the clear: `mask`ed columns arrive as deterministic hashes (joins still work), `exclude`d
    columns not at all."""

    reader: str
    mask: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contract:
    path: Path
    domain: str
    name: str
    version: str
    status: str
    description: str
    purpose: str  # description.purpose: what the product is for
    team: str
    columns: tuple[Column, ...]
    rules: tuple[QualityRule, ...]
    freshness: timedelta | None
    grants: tuple[ReadGrant, ...]
    tags: tuple[str, ...]
    server_format: str | None
    server_path: str | None
    servers: tuple[Server, ...]
    volume_max_drop: float | None  # percent the row count may fall per publish; None: unchecked
    custom: dict[str, Any]  # the contract's top-level customProperties, by property name
    # An older major version served beside the latest (file `<name>_v<N>.odcs.yaml`): the
    # product it is a version of ("profiles"), and the date after which it is no longer served.
    series: str | None = None
    retires: date | None = None

    @property
    def readers(self) -> tuple[str, ...]:
        return tuple(g.reader for g in self.grants)

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.name}"

    @property
    def series_key(self) -> str:
        """The unversioned key: the latest major version of the product this contract is a version of."""
        return f"{self.domain}/{self.series}" if self.series else self.key

    @property
    def major(self) -> int | None:
        return _major_of(self.version)

    def server(self, environment: str) -> Server:
        """The product's place in `environment`; a product that has none cannot load there."""
        found = [s for s in self.servers if s.environment == environment]
        if len(found) != 1:
            where = [s.environment for s in self.servers]
            raise ContractError(
                self.path, "servers",
                f"{'no' if not found else 'more than one'} server with environment: {environment} "
                f"(environments: {where}); each product names exactly one place per environment",
            )
        return found[0]

    @property
    def owner(self) -> str:
        return f"team:{self.team}"

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEPRECATION_PROPERTY = "deprecationDate"  # customProperties: the last day an older major is served
_UNITS = {
    "m": "minutes", "min": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
}
# ODCS library metrics, run as Great Expectations expectations.
_METRIC_EXPECTATIONS = {
    "nullValues": "expect_column_values_to_not_be_null",
    "missingValues": "expect_column_values_to_not_be_null",
    "duplicateValues": "expect_column_values_to_be_unique",
    "invalidValues": "expect_column_values_to_be_in_set",
    "rowCount": "expect_table_row_count_to_be_between",
}
# ODCS names no severities; these are the usual ones. Error and critical block the publish.
SEVERITIES = {"info": False, "warning": False, "error": True, "critical": True}
# A product's row count may fall by this many percent per publish before the volume check blocks.
DEFAULT_VOLUME_MAX_DROP = 25.0
VOLUME_PROPERTY = "volumeMaxDropPercent"
VOLUME_CHECK = "volume"
ALLOW_DROP_TAG = "mesh/allow-volume-drop"  # a run tag: this run may publish a larger drop
_BOUNDS = (
    "mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo",
    "mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween",
)


@functools.cache
def _odcs_schema() -> bytes:
    return (resources.files("open_data_contract_standard") / "schema.json").read_bytes()


@functools.cache
def _odcs_validator():
    import jsonschema

    return jsonschema.Draft201909Validator(json.loads(_odcs_schema()))


def _validated_marker(text: str) -> Path:
    """Where a contract text that passed the ODCS schema is remembered. Validation costs about
    40 ms a contract and every code location reads every contract of the workspace on each load
    (a code server's restart, each step process); the same bytes against the same schema always
    give the same answer, so it is kept by content hash and computed once per change."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mesh" / "odcs-valid"
    digest = hashlib.sha256(_odcs_schema() + b"\0" + text.encode("utf-8")).hexdigest()
    return cache / digest


def _schema_errors(text: str, data: dict) -> list:
    marker = _validated_marker(text)
    if marker.exists():
        return []
    errors = list(_odcs_validator().iter_errors(data))
    if not errors:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # a read-only home: validate every time
    return errors


def load_contract(path: Path | str) -> Contract:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(path, "(yaml)", str(exc)) from None
    return _parsed(path, text)


@functools.lru_cache(maxsize=1024)
def _parsed(path: Path, text: str) -> Contract:
    """The contract in file `path` holding `text`: the same text always gives the same contract,
    and a refresh reads each contract about six times (the locations, the lineage order, the
    selection, each step): 0.2 s of YAML and pydantic models at each refresh."""
    try:
        data = strict_yaml.load(text)
    except strict_yaml.YamlProblem as exc:
        raise ContractError(path, "(yaml)", str(exc)) from None
    if not isinstance(data, dict):
        raise ContractError(path, "(document)", "not an ODCS contract (expected a mapping)")
    errors = _schema_errors(text, data)
    if errors:
        err = _first_precise(errors)
        field = err.json_path.removeprefix("$.") if err.absolute_path else "(document)"
        hint = ""
        if re.search(r"'\s*\d+\s*\)' was unexpected", err.message):
            hint = ' (a type with a comma inside {...} must be quoted: physicalType: "DECIMAL(18,2)")'
        raise ContractError(path, field, f"not valid ODCS: {_said(err)}{hint}")
    from open_data_contract_standard.model import OpenDataContractStandard

    model = OpenDataContractStandard(**data)
    return _to_contract(path, model)


def _said(err) -> str:
    """The schema's message, except where it only says that no alternative fits: when every
    alternative lacks a property (a sql rule without a mustBe... operator), which ones."""
    if err.validator in ("oneOf", "anyOf") and err.context and all(e.validator == "required" for e in err.context):
        needed = [p for e in err.context for p in e.validator_value
                  if isinstance(e.instance, dict) and p not in e.instance]
        return f"needs one of {list(dict.fromkeys(needed))}"
    return err.message


def _first_precise(errors: list):
    """The first error in document order, skipping an object's 'unevaluatedProperties' error
    when it only echoes a more precise error inside that object (an unknown metric makes the
    rule match no ODCS quality type, so all its properties look 'unexpected')."""

    def echo(e) -> bool:
        at = list(e.absolute_path)
        return e.validator == "unevaluatedProperties" and any(
            o is not e and list(o.absolute_path)[: len(at)] == at for o in errors
        )

    precise = [e for e in errors if not echo(e)] or errors
    return min(precise, key=lambda e: [str(p) for p in e.absolute_path])


def _to_contract(path: Path, m) -> Contract:
    def need(value, field: str, what: str):
        if value in (None, "", []):
            raise ContractError(path, field, f"missing {what}")
        return value

    if not m.apiVersion.startswith("v3"):
        raise ContractError(path, "apiVersion", f"ODCS v3 required, got {m.apiVersion}")
    need(m.domain, "domain", "domain")
    need(m.version, "version", "contract version")
    team = m.team.name if m.team is not None and not isinstance(m.team, list) else None
    need(team, "team.name", "owner (the owning team's name)")
    schema = need(m.schema_, "schema", "schema")
    if len(schema) != 1:
        raise ContractError(path, "schema", "one schema object (the product's table) expected")
    obj = schema[0]
    name = need(obj.name, "schema[0].name", "product name")
    if not _NAME.match(name):
        raise ContractError(path, "schema[0].name", f"'{name}' must be snake_case")
    props = need(obj.properties, "schema[0].properties", "columns")
    columns = tuple(
        _column(path, f"schema[0].properties[{i}]", p) for i, p in enumerate(props)
    )
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError(path, "schema[0].properties", f"duplicate columns {dupes}")
    rules = [
        _rule(path, f"schema[0].quality[{i}]", q, None) for i, q in enumerate(obj.quality or [])
    ]
    for i, p in enumerate(props):
        rules += [
            _rule(path, f"schema[0].properties[{i}].quality[{j}]", q, p.name)
            for j, q in enumerate(p.quality or [])
        ]
    for rule in rules:
        unknown = [c for c in rule_columns(rule) if c not in names]
        if unknown:
            raise ContractError(path, "quality", f"rule '{rule.name}' names unknown columns {unknown}")
    rule_names = [r.name for r in rules]
    if len(set(rule_names)) != len(rule_names):
        raise ContractError(path, "quality", f"rule names must be unique: {rule_names}")
    server = (m.servers or [None])[0]
    custom = {c.property: c.value for c in (m.customProperties or []) if c.property}
    series, retires = _side_by_side(path, name, m.version, custom)
    return Contract(
        path=path,
        domain=m.domain,
        name=f"{name}_v{_major_of(m.version)}" if series else name,
        version=m.version,
        status=m.status or "active",
        description=_description(m, obj),
        purpose=(m.description.purpose or "") if m.description is not None else "",
        team=team,
        columns=columns,
        rules=tuple(rules),
        freshness=_freshness(path, m.slaProperties or []),
        grants=_grants(path, m.roles or [], names),
        tags=tuple(m.tags or []),
        server_format=server.format if server else None,
        server_path=server.path if server else None,
        servers=tuple(_server(x) for x in (m.servers or [])),
        volume_max_drop=_volume(path, custom),
        custom=custom,
        series=series,
        retires=retires,
    )


def _major_of(version: str) -> int | None:
    m = re.match(r"^(\d+)\.\d+\.\d+", version)
    return int(m.group(1)) if m else None


def _side_by_side(path: Path, name: str, version: str, custom: dict) -> tuple[str | None, date | None]:
    """(series, retirement date) of an older major version's contract, kept beside the latest
    as `<name>_v<N>.odcs.yaml` with the same schema name; (None, None) for any other file."""
    m = re.match(rf"^{re.escape(name)}_v(\d+)\.odcs\.yaml$", path.name)
    if not m:
        return None, None
    if _major_of(version) != int(m.group(1)):
        raise ContractError(
            path, "version", f"'{version}' in the file of major version {m.group(1)} of '{name}' "
            f"(a side-by-side major keeps its major: {m.group(1)}.x.y)")
    raw = custom.get(DEPRECATION_PROPERTY)
    try:
        return name, date.fromisoformat(str(raw))
    except ValueError:
        raise ContractError(
            path, f"customProperties.{DEPRECATION_PROPERTY}",
            f"{'missing' if raw is None else repr(raw) + ' is not a date'}: an older major version served "
            f"side by side names the last day it is served (YYYY-MM-DD)") from None


def _column(path: Path, field: str, p) -> Column:
    if not p.name or not _NAME.match(p.name):
        raise ContractError(path, f"{field}.name", f"'{p.name}' must be a snake_case name")
    if not p.logicalType:
        raise ContractError(path, f"{field}.logicalType", f"missing for column '{p.name}'")
    if not p.physicalType:
        raise ContractError(path, f"{field}.physicalType", f"missing for column '{p.name}'")
    try:
        sqltypes.check(p.physicalType)
    except sqltypes.UnknownType:
        raise ContractError(
            path,
            f"{field}.physicalType",
            f"unknown column type '{p.physicalType}' for column '{p.name}' (a DuckDB type is expected)",
        ) from None
    _check_nested(path, field, p)
    return Column(
        name=p.name,
        logical_type=p.logicalType,
        physical_type=p.physicalType.strip(),
        description=p.description or "",
        required=bool(p.required or p.primaryKey),
        unique=bool(p.unique or p.primaryKey),
        primary_key=bool(p.primaryKey),
        classification=p.classification,
    )


def _server(s) -> Server:
    data = s.model_dump(exclude_none=True, by_alias=True)
    name, kind, environment = data.pop("server", ""), data.pop("type", ""), data.pop("environment", None)
    return Server(name, kind, environment, data)


def _check_nested(path: Path, field: str, p) -> None:
    """The column's logicalType and its nested ODCS declarations (`properties`, `items`, `map`)
    say what its physicalType says (see mesh_platform.nested)."""
    try:
        nested.check(field, p, typetree.parse(p.physicalType), p.name)
    except nested.Disagreement as exc:
        raise ContractError(path, exc.field, exc.message) from None


def _grants(path: Path, roles, columns: list[str]) -> tuple[ReadGrant, ...]:
    grants = []
    for i, role in enumerate(roles):
        if (role.access or "read") != "read":
            continue
        props = {c.property: c.value for c in (role.customProperties or []) if c.property}
        unknown = sorted(set(props) - {"mask", "exclude"})
        if unknown:
            raise ContractError(path, f"roles[{i}].customProperties", f"unknown {unknown}: a grant takes mask and exclude")
        hidden = {}
        for kind in ("mask", "exclude"):
            value = props.get(kind) or []
            if isinstance(value, str):
                value = [value]
            bad = [c for c in value if c not in columns]
            if not isinstance(value, list) or bad:
                raise ContractError(path, f"roles[{i}].customProperties.{kind}", f"unknown columns {bad or value}")
            hidden[kind] = tuple(value)
        if set(hidden["mask"]) & set(hidden["exclude"]):
            raise ContractError(path, f"roles[{i}].customProperties", "a column is either masked or excluded")
        grants.append(ReadGrant(role.role, hidden["mask"], hidden["exclude"]))
    readers = [g.reader for g in grants]
    if len(set(readers)) != len(readers):
        raise ContractError(path, "roles", f"a reader is granted twice: {readers}")
    return tuple(grants)


def _volume(path: Path, custom: dict) -> float | None:
    value = custom.get(VOLUME_PROPERTY, DEFAULT_VOLUME_MAX_DROP)
    if value == "off":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ContractError(path, f"customProperties.{VOLUME_PROPERTY}", f"a percent (0-100) or 'off', got {value!r}")
    return float(value)


def _rule(path: Path, field: str, q, column: str | None) -> QualityRule:
    bounds = tuple((k, getattr(q, k)) for k in _BOUNDS if getattr(q, k) is not None)
    severity = (q.severity or "error").lower()
    if severity not in SEVERITIES:
        raise ContractError(path, f"{field}.severity", f"unknown severity '{q.severity}': one of {list(SEVERITIES)}")
    blocking = SEVERITIES[severity]
    kind = q.type or "library"
    if kind == "library":
        metric = q.metric or q.rule
        if metric not in _METRIC_EXPECTATIONS:
            raise ContractError(path, f"{field}.metric", f"unsupported metric '{metric}'")
        if (metric == "rowCount") == (column is not None):
            where = "on the schema object" if metric == "rowCount" else "on a column"
            raise ContractError(path, field, f"metric '{metric}' belongs {where}")
        kwargs = _library_kwargs(path, field, metric, dict(bounds), q.arguments or {})
        if column is not None:
            kwargs["column"] = column
        return QualityRule(
            name=q.name or f"{column or 'table'}_{metric}",
            engine="great_expectations",
            column=column,
            expectation=_METRIC_EXPECTATIONS[metric],
            kwargs=tuple(sorted(kwargs.items())),
            query=None,
            bounds=(),
            blocking=blocking,
            description=q.description or describe_expectation(_METRIC_EXPECTATIONS[metric], kwargs),
        )
    if kind == "custom":
        if (q.engine or "").replace("_", "").lower() != "greatexpectations":
            raise ContractError(path, f"{field}.engine", f"unsupported engine '{q.engine}'")
        impl = q.implementation
        if isinstance(impl, str):
            try:
                impl = strict_yaml.load(impl)
            except strict_yaml.YamlProblem as exc:
                raise ContractError(path, f"{field}.implementation", str(exc)) from None
        if not isinstance(impl, dict) or not str(impl.get("type", "")).startswith("expect_"):
            raise ContractError(
                path, f"{field}.implementation", "needs 'type: expect_...' and 'kwargs'"
            )
        kwargs = dict(impl.get("kwargs") or {})
        if column is not None:
            kwargs.setdefault("column", column)
        return QualityRule(
            name=need_name(path, field, q.name),
            engine="great_expectations",
            column=kwargs.get("column"),
            expectation=impl["type"],
            kwargs=tuple(sorted(kwargs.items())),
            query=None,
            bounds=(),
            blocking=blocking,
            description=q.description or describe_expectation(impl["type"], kwargs),
        )
    if kind == "sql":
        if not q.query:
            raise ContractError(path, f"{field}.query", "missing SQL query")
        if column is None and "${property}" in q.query:
            raise ContractError(path, f"{field}.query", "${property} is the column of a rule on a column; this rule "
                                "is on the table: name the column")
        if not bounds:
            raise ContractError(path, field, "a sql rule needs a mustBe... operator")
        for op, bound in bounds:
            pair = op in ("mustBeBetween", "mustNotBeBetween")
            values = bound if pair and isinstance(bound, list) and len(bound) == 2 else None if pair else [bound]
            if values is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                want = "two numbers [low, high]" if pair else "a number"
                raise ContractError(path, f"{field}.{op}", f"a sql rule's query returns a number, compared with {want}; got {bound!r}")
        return QualityRule(
            name=need_name(path, field, q.name),
            engine="sql",
            column=column,
            expectation=None,
            kwargs=(),
            query=q.query,
            bounds=bounds,
            blocking=blocking,
            description=q.description or f"{q.query.strip()} must be {_bounds_text(bounds)}",
        )
    raise ContractError(path, f"{field}.type", f"unsupported quality type '{kind}'")


def describe_expectation(expectation: str, kwargs: dict) -> str:
    """A Great Expectations expectation in plain words, for a check without a description."""
    k = dict(kwargs)
    col = k.pop("column", None)
    mostly = k.pop("mostly", None)
    low, high = k.get("min_value"), k.get("max_value")
    span = (f"between {low} and {high}" if low is not None and high is not None
            else f"at least {low}" if low is not None else f"at most {high}" if high is not None else "")
    listed = ", ".join(str(v) for v in k.get("value_set", []))
    text = {
        "expect_column_values_to_not_be_null": f"{col} is never null",
        "expect_column_values_to_be_unique": f"no two rows share a {col}",
        "expect_column_values_to_be_in_set": f"{col} is one of: {listed}",
        "expect_column_values_to_not_be_in_set": f"{col} is none of: {listed}",
        "expect_column_values_to_be_between": f"{col} is {span}",
        "expect_column_values_to_match_regex": f"{col} matches {k.get('regex')}",
        "expect_column_values_to_not_match_regex": f"{col} does not match {k.get('regex')}",
        "expect_column_value_lengths_to_equal": f"{col} is exactly {k.get('value')} characters long",
        "expect_column_value_lengths_to_be_between": f"{col} is {span} characters long",
        "expect_table_row_count_to_be_between": f"the product has {span} row(s)",
        "expect_table_row_count_to_equal": f"the product has exactly {k.get('value')} rows",
    }.get(expectation)
    if text is None:
        words = expectation.removeprefix("expect_").replace("_", " ")
        args = ", ".join(f"{key}={value}" for key, value in sorted(k.items()))
        text = f"{words}" + (f" ({args})" if args else "")
        text = text.replace("column ", f"column {col} ", 1) if col else text
    if mostly is not None and float(mostly) < 1:
        text += f", for at least {float(mostly):.0%} of the rows"
    return text


def _bounds_text(bounds) -> str:
    words = {"mustBe": "", "mustNotBe": "not ", "mustBeGreaterThan": "greater than ",
             "mustBeGreaterOrEqualTo": "at least ", "mustBeLessThan": "less than ",
             "mustBeLessOrEqualTo": "at most ", "mustBeBetween": "between ", "mustNotBeBetween": "not between "}
    return " and ".join(f"{words[op]}{' and '.join(map(str, b)) if isinstance(b, (list, tuple)) else b}" for op, b in bounds)


def rule_columns(rule: QualityRule) -> list[str]:
    kwargs = dict(rule.kwargs)
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return cols + list(kwargs.get("column_list", []))


def need_name(path: Path, field: str, name: str | None) -> str:
    if not name or not _NAME.match(name):
        raise ContractError(path, f"{field}.name", "custom and sql rules need a snake_case name")
    return name


def _library_kwargs(path: Path, field: str, metric: str, bounds: dict, args: dict) -> dict:
    if metric == "rowCount":
        low = bounds.get("mustBeGreaterOrEqualTo", bounds.get("mustBeGreaterThan"))
        if "mustBeGreaterThan" in bounds:
            low = bounds["mustBeGreaterThan"] + 1
        high = bounds.get("mustBeLessOrEqualTo")
        if "mustBeLessThan" in bounds:
            high = bounds["mustBeLessThan"] - 1
        if "mustBeBetween" in bounds:
            low, high = bounds["mustBeBetween"]
        if low is None and high is None:
            raise ContractError(path, field, "rowCount needs a lower or upper bound")
        return {"min_value": low, "max_value": high}
    kwargs: dict[str, Any] = {}
    if metric == "invalidValues":
        valid = args.get("validValues")
        if not valid:
            raise ContractError(path, f"{field}.arguments.validValues", "missing")
        kwargs["value_set"] = list(valid)
    if bounds.get("mustBe", 0) != 0 or set(bounds) - {"mustBe", "mustBeLessOrEqualTo", "mustBeLessThan"}:
        raise ContractError(path, field, f"{metric} supports mustBe: 0 or a percent upper bound")
    limit = bounds.get("mustBeLessOrEqualTo", bounds.get("mustBeLessThan"))
    if limit is not None:
        if metric == "duplicateValues":
            raise ContractError(path, field, "duplicateValues supports mustBe: 0 only")
        kwargs["mostly"] = 1 - float(limit) / 100
    return kwargs


def _description(m, obj) -> str:
    parts = [obj.description or ""]
    if m.description is not None:
        parts += [m.description.purpose or "", m.description.usage or "", m.description.limitations or ""]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _freshness(path: Path, slas) -> timedelta | None:
    """The 'latency' SLA (ODCS's name for freshness) is the longest the product may go stale."""
    for i, sla in enumerate(slas):
        if sla.property != "latency":
            continue
        unit = _UNITS.get((sla.unit or "").lower())
        if unit is None or not isinstance(sla.value, (int, float)) or sla.value <= 0:
            raise ContractError(
                path,
                f"slaProperties[{i}]",
                f"latency needs a positive number and a unit in {sorted(set(_UNITS))}",
            )
        return timedelta(**{unit: sla.value})
    return None
