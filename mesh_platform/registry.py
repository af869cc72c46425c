"""Every product of the workspace, known without running anyone's code: contracts parsed, and
each product function's `@product(...)` declaration read from its source file's syntax tree
(no domain imports another domain's code, not even to validate it).

A code location checks its own products against it when it loads: every input names a product
that exists, the producer's contract grants it to this location, and no chain of inputs leads
back to where it started.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mesh_platform.contracts import Contract, ContractError, load_contract


@dataclass(frozen=True)
class Entry:
    key: str
    location: str
    contract: Contract
    code: Path | None  # the product's function file, if found
    inputs: tuple[str, ...]


def declared(path: Path) -> dict[str, tuple[str, ...]]:
    """The `inputs=` of each `@product` function in a file, as written (literal lists only)."""
    found: dict[str, tuple[str, ...]] = {}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (SyntaxError, UnicodeDecodeError):
        return found  # the location that owns it reports this when it imports the file
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", getattr(deco.func, "attr", None)) == "product":
                inputs = next((k.value for k in deco.keywords if k.arg == "inputs"), None)
                try:
                    found[node.name] = tuple(ast.literal_eval(inputs)) if inputs is not None else ()
                except ValueError:
                    found[node.name] = ()
    return found


def location_entries(folder: Path, location: str) -> dict[str, Entry]:
    entries = {}
    code = {}
    for path in sorted((folder / "products").glob("*.py")):
        for fn, inputs in declared(path).items():
            code[fn] = (path, inputs)
    for path in sorted((folder / "contracts").glob("*.odcs.yaml")):
        contract = load_contract(path)
        if contract.domain != location or path.name != f"{contract.name}.odcs.yaml":
            # Not a product its location would load (that load says why): no key to list.
            raise ContractError(path, "domain", f"not a product of location '{location}'")
        file, inputs = code.get(contract.name, (None, ()))
        entries[contract.key] = Entry(contract.key, location, contract, file, inputs)
    return entries


def workspace_entries(skip: str, unreadable: set[str] | None = None) -> dict[str, Entry]:
    """The products of every other location in workspace.yaml. A location that does not load
    is left out here (its name added to `unreadable`); its own load reports it."""
    from mesh_platform.workspace import locations

    out: dict[str, Entry] = {}
    for loc in locations().values():
        if loc.name == skip:
            continue
        try:
            out |= location_entries(loc.path.parent, loc.name)
        except (ContractError, OSError):
            if unreadable is not None:
                unreadable.add(loc.name)
            continue
    return out


def location_order(names: list[str]) -> list[str]:
    """`names` ordered so that a location runs after every location whose products it reads
    (otherwise in the order given): one run per location then reads freshly published inputs.
    Locations that read each other's products (no such order) keep the order given."""
    entries = workspace_entries(skip="")
    location_of = {e.key: e.location for e in entries.values()}
    needs = {
        n: {location_of[i.partition("@")[0]] for e in entries.values() if e.location == n for i in e.inputs
            if i.partition("@")[0] in location_of} - {n}
        for n in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and not (needs[n] & (set(names) - set(ordered)))]
        ordered.append(ready[0] if ready else next(n for n in names if n not in ordered))
    return ordered


def check_location(
    location: str, own: dict[str, Entry], others: dict[str, Entry], unreadable: set[str] = frozenset()
) -> None:
    """Raise ContractError for an input that names no product, is not granted to `location`, or
    closes a cycle. An input of a location in `unreadable` (one that does not load) is not
    checked: a broken domain must not stop its readers from loading; the reader still enforces
    the grants of its last published contract when the run reads it."""
    everything = {**others, **own}
    for entry in own.values():
        field = f"@product {entry.contract.name}: inputs"
        for written in entry.inputs:
            if written.split("/")[0] in unreadable and written.partition("@")[0] not in everything:
                continue
            try:
                producer = everything[resolve_input(written, everything)]
            except LookupError as exc:
                raise ContractError(entry.code, field, str(exc)) from None
            if producer.location != location and location not in producer.contract.readers:
                raise ContractError(
                    entry.code, field,
                    f"'{written}' is not granted to '{location}' by {producer.contract.path} "
                    f"(roles: {list(producer.contract.readers) or 'none'}); its owners add a role with access: read",
                )
            _check_retirement(entry, field, written, producer)
        cycle = _cycle(entry.key, everything)
        if cycle:
            raise ContractError(entry.code, field, f"a cycle of inputs: {' reads '.join(cycle)}")


def resolve_input(written: str, everything: dict[str, Entry]) -> str:
    """The product an input names. `domain/name` is the latest major version; `domain/name@N`
    is major N: the latest if that is N, else the older major served beside it (`name_vN`)."""
    key, _, pin = written.partition("@")
    latest = everything.get(key)
    if not pin:
        if latest is None:
            close = difflib.get_close_matches(key, everything, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; products: {sorted(everything)}"
            raise LookupError(f"'{written}' is not a product of the workspace{hint}")
        return key
    side = f"{key}_v{pin}"
    if side in everything:
        return side
    if latest is not None and latest.contract.major == int(pin):
        return key
    served = sorted(e.contract.version for e in everything.values() if e.contract.series_key == key)
    raise LookupError(
        f"'{written}': no major version {pin} of '{key}' is served"
        + (f" (versions served: {', '.join(served)})" if served else " (no such product)"))


# A consumer pinned to an older major is warned this many days before that major is retired.
RETIREMENT_WARNING_DAYS = 30


def retirement_notice(written: str, producer: Entry, today: date | None = None) -> str | None:
    """A warning when the major version `written` pins is retired within RETIREMENT_WARNING_DAYS."""
    retires = producer.contract.retires
    if retires is None:
        return None
    days = (retires - (today or date.today())).days
    if days > RETIREMENT_WARNING_DAYS:
        return None
    latest = producer.contract.series_key
    return (f"'{written}' is retired after {retires.isoformat()} ({days} days left; "
            f"{producer.contract.path}: customProperties.deprecationDate): move to '{latest}'")


def _check_retirement(entry: Entry, field: str, written: str, producer: Entry) -> None:
    retires = producer.contract.retires
    if retires is not None and date.today() > retires:
        raise ContractError(
            entry.code, field,
            f"'{written}' was retired after {retires.isoformat()} ({producer.contract.path}: "
            f"customProperties.deprecationDate): read '{producer.contract.series_key}', "
            "the latest major version, and adapt to its changes",
        )


def _cycle(start: str, everything: dict[str, Entry]) -> list[str] | None:
    """A chain of inputs from `start` back to itself ("a reads b reads ... reads a"), if any."""
    stack, seen = [[start]], set()
    while stack:
        path = stack.pop()
        upstreams = [_resolved_or_written(i, everything) for i in everything[path[-1]].inputs] \
            if path[-1] in everything else ()
        for upstream in upstreams:
            if upstream == start:
                return [*path, start]
            if upstream not in seen:
                seen.add(upstream)
                stack.append([*path, upstream])
    return None


def _resolved_or_written(written: str, everything: dict[str, Entry]) -> str:
    try:
        return resolve_input(written, everything)
    except LookupError:
        return written


def product_contract(key: str) -> Contract:
    """The contract of the product `key` ("domain/name") in the workspace."""
    from mesh_platform.workspace import locations

    domain = key.split("/")[0]
    loc = locations().get(domain)
    path = loc.path.parent / "contracts" / f"{key.split('/')[1]}.odcs.yaml" if loc else None
    if path is None or not path.exists():
        raise LookupError(f"product {key} is not in the workspace")
    return load_contract(path)
