"""Two versions of a product contract compared, every change classified as breaking or not.

The rules are the ODCS ecosystem's usual ones (those of `datacontract changelog`/`breaking`): a
change is breaking when a consumer or a pipeline built against the old version may fail or
silently change meaning, or when the producer promises something the old version's data need
not satisfy:

  breaking      a column removed or renamed; a type narrowed or changed (also inside a STRUCT:
                a field removed, renamed, narrowed); a column made required or unique, or added
                as required; the grain (the primary key set) changed; a blocking quality rule
                added or tightened (a validValues set shrinking, a bound getting stricter, a
                non-blocking rule made blocking, a rule changed in a way that cannot be told
                looser); the volume check or the latency SLA tightened; a read grant removed, or
                columns masked or excluded for a reader; the product renamed.
  compatible    an optional column added; a type widened (INTEGER -> BIGINT, DECIMAL(10,2) ->
                DECIMAL(18,2), VARCHAR(n) -> VARCHAR, a STRUCT gaining a field); a rule removed,
                loosened or made non-blocking; a non-blocking rule changed; a grant added or
                unmasked; an SLA loosened; descriptions, tags, owner, status, servers and other
                descriptive metadata.

Each change names the file, the field (`schema[0].properties[3]`,
`schema[0].properties[6].items.properties[3].physicalType`), the column path
(`recent_orders.amount`) where it is about a column, and its rule. Pure and light: no DuckDB
for the contracts' types, no catalog, no git (see mesh_platform.contract_versions for those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_platform import strict_yaml, typetree
from mesh_platform.contracts import Contract, ContractError, QualityRule

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Version:
    """One version of a contract: as the platform reads it, as written, and where it came from."""

    contract: Contract
    raw: dict
    text: str
    origin: str  # the file, "HEAD~1:domains/...", "published snapshot 123"


def parse(text: str, path: Path | str, origin: str | None = None, validate: bool = True) -> Version:
    """A contract version from its text; `path` is the file it is (or was) in. Errors name
    `origin` (e.g. "HEAD~1:domains/orders/contracts/history.odcs.yaml") and the field.
    `validate=False` skips the ODCS JSON schema (half a second a contract), for a text the
    platform already accepted once (a published one); the platform's own checks still run."""
    from mesh_platform import contracts

    label = origin or str(path)
    try:
        raw = strict_yaml.load(text)
    except strict_yaml.YamlProblem as exc:
        raise ContractError(label, "(yaml)", str(exc)) from None
    if not isinstance(raw, dict):
        raise ContractError(label, "(document)", "not an ODCS contract (expected a mapping)")
    errors = list(contracts._odcs_validator().iter_errors(raw)) if validate else []
    if errors:
        err = contracts._first_precise(errors)
        where = err.json_path.removeprefix("$.") if err.absolute_path else "(document)"
        raise ContractError(label, where, f"not valid ODCS: {err.message}")
    from open_data_contract_standard.model import OpenDataContractStandard

    try:
        contract = contracts._to_contract(Path(path), OpenDataContractStandard(**raw))
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:  # pydantic's ValidationError is a ValueError
        if not isinstance(exc, ContractError):
            raise ContractError(label, "(document)", f"not valid ODCS: {str(exc).splitlines()[0]}") from None
        raise ContractError(label, exc.field, str(exc)[len(f"{exc.path}: {exc.field}: "):]) from None
    return Version(contract, raw, text, label)


def read(path: Path | str) -> Version:
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), path)


def of(contract: Contract, text: str | None = None) -> Version:
    """The version a loaded contract is (its file read again for the raw ODCS, not validated
    again)."""
    text = Path(contract.path).read_text(encoding="utf-8") if text is None else text
    return Version(contract, strict_yaml.load(text), text, str(contract.path))


