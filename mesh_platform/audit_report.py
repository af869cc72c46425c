"""The audit log as people and programs read it: `mesh audit` (a table), `mesh audit --json`
(a JSON array that Entry.from_dict reads back), and `mesh audit --verify` (the problems)."""

from __future__ import annotations

import json

from mesh_platform.audit import Entry, Problem

_COLUMNS = ("seq", "time (UTC)", "action", "actor", "product", "detail")


def format_entries(entries: list[Entry]) -> str:
    """A table, one entry a row; the detail as key=value pairs, sorted by key."""
    if not entries:
        return "(no audit entries)"
    rows = [
        (
            str(e.seq),
            e.ts[:19].replace("T", " "),
            e.action,
            e.actor,
            e.product or "-",
            " ".join(f"{k}={_value(v)}" for k, v in sorted(e.detail.items())),
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(
            (cell.rjust(w) if i == 0 else cell.ljust(w)) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in [_COLUMNS, *rows]
    ]
    return "\n".join(lines)


def _value(v: object) -> str:
    """Bare strings where that is unambiguous; JSON otherwise (spaces, quotes, '=', lists)."""
    if isinstance(v, str) and v and not any(c.isspace() or c in "\"'=" for c in v):
        return v
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def entries_json(entries: list[Entry]) -> str:
    """A JSON array of the entries, every field as stored; `Entry.from_dict` reads each back."""
    return json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=2)


def format_problems(problems: list[Problem]) -> str:
    if not problems:
        return "audit log intact: every entry chains to the next and to the head anchor"
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    width = max(len(p.kind) for p in problems)
    return "\n".join([f"audit log tampered with: {count}", *(f"  {p.kind.ljust(width)}  {p.message}" for p in problems)])
