"""Who reads what: the columns each product reads from each of its inputs, and so which
consumers a breaking contract change breaks.

Read from source, like the registry, never by importing anyone's code: the product function's
file is parsed with `ast`, which finds the views it makes of its inputs
(`ctx.product("orders/history").to_view("history")`) and the SQL string literals it passes to
`ctx.sql(...)`; sqlglot (DuckDB dialect) parses that SQL, qualifies every column against the
inputs' contracts and resolves it to the view it comes from, through CTEs, subqueries, joins
(`USING` too), `SELECT *` (expanded: every column) and struct access (`p.profile.email`,
`h.recent_orders[1].amount`, `struct_extract(...)`, `(unnest(...)).field`) down to the nested
field. The consumer's own contract rules of `type: sql` are read the same way (they read the
inputs as `upstream_<domain>_<product>`).

What it cannot see, and how it answers then (always on the side of "uses it"):
- SQL built at run time (an f-string, a variable, concatenation): every column of every input
  of that product counts as used.
- Python reading an input outside SQL (relation methods such as `.select`, `.filter`,
  `.project`, `.fetchall()`, or a relation passed around): every column of that input counts.
- A view made under a name computed at run time: the SQL's table names are then unknown to it;
  every column of that product's inputs counts.
- Columns reached through a lambda (`list_transform(h.recent_orders, o -> o.amount)`) or a
  function over a whole struct count as the whole column (every nested field).
- SQL that sqlglot cannot parse: every column of every input counts.
- What a consumer does with the product outside the mesh (a dashboard, a notebook, another
  tool): only the workspace's products are known.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

if TYPE_CHECKING:
    from mesh_platform.contract_diff import Change, Diff
    from mesh_platform.registry import Entry

EVERY = "*"  # the column path meaning "every column"
# Breaking changes that change what a consumer reads: its query or its results break. The others
# (a tightened rule or SLA, a column made required or unique) are breaking for the contract, and
# its consumers are listed, but what they read still reads the same.
BREAK_READS = frozenset({
    "column-removed", "column-renamed", "type-narrowed", "type-changed", "logical-type-changed", "field-removed",
    "field-renamed", "grain-changed", "grant-removed", "grant-masked", "grant-excluded", "product-renamed",
})


@dataclass
class Usage:
    """What one product reads of one input: column paths (`lifetime_value`,
    `recent_orders.amount`), or every column when `columns` is None; `notes` say why."""

    consumer: str
    input: str
    columns: set[str] | None = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def everything(self, why: str) -> None:
        self.columns = None
        if why not in self.notes:
            self.notes.append(why)

    def reads(self, column: str) -> list[str]:
        """The paths read that overlap `column` (it, a field inside it, or the column holding it)."""
        if self.columns is None:
            return [EVERY]
        return sorted(c for c in self.columns if _overlaps(c, column))


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


@dataclass(frozen=True)
class Impact:
    """A consumer a breaking change breaks."""

    change: Change
    producer: str
    consumer: str
    owner: str  # the consumer's owning team
    location: str
    columns: tuple[str, ...]  # what it reads that the change concerns ("*": every column)
    notes: tuple[str, ...] = ()

    @property
    def breaks_reads(self) -> bool:
        """Whether the change breaks what this consumer reads (see BREAK_READS)."""
        return self.change.rule in BREAK_READS

    def __str__(self) -> str:
        what = f" reads {', '.join(self.columns)}" if self.columns else " reads the product"
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.consumer} (owner {self.owner}, location {self.location}){what}{notes}"

    def as_dict(self) -> dict:
        return {"consumer": self.consumer, "owner": self.owner, "location": self.location,
                "columns": list(self.columns), "notes": list(self.notes), "breaks_reads": self.breaks_reads,
                "change": self.change.as_dict()}


def usages(entry: Entry, schemas: dict[str, dict[str, str]]) -> dict[str, Usage]:
    """What `entry`'s product reads of each of its inputs. `schemas` gives each product's
    columns and types ({key: {column: physicalType}}), for qualifying the SQL."""
    out = {key: Usage(entry.key, key) for key in entry.inputs}
    if not entry.inputs:
        return out
    if entry.code is None:
        for u in out.values():
            u.everything("no product function file found")
        return out
    code = _read_code(Path(entry.code), entry.contract.name, set(entry.inputs))
    for key, why in code.python_reads.items():
        if key in out:
            out[key].everything(why)
    if code.dynamic:
        for u in out.values():
            u.everything(code.dynamic)
    views = {_upstream_view(k): k for k in entry.inputs} | {v: k for v, k in code.views.items() if k in out}
    sqls = list(code.sql)
    for rule in entry.contract.rules:
        if rule.engine == "sql" and rule.query:
            sqls.append(rule.query.replace("${object}", "mesh_output").replace("${property}", rule.column or "NULL"))
    for sql in sqls:
        _read_sql(sql, views, schemas, out)
    return out


def _upstream_view(key: str) -> str:
    return "upstream_" + key.partition("@")[0].replace("/", "_")


@dataclass
class _Code:
    views: dict[str, str] = field(default_factory=dict)  # view name -> input key
    sql: list[str] = field(default_factory=list)
    python_reads: dict[str, str] = field(default_factory=dict)  # input key -> why every column counts
    dynamic: str | None = None


def _read_code(path: Path, function: str, inputs: set[str]) -> _Code:
    out = _Code()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        out.dynamic = f"cannot read {path}: {exc}"
        return out
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function), tree)
    names: dict[str, str] = {}  # variable -> input key it holds
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = _product_key(node.value)
            if key is not None:
                names[node.targets[0].id] = key
    consumed: set[int] = set()  # ids of ctx.product(...) calls whose relation only becomes a view
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, target = node.func.attr, node.func.value
        if attr == "to_view":
            key = _product_key(target)
            if key is None and isinstance(target, ast.Name):
                key = names.get(target.id)
            if key is not None:
                consumed.add(id(target))
                view = node.args[0] if node.args else None
                if isinstance(view, ast.Constant) and isinstance(view.value, str):
                    out.views[view.value] = key
                else:
                    out.dynamic = "a view name computed at run time"
        elif attr == "sql":
            query = node.args[0] if node.args else None
            if isinstance(query, ast.Constant) and isinstance(query.value, str):
                out.sql.append(query.value)
            else:
                out.dynamic = "SQL built at run time"
    for node in ast.walk(fn):
        key = _product_key(node) if isinstance(node, ast.Call) else None
        if key is not None and id(node) not in consumed and not _assigned(node, fn):
            out.python_reads[key] = "read in Python outside SQL"
    for node in ast.walk(fn):  # a variable holding a product, used other than for to_view
        if isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Load):
            parent = _parent(fn, node)
            if not (isinstance(parent, ast.Attribute) and parent.attr == "to_view"):
                out.python_reads[names[node.id]] = "read in Python outside SQL"
    return out


def _product_key(node) -> str | None:
    """The key of `ctx.product("key")`, if `node` is that call."""
    if (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "product"
        and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _assigned(call: ast.Call, fn) -> bool:
    parent = _parent(fn, call)
    return isinstance(parent, ast.Assign)


def _parent(root, child):
    for node in ast.walk(root):
        for c in ast.iter_child_nodes(node):
            if c is child:
                return node
    return None


def _read_sql(sql: str, views: dict[str, str], schemas: dict[str, dict[str, str]], out: dict[str, Usage]) -> None:
    schema = {view: dict(schemas[key]) for view, key in views.items() if key in schemas}
    try:
        tree = sqlglot.parse_one(sql, dialect="duckdb")
        tree = qualify(tree, schema=schema, dialect="duckdb", validate_qualify_columns=False)
        scopes = traverse_scope(tree)
    except Exception as exc:  # noqa: BLE001: sqlglot raises many kinds; any means "cannot tell"
        for u in out.values():
            u.everything(f"SQL sqlglot cannot analyse ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return
    for scope in scopes:
        tables = {alias: src.name for alias, src in scope.sources.items() if isinstance(src, exp.Table)}
        for col in scope.columns:
            view = tables.get(col.table)
            usage = out[views[view]] if view in views else None
            if usage is not None and usage.columns is not None:
                usage.columns.add(".".join([col.name, *_fields(col)]))
        projections = scope.expression.expressions if isinstance(scope.expression, exp.Select) else []
        for proj in projections:  # a star qualify could not expand: the view's schema is unknown
            if isinstance(proj, exp.Star):
                table = None
            elif isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
                table = proj.table
            else:
                continue
            for alias, view in tables.items():
                if view in views and table in (None, "", alias):
                    out[views[view]].everything("SELECT * of a view without a known schema")


def _fields(col: exp.Column) -> list[str]:
    """The struct fields a column expression reaches into (`p.profile.email` -> ["email"])."""
    chain, node = [], col
    while True:
        parent = node.parent
        if isinstance(parent, exp.Dot) and parent.this is node:
            chain.append(parent.expression.name)
        elif isinstance(parent, exp.StructExtract) and parent.this is node:
            if not isinstance(parent.expression, exp.Literal):
                break
            chain.append(parent.expression.name)
        elif isinstance(parent, exp.Bracket) and parent.this is node:
            index = parent.expressions
            if len(index) == 1 and isinstance(index[0], exp.Literal) and index[0].is_string:
                chain.append(index[0].name)
            elif not (len(index) == 1 and isinstance(index[0], exp.Literal)):
                break  # a slice or a computed index: the elements, all of them
        elif isinstance(parent, (exp.Paren, exp.Explode, exp.Unnest)) and parent.this is node:
            pass  # the list's elements: the path goes on without a segment
        else:
            break
        node = parent
    return chain


def consumers_of(key: str, entries: dict[str, Entry], new_major: int | None = None) -> list[Entry]:
    """The products reading `key` that have not moved to major version `new_major`: every
    product whose inputs name it unversioned, or pinned to an older major (`key@N`) that no
    older version served side by side (`key_vN`) keeps for them; and, for such a side-by-side
    version, the products pinned to it."""
    out = []
    for entry in entries.values():
        for name in entry.inputs:
            if _reads(name, key, entries, new_major):
                out.append(entry)
                break
    return sorted(out, key=lambda e: e.key)


def _reads(written: str, key: str, entries: dict[str, Entry], new_major: int | None) -> bool:
    base, _, pin = written.partition("@")
    if base != key:
        return bool(pin) and f"{base}_v{pin}" == key
    if not pin:
        return True
    if f"{key}_v{pin}" in entries:
        return False  # it reads the older major served beside this one
    return new_major is None or int(pin) < new_major


def impacts(diff: Diff, entries: dict[str, Entry], new_major: int | None = None) -> list[Impact]:
    """The consumers each breaking change of `diff` breaks: for a column change, those that read
    the column (or a field in it); for a grant change, those in the reader's location (reading
    the column, for masking and excluding); for any other breaking change (grain, rules, SLA),
    every consumer."""
    key = diff.old.contract.key
    schemas = {k: {c.name: c.physical_type for c in e.contract.columns} for k, e in entries.items()}
    schemas[key] = {c.name: c.physical_type for c in diff.old.contract.columns}  # the SQL was written against it
    out: list[Impact] = []
    cache: dict[str, dict[str, Usage]] = {}
    for change in diff.breaking:
        for consumer in consumers_of(key, entries, new_major):
            if change.reader is not None and consumer.location != change.reader:
                continue
            columns: tuple[str, ...] = ()
            notes: tuple[str, ...] = ()
            if change.column is not None:
                if consumer.key not in cache:
                    cache[consumer.key] = usages(consumer, schemas)
                usage = cache[consumer.key].get(key) or next(
                    (u for k, u in cache[consumer.key].items() if _reads(k, key, entries, None)), None)
                if usage is None:
                    continue
                columns = tuple(usage.reads(change.column))
                if not columns:
                    continue
                notes = tuple(usage.notes)
            out.append(Impact(change, key, consumer.key, consumer.contract.team, consumer.location, columns, notes))
    return out


def all_entries(workspace: Path | None = None) -> dict[str, Entry]:
    """Every product of a workspace (default: the project's workspace.yaml): the registry
    entries of every location whose contracts load."""
    from mesh_platform.contracts import ContractError
    from mesh_platform.registry import location_entries
    from mesh_platform.workspace import WORKSPACE, locations

    out: dict[str, Entry] = {}
    for loc in locations(workspace or WORKSPACE).values():
        try:
            out |= location_entries(loc.path.parent, loc.name)
        except (ContractError, OSError):
            continue
    return out