@dataclass(frozen=True)
class Change:
    file: str
    field: str  # where in the contract, e.g. schema[0].properties[3].physicalType
    rule: str  # e.g. column-removed, type-narrowed, rule-tightened
    breaking: bool
    message: str  # what the change does: "removes column lifetime_value"
    column: str | None = None  # the column path it concerns ("recent_orders.amount"), if any
    reader: str | None = None  # for a grant change: the reader (code location) it concerns

    @property
    def verdict(self) -> str:
        return "breaking" if self.breaking else "compatible"

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: [{self.verdict}] {self.rule}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "field": self.field, "rule": self.rule, "breaking": self.breaking,
            "message": self.message, "column": self.column, "reader": self.reader,
        }


@dataclass(frozen=True)
class Diff:
    old: Version
    new: Version
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return self.new.contract.key

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def old_version(self) -> str:
        return self.old.contract.version

    @property
    def new_version(self) -> str:
        return self.new.contract.version

    @property
    def major_bumped(self) -> bool:
        old, new = _major(self.old_version), _major(self.new_version)
        if old is None or new is None:
            return False
        return new > old

    @property
    def suggested_version(self) -> str:
        """The version a release with these changes should have (at least)."""
        old = SEMVER.match(self.old_version or "")
        if old is None:
            return "a new major version"
        major, minor, patch = map(int, old.groups())
        if self.breaking:
            return f"{major + 1}.0.0"
        if any(c.rule not in _PATCH_RULES for c in self.changes):
            return f"{major}.{minor + 1}.0"
        return f"{major}.{minor}.{patch + 1}" if self.changes else self.old_version

    def problem(self) -> str | None:
        """Why this release may not go out as it is versioned, or None: breaking changes need a
        new major version."""
        if not self.breaking or self.major_bumped:
            return None
        what = "; ".join(c.message for c in self.breaking)
        return (
            f"{self.old_version} -> {self.new_version} {what}: breaking; "
            f"release it as {self.suggested_version}"
        )


# Changes that only describe: a patch release is enough.
_PATCH_RULES = frozenset({"description-changed", "tags-changed", "metadata-changed", "column-metadata-changed",
                          "rule-description-changed", "owner-changed", "nested-declared", "nested-undeclared"})


def _major(version: str | None) -> int | None:
    m = SEMVER.match(version or "")
    return int(m.group(1)) if m else None


def major(version: str | None) -> int | None:
    return _major(version)


def compare(old: Version | Contract, new: Version | Contract) -> Diff:
    """Every change from `old` to `new`. Contract objects are read again from their files (the
    raw ODCS, for field paths and what the platform does not keep)."""
    old = old if isinstance(old, Version) else of(old)
    new = new if isinstance(new, Version) else of(new)
    d = _Differ(old, new)
    d.run()
    return Diff(old, new, tuple(d.out))


