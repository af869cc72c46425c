"""Nested columns declared the ODCS way, checked against the column's physicalType.

ODCS describes what a column holds with `properties` (the fields of an object: a DuckDB STRUCT),
`items` (what an array holds: a DuckDB list T[] or array T[n]) and `map` (key and value of a
MAP), each entry with its own logicalType and optionally its physicalType, to any depth. ODCS
tools read those; the platform reads physicalType. Both must say the same: the same fields in
the same order, each nested physicalType the type the parent's physicalType gives that field,
each logicalType one that can describe it. A disagreement is a load error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mesh_platform import typetree


@dataclass
class Disagreement(ValueError):
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def check(field: str, prop: Any, declared: typetree.SqlType, column: str) -> None:
    """Raise Disagreement unless the ODCS column `prop` (at `field`) and its nested declarations
    describe type `declared`. A column without nested declarations is left as it is: its
    logicalType is checked only where it heads a nested declaration."""
    if any(getattr(prop, k, None) is not None for k in ("properties", "items", "map")):
        _check(field, prop, declared, column)


def _check(field: str, prop: Any, declared: typetree.SqlType, column: str) -> None:
    """As `check`, for a property and everything declared inside it (`column` is a path like
    `recent_orders[].amount`)."""
    what = f"column '{column}'"
    logical = getattr(prop, "logicalType", None)
    if logical and not typetree.logical_agrees(logical, declared):
        raise Disagreement(f"{field}.logicalType", f"logicalType '{logical}' cannot describe {what} of type {declared}")
    fields = getattr(prop, "properties", None)
    items = getattr(prop, "items", None)
    mapping = getattr(prop, "map", None)
    if fields:
        if declared.kind != "struct":
            raise Disagreement(f"{field}.properties", f"{what} declares object properties but its type {declared} is not a STRUCT")
        names = [f.name for f in fields]
        expected = [n for n, _ in declared.fields]
        if names != expected:
            missing = [n for n in expected if n not in names]
            extra = [n for n in names if n not in expected]
            detail = ", ".join(
                p for p in (f"missing {missing}" if missing else "", f"not in the type {extra}" if extra else "") if p
            ) or "in another order"
            raise Disagreement(
                f"{field}.properties",
                f"{what}: the declared properties {names} are not the STRUCT's fields {expected} ({detail})",
            )
        for j, (sub, (name, ftype)) in enumerate(zip(fields, declared.fields)):
            _nested(f"{field}.properties[{j}]", sub, ftype, f"{column}.{name}")
    if items is not None:
        if declared.nested is None:
            raise Disagreement(f"{field}.items", f"{what} declares array items but its type {declared} is not a list")
        _nested(f"{field}.items", items, declared.nested, f"{column}[]")
    if mapping is not None:
        if declared.kind != "map":
            raise Disagreement(f"{field}.map", f"{what} declares a map but its type {declared} is not a MAP")
        for part, (_, ptype) in zip(("key", "value"), declared.fields):
            sub = getattr(mapping, part, None)
            if sub is not None:
                _nested(f"{field}.map.{part}", sub, ptype, f"{column}.{part}")


def _nested(field: str, prop: Any, declared: typetree.SqlType, column: str) -> None:
    physical = getattr(prop, "physicalType", None)
    if physical:
        try:
            own = typetree.parse(physical)
        except ValueError:
            raise Disagreement(f"{field}.physicalType", f"unknown column type '{physical}' (a DuckDB type is expected)") from None
        if own != declared:
            raise Disagreement(
                f"{field}.physicalType",
                f"'{physical}' for '{column}', but the column's physicalType makes it {declared}",
            )
    _check(field, prop, declared, column)