class _Differ:
    def __init__(self, old: Version, new: Version):
        self.old, self.new = old, new
        self.o, self.n = old.contract, new.contract
        self.file = str(new.contract.path)
        self.out: list[Change] = []
        self.renamed: dict[str, str] = {}
        self.oprops = _props(old.raw)
        self.nprops = _props(new.raw)

    def add(self, field: str, rule: str, breaking: bool, message: str, column: str | None = None,
            reader: str | None = None) -> None:
        self.out.append(Change(self.file, field, rule, breaking, message, column, reader))

    def run(self) -> None:
        self.product()
        self.columns()
        self.rules()
        self.volume()
        self.sla()
        self.grants()
        self.metadata()

    # -- the product itself --------------------------------------------------------------
    def product(self) -> None:
        if (self.o.domain, self.o.name) != (self.n.domain, self.n.name):
            self.add("schema[0].name", "product-renamed", True, f"renames product {self.o.key} to {self.n.key}")

    # -- columns -------------------------------------------------------------------------
    def columns(self) -> None:
        old = {c.name: i for i, c in enumerate(self.o.columns)}
        new = {c.name: i for i, c in enumerate(self.n.columns)}
        removed = [n for n in old if n not in new]
        added = [n for n in new if n not in old]
        renamed = self.renamed = _renames(
            [(n, old[n], self.o.columns[old[n]].physical_type) for n in removed],
            [(n, new[n], self.n.columns[new[n]].physical_type) for n in added],
        )
        for name in removed:
            field = f"schema[0].properties[{old[name]}]"
            if name in renamed:
                to = renamed[name]
                self.add(f"schema[0].properties[{new[to]}].name", "column-renamed", True,
                         f"renames column {name} to {to}", column=name)
            else:
                self.add(field, "column-removed", True, f"removes column {name}", column=name)
        grain_old, grain_new = set(self.o.primary_key), set(self.n.primary_key)
        for name in added:
            if name in renamed.values():
                continue
            col, i = self.n.columns[new[name]], new[name]
            if col.primary_key:
                continue  # the grain change below says it
            if col.required:
                self.add(f"schema[0].properties[{i}]", "column-added-required", True,
                         f"adds required column {name}", column=name)
            else:
                self.add(f"schema[0].properties[{i}]", "column-added", False, f"adds optional column {name}", column=name)
        if grain_old != grain_new:
            changed = sorted(grain_old ^ grain_new)
            i = new.get(changed[0])
            field = f"schema[0].properties[{i}].primaryKey" if i is not None else "schema[0].properties"
            self.add(field, "grain-changed", True,
                     f"changes the grain (primary key) from ({', '.join(self.o.primary_key) or 'none'}) "
                     f"to ({', '.join(self.n.primary_key) or 'none'})")
        for name in [n for n in old if n in new]:
            self.column(name, old[name], new[name], name in grain_old ^ grain_new)

    def column(self, name: str, oi: int, ni: int, grain_changed: bool) -> None:
        o, n = self.o.columns[oi], self.n.columns[ni]
        field = f"schema[0].properties[{ni}]"
        oraw, nraw = self.oprops[oi], self.nprops[ni]
        self.types(name, field, nraw, o.physical_type, n.physical_type)
        self.declarations(name, field, oraw, nraw, o.physical_type, n.physical_type)
        if not grain_changed:
            if n.required and not o.required:
                self.add(f"{field}.required", "column-required", True, f"makes column {name} required", column=name)
            elif o.required and not n.required:
                self.add(f"{field}.required", "column-optional", False, f"makes column {name} optional", column=name)
            if n.unique and not o.unique:
                self.add(f"{field}.unique", "column-unique", True, f"makes column {name} unique", column=name)
            elif o.unique and not n.unique:
                self.add(f"{field}.unique", "column-not-unique", False, f"no longer promises column {name} unique",
                         column=name)
        if o.logical_type != n.logical_type:
            wider = (o.logical_type, n.logical_type) == ("integer", "number")
            self.add(f"{field}.logicalType", "logical-type-widened" if wider else "logical-type-changed", not wider,
                     f"changes the logicalType of {name} from {o.logical_type} to {n.logical_type}", column=name)
        if o.classification != n.classification:
            self.add(f"{field}.classification", "classification-changed", False,
                     f"classifies column {name} as {n.classification or 'nothing'} (was {o.classification or 'nothing'})",
                     column=name)
        self.nested_attributes(name, field, oraw, nraw)
        handled = {"name", "logicalType", "physicalType", "required", "unique", "primaryKey", "classification",
                   "description", "quality", "items", "properties", "map"}
        for key in sorted((set(oraw) | set(nraw)) - handled):
            if oraw.get(key) != nraw.get(key):
                self.add(f"{field}.{key}", "column-metadata-changed", False,
                         f"changes {key} of column {name} (descriptive; the platform does not enforce it)", column=name)

    def declarations(self, name: str, field: str, oraw: dict, nraw: dict, old_type: str, new_type: str) -> None:
        """Nested ODCS declarations added or dropped for fields both types have (a field the
        type gains, loses or renames is reported as that)."""
        old, new = _nested_decls(oraw), _nested_decls(nraw)
        try:
            trees = typetree.parse(old_type), typetree.parse(new_type)
        except ValueError:
            return
        both = lambda p: all(_has_path(t, p) for t in trees)  # noqa: E731
        for path in [p for p in new if p not in old and both(p)]:
            self.add(f"{field}{new[path][0]}", "nested-declared", False,
                     f"declares {'.'.join([name, *path])} (nested ODCS declaration)", column=".".join([name, *path]))
        for path in [p for p in old if p not in new and both(p)]:
            self.add(field, "nested-undeclared", False,
                     f"no longer declares {'.'.join([name, *path])} (nested ODCS declaration)",
                     column=".".join([name, *path]))

    def nested_attributes(self, name: str, field: str, oraw: dict, nraw: dict) -> None:
        """Descriptions and `required` of nested declarations, path by path."""
        old, new = _nested_decls(oraw), _nested_decls(nraw)
        if (oraw.get("description") or "") != (nraw.get("description") or ""):
            self.add(f"{field}.description", "description-changed", False, f"changes the description of {name}",
                     column=name)
        for path in [p for p in new if p in old]:
            (_, o), (suffix, n) = old[path], new[path]
            column = ".".join([name, *path])
            if (o.get("description") or "") != (n.get("description") or ""):
                self.add(f"{field}{suffix}.description", "description-changed", False,
                         f"changes the description of {column}", column=column)
            if n.get("required") and not o.get("required"):
                self.add(f"{field}{suffix}.required", "column-required", True, f"makes {column} required", column=column)
            elif o.get("required") and not n.get("required"):
                self.add(f"{field}{suffix}.required", "column-optional", False, f"makes {column} optional", column=column)

    def types(self, name: str, field: str, nraw: dict, old: str, new: str) -> None:
        try:
            a, b = typetree.parse(old), typetree.parse(new)
        except ValueError:
            if old != new:
                self.add(f"{field}.physicalType", "type-changed", True, f"changes the type of {name} from {old} to {new}",
                         column=name)
            return
        for path, rule, breaking, message, declared in _type_changes([name], a, b):
            where = _decl_field(nraw, declared[1:], field)
            self.add(where, rule, breaking, message, column=".".join(path))

    # -- quality rules -------------------------------------------------------------------
    def rules(self) -> None:
        old = {r.name: (r, f, s) for r, (f, s) in zip(self.o.rules, _rule_fields(self.old.raw))}
        new = {r.name: (r, f, s) for r, (f, s) in zip(self.n.rules, _rule_fields(self.new.raw))}
        for name, (r, f, _) in old.items():
            if name not in new:
                self.add(f, "rule-removed", False, f"removes rule {name}", column=r.column)
        for name, (r, f, sev) in new.items():
            if name not in old:
                if r.blocking:
                    self.add(f, "rule-added-blocking", True, f"adds blocking rule {name} ({sev})", column=r.column)
                else:
                    self.add(f, "rule-added", False, f"adds non-blocking rule {name} ({sev})", column=r.column)
                continue
            o, _, osev = _follow_renames(old[name][0], self.renamed), None, old[name][2]
            for rule, breaking, message in _rule_changes(o, r, osev, sev):
                self.add(f, rule, breaking, message, column=r.column)

    def volume(self) -> None:
        from mesh_platform.contracts import VOLUME_PROPERTY

        o, n = self.o.volume_max_drop, self.n.volume_max_drop
        if o == n:
            return
        show = {None: "off"}
        field = f"customProperties.{VOLUME_PROPERTY}"
        message = f"the volume check's allowed drop from {show.get(o, f'{o:g}%')} to {show.get(n, f'{n:g}%')}"
        if o is None or (n is not None and n < o):
            self.add(field, "rule-tightened", True, f"tightens {message}")
        else:
            self.add(field, "rule-loosened", False, f"loosens {message}")

    # -- service levels ------------------------------------------------------------------
    def sla(self) -> None:
        o, n = self.o.freshness, self.n.freshness
        field = _sla_field(self.new.raw) or _sla_field(self.old.raw) or "slaProperties"
        if o != n:
            if n is not None and (o is None or n < o):
                self.add(field, "sla-tightened", True, f"shortens the latency SLA from {_span(o)} to {_span(n)}")
            else:
                self.add(field, "sla-loosened", False, f"lengthens the latency SLA from {_span(o)} to {_span(n)}")
        others = lambda raw: {s.get("property"): s for s in raw.get("slaProperties") or [] if s.get("property") != "latency"}  # noqa: E731
        oo, nn = others(self.old.raw), others(self.new.raw)
        for prop in sorted(set(oo) | set(nn), key=str):
            if oo.get(prop) != nn.get(prop):
                self.add("slaProperties", "sla-changed", False, f"changes the {prop} SLA (not enforced by the platform)")

    # -- grants --------------------------------------------------------------------------
    def grants(self) -> None:
        old = {g.reader: g for g in self.o.grants}
        new = {g.reader: g for g in self.n.grants}
        for reader, g in old.items():
            if reader not in new:
                self.add(_role_field(self.old.raw, reader), "grant-removed", True,
                         f"removes the read grant of {reader}", reader=reader)
        for reader, g in new.items():
            field = _role_field(self.new.raw, reader)
            if reader not in old:
                self.add(field, "grant-added", False, f"grants read access to {reader}", reader=reader)
                continue
            o = old[reader]
            hidden_before = set(o.mask) | set(o.exclude)
            for col in g.mask:
                if col not in hidden_before:
                    self.add(f"{field}.customProperties", "grant-masked", True, f"masks column {col} for {reader}",
                             column=col, reader=reader)
            for col in g.exclude:
                if col not in o.exclude:
                    self.add(f"{field}.customProperties", "grant-excluded", True, f"excludes column {col} for {reader}",
                             column=col, reader=reader)
            for col in sorted(hidden_before - set(g.mask) - set(g.exclude)):
                self.add(f"{field}.customProperties", "grant-widened", False, f"shows column {col} to {reader} in the clear",
                         column=col, reader=reader)
            for col in sorted(set(o.exclude) & set(g.mask)):
                self.add(f"{field}.customProperties", "grant-widened", False,
                         f"gives {reader} column {col} masked (was excluded)", column=col, reader=reader)

    # -- everything else: descriptive ------------------------------------------------------
    def metadata(self) -> None:
        o, n = self.old.raw, self.new.raw
        od, nd = o.get("description") or {}, n.get("description") or {}
        for key in sorted(set(od) | set(nd)):
            if od.get(key) != nd.get(key):
                self.add(f"description.{key}", "description-changed", False, f"changes the description's {key}")
        os_, ns = (o.get("schema") or [{}])[0], (n.get("schema") or [{}])[0]
        if os_.get("description") != ns.get("description"):
            self.add("schema[0].description", "description-changed", False, "changes the table's description")
        for key in sorted((set(os_) | set(ns)) - {"name", "properties", "quality", "description"}):
            if os_.get(key) != ns.get(key):
                self.add(f"schema[0].{key}", "metadata-changed", False, f"changes schema[0].{key}")
        simple = {"tags": "tags-changed", "team": "owner-changed", "status": "status-changed", "servers": "servers-changed"}
        for key, rule in simple.items():
            if o.get(key) != n.get(key):
                self.add(key, rule, False, f"changes {key}")
        from mesh_platform.contracts import VOLUME_PROPERTY

        oc = {c.get("property"): c.get("value") for c in o.get("customProperties") or []}
        nc = {c.get("property"): c.get("value") for c in n.get("customProperties") or []}
        for key in sorted((set(oc) | set(nc)) - {VOLUME_PROPERTY}, key=str):
            if oc.get(key) != nc.get(key):
                self.add(f"customProperties.{key}", "metadata-changed", False, f"changes customProperties {key}")
        handled = {"version", "schema", "roles", "slaProperties", "description", "customProperties", "domain",
                   *simple}
        for key in sorted((set(o) | set(n)) - handled):
            if o.get(key) != n.get(key):
                self.add(key, "metadata-changed", False, f"changes {key}")


def _props(raw: dict) -> list[dict]:
    return list(((raw.get("schema") or [{}])[0].get("properties")) or [])


def _renames(removed: list[tuple[str, int, str]], added: list[tuple[str, int, str]]) -> dict[str, str]:
    """Removed -> added names taken for a rename: same position, same type."""
    out = {}
    for name, i, t in removed:
        for new, j, u in added:
            if i == j and new not in out.values() and _same_type(t, u):
                out[name] = new
                break
    return out


def _same_type(a: str, b: str) -> bool:
    try:
        return typetree.same(a, b)
    except ValueError:
        return a == b


def _type_changes(path: list[str], old: typetree.SqlType, new: typetree.SqlType):
    """(column path, rule, breaking, message, path in the new version) for every difference
    between two types."""
    dotted = ".".join(path)
    if old == new:
        return
    if old.kind == new.kind == "struct":
        onames, nnames = [n for n, _ in old.fields], [n for n, _ in new.fields]
        removed = [n for n in onames if n not in nnames]
        added = [n for n in nnames if n not in onames]
        renamed = _renames(
            [(n, onames.index(n), str(old.field(n))) for n in removed],
            [(n, nnames.index(n), str(new.field(n))) for n in added],
        )
        for n in removed:
            if n in renamed:
                yield ([*path, n], "field-renamed", True, f"renames field {dotted}.{n} to {dotted}.{renamed[n]}",
                       [*path, renamed[n]])
            else:
                yield [*path, n], "field-removed", True, f"removes field {dotted}.{n}", path
        for n in added:
            if n not in renamed.values():
                yield [*path, n], "field-added", False, f"adds field {dotted}.{n}", [*path, n]
        common = [n for n in onames if n in nnames]
        for n in common:
            yield from _type_changes([*path, n], old.field(n), new.field(n))
        if common != [n for n in nnames if n in onames]:
            yield path, "fields-reordered", False, f"reorders the fields of {dotted} (read by name: compatible)", path
        return
    if old.kind == new.kind == "list" or (old.kind == new.kind == "array" and old.params == new.params):
        yield from _type_changes(path, old.element, new.element)
        return
    if old.kind == new.kind == "map":
        if old.fields[0][1] != new.fields[0][1]:
            yield ([*path, "key"], "type-changed", True,
                   f"changes the key type of {dotted} from {old.fields[0][1]} to {new.fields[0][1]}", path)
        yield from _type_changes([*path, "value"], old.fields[1][1], new.fields[1][1])
        return
    what = "field" if len(path) > 1 else "column"
    if typetree.widens(old, new):
        yield path, "type-widened", False, f"widens {what} {dotted} from {old} to {new}", path
    elif typetree.widens(new, old):
        yield path, "type-narrowed", True, f"narrows {what} {dotted} from {old} to {new}", path
    else:
        yield path, "type-changed", True, f"changes the type of {what} {dotted} from {old} to {new}", path


def _nested_decls(prop: dict, path: tuple[str, ...] = (), suffix: str = "") -> dict[tuple[str, ...], tuple[str, dict]]:
    """Nested declarations of a raw ODCS property: column path below it -> (field suffix, declaration)."""
    out: dict[tuple[str, ...], tuple[str, dict]] = {}
    items = prop.get("items")
    if isinstance(items, dict):
        out |= _nested_decls(items, path, f"{suffix}.items")
    for j, sub in enumerate(prop.get("properties") or []):
        if isinstance(sub, dict) and sub.get("name"):
            p = (*path, sub["name"])
            out[p] = (f"{suffix}.properties[{j}]", sub)
            out |= _nested_decls(sub, p, f"{suffix}.properties[{j}]")
    return out


def _has_path(t: typetree.SqlType, path: tuple[str, ...]) -> bool:
    for name in path:
        while t.nested is not None:
            t = t.nested
        t = t.field(name)
        if t is None:
            return False
    return True


def _decl_field(prop: dict, path: list[str], field: str) -> str:
    """The field of the nested declaration of `path` inside column `prop` (at `field`), if the
    contract declares it; else the column's physicalType."""
    if not path:
        return f"{field}.physicalType"
    decls = _nested_decls(prop)
    for n in range(len(path), 0, -1):
        found = decls.get(tuple(path[:n]))
        if found:
            suffix, decl = found
            return f"{field}{suffix}" + (".physicalType" if n == len(path) and decl.get("physicalType") else "")
    return f"{field}.physicalType"


def _follow_renames(rule: QualityRule, renamed: dict[str, str]) -> QualityRule:
    """A rule of the old version with renamed columns called by their new names: a rule that
    follows its column's rename is not a change to the rule."""
    import dataclasses

    if not renamed:
        return rule
    kwargs = tuple((k, renamed.get(v, v) if k in ("column", "column_A", "column_B") else v) for k, v in rule.kwargs)
    return dataclasses.replace(rule, column=renamed.get(rule.column, rule.column), kwargs=kwargs)


def _rule_fields(raw: dict) -> list[tuple[str, str]]:
    """(field, severity) of every quality rule, in the order the platform reads them."""
    obj = (raw.get("schema") or [{}])[0]
    out = [(f"schema[0].quality[{i}]", q) for i, q in enumerate(obj.get("quality") or [])]
    for i, p in enumerate(obj.get("properties") or []):
        out += [(f"schema[0].properties[{i}].quality[{j}]", q) for j, q in enumerate(p.get("quality") or [])]
    return [(f, str(q.get("severity") or "error").lower()) for f, q in out]


def _rule_changes(o: QualityRule, n: QualityRule, osev: str, nsev: str):
    """(rule, breaking, message) for the changes to one quality rule."""
    name = n.name
    if n.blocking and not o.blocking:
        yield "rule-severity-raised", True, f"raises rule {name} from {osev} to {nsev}: it now blocks publishes"
    elif o.blocking and not n.blocking:
        yield "rule-severity-lowered", False, f"lowers rule {name} from {osev} to {nsev}: it no longer blocks publishes"
    elif osev != nsev:
        yield "rule-severity-changed", False, f"changes the severity of rule {name} from {osev} to {nsev}"
    same_check = (o.engine, o.expectation, o.column, _sql(o.query), o.kwargs, o.bounds) == (
        n.engine, n.expectation, n.column, _sql(n.query), n.kwargs, n.bounds)
    if same_check:
        if o.description != n.description:
            yield "rule-description-changed", False, f"changes the description of rule {name}"
        return
    if not n.blocking:
        yield "rule-changed", False, f"changes non-blocking rule {name}"
        return
    if (o.engine, o.expectation, o.column, _sql(o.query)) != (n.engine, n.expectation, n.column, _sql(n.query)):
        yield "rule-changed", True, f"changes what rule {name} checks (cannot tell whether it is stricter)"
        return
    tighter, looser, unknown = _kwargs_direction(n.expectation or "", dict(o.kwargs), dict(n.kwargs))
    t2, l2, u2 = _bounds_direction(dict(o.bounds), dict(n.bounds))
    tighter, looser, unknown = tighter + t2, looser + l2, unknown + u2
    if tighter:
        yield "rule-tightened", True, f"tightens rule {name} ({'; '.join(tighter)})"
    if unknown:
        yield "rule-changed", True, f"changes rule {name} ({'; '.join(unknown)}: cannot tell whether it is stricter)"
    if looser and not (tighter or unknown):
        yield "rule-loosened", False, f"loosens rule {name} ({'; '.join(looser)})"


def _sql(query: str | None) -> str | None:
    return " ".join(query.split()) if query else query


_INF = float("inf")


def _kwargs_direction(expectation: str, o: dict, n: dict) -> tuple[list[str], list[str], list[str]]:
    tighter, looser, unknown = [], [], []
    for key in sorted(set(o) | set(n)):
        a, b = o.get(key), n.get(key)
        if a == b:
            continue
        if key == "value_set":
            dropped = [v for v in (a or []) if v not in (b or [])]
            gained = [v for v in (b or []) if v not in (a or [])]
            excluding = "not_be_in_set" in expectation
            if not excluding and "be_in_set" not in expectation:
                unknown.append(f"value_set {a} -> {b}")
                continue
            narrower, wider = (gained, dropped) if excluding else (dropped, gained)
            if narrower:
                tighter.append(f"validValues {'adds' if excluding else 'drops'} {narrower}")
            if wider:
                looser.append(f"validValues {'drops' if excluding else 'adds'} {wider}")
        elif key in ("min_value", "max_value") and _number(a) and _number(b):
            lo = key == "min_value"
            x = (-_INF if lo else _INF) if a is None else a
            y = (-_INF if lo else _INF) if b is None else b
            ((tighter if (y > x) == lo else looser)).append(f"{key} {a} -> {b}")
        elif key in ("strict_min", "strict_max"):
            (tighter if b else looser).append(f"{key} {bool(a)} -> {bool(b)}")
        elif key == "mostly" and _number(a) and _number(b):
            x, y = 1.0 if a is None else a, 1.0 if b is None else b
            (tighter if y > x else looser).append(f"mostly {x:g} -> {y:g}")
        else:
            unknown.append(f"{key} {a!r} -> {b!r}")
    return tighter, looser, unknown


def _number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _bounds_direction(o: dict, n: dict) -> tuple[list[str], list[str], list[str]]:
    if o == n:
        return [], [], []
    negative = {"mustNotBe", "mustNotBeBetween"}
    what = f"{_show_bounds(o)} -> {_show_bounds(n)}"
    if (set(o) | set(n)) & negative:
        return [], [], [what]
    a, b = _interval(o), _interval(n)
    if a is None or b is None:
        return [], [], [what]
    if _contains(b, a):
        return [], [what], []
    return [what], [], []


def _show_bounds(b: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(b.items())) or "no bound"


def _interval(b: dict):
    """The allowed values of a sql rule's result as (low, low strict, high, high strict)."""
    lo, lo_s, hi, hi_s = -_INF, False, _INF, False
    try:
        for k, v in b.items():
            if k == "mustBe":
                lo, hi = max(lo, v), min(hi, v)
            elif k == "mustBeGreaterThan":
                lo, lo_s = v, True
            elif k == "mustBeGreaterOrEqualTo":
                lo = v
            elif k == "mustBeLessThan":
                hi, hi_s = v, True
            elif k == "mustBeLessOrEqualTo":
                hi = v
            elif k == "mustBeBetween":
                lo, hi = v
            else:
                return None
        float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    return lo, lo_s, hi, hi_s


def _contains(outer, inner) -> bool:
    olo, olo_s, ohi, ohi_s = outer
    ilo, ilo_s, ihi, ihi_s = inner
    low_ok = olo < ilo or (olo == ilo and (not olo_s or ilo_s))
    high_ok = ohi > ihi or (ohi == ihi and (not ohi_s or ihi_s))
    return low_ok and high_ok


def _sla_field(raw: dict) -> str | None:
    for i, s in enumerate(raw.get("slaProperties") or []):
        if s.get("property") == "latency":
            return f"slaProperties[{i}]"
    return None


def _role_field(raw: dict, reader: str) -> str:
    for i, r in enumerate(raw.get("roles") or []):
        if r.get("role") == reader:
            return f"roles[{i}]"
    return "roles"


def _span(t) -> str:
    if t is None:
        return "none"
    seconds = int(t.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
